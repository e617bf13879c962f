//! Usage analytics: verify counts calls and cost per (key, hour, code) in shared memory,
//! and a background worker writes the counts into `apikey.usage_hours` — no write per verify.
//!
//! - [`shared`]: the shared-memory table (pg_stat_statements' way: one LWLock, shared for
//!   an add, exclusive for an insert), saved at a clean shutdown and read back at start.
//! - [`worker`]: the writer (a static background worker) and the flush it starts for each
//!   database that has counters (a dynamic worker connected to that database).
//! - SQL: `apikey.key_usage`, `owner_usage`, `usage_live`, `flush_usage` in
//!   `src/api/usage.rs`; the statements in `src/storage/usage.rs`.
//!
//! Needs `shared_preload_libraries = 'pg_apikey'`; without it nothing is counted and the
//! functions raise 55000. Readers and the writer agree through an advisory lock of the
//! database (see [`ReadLock`]): a reader never sees a count both in the table and in
//! memory, nor in neither.
pub mod shared;
pub mod worker;

use pgrx::pg_sys;
use pgrx::Uuid;

use crate::backend::Micros;
use crate::settings;

/// The code of counts that found no room in memory.
pub const OVERFLOW: u8 = 7;
/// The codes as stored, by their number in memory.
pub const CODES: [&str; 8] = [
    "VALID",
    "KEY_NOT_FOUND",
    "KEY_EXPIRED",
    "KEY_DISABLED",
    "INSUFFICIENT_PERMISSIONS",
    "RATE_LIMITED",
    "USAGE_EXCEEDED",
    "OVERFLOW",
];

const HOUR: Micros = 3_600_000_000;

/// One counter: calls and cost of one key (or of unknown keys: `None`) in one hour with one
/// code, in one database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub db: u32,
    pub key: Option<[u8; 16]>,
    /// The hour's start (UTC), microseconds since 2000-01-01.
    pub hour: Micros,
    pub code: u8,
    pub calls: u64,
    pub cost: u64,
    /// The latest call counted (microseconds).
    pub last_at: Micros,
}

impl Counter {
    /// The size of a counter in the file a clean shutdown writes.
    pub const BYTES: usize = 4 + 1 + 16 + 8 + 1 + 8 + 8 + 8;

    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut b = [0u8; Self::BYTES];
        b[0..4].copy_from_slice(&self.db.to_le_bytes());
        b[4] = u8::from(self.key.is_some());
        b[5..21].copy_from_slice(&self.key.unwrap_or([0; 16]));
        b[21..29].copy_from_slice(&self.hour.to_le_bytes());
        b[29] = self.code;
        b[30..38].copy_from_slice(&self.calls.to_le_bytes());
        b[38..46].copy_from_slice(&self.cost.to_le_bytes());
        b[46..54].copy_from_slice(&self.last_at.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Counter {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Counter {
            db: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            key: (b[4] == 1).then(|| b[5..21].try_into().expect("16 bytes")),
            hour: u64_at(21) as i64,
            code: b[29].min(OVERFLOW),
            calls: u64_at(30),
            cost: u64_at(38),
            last_at: u64_at(46) as i64,
        }
    }

    pub fn key_id(&self) -> Option<Uuid> {
        self.key.map(Uuid::from_bytes)
    }

    pub fn code_name(&self) -> &'static str {
        CODES[usize::from(self.code.min(OVERFLOW))]
    }
}

/// Whether verify counts now: the library was preloaded and `apikey.usage_analytics` is on.
pub fn counting() -> bool {
    settings::USAGE_ANALYTICS.get() && shared::available()
}

/// Count one verify answer: `code` is the number of the answer's code in [`CODES`];
/// `cost` is what an admitted call spent (0 for a refusal).
pub fn count(key: Option<Uuid>, code: u8, cost: i64, at: Micros) {
    if !counting() {
        return;
    }
    shared::count(&Counter {
        // SAFETY: a backend global, set at connection.
        db: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        key: key.map(|k| *k.as_bytes()),
        hour: at.div_euclid(HOUR) * HOUR,
        code,
        calls: 1,
        cost: u64::try_from(cost).unwrap_or(0),
        last_at: at,
    });
}

/// Called from `_PG_init`.
pub fn init() {
    // SAFETY: a backend global, true only while shared_preload_libraries are loaded.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        shared::install_hooks();
        worker::register();
    }
}

/// The advisory lock a reader holds while it reads the table and memory, and the writer
/// (exclusive, for its transaction) while it takes counters out of memory and writes them:
/// so a reader sees each count once — in memory before the write, in the table after.
/// Session-level, released when this guard is dropped (also while an error unwinds).
pub struct ReadLock(pg_sys::LOCKTAG);

/// The advisory lock's two keys, `pg_advisory_xact_lock(LOCK_KEY1, LOCK_KEY2)` in SQL.
pub const LOCK_KEY1: i32 = 0x6170_6b79; // "apky"
pub const LOCK_KEY2: i32 = 0x7573_6167; // "usag"

impl ReadLock {
    pub fn take() -> ReadLock {
        let tag = pg_sys::LOCKTAG {
            // SAFETY: a backend global, set at connection.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            locktag_field2: LOCK_KEY1 as u32,
            locktag_field3: LOCK_KEY2 as u32,
            locktag_field4: 2, // two int4 keys, as pg_advisory_lock(int4, int4)
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        // SAFETY: a well-formed advisory lock tag; waits (interruptibly) for the writer.
        unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ShareLock as i32, true, false);
        }
        ReadLock(tag)
    }
}

impl Drop for ReadLock {
    fn drop(&mut self) {
        // SAFETY: the session lock taken in `take`.
        unsafe {
            pg_sys::LockRelease(&self.0, pg_sys::ShareLock as i32, true);
        }
    }
}
