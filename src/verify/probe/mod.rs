//! The probe of the digest index: every unsafe call that reads a key — relations, scan,
//! slot and snapshot, each released on drop (here) — and the columns it copies out
//! ([`row`]). Nothing here decides anything.
use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::IntoDatum;

use crate::backend::{self, read_only};
use crate::error;

mod row;

#[cfg(any(test, feature = "pg_test"))]
pub use row::layout_is_known;
use row::{attnums, Column, COLUMNS};
pub use row::{KeyRead, EXPIRES_AT, ID, METADATA, NAME, ORG_ID, PERMISSIONS, USER_ID};

thread_local! {
    /// The oids of `apikey.keys` and its digest index, looked up once per backend and
    /// forgotten whenever PostgreSQL invalidates either relation (or everything).
    static RELATIONS: Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> = const { Cell::new(None) };
    /// The digest index last found usable ([`digest_index_usable`]): each index is
    /// checked once, and forgotten with the oids (a change of its `pg_index` row, as an
    /// index marked invalid, invalidates it).
    static INDEX_USABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Forget the relations' oids when either, or every relation, is invalidated.
/// With them, where the table's columns sit: an `ALTER TABLE` (a future update script)
/// may move them or change their types without changing their number.
fn forget_relations(relid: pg_sys::Oid) {
    RELATIONS.with(|r| {
        if let Some((keys, index)) = r.get() {
            if relid == pg_sys::InvalidOid || relid == keys || relid == index {
                r.set(None);
                INDEX_USABLE.with(|u| u.set(pg_sys::InvalidOid));
                row::forget_layout();
            }
        }
    });
}

/// Called once from `_PG_init`.
pub fn register_invalidation() {
    backend::on_relation_invalidation(forget_relations);
}

fn relations() -> (pg_sys::Oid, pg_sys::Oid) {
    if let Some(rels) = RELATIONS.with(Cell::get) {
        return rels;
    }
    let rels = (
        relation_oid(c"keys", "Run CREATE EXTENSION pg_apikey in this database."),
        relation_oid(
            c"keys_digest_key",
            "Run CREATE EXTENSION pg_apikey in this database.",
        ),
    );
    RELATIONS.with(|r| r.set(Some(rels)));
    rels
}

fn relation_oid(name: &CStr, hint: &str) -> pg_sys::Oid {
    backend::apikey_relation(name).unwrap_or_else(|| {
        error::not_ready(
            format!("apikey.{} does not exist", name.to_string_lossy()),
            hint,
        )
    })
}

/// Whether `idx` (open) is what verify probes: a valid, ready, unique B-tree index of
/// `keys` on one column, `digest`. A manually rebuilt or half-built index is not.
///
/// # Safety
/// `idx` is an open index relation.
unsafe fn digest_index_usable(idx: pg_sys::Relation, keys: pg_sys::Oid) -> bool {
    // SAFETY: an open index relation has its pg_index row and pg_class row cached.
    unsafe {
        let index = (*idx).rd_index;
        if index.is_null() || (*(*idx).rd_rel).relam != pg_sys::BTREE_AM_OID {
            return false;
        }
        let index = &*index;
        let digest = pg_sys::get_attnum(keys, c"digest".as_ptr());
        index.indisvalid
            && index.indisready
            && index.indisunique
            && index.indrelid == keys
            && index.indnatts == 1
            && index.indkey.values.as_slice(1).first() == Some(&digest)
    }
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
    ///
    /// # Safety
    /// Inside a transaction; `snapshot` is registered and outlives the scan.
    unsafe fn open(snapshot: pg_sys::Snapshot, mode: pg_sys::LOCKMODE) -> KeyScan {
        // What other backends committed (a REINDEX … CONCURRENTLY, a DROP EXTENSION)
        // clears the oids first.
        backend::accept_invalidations();
        let keys = relations().0;
        // SAFETY: the oid of an existing relation (an ERROR if dropped since), opened and
        // locked as the executor does.
        let rel = unsafe { pg_sys::table_open(keys, mode) };
        // The lock took in the invalidations committed until then: the index's oid is
        // read only now, so that an index swapped by REINDEX CONCURRENTLY meanwhile is
        // not opened by its old oid.
        let digest_index = relations().1;
        // SAFETY: as above, for the index; the scan and slot are created on the open
        // relations and released by Drop (or by the transaction's abort).
        unsafe {
            let idx = pg_sys::index_open(digest_index, mode);
            if INDEX_USABLE.with(Cell::get) != digest_index {
                if !digest_index_usable(idx, keys) {
                    pg_sys::index_close(idx, pg_sys::NoLock as i32);
                    pg_sys::table_close(rel, pg_sys::NoLock as i32);
                    error::not_ready(
                        "apikey.keys_digest_key is not a valid unique B-tree index on apikey.keys (digest)",
                        "Rebuild it: REINDEX INDEX apikey.keys_digest_key (verify cannot find keys without it).",
                    );
                }
                INDEX_USABLE.with(|u| u.set(digest_index));
            }
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
    }

    /// One probe for `digest` under `snapshot`; the columns are copied out (detoasted)
    /// into the current memory context before the next probe can move the slot.
    ///
    /// # Safety
    /// `snapshot` is registered and outlives the call.
    unsafe fn lookup(&mut self, digest: &[u8; 32], snapshot: pg_sys::Snapshot) -> Option<KeyRead> {
        let arg = Vec::from(digest.as_slice())
            .into_datum()
            .expect("bytea datum");
        // SAFETY: a zeroed ScanKeyData is what ScanKeyInit expects to fill in; the scan,
        // relation and slot were opened by `open` and are still open; the slot's values
        // are valid after slot_getallattrs and are copied out before the slot moves.
        unsafe {
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
            Some(row::copy_out(&self.cols, values, isnull))
        }
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
        // SAFETY: called inside a transaction, as every SQL function is; the snapshot is
        // registered, so it stays valid until `drop` unregisters it.
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
    // SAFETY: inside a transaction; the scan is opened under a registered snapshot that
    // outlives it (dropped after it, in reverse order of declaration).
    let mut scan = unsafe { KeyScan::open(snapshot.0, lock_mode()) };
    // SAFETY: as above; the columns are copied out before the scan closes.
    unsafe { scan.lookup(digest, snapshot.0) }
}
