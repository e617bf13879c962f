//! Connections to the scratch cluster that `scripts/test.sh` starts, as several roles.
//!
//! The cluster is named by `PGAPIKEY_TEST_HOST` (socket directory or host),
//! `PGAPIKEY_TEST_PORT` and `PGAPIKEY_TEST_DB`; it uses trust authentication, so any role
//! with LOGIN can connect as itself. Running these tests without that cluster is an
//! error, never a skip.
use postgres::{Client, NoTls};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests through scripts/test.sh, which starts the cluster"
        )
    })
}

/// Connect as `role` (which must have LOGIN).
pub fn connect(role: &str) -> Client {
    let conf = format!(
        "host={} port={} dbname={} user={} application_name=pg_apikey_it",
        env("PGAPIKEY_TEST_HOST"),
        env("PGAPIKEY_TEST_PORT"),
        env("PGAPIKEY_TEST_DB"),
        role
    );
    Client::connect(&conf, NoTls).unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

/// The bootstrap superuser of the scratch cluster.
pub fn superuser() -> Client {
    connect("postgres")
}

/// A fresh LOGIN role named `<test>_<name>`, so that parallel tests never share one.
pub fn login_role(su: &mut Client, test: &str, name: &str) -> String {
    let role = format!("{test}_{name}");
    su.batch_execute(&format!(
        "DROP ROLE IF EXISTS \"{role}\"; CREATE ROLE \"{role}\" LOGIN"
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

/// `code` of verifying `key` on `client`.
pub fn verify_code(client: &mut Client, key: &str) -> String {
    client
        .query_one("SELECT code FROM apikey.verify_api_key($1)", &[&key])
        .unwrap()
        .get(0)
}
