//! The shared-memory table of usage counters: one counter per (database, key, hour, code),
//! in a fixed array of slots allocated at server start (`apikey.usage_max_entries`, twice
//! as many slots, open addressing with linear probing).
//!
//! Locking, as pg_stat_statements does it: one LWLock. A verify takes it **shared** to find
//! its counter and adds with atomics; only a verify whose counter does not exist yet takes
//! it **exclusive**, for the few instructions of an insert. The writer takes it exclusive
//! to take a database's counters out (a copy and a rebuild of the array). Nothing here
//! allocates, waits for anything but that lock, or raises an error on the verify path.
//!
//! The table lives in the postmaster's shared memory and survives a backend's crash but
//! not the server's: a clean shutdown saves it to `pg_stat/pg_apikey_usage.stat` (read back
//! and removed at the next start), a crash loses what was not written.
use std::ffi::CStr;
use std::io::{Read, Write};
use std::ptr::{addr_of_mut, null_mut};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use pgrx::pg_sys;

use super::Counter;
use crate::settings;

/// Extra slots beyond `usage_max_entries` that only `OVERFLOW` counters may take.
const OVERFLOW_RESERVE: usize = 64;
/// Databases whose last write is remembered for `flush_usage`'s answer.
const RESULTS: usize = 64;

const TRANCHE: &CStr = c"pg_apikey_usage";
const SHMEM_NAME: &CStr = c"pg_apikey usage counters";
const DUMP_FILE: &str = "pg_stat/pg_apikey_usage.stat";
const DUMP_MAGIC: &[u8; 8] = b"PGAKU001";

/// One counter. 64 bytes.
#[repr(C)]
pub struct Slot {
    /// 0: empty. Written under the exclusive lock.
    used: u32,
    db: u32,
    key: [u8; 16],
    has_key: u8,
    code: u8,
    _pad: [u8; 6],
    /// The hour's start, microseconds since 2000-01-01 (UTC hours).
    hour: i64,
    calls: AtomicU64,
    cost: AtomicU64,
    /// The latest call counted here (microseconds), for `last_used_at`.
    last_at: AtomicI64,
}

// The layout the docs state (docs/usage-analytics.md, "Memory").
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// What the writer of one database reported last: for `flush_usage`'s answer.
#[repr(C)]
struct DbResult {
    db: AtomicU32,
    seq: AtomicU64,
    written: AtomicU64,
    ok: AtomicBool,
}

#[repr(C)]
pub struct Header {
    lock: *mut pg_sys::LWLock,
    slots: usize,
    max_entries: usize,
    /// Slots in use (written under the exclusive lock).
    used: AtomicU64,
    /// Counts that found no slot at all, not even an overflow one (reported by the writer).
    lost: AtomicU64,
    /// Set when the table is full, so that one verify wakes the writer, not every one.
    wake_sent: AtomicBool,
    /// The writer's latch, while it runs.
    writer_latch: AtomicPtr<pg_sys::Latch>,
    /// `flush_usage` asks for a write by raising `requested`; the writer sets `done` to
    /// the value it saw when it began a round, once the round is over.
    requested: AtomicU64,
    done: AtomicU64,
    results: [DbResult; RESULTS],
}

/// The table, set in every process by the shared-memory startup hook (inherited by fork).
static HEADER: AtomicPtr<Header> = AtomicPtr::new(null_mut());

fn header() -> Option<&'static Header> {
    let h = HEADER.load(Ordering::Acquire);
    // SAFETY: set once to shared memory that lives as long as the server.
    (!h.is_null()).then(|| unsafe { &*h })
}

fn slots_of(h: &Header) -> &[Slot] {
    // SAFETY: the slots follow the header in the same allocation, `slots` of them.
    unsafe { std::slice::from_raw_parts((h as *const Header).add(1).cast::<Slot>(), h.slots) }
}

/// The slots, for writing under the exclusive lock.
#[allow(clippy::mut_from_ref)]
fn slots_mut(h: &Header) -> &mut [Slot] {
    // SAFETY: as above; callers hold the exclusive lock, so no one else reads or writes
    // the non-atomic fields meanwhile.
    unsafe {
        std::slice::from_raw_parts_mut(
            (h as *const Header).add(1).cast::<Slot>().cast_mut(),
            h.slots,
        )
    }
}

/// Whether the table exists (the library was preloaded).
pub fn available() -> bool {
    header().is_some()
}

// ---------------------------------------------------------------- lock

struct Locked<'a>(&'a Header);

