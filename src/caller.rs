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
    pub role_name: String,
    /// A superuser, or a member (`pg_has_role(.., 'MEMBER')`) of `apikey.service_role`.
    pub trusted: bool,
    /// The user id that membership is checked against: the role's name for an ordinary
    /// caller, the JWT claim for a gateway caller (`None` when the claim is missing);
    /// `None` for a trusted caller, who acts for others and needs none.
    pub identity: Option<String>,
    /// The gateway role through which the caller came, if any.
    pub gateway: Option<String>,
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
        || service_role_oid().is_some_and(|svc| {
            // SAFETY: a membership check between two roles' oids; no error for valid roles.
            unsafe { pg_sys::is_member_of_role(role, svc) }
        })
}

/// The first gateway role (`apikey.gateway_roles`) that `role` is a member of.
fn gateway_of(role: pg_sys::Oid) -> Option<String> {
    settings::gateway_roles().into_iter().find(|name| {
        let Ok(c) = CString::new(name.as_str()) else {
            return false;
        };
        // SAFETY: missing_ok = true returns InvalidOid instead of raising.
        let gw = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
        // SAFETY: a membership check between two existing roles' oids.
        gw != pg_sys::InvalidOid && unsafe { pg_sys::is_member_of_role(role, gw) }
    })
}

/// The longest identity a JWT claim may carry, in bytes.
pub const IDENTITY_MAX_BYTES: usize = 256;

