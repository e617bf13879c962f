//! Every unsafe call of verify: the probe of the digest index (relations, scan, slot and
//! snapshot, each released on drop), the columns it copies out, and the transaction state
//! verify depends on. Nothing here decides anything.
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::{IntoDatum, Uuid};

use crate::error;
use crate::jsonb::Jsonb;

/// The columns of `apikey.keys` that verify reads, in this order. Those after
/// [`REQUIRED`] came with 0.2.0: a database still at 0.1.0 (the new library installed,
/// `ALTER EXTENSION pg_apikey UPDATE` not yet run) has none of them, and they read as NULL.
const COLUMNS: [&CStr; 13] = [
    c"id",
    c"org_id",
    c"user_id",
    c"name",
    c"permissions",
    c"metadata",
    c"remaining",
    c"expires_at",
    c"revoked_at",
    c"enabled",
    c"last_used_at",
    c"rate_limit_max",
    c"rate_limits",
];
const REQUIRED: usize = 12;
pub const ID: usize = 0;
pub const ORG_ID: usize = 1;
pub const USER_ID: usize = 2;
pub const NAME: usize = 3;
pub const PERMISSIONS: usize = 4;
pub const METADATA: usize = 5;
const REMAINING: usize = 6;
pub const EXPIRES_AT: usize = 7;
const REVOKED_AT: usize = 8;
const ENABLED: usize = 9;
const LAST_USED_AT: usize = 10;
const RATE_LIMIT_MAX: usize = 11;
const RATE_LIMITS: usize = 12;

/// A found key's columns, copied out of the buffer (detoasted) into the current memory
/// context, so they outlive the scan. The decision reads them through typed accessors;
/// the entry point passes [`KeyRead::datum`]s through to the result row.
pub struct KeyRead {
    values: [Datum; COLUMNS.len()],
    nulls: [bool; COLUMNS.len()],
    /// Read from a 0.1.0 table (no 0.2.0 columns).
    legacy: bool,
}

impl KeyRead {
    /// The column as the datum it is, for the result row.
    pub fn datum(&self, col: usize) -> Option<Datum> {
        (!self.nulls[col]).then_some(self.values[col])
    }

    pub fn id(&self) -> Uuid {
        // SAFETY: id is a NOT NULL uuid column, copied out by lookup.
        unsafe { Uuid::from_datum(self.values[ID], false) }.expect("id is never NULL")
    }

    /// Whether the key was read from a database still at 0.1.0.
    pub fn is_from_0_1_0(&self) -> bool {
        self.legacy
    }

    pub fn revoked(&self) -> bool {
        !self.nulls[REVOKED_AT]
    }

    pub fn enabled(&self) -> bool {
        // enabled is a by-value boolean column.
        self.datum(ENABLED).is_some_and(|d| d.value() != 0)
    }

    /// A timestamptz column as microseconds since 2000-01-01 (by value).
    fn timestamp(&self, col: usize) -> Option<pg_sys::TimestampTz> {
        self.datum(col).map(|d| d.value() as pg_sys::TimestampTz)
    }

    pub fn expires_at(&self) -> Option<pg_sys::TimestampTz> {
        self.timestamp(EXPIRES_AT)
    }

    pub fn last_used_at(&self) -> Option<pg_sys::TimestampTz> {
        self.timestamp(LAST_USED_AT)
    }

    /// remaining is a by-value bigint column.
    pub fn remaining(&self) -> Option<i64> {
        self.datum(REMAINING).map(|d| d.value() as i64)
    }

    /// Whether the key has a quota or a rate limit of its own.
    pub fn is_limited(&self) -> bool {
        !self.nulls[REMAINING] || !self.nulls[RATE_LIMIT_MAX] || !self.nulls[RATE_LIMITS]
    }

    pub fn org_id(&self) -> Option<String> {
        // SAFETY: a text column, copied out by lookup.
        unsafe { String::from_datum(self.values[ORG_ID], self.nulls[ORG_ID]) }
    }