impl<'a> Locked<'a> {
    fn new(h: &'a Header, exclusive: bool) -> Locked<'a> {
        let mode = if exclusive {
            pg_sys::LWLockMode::LW_EXCLUSIVE
        } else {
            pg_sys::LWLockMode::LW_SHARED
        };
        // SAFETY: the lock was assigned at startup from this library's named tranche.
        unsafe { pg_sys::LWLockAcquire(h.lock, mode) };
        Locked(h)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: acquired in `new`. (An error between the two ends the transaction,
        // whose abort releases every LWLock first; this runs then only while unwinding
        // a Rust panic, before that abort, where releasing is what it would do.)
        unsafe { pg_sys::LWLockRelease(self.0.lock) };
    }
}

// ---------------------------------------------------------------- the hash table

fn hash(db: u32, key: Option<&[u8; 16]>, hour: i64, code: u8) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(db) ^ (u64::from(code) << 32);
    let mut mix = |v: u64| {
        h = (h ^ v).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
    };
    if let Some(k) = key {
        mix(u64::from_le_bytes(k[..8].try_into().expect("8 bytes")));
        mix(u64::from_le_bytes(k[8..].try_into().expect("8 bytes")));
    }
    mix(hour as u64);
    h
}

fn same(s: &Slot, db: u32, key: Option<&[u8; 16]>, hour: i64, code: u8) -> bool {
    s.db == db
        && s.hour == hour
        && s.code == code
        && match key {
            Some(k) => s.has_key == 1 && &s.key == k,
            None => s.has_key == 0,
        }
}

/// The slot of this counter, or the empty slot where it would go.
fn probe(
    slots: &[Slot],
    db: u32,
    key: Option<&[u8; 16]>,
    hour: i64,
    code: u8,
) -> Result<usize, Option<usize>> {
    let mask = slots.len() - 1;
    let mut i = (hash(db, key, hour, code) as usize) & mask;
    for _ in 0..slots.len() {
        let s = &slots[i];
        if s.used == 0 {
            return Err(Some(i));
        }
        if same(s, db, key, hour, code) {
            return Ok(i);
        }
        i = (i + 1) & mask;
    }
    Err(None)
}

fn add(s: &Slot, calls: u64, cost: u64, at: i64) {
    s.calls.fetch_add(calls, Ordering::Relaxed);
    if cost > 0 {
        s.cost.fetch_add(cost, Ordering::Relaxed);
    }
    s.last_at.fetch_max(at, Ordering::Relaxed);
}

/// Insert a counter into an empty slot (exclusive lock held).
fn fill(h: &Header, i: usize, c: &Counter) {
    let s = &mut slots_mut(h)[i];
    s.db = c.db;
    s.has_key = u8::from(c.key.is_some());
    s.key = c.key.unwrap_or([0; 16]);
    s.code = c.code;
    s.hour = c.hour;
    s.calls.store(c.calls, Ordering::Relaxed);
    s.cost.store(c.cost, Ordering::Relaxed);
    s.last_at.store(c.last_at, Ordering::Relaxed);
    s.used = 1;
    h.used.fetch_add(1, Ordering::Relaxed);
}

/// Add `c` to the table, the exclusive lock held: to its counter, a new one while there
/// is room, else to this database's OVERFLOW counter of that hour. Returns whether the
/// table is full (the writer should come).
fn add_exclusive(h: &Header, c: &Counter) -> bool {
    let slots = slots_of(h);
    let full = h.used.load(Ordering::Relaxed) as usize >= h.max_entries;
    match probe(slots, c.db, c.key.as_ref(), c.hour, c.code) {
        Ok(i) => {
            add(&slots[i], c.calls, c.cost, c.last_at);
            return full;
        }
        Err(Some(i)) if !full => {
            fill(h, i, c);
            return h.used.load(Ordering::Relaxed) as usize >= h.max_entries;
        }
        _ => {}
    }
    let over = Counter {
        key: None,
        code: super::OVERFLOW,
        ..*c
    };
    match probe(slots, over.db, None, over.hour, over.code) {
        Ok(i) => add(&slots[i], over.calls, over.cost, over.last_at),
        Err(Some(i))
            if (h.used.load(Ordering::Relaxed) as usize) < h.max_entries + OVERFLOW_RESERVE =>
        {
            fill(h, i, &over)
        }
        _ => {
            h.lost.fetch_add(over.calls, Ordering::Relaxed);
        }
    }
    true
}

/// Count one call: the verify path. Never allocates, never raises an error, waits only
/// for the table's lock.
pub fn count(c: &Counter) {
    let Some(h) = header() else { return };
    {
        let _shared = Locked::new(h, false);
        if let Ok(i) = probe(slots_of(h), c.db, c.key.as_ref(), c.hour, c.code) {
            add(&slots_of(h)[i], c.calls, c.cost, c.last_at);
            return;
        }
    }
    let full = {
        let _exclusive = Locked::new(h, true);
        add_exclusive(h, c)
    };
    if full && !h.wake_sent.swap(true, Ordering::AcqRel) {
        wake_writer();
    }
}

fn read(s: &Slot) -> Counter {
    Counter {
        db: s.db,
        key: (s.has_key == 1).then_some(s.key),
        hour: s.hour,
        code: s.code,
        calls: s.calls.load(Ordering::Relaxed),
        cost: s.cost.load(Ordering::Relaxed),
        last_at: s.last_at.load(Ordering::Relaxed),
    }
}

/// The counters of database `db` (or of every database), as they are now.
pub fn live(db: Option<u32>) -> Vec<Counter> {
    let Some(h) = header() else {
        return Vec::new();
    };
    let _shared = Locked::new(h, false);
    slots_of(h)
        .iter()
        .filter(|s| s.used != 0 && db.is_none_or(|d| s.db == d))
        .map(read)
        .collect()
}

/// The databases that have counters.
pub fn databases() -> Vec<u32> {
    let Some(h) = header() else {
        return Vec::new();
    };
    let mut dbs: Vec<u32> = {
        let _shared = Locked::new(h, false);
        slots_of(h)
            .iter()
            .filter(|s| s.used != 0)
            .map(|s| s.db)
            .collect()
    };
    dbs.sort_unstable();
    dbs.dedup();
    dbs
}

/// Take database `db`'s counters out of the table (the writer, before it writes them).
pub fn take(db: u32) -> Vec<Counter> {
    let Some(h) = header() else {
        return Vec::new();
    };
    let _exclusive = Locked::new(h, true);
    let all: Vec<Counter> = slots_of(h)
        .iter()
        .filter(|s| s.used != 0)
        .map(read)
        .collect();
    let (taken, kept): (Vec<Counter>, Vec<Counter>) = all.into_iter().partition(|c| c.db == db);
    if !taken.is_empty() {
        // Open addressing has no deletion: the others are put back into an empty array.
        for s in slots_mut(h).iter_mut() {
            s.used = 0;
        }
        h.used.store(0, Ordering::Relaxed);
        for c in &kept {
            add_exclusive(h, c);
        }
    }
    taken
}

/// Put counters back (a write that failed).
pub fn put_back(counters: &[Counter]) {
    let Some(h) = header() else { return };
    let _exclusive = Locked::new(h, true);
    for c in counters {
        add_exclusive(h, c);
    }
}

/// Counts that found no slot at all since the last call (reset).
pub fn take_lost() -> u64 {
    header().map_or(0, |h| h.lost.swap(0, Ordering::Relaxed))
}

/// Bytes of shared memory per slot, and slots per `usage_max_entries` entry.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// Shared memory the table needs for `max_entries` counters.
fn size_for(max_entries: usize) -> usize {
    std::mem::size_of::<Header>() + slot_count(max_entries) * SLOT_BYTES
}

fn slot_count(max_entries: usize) -> usize {
    (2 * (max_entries + OVERFLOW_RESERVE)).next_power_of_two()
}

// ---------------------------------------------------------------- the writer's side

/// Wake the writer (a full table, or `flush_usage`).
pub fn wake_writer() {
    if let Some(h) = header() {
        let latch = h.writer_latch.load(Ordering::Acquire);
        if !latch.is_null() {
            // SAFETY: the writer's process latch, in shared memory (PGPROC), set while it runs.
            unsafe { pg_sys::SetLatch(latch) };
        }
    }
}

/// The writer announces itself (its latch), or leaves (null).
pub fn set_writer_latch(latch: *mut pg_sys::Latch) {
    if let Some(h) = header() {
        h.writer_latch.store(latch, Ordering::Release);
    }
}

/// Whether a writer is running.
pub fn writer_running() -> bool {
    header().is_some_and(|h| !h.writer_latch.load(Ordering::Acquire).is_null())
}

/// `flush_usage`: ask for a round of writes; the number to wait for.
pub fn request_round() -> u64 {
    let Some(h) = header() else { return 0 };
    let seq = h.requested.fetch_add(1, Ordering::AcqRel) + 1;
    wake_writer();
    seq
}

/// The round the writer is about to begin covers requests up to this number. A full
/// table may wake the writer again from now on.
pub fn round_begins() -> u64 {
    header().map_or(0, |h| {
        h.wake_sent.store(false, Ordering::Release);
        h.requested.load(Ordering::Acquire)
    })
}

/// The writer finished a round that began when requests were up to `seq`.
pub fn round_done(seq: u64) {
    if let Some(h) = header() {
        h.done.fetch_max(seq, Ordering::AcqRel);
    }
}

/// Whether the round that covers request `seq` is over.
pub fn is_done(seq: u64) -> bool {
    header().is_some_and(|h| h.done.load(Ordering::Acquire) >= seq)
}

/// The round covering `seq` wrote `written` counters of database `db` (`ok`), or failed
/// to (the writer marks a flush failed before it starts it; the flush marks it done).
pub fn report(db: u32, seq: u64, written: u64, ok: bool) {
    let Some(h) = header() else { return };
    let i = h
        .results
        .iter()
        .position(|r| r.db.load(Ordering::Acquire) == db)
        .unwrap_or_else(|| {
            // The oldest report gives way.
            (0..RESULTS)
                .min_by_key(|&i| h.results[i].seq.load(Ordering::Acquire))
                .expect("RESULTS > 0")
        });
    let r = &h.results[i];
    r.db.store(db, Ordering::Release);
    r.written.store(written, Ordering::Release);
    r.ok.store(ok, Ordering::Release);
    r.seq.store(seq, Ordering::Release);
}

/// What the writer wrote for database `db` in a round covering request `seq`: `Some(n)`
/// (0 if it had no counters), `None` if that write failed.
pub fn written(db: u32, seq: u64) -> Option<u64> {
    let h = header()?;
    match h
        .results
        .iter()
        .find(|r| r.db.load(Ordering::Acquire) == db && r.seq.load(Ordering::Acquire) >= seq)
    {
        Some(r) if !r.ok.load(Ordering::Acquire) => None,
        Some(r) => Some(r.written.load(Ordering::Acquire)),
        None => Some(0),
    }
}

// ---------------------------------------------------------------- server start and stop

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// Called from `_PG_init` while `shared_preload_libraries` are loaded: ask for the
/// memory and the lock, and build the table when shared memory is created.
pub fn install_hooks() {
    // SAFETY: _PG_init runs once per process, in the postmaster, before shared memory is
    // created; the previous hooks are kept and called first.
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

fn max_entries() -> usize {
    usize::try_from(settings::USAGE_MAX_ENTRIES.get()).unwrap_or(100)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    // SAFETY: called by the postmaster while it sizes shared memory.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(size_for(max_entries()));
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: called in the postmaster after shared memory is created (and again after a
    // crash re-creates it). Child processes are forked after it and inherit HEADER. (The
    // add-in init lock matters only for EXEC_BACKEND builds, where children run this hook
    // too; pgrx supports none.)
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        let max = max_entries();
        let size = size_for(max);
        let mut found = false;
        let h = pg_sys::ShmemInitStruct(SHMEM_NAME.as_ptr(), size, &mut found).cast::<Header>();
        if !found {
            std::ptr::write_bytes(h.cast::<u8>(), 0, size);
            let lock = pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr());
            (*h).lock = addr_of_mut!((*lock).lock);
            (*h).slots = slot_count(max);
            (*h).max_entries = max;
        }
        HEADER.store(h, Ordering::Release);
        if !found {
            load_dump(&*h);
        }
        if !pg_sys::IsUnderPostmaster {
            pg_sys::on_shmem_exit(Some(save_dump), pg_sys::Datum::from(0));
        }
    }
}

/// At the postmaster's exit: save the counters for the next start, after a clean
/// shutdown only (`code` 0; after a crash the counts since the last write are lost).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn save_dump(code: i32, _arg: pg_sys::Datum) {
    if code != 0 {
        return;
    }
    let Some(h) = header() else { return };
    let counters: Vec<Counter> = slots_of(h)
        .iter()
        .filter(|s| s.used != 0)
        .map(read)
        .collect();
    if counters.is_empty() {
        let _ = std::fs::remove_file(DUMP_FILE);
        return;
    }
    let tmp = format!("{DUMP_FILE}.tmp");
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(DUMP_MAGIC)?;
        f.write_all(&(counters.len() as u64).to_le_bytes())?;
        for c in &counters {
            f.write_all(&c.to_bytes())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, DUMP_FILE)
    })();
    if let Err(e) = written {
        pgrx::log!(
            "pg_apikey: could not save {} usage counters to {DUMP_FILE}: {e}",
            counters.len()
        );
    }
}

/// At start: the counters a clean shutdown saved, read into the table, the file removed.
fn load_dump(h: &Header) {
    let Ok(mut f) = std::fs::File::open(DUMP_FILE) else {
        return;
    };
    let mut bytes = Vec::new();
    let read_ok = f.read_to_end(&mut bytes).is_ok();
    let _ = std::fs::remove_file(DUMP_FILE);
    if !read_ok || bytes.len() < 16 || &bytes[..8] != DUMP_MAGIC {
        pgrx::log!("pg_apikey: {DUMP_FILE} is not a usage counter file; ignored");
        return;
    }
    let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let body = &bytes[16..];
    if body.len() != n * Counter::BYTES {
        pgrx::log!("pg_apikey: {DUMP_FILE} is truncated; ignored");
        return;
    }
    for chunk in body.chunks_exact(Counter::BYTES) {
        add_exclusive(h, &Counter::from_bytes(chunk));
    }
}