/// The identity a claim's value names: a string of 1 to [`IDENTITY_MAX_BYTES`] bytes with
/// no control character (U+0000–U+001F, U+007F–U+009F), or an integer (as its decimal
/// text). Anything else — empty, too long, a NUL or other control character that would
/// print as something it is not, a fraction or exponent, an array, an object — names
/// nobody.
pub fn identity_from_claim(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s)
            if !s.is_empty()
                && s.len() <= IDENTITY_MAX_BYTES
                && !s.chars().any(char::is_control) =>
        {
            Some(s.clone())
        }
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The identity claim of the current request's JWT (`request.jwt.claims`, as PostgREST
/// sets it per transaction); `None` when the setting, the JSON or the claim is missing or
/// does not name an identity ([`identity_from_claim`]).
fn claim_identity() -> Option<String> {
    // SAFETY: missing_ok = true returns NULL for an unknown setting; the string is copied.
    let raw = unsafe { pg_sys::GetConfigOption(c"request.jwt.claims".as_ptr(), true, false) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: a non-null C string owned by the GUC machinery, copied before any other call.
    let text = unsafe { CStr::from_ptr(raw) }.to_string_lossy();
    let claims: serde_json::Value = serde_json::from_str(&text).ok()?;
    identity_from_claim(claims.get(settings::identity_claim())?)
}

thread_local! {
    /// Whether this database's pg_apikey was seen at this library's version (it only goes
    /// up, so a match is kept; a mismatch is looked up again on the next call).
    static SCHEMA_CURRENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// 55000 while the database's pg_apikey is older than this library: between installing a
/// new release and `ALTER EXTENSION pg_apikey UPDATE`, verify keeps working (it serves the
/// old schema) but the management functions need the new one.
fn require_current_schema() {
    if SCHEMA_CURRENT.with(std::cell::Cell::get) {
        return;
    }
    let library = env!("CARGO_PKG_VERSION");
    match crate::storage::extension_version() {
        Some(v) if v == library => SCHEMA_CURRENT.with(|c| c.set(true)),
        installed => crate::error::not_ready(
            format!(
                "this database's pg_apikey is {}, the library is {library}",
                installed.as_deref().unwrap_or("not installed")
            ),
            "Run ALTER EXTENSION pg_apikey UPDATE (verify_api_key keeps working until then).",
        ),
    }
}

impl Caller {
    /// The caller as it is at this moment. Call first thing in every entry point (but
    /// verify): it also checks that the database's schema is this library's.
    pub fn current() -> Caller {
        require_current_schema();
        Caller::current_unchecked()
    }

    /// [`Caller::current`] without the schema check, for `current_identity`, which reads
    /// no table (RLS policies call it, and must keep working across an update).
    pub fn current_unchecked() -> Caller {
        let (role, _) = current_role();
        let role_name = role_name(role);
        let trusted = is_trusted(role);
        let gateway = if trusted { None } else { gateway_of(role) };
        let identity = match (&gateway, trusted) {
            (_, true) => None,
            (Some(_), false) => claim_identity(),
            (None, false) => Some(role_name.clone()),
        };
        Caller {
            role_name,
            trusted,
            identity,
            gateway,
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
            None => match &self.gateway {
                Some(gw) => error::denied(
                    format!(
                        "no identity: role \"{}\" calls through gateway role \"{gw}\", and request.jwt.claims has no usable \"{}\" claim (a string of 1 to {IDENTITY_MAX_BYTES} bytes without control characters, or an integer)",
                        self.role_name,
                        settings::identity_claim()
                    ),
                    "Send a JWT whose claim apikey.identity_claim names the user.",
                ),
                None => error::denied(
                    format!("role \"{}\" has no identity to act as", self.role_name),
                    "Call as a role with an identity, or as a trusted caller naming the owner.",
                ),
            },
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
            error::not_ready(
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

const RESTRICTED: i32 =
    (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;

thread_local! {
    /// The callers that enclosing [`as_owner`] calls switched away from, innermost last.
    static CALLERS: std::cell::RefCell<Vec<(pg_sys::Oid, i32)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Pops the caller pushed by [`as_owner`], on every path out.
struct PopCaller;

impl Drop for PopCaller {
    fn drop(&mut self) {
        CALLERS.with(|c| c.borrow_mut().pop());
    }
}

/// Run `f` with the extension owner's rights, as a security-restricted operation (no
/// `SET ROLE`, no temporary objects), then restore the caller. Decide on the caller
/// before calling this.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let (role, sec_context) = current_role();
    let _restore = RestoreUser { role, sec_context };
    CALLERS.with(|c| c.borrow_mut().push((role, sec_context)));
    let _pop = PopCaller;
    // SAFETY: owner is a valid role oid read from the catalog just above.
    unsafe { pg_sys::SetUserIdAndSecContext(owner, sec_context | RESTRICTED) };
    f()
}

/// Inside [`as_owner`]: run `f` with the caller's rights again (still a
/// security-restricted operation), then return to the owner's. Used for the
/// application's own membership functions, which must never run with the owner's rights.
pub fn with_caller_rights<R>(f: impl FnOnce() -> R) -> R {
    let (caller, caller_context) = CALLERS
        .with(|c| c.borrow().last().copied())
        .expect("with_caller_rights is only called inside as_owner");
    let (owner, owner_context) = current_role();
    let _restore = RestoreUser {
        role: owner,
        sec_context: owner_context,
    };
    // SAFETY: restoring the caller's own user id, read when as_owner switched away.
    unsafe { pg_sys::SetUserIdAndSecContext(caller, caller_context | RESTRICTED) };
    f()
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_strings_and_integers_name_an_identity() {
        assert_eq!(
            identity_from_claim(&json!("alice")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            identity_from_claim(&json!("user-0001@example.com")).as_deref(),
            Some("user-0001@example.com")
        );
        assert_eq!(
            identity_from_claim(&json!("Zoë 東京")).as_deref(),
            Some("Zoë 東京")
        );
        assert_eq!(identity_from_claim(&json!(123)).as_deref(), Some("123"));
        assert_eq!(identity_from_claim(&json!(-7)).as_deref(), Some("-7"));
        assert_eq!(
            identity_from_claim(&json!(u64::MAX)).as_deref(),
            Some("18446744073709551615")
        );
        let longest = "a".repeat(IDENTITY_MAX_BYTES);
        assert_eq!(identity_from_claim(&json!(longest)), Some(longest));
    }

    #[test]
    fn anything_else_names_nobody() {
        for bad in [
            json!(""),
            json!("alice\u{0}x"),
            json!("alice\nbob"),
            json!("tab\there"),
            json!("\u{7f}"),
            json!("\u{85}"),
            json!("a".repeat(IDENTITY_MAX_BYTES + 1)),
            json!("é".repeat(IDENTITY_MAX_BYTES / 2 + 1)),
            json!(1.5e3),
            json!(0.5),
            json!(true),
            json!(null),
            json!(["alice"]),
            json!({"id": "alice"}),
        ] {
            assert_eq!(identity_from_claim(&bad), None, "{bad} must name nobody");
        }
    }
}