    pub fn user_id(&self) -> Option<String> {
        // SAFETY: a text column, copied out by lookup.
        unsafe { String::from_datum(self.values[USER_ID], self.nulls[USER_ID]) }
    }

    pub fn permissions(&self) -> Option<Jsonb> {
        // SAFETY: a jsonb column, copied out by lookup.
        unsafe { Jsonb::from_datum(self.values[PERMISSIONS], self.nulls[PERMISSIONS]) }
    }
}

/// Where one of [`COLUMNS`] sits in the table's rows, and how its values are stored.
#[derive(Clone, Copy)]
struct Column {
    /// Zero-based attribute index; [`ABSENT`] for a 0.2.0 column of a 0.1.0 table.
    index: usize,
    byval: bool,
    /// `attlen`: -1 for varlena, else the fixed length in bytes.
    len: i16,
}

const ABSENT: usize = usize::MAX;

const NO_COLUMN: Column = Column {
    index: 0,
    byval: false,
    len: 0,
};

thread_local! {
    /// (relation oid, number of attributes, where COLUMNS sit): recomputed when the table
    /// is re-created or gains columns.
    static ATTNUMS: Cell<(pg_sys::Oid, i32, [Column; COLUMNS.len()])> =
        const { Cell::new((pg_sys::InvalidOid, 0, [NO_COLUMN; COLUMNS.len()])) };
}

unsafe fn attnums(rel: pg_sys::Relation) -> [Column; COLUMNS.len()] {
    let relid = (*rel).rd_id;
    let natts = (*(*rel).rd_att).natts;
    let (cached_rel, cached_natts, cached) = ATTNUMS.with(Cell::get);
    if cached_rel == relid && cached_natts == natts {
        return cached;
    }
    // pgrx's descriptor wrapper reads attributes the same way on every major (PostgreSQL
    // 18 moved them behind TupleDescAttr); it borrows the relcache's descriptor.
    let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let mut found = [NO_COLUMN; COLUMNS.len()];
    for (i, (slot, name)) in found.iter_mut().zip(COLUMNS).enumerate() {
        let n = pg_sys::attnameAttNum(rel, name.as_ptr(), false);
        if n <= 0 && i >= REQUIRED {
            *slot = Column {
                index: ABSENT,
                ..NO_COLUMN
            };
            continue;
        }
        if n <= 0 {
            error::not_ready(
                format!("apikey.keys has no column {}", name.to_string_lossy()),
                "Reinstall the extension: ALTER EXTENSION pg_apikey UPDATE, or DROP and CREATE it.",
            );
        }
        let index = n as usize - 1;
        let attr = desc
            .get(index)
            .expect("attribute number within the descriptor");
        *slot = Column {
            index,
            byval: attr.attbyval,
            len: attr.attlen,
        };
    }
    ATTNUMS.with(|c| c.set((relid, natts, found)));
    found
}

