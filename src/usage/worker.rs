//! The usage writer: a background worker that, every `apikey.usage_flush_interval` (or when
//! the table fills, or `flush_usage` asks), writes the counters in shared memory into the
//! database they were counted in.
//!
//! A background worker connects to one database for its life, so the writer itself
//! connects to none and starts a short-lived flush worker for each database that has
//! counters, one after the other. That is how it finds the databases to write to: every
//! counter carries the database its verify ran in (`MyDatabaseId`), and only a database
//! where pg_apikey was installed can have any. A database dropped since is noticed by its
//! name lookup, and its counters are discarded (with a LOG line); a database whose
//! pg_apikey was dropped is noticed by its flush worker, which discards them too — and
//! when pg_apikey is created there again, the next counters are written as usual.
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::PgTryBuilder;

use super::shared;
use crate::settings;
use crate::storage::usage as store;

const LIBRARY: &str = "pg_apikey";

/// Register the writer (from `_PG_init`, while shared_preload_libraries are loaded). It
/// starts once the server accepts writes: on a standby only after promotion.
pub fn register() {
    BackgroundWorkerBuilder::new("pg_apikey usage writer")
        .set_type("pg_apikey usage writer")
        .set_library(LIBRARY)
        .set_function("pg_apikey_usage_writer")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// The writer's main loop.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_apikey_usage_writer(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: the writer reads only the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    // SAFETY: this process's latch, in its PGPROC (shared memory), for as long as it runs.
    shared::set_writer_latch(unsafe { pg_sys::MyLatch });
    loop {
        let interval = u64::try_from(settings::USAGE_FLUSH_INTERVAL.get()).unwrap_or(10);
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(interval))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration files, as any backend does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        round();
    }
    shared::set_writer_latch(std::ptr::null_mut());
}

/// One round: every database with counters, one flush worker each, in turn.
fn round() {
    let seq = shared::round_begins();
    for db in shared::databases() {
        let oid = pg_sys::Oid::from(db);
        let exists = BackgroundWorker::transaction(|| {
            // SAFETY: a syscache lookup of the shared catalog pg_database, in a transaction.
            !unsafe { pg_sys::get_database_name(oid) }.is_null()
        });
        if !exists {
            let gone = shared::take(db);
            log!(
                "pg_apikey: discarded {} usage counters of database {db}, which no longer exists",
                gone.len()
            );
            continue;
        }
        // Marked failed until the flush itself says it is done.
        shared::report(db, seq, 0, false);
        let started = BackgroundWorkerBuilder::new(&format!("pg_apikey usage flush {db}"))
            .set_type("pg_apikey usage flush")
            .set_library(LIBRARY)
            .set_function("pg_apikey_usage_flush")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_argument(Some(pg_sys::Datum::from(db)))
            .set_extra(&seq.to_string())
            // SAFETY: this process's pid, to be told when the flush worker ends.
            .set_notify_pid(unsafe { pg_sys::MyProcPid })
            .load_dynamic();
        match started {
            Ok(worker) => {
                if let Err(status) = worker.wait_for_shutdown() {
                    log!("pg_apikey: the usage flush of database {db} ended as {status:?}");
                }
            }
            Err(_) => {
                log!("pg_apikey: could not start the usage flush of database {db} (max_worker_processes?); retried next round");
            }
        }
    }
    let lost = shared::take_lost();
    if lost > 0 {
        warning!(
            "pg_apikey: {lost} verify calls found no usage counter, not even an overflow one: raise apikey.usage_max_entries or lower apikey.usage_flush_interval"
        );
    }
    shared::round_done(seq);
}

/// A flush worker: writes database `arg`'s counters and ends.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_apikey_usage_flush(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = arg.value() as u32;
    let seq: u64 = BackgroundWorker::get_extra().parse().unwrap_or(0);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    let written = BackgroundWorker::transaction(|| flush(db));
    shared::report(db, seq, written, true);
}

/// Write this database's counters: into `apikey.usage_hours` (one statement), the latest
/// VALID call of each key into `last_used_at` (one statement), then delete rows older than
/// `apikey.usage_retention`. The counters are taken out of memory under the advisory lock
/// readers share, and put back if the write fails.
fn flush(db: u32) -> u64 {
    store::pin_session();
    let tables = store::tables();
    if !tables.keys {
        let gone = shared::take(db);
        log!(
            "pg_apikey: discarded {} usage counters of this database: pg_apikey is not installed here (any more)",
            gone.len()
        );
        return 0;
    }
    if tables.usage {
        store::lock_for_write();
    }
    let counters = shared::take(db);
    if counters.is_empty() {
        return 0;
    }
    let written = PgTryBuilder::new(|| {
        store::last_used(&counters);
        if tables.usage {
            let n = store::write(&counters);
            store::expire(settings::USAGE_RETENTION.get());
            n
        } else {
            0
        }
    })
    .catch_others(|e| {
        shared::put_back(&counters);
        e.rethrow()
    })
    .execute();
    if !tables.usage {
        log!(
            "pg_apikey: {} usage counters of this database were not written: ALTER EXTENSION pg_apikey UPDATE to 0.3.0 or later keeps them",
            counters.len()
        );
    }
    written
}
