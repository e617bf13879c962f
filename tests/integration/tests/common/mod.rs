//! Connections to the scratch cluster that `scripts/test.sh` starts, as several roles.
//!
//! The cluster is named by `PGAPIKEY_TEST_HOST` (socket directory or host),
//! `PGAPIKEY_TEST_PORT` and `PGAPIKEY_TEST_DB`; it uses trust authentication, so any role
//! with LOGIN can connect as itself. Running these tests without that cluster is an
//! error, never a skip.
use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

/// How many clients the concurrency tests run, each on its own connection.
pub const CLIENTS: usize = 8;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests through scripts/test.sh, which starts the cluster"
        )
    })
}

/// Connect as `role` (which must have LOGIN) to the test database.
pub fn connect(role: &str) -> Client {
    connect_db(role, &env("PGAPIKEY_TEST_DB"))
}

/// Connect as `role` to database `db` of the scratch cluster.
pub fn connect_db(role: &str, db: &str) -> Client {
    let conf = format!(
        "host={} port={} dbname={} user={} application_name=pg_apikey_it",
        env("PGAPIKEY_TEST_HOST"),
        env("PGAPIKEY_TEST_PORT"),
        db,
        role
    );
    Client::connect(&conf, NoTls).unwrap_or_else(|e| panic!("connect as {role} to {db}: {e}"))
}

/// Run a PostgreSQL client program (pg_dump, psql) of the cluster's major
/// (`PGAPIKEY_TEST_BINDIR`, default PostgreSQL 15's) against the scratch cluster as the
/// superuser; panics with its stderr when it fails.
pub fn client_program(program: &str, args: &[&str]) -> String {
    let dir = std::env::var("PGAPIKEY_TEST_BINDIR")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_string());
    let bin = format!("{dir}/{program}");
    let out = std::process::Command::new(&bin)
        .args([
            "-h",
            &env("PGAPIKEY_TEST_HOST"),
            "-p",
            &env("PGAPIKEY_TEST_PORT"),
            "-U",
            "postgres",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?} failed: {stderr}");
    assert!(
        !stderr.contains("ERROR"),
        "{program} {args:?} reported: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh, empty database (pg_apikey not installed).
pub fn fresh_db(su: &mut Client, name: &str) {
    su.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .unwrap();
    su.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap();
}

/// The bootstrap superuser of the scratch cluster.
pub fn superuser() -> Client {
    connect("postgres")
}

/// A LOGIN role named `<test>_<name>`, so that parallel tests never share one. Roles
/// are cluster-wide: on a cluster that already has it, the role is reused with its
/// settings reset. (The tests expect a fresh database, which `scripts/test.sh` makes.)
pub fn login_role(su: &mut Client, test: &str, name: &str) -> String {
    let role = format!("{test}_{name}");
    su.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE \"{role}\" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         ALTER ROLE \"{role}\" RESET ALL;"
    ))
    .unwrap();
    role
}

/// The SQLSTATE of a failed statement, or "00000" if it succeeded.
pub fn sqlstate<T>(result: Result<T, postgres::Error>) -> String {
    match result {
        Ok(_) => "00000".to_string(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| panic!("error without SQLSTATE: {e}")),
    }
}

/// What is left of key `key_id`'s quota in total, as committed (`get_api_key`: the key's
/// row and what its budget slots hold).
pub fn stored_remaining(su: &mut Client, key_id: &str) -> i64 {
    su.query_one(
        "SELECT remaining FROM apikey.get_api_key($1::text::uuid)",
        &[&key_id],
    )
    .unwrap()
    .get(0)
}

/// `code` of verifying `key` on `client`.
pub fn verify_code(client: &mut Client, key: &str) -> String {
    client
        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key])
        .unwrap()
        .get(0)
}

/// A superuser connection and a LOGIN role `<test>_api`, with organization `<test>-org`.
pub fn org_and_api_role(test: &str) -> (Client, String) {
    let mut su = superuser();
    su.batch_execute(&format!("SELECT apikey.create_organization('{test}-org')"))
        .unwrap();
    let api = login_role(&mut su, test, "api");
    (su, api)
}

/// A key of `<test>-org` with `settings` (e.g. `"remaining => 5"`, or `""`), created by the
/// superuser: (key_id as text, key).
pub fn org_key(su: &mut Client, test: &str, settings: &str) -> (String, String) {
    let settings = if settings.is_empty() {
        String::new()
    } else {
        format!(", {settings}")
    };
    let row = su
        .query_one(
            format!(
                "SELECT key_id::text, key FROM apikey.create_api_key(org_id => '{test}-org'{settings})"
            )
            .as_str(),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Client `i` of `CLIENTS` verifies `keys[i % keys.len()]` with `cost`, `per_client` times,
/// all starting together (or for `for_time`, pausing `pause` between calls, when given);
/// returns how many times each code came back.
pub fn race_keys(
    role: &str,
    keys: &[String],
    cost: i32,
    per_client: usize,
    timed: Option<(Duration, Duration)>,
) -> HashMap<String, usize> {
    race_clients(CLIENTS, role, keys, cost, per_client, timed)
}

/// [`race_keys`] with `clients` connections.
pub fn race_clients(
    clients: usize,
    role: &str,
    keys: &[String],
    cost: i32,
    per_client: usize,
    timed: Option<(Duration, Duration)>,
) -> HashMap<String, usize> {
    let start = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let role = role.to_string();
            let key = keys[i % keys.len()].clone();
            let start = start.clone();
            thread::spawn(move || {
                let mut c = connect(&role);
                start.wait();
                let began = Instant::now();
                let mut codes = Vec::new();
                for _ in 0..per_client {
                    if let Some((for_time, _)) = timed {
                        if began.elapsed() >= for_time {
                            break;
                        }
                    }
                    let code: String = c
                        .query_one(
                            "SELECT code FROM apikey.verify_api_key($1, cost => $2)",
                            &[&key, &cost],
                        )
                        .unwrap()
                        .get(0);
                    codes.push(code);
                    if let Some((_, pause)) = timed {
                        thread::sleep(pause);
                    }
                }
                codes
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for h in handles {
        for code in h.join().unwrap() {
            *counts.entry(code).or_insert(0) += 1;
        }
    }
    counts
}