thread_local! {
    /// The oids of `apikey.keys` and its digest index, looked up once per backend and
    /// forgotten whenever PostgreSQL invalidates either relation (or everything).
    static RELATIONS: Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> = const { Cell::new(None) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_relations(_arg: Datum, relid: pg_sys::Oid) {
    RELATIONS.with(|r| {
        if let Some((keys, index)) = r.get() {
            if relid == pg_sys::InvalidOid || relid == keys || relid == index {
                r.set(None);
            }
        }
    });
    FLAGS.with(|f| {
        let mut flags = f.get();
        if relid == pg_sys::InvalidOid || relid == flags.keys || relid == flags.owner_limits {
            flags.imported_keys_exist = None;
            flags.generation = flags.generation.wrapping_add(1);
            f.set(flags);
            OWNERS.with(|o| o.borrow_mut().take());
        }
    });
}

/// Two facts verify needs on every call and that change rarely, kept per backend: which
/// owners have limits ([`Owners`]), and whether imported keys are in use. Each is looked up once,
/// then forgotten when `apikey.keys` or `apikey.owner_limits` is invalidated: the
/// functions that can make either true (`set_owner_limits`, `import_api_key`) send that
/// invalidation with their commit, see [`announce_change`]. A lookup that overlapped an
/// invalidation is used once and not kept (`generation`).
#[derive(Clone, Copy)]
struct Flags {
    keys: pg_sys::Oid,
    owner_limits: pg_sys::Oid,
    imported_keys_exist: Option<bool>,
    generation: u64,
}

/// The owners that have limits, as this backend last read them: every organization and
/// user by id while there are at most [`OWNERS_KEPT`] (then a key whose owner has none
/// costs a hash lookup), else only that there are many (then every verify of a key looks
/// its owner up).
enum Owners {
    Listed {
        orgs: HashSet<String>,
        users: HashSet<String>,
    },
    Many,
}

/// How many owners with limits a backend keeps in memory.
const OWNERS_KEPT: i64 = 10_000;

thread_local! {
    static FLAGS: Cell<Flags> = const {
        Cell::new(Flags {
            keys: pg_sys::InvalidOid,
            owner_limits: pg_sys::InvalidOid,
            imported_keys_exist: None,
            generation: 0,
        })
    };
    static OWNERS: RefCell<Option<Rc<Owners>>> = const { RefCell::new(None) };
}

/// Look a fact of [`Flags`] or [`Owners`] up in `table` (`None`: the table, or the
/// column the fact needs, does not exist — a 0.1.0 schema), running `look` as the
/// extension's owner, and `keep` it unless an invalidation arrived meanwhile (then it is
/// used for this call only). `None` when there is no table.
fn look_up<T>(
    table: Option<pg_sys::Oid>,
    look: impl FnOnce() -> T,
    keep: impl FnOnce(&mut Flags, pg_sys::Oid, &T),
) -> Option<T> {
    let before = FLAGS.with(Cell::get).generation;
    let oid = table?;
    let value = crate::settings::with_pinned_search_path(|| crate::caller::as_owner(look));
    FLAGS.with(|f| {
        let mut flags = f.get();
        if flags.generation == before {
            keep(&mut flags, oid, &value);
            f.set(flags);
        }
    });
    Some(value)
}

fn apikey_relation(name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: syscache lookups by name.
    let oid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"apikey".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return None;
        }
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether the owner `kind` (`org` or `user`) `id` may have limits: false when it surely
/// has none (from this backend's [`Owners`]), true when it has, or when there are too
/// many owners with limits to keep (the caller then looks).
pub fn owner_may_have_limits(kind: &str, id: &str) -> bool {
    let cached = OWNERS.with(|o| o.borrow().clone());
    let owners = match cached {
        Some(owners) => owners,
        None => {
            let looked = look_up(
                apikey_relation(c"owner_limits"),
                || {
                    let listed = crate::storage::metering::owners_with_limits(OWNERS_KEPT);
                    Rc::new(match listed {
                        Some(list) => {
                            let (mut orgs, mut users) = (HashSet::new(), HashSet::new());
                            for (k, id) in list {
                                if k == "org" {
                                    orgs.insert(id)
                                } else {
                                    users.insert(id)
                                };
                            }
                            Owners::Listed { orgs, users }
                        }
                        None => Owners::Many,
                    })
                },
                |flags, oid, owners| {
                    flags.owner_limits = oid;
                    OWNERS.with(|o| *o.borrow_mut() = Some(owners.clone()));
                },
            );
            match looked {
                Some(owners) => owners,
                None => return false, // a 0.1.0 schema
            }
        }
    };
    match &*owners {
        Owners::Many => true,
        Owners::Listed { orgs, users } => match kind {
            "org" => orgs.contains(id),
            _ => users.contains(id),
        },
    }
}

/// Whether keys made by `import_api_key` are in use (not revoked or deleted). Processes
/// pending invalidations first: it is asked before verify opens any table.
pub fn imported_keys_exist() -> bool {
    // SAFETY: what every lock acquisition does; cheap when nothing is pending.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if let Some(v) = FLAGS.with(Cell::get).imported_keys_exist {
        return v;
    }
    let keys = apikey_relation(c"keys").filter(|&oid| {
        // SAFETY: a syscache lookup; 0.1.0 tables have no `imported` column.
        unsafe { pg_sys::get_attnum(oid, c"imported".as_ptr()) > 0 }
    });
    look_up(
        keys,
        crate::storage::metering::imported_keys_exist,
        |flags, oid, &v| (flags.keys, flags.imported_keys_exist) = (oid, Some(v)),
    )
    .unwrap_or(false)
}

/// Tell every backend, when this transaction commits, that `apikey.<table>` changed in a
/// way the facts of [`Flags`] depend on.
pub fn announce_change(table: &CStr) {
    if let Some(oid) = apikey_relation(table) {
        // SAFETY: queues a relcache invalidation, sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
}

/// Called once from `_PG_init`.
pub fn register_invalidation() {
    // SAFETY: registers a callback that only clears a thread-local cell.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget_relations), Datum::from(0)) };
}

fn relations() -> (pg_sys::Oid, pg_sys::Oid) {
    if let Some(rels) = RELATIONS.with(Cell::get) {
        return rels;
    }
    // SAFETY: a syscache lookup by name.
    let nsp = unsafe { pg_sys::get_namespace_oid(c"apikey".as_ptr(), false) };
    let rels = (
        relation_oid(nsp, c"keys"),
        relation_oid(nsp, c"keys_digest_key"),
    );
    RELATIONS.with(|r| r.set(Some(rels)));
    rels
}

fn relation_oid(nsp: pg_sys::Oid, name: &CStr) -> pg_sys::Oid {
    // SAFETY: a syscache lookup by name.
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), nsp) };
    if oid == pg_sys::InvalidOid {
        error::not_ready(
            format!("apikey.{} does not exist", name.to_string_lossy()),
            "Run CREATE EXTENSION pg_apikey in this database.",
        );
    }
    oid
}

