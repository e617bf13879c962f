//! Two facts verify needs on every call and that change rarely, kept per backend: which
//! owners have limits ([`Owners`]), and whether imported keys are in use. Each is looked
//! up once, then forgotten when `apikey.keys` or `apikey.owner_limits` is invalidated: the
//! tables' triggers send that invalidation with the commit of whatever changed either
//! fact, see [`invalidate_verify_caches`]. A lookup that overlapped an
//! invalidation is used once and not kept (`generation`). Safe code only: the catalog and
//! invalidation calls are [`crate::backend`]'s.
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::backend;
use crate::owner::{Owner, OwnerKind};
use crate::storage::metering;

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

/// Forget the facts when `apikey.keys` or `apikey.owner_limits` (or every relation) is
/// invalidated.
fn forget(relid: pg_sys::Oid) {
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

/// Called once from `_PG_init`.
pub fn register_invalidation() {
    backend::on_relation_invalidation(forget);
}

/// Look a fact of [`Flags`] or [`Owners`] up in `table` (`None`: the table, or the
/// column the fact needs, does not exist — a 0.1.0 schema), running `look` as the
/// extension's owner, and `keep` it unless an invalidation arrived meanwhile, or the
/// lookup read through a REPEATABLE READ or SERIALIZABLE transaction's snapshot: that
/// snapshot may predate an invalidation this backend has already taken in, and what it
/// says must not outlive the transaction. Then it is used for this call only. `None` when
/// there is no table.
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
        if flags.generation == before && !backend::uses_transaction_snapshot() {
            keep(&mut flags, oid, &value);
            f.set(flags);
        }
    });
    Some(value)
}

fn read_owners() -> Rc<Owners> {
    Rc::new(match metering::owners_with_limits(OWNERS_KEPT) {
        Some(list) => {
            let (mut orgs, mut users) = (HashSet::new(), HashSet::new());
            for (kind, id) in list {
                match kind {
                    OwnerKind::Org => orgs.insert(id),
                    OwnerKind::User => users.insert(id),
                };
            }
            Owners::Listed { orgs, users }
        }
        None => Owners::Many,
    })
}

/// Whether `owner` may have limits: false when it surely has none (from this backend's
/// [`Owners`]), true when it has, or when there are too many owners with limits to keep
/// (the caller then looks).
pub fn owner_may_have_limits(owner: Owner<'_>) -> bool {
    let cached = OWNERS.with(|o| o.borrow().clone());
    let owners = match cached {
        Some(owners) => owners,
        None => {
            let looked = look_up(
                backend::apikey_relation(c"owner_limits"),
                read_owners,
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
        Owners::Listed { orgs, users } => match owner.kind {
            OwnerKind::Org => orgs.contains(owner.id),
            OwnerKind::User => users.contains(owner.id),
        },
    }
}

/// Whether keys made by `import_api_key` are in use (not revoked or deleted). Processes
/// pending invalidations first: it is asked before verify opens any table.
pub fn imported_keys_exist() -> bool {
    backend::accept_invalidations();
    if let Some(v) = FLAGS.with(Cell::get).imported_keys_exist {
        return v;
    }
    // 0.1.0 tables have no `imported` column.
    let keys =
        backend::apikey_relation(c"keys").filter(|&oid| backend::has_column(oid, c"imported"));
    look_up(keys, metering::imported_keys_exist, |flags, oid, &v| {
        (flags.keys, flags.imported_keys_exist) = (oid, Some(v))
    })
    .unwrap_or(false)
}

/// `apikey.invalidate_verify_caches()`: the trigger on `apikey.keys` (rows of imported keys
/// inserted, revoked or deleted) and `apikey.owner_limits` (owners added or removed) that
/// tells every backend, at commit, that the facts above changed — whoever wrote: the API
/// functions, a superuser's DML, a restore, a logical-replication apply worker (the
/// triggers are `ENABLE ALWAYS`). It changes no row.
#[pg_trigger]
fn invalidate_verify_caches<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    backend::invalidate_relation(trigger.relid()?);
    Ok(None)
}
