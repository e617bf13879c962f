//! Who is calling, and acting with the extension owner's rights.
//!
//! Every entry point is SECURITY INVOKER: PostgreSQL enters it as the caller. The first
//! thing it does is [`Caller::current`]: read `current_user` (the role in force when the
//! function was entered; not `session_user`, not the owner) and decide trust from real
//! role membership. Only after that decision does it read or write the extension's
//! tables, inside [`as_owner`], which switches the user id to the owner of the `apikey`
//! schema and restores the caller's on every path out, errors included.
use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::error;
use crate::settings;

/// The calling role, as decided at entry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: pg_sys::Oid,
    pub role_name: String,
    /// A superuser, or a member (`pg_has_role(.., 'MEMBER')`) of `apikey.service_role`.
    pub trusted: bool,
    /// The user id that membership is checked against: the role's name for an ordinary
    /// caller; `None` for a trusted caller, who acts for others and needs none.
    pub identity: Option<String>,
}

fn current_role() -> (pg_sys::Oid, i32) {
    let mut role = pg_sys::InvalidOid;
    let mut sec_context: i32 = 0;
    // SAFETY: plain reads of two backend globals.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut role, &mut sec_context) };
    (role, sec_context)
}

fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: with noerr = false this raises for an unknown role instead of returning NULL.
    unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(role, false)) }
        .to_string_lossy()
        .into_owned()
}

/// The role named by `apikey.service_role`, if the setting is set and the role exists.
pub fn service_role_oid() -> Option<pg_sys::Oid> {
    let name = CString::new(settings::service_role()?).ok()?;
    // SAFETY: missing_ok = true returns InvalidOid instead of raising.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether `role` is a trusted caller: a superuser or a member of the service role.
pub fn is_trusted(role: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups by oid; both raise no error for a valid role.
    let superuser = unsafe { pg_sys::superuser_arg(role) };
    superuser
        || service_role_oid().is_some_and(|svc| unsafe { pg_sys::is_member_of_role(role, svc) })
}

impl Caller {
    /// The caller as it is at this moment. Call first thing in every entry point.
    pub fn current() -> Caller {
        let (role, _) = current_role();
        let role_name = role_name(role);
        let trusted = is_trusted(role);
        let identity = if trusted {
            None
        } else {
            Some(role_name.clone())
        };
        Caller {
            role,
            role_name,
            trusted,
            identity,
        }
    }

    /// The caller as the audit trail records it.
    pub fn actor(&self) -> crate::storage::Actor<'_> {
        crate::storage::Actor {
            role: &self.role_name,
            identity: self.identity.as_deref(),
        }
    }

    /// The identity of an ordinary caller, or 42501 when it has none.
    pub fn require_identity(&self) -> &str {
        match &self.identity {
            Some(id) => id,
            None => error::denied(
                format!("role \"{}\" has no identity to act as", self.role_name),
                "Call as a role with an identity, or as a trusted caller naming the owner.",
            ),
        }
    }

    /// 42501 unless the caller is trusted.
    pub fn require_trusted(&self, what: &str) -> &Self {
        if !self.trusted {
            let svc = settings::service_role().unwrap_or_else(|| "(none)".into());
            error::denied(
                format!("{what} requires a trusted caller; role \"{}\" is not one", self.role_name),
                format!("Call as a superuser or as a member of the service role \"{svc}\" (apikey.service_role)."),
            );
        }
        self
    }
}

/// The owner of the `apikey` schema, which the extension script creates its tables as.
fn extension_owner() -> pg_sys::Oid {
    // SAFETY: a syscache lookup by name; the tuple is released before returning.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACENAME as i32,
            pg_sys::Datum::from(c"apikey".as_ptr()),
        );
        if tuple.is_null() {
            error::raise(
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "schema \"apikey\" does not exist",
                "Run CREATE EXTENSION pg_apikey in this database.",
            );
        }
        let owner =
            (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tuple)).nspowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

/// Puts the caller's user id and security context back when dropped, so that an error
/// raised inside [`as_owner`] (which unwinds through here) cannot leave the owner in force.
struct RestoreUser {
    role: pg_sys::Oid,
    sec_context: i32,
}

impl Drop for RestoreUser {
    fn drop(&mut self) {
        // SAFETY: restoring values read by GetUserIdAndSecContext; cannot fail.
        unsafe { pg_sys::SetUserIdAndSecContext(self.role, self.sec_context) };
    }
}

/// Run `f` with the extension owner's rights, as a security-restricted operation (no
/// `SET ROLE`, no temporary objects), then restore the caller. Decide on the caller
/// before calling this.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let (role, sec_context) = current_role();
    let _restore = RestoreUser { role, sec_context };
    let restricted =
        (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    // SAFETY: owner is a valid role oid read from the catalog just above.
    unsafe { pg_sys::SetUserIdAndSecContext(owner, sec_context | restricted) };
    f()
}