/// `apikey.keys` and its digest index, open, with an index scan.
struct KeyScan {
    rel: pg_sys::Relation,
    idx: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    cols: [Column; COLUMNS.len()],
}

impl KeyScan {
    /// Open with `mode` (kept to the end of the transaction, as the executor does).
    unsafe fn open(snapshot: pg_sys::Snapshot, mode: pg_sys::LOCKMODE) -> KeyScan {
        let (keys, digest_index) = relations();
        let rel = pg_sys::table_open(keys, mode);
        let idx = pg_sys::index_open(digest_index, mode);
        let cols = attnums(rel);
        #[cfg(not(feature = "pg18"))]
        let scan = pg_sys::index_beginscan(rel, idx, snapshot, 1, 0);
        #[cfg(feature = "pg18")]
        let scan = pg_sys::index_beginscan(rel, idx, snapshot, std::ptr::null_mut(), 1, 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        KeyScan {
            rel,
            idx,
            scan,
            slot,
            cols,
        }
    }

    /// One probe for `digest` under `snapshot`; the columns are copied out (detoasted)
    /// into the current memory context before the next probe can move the slot.
    unsafe fn lookup(&mut self, digest: &[u8; 32], snapshot: pg_sys::Snapshot) -> Option<KeyRead> {
        let arg = Vec::from(digest.as_slice())
            .into_datum()
            .expect("bytea datum");
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::Oid::from(pg_sys::F_BYTEAEQ),
            arg,
        );
        (*self.scan).xs_snapshot = snapshot;
        pg_sys::index_rescan(self.scan, &mut key, 1, std::ptr::null_mut(), 0);
        if !pg_sys::index_getnext_slot(
            self.scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            self.slot,
        ) {
            return None;
        }
        let slot = self.slot;
        pg_sys::slot_getallattrs(slot);
        let natts = (*(*self.rel).rd_att).natts as usize;
        let values = std::slice::from_raw_parts((*slot).tts_values, natts);
        let isnull = std::slice::from_raw_parts((*slot).tts_isnull, natts);
        let mut read = KeyRead {
            values: [Datum::from(0); COLUMNS.len()],
            nulls: [true; COLUMNS.len()],
            legacy: self.cols[RATE_LIMITS].index == ABSENT,
        };
        for (i, col) in self.cols.iter().enumerate() {
            let a = col.index;
            if a == ABSENT {
                continue;
            }
            read.nulls[i] = isnull[a];
            if isnull[a] {
                continue;
            }
            read.values[i] = if col.byval {
                values[a]
            } else if col.len == -1 {
                Datum::from(pg_sys::pg_detoast_datum_copy(values[a].cast_mut_ptr()))
            } else {
                // Fixed-length by reference (uuid): copy its bytes.
                let len = col.len as usize;
                let copy = pg_sys::palloc(len);
                std::ptr::copy_nonoverlapping(
                    values[a].cast_mut_ptr::<u8>(),
                    copy.cast::<u8>(),
                    len,
                );
                Datum::from(copy)
            };
        }
        Some(read)
    }
}

impl Drop for KeyScan {
    /// Close what `open` opened (the locks stay to the end of the transaction, as the
    /// executor keeps them). Not while unwinding from an error: the transaction's abort
    /// releases the relations, the scan's memory and the slot itself, and calling into
    /// PostgreSQL then could raise a second error.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // SAFETY: each was opened by `open` and is closed once, here.
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::index_endscan(self.scan);
            pg_sys::index_close(self.idx, pg_sys::NoLock as i32);
            pg_sys::table_close(self.rel, pg_sys::NoLock as i32);
        }
    }
}

/// A fresh snapshot, as SPI would take for each statement of a volatile function, that
/// also sees this transaction's earlier writes; unregistered on drop (on an error, the
/// transaction's abort does it).
struct FreshSnapshot(pg_sys::Snapshot);

impl FreshSnapshot {
    fn take() -> FreshSnapshot {
        // SAFETY: called inside a transaction, as every SQL function is.
        unsafe {
            pg_sys::CommandCounterIncrement();
            FreshSnapshot(pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot()))
        }
    }
}

impl Drop for FreshSnapshot {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: registered by `take`, unregistered once.
            unsafe { pg_sys::UnregisterSnapshot(self.0) };
        }
    }
}

/// The lock verify takes on `apikey.keys` and its digest index, before it reads.
///
/// Where it may write (a use, a `last_used_at`), it takes ROW EXCLUSIVE at once, the lock
/// its `UPDATE` needs, so that it never asks for a stronger lock while holding a weaker
/// one: such an upgrade deadlocks with `REINDEX` or `CREATE INDEX`, which hold SHARE on
/// the table and wait for the index. Where it cannot write (a read-only transaction, a
/// hot standby, where ROW EXCLUSIVE cannot be taken at all), ACCESS SHARE.
fn lock_mode() -> pg_sys::LOCKMODE {
    if read_only() {
        pg_sys::AccessShareLock as pg_sys::LOCKMODE
    } else {
        pg_sys::RowExclusiveLock as pg_sys::LOCKMODE
    }
}

/// One probe of the digest index for `digest`, with its own snapshot and scan, both
/// released before it returns. (Keeping the scan open across the calls of one query, as
/// the executor does, would save about a microsecond per verify inside one statement, but
/// not across statements, which is how APIs verify.)
pub fn probe(digest: &[u8; 32]) -> Option<KeyRead> {
    let snapshot = FreshSnapshot::take();
    // SAFETY: the scan is opened under a registered snapshot that outlives it (dropped
    // after it, in reverse order of declaration).
    let mut scan = unsafe { KeyScan::open(snapshot.0, lock_mode()) };
    // SAFETY: as above; the columns are copied out before the scan closes.
    unsafe { scan.lookup(digest, snapshot.0) }
}

/// Whether this transaction cannot write: a read-only transaction, or a hot standby.
pub fn read_only() -> bool {
    // SAFETY: reads backend globals.
    unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() }
}

/// Whether the current statement runs inside an explicit transaction block.
pub fn in_transaction_block() -> bool {
    // SAFETY: a read of the transaction state.
    unsafe { pg_sys::IsTransactionBlock() }
}

/// The current time (not the transaction's start: verify decides at the moment of the call).
pub fn now_tz() -> TimestampWithTimeZone {
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    TimestampWithTimeZone::try_from(now).expect("the current time is a valid timestamptz")
}
