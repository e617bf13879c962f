//! verify's answers: codes in the contract's order, garbage and unknown keys, malformed requirements.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn org_key_without_user_for_superuser_verifies_as_org_owned() {
        org("acme");
        let (id, key) = org_key("acme", r#"{"mesa": ["admin"]}"#);
        let (valid, code) = Spi::get_two_with_args::<bool, String>(
            "SELECT valid, code FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!((valid, code.as_deref()), (Some(true), Some("VALID")));
        let row = Spi::get_three_with_args::<String, String, pgrx::JsonB>(
            "SELECT org_id, user_id, permissions FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(row.0.as_deref(), Some("acme"));
        assert_eq!(row.1, None);
        assert_eq!(row.2.unwrap().0, serde_json::json!({"mesa": ["admin"]}));
        let got = Spi::get_one_with_args::<pgrx::Uuid>(
            "SELECT key_id FROM apikey.verify_api_key($1)",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(got, Some(id));
    }

    #[pg_test]
    fn stored_row_holds_digest_prefix_start_but_never_the_key() {
        org("acme");
        let (id, key) = org_key("acme", "{}");
        let digest_ok = Spi::get_one_with_args::<bool>(
            "SELECT digest = sha256(convert_to($2, 'UTF8')) FROM apikey.keys WHERE id = $1",
            &[id.into(), key.as_str().into()],
        )
        .unwrap();
        assert_eq!(digest_ok, Some(true));
        let secret = &key[3..key.len() - 6];
        let leaks = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM apikey.keys k WHERE strpos(k::text, $1) > 0",
            &[secret.into()],
        )
        .unwrap();
        assert_eq!(leaks, Some(0));
        let (prefix, start) = Spi::get_two_with_args::<String, String>(
            "SELECT prefix, start FROM apikey.keys WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(prefix.as_deref(), Some("ak_"));
        assert_eq!(start.as_deref(), Some(&key[..7]));
    }

    #[pg_test]
    fn verify_codes_follow_the_contract_order() {
        org("acme");
        let (id, key) = org_key("acme", r#"{"files": ["read"]}"#);
        assert_eq!(code_of(&key), "VALID");
        let insufficient = Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1, '{\"files\": [\"write\"]}')",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(insufficient.as_deref(), Some("INSUFFICIENT_PERMISSIONS"));
        // Expired outranks insufficient permissions; disabled outranks expired.
        Spi::run_with_args(
            "UPDATE apikey.keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        let expired = Spi::get_one_with_args::<String>(
            "SELECT code FROM apikey.verify_api_key($1, '{\"files\": [\"write\"]}')",
            &[key.as_str().into()],
        )
        .unwrap();
        assert_eq!(expired.as_deref(), Some("KEY_EXPIRED"));
        Spi::run_with_args(
            "UPDATE apikey.keys SET enabled = false WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(code_of(&key), "KEY_DISABLED");
        Spi::run_with_args("SELECT apikey.revoke_api_key($1)", &[id.into()]).unwrap();
        assert_eq!(code_of(&key), "KEY_NOT_FOUND");
    }

    #[pg_test]
    fn garbage_keys_get_one_not_found_row() {
        org("acme");
        let (_, key) = org_key("acme", "{}");
        let mut changed = key.clone().into_bytes();
        changed[10] = if changed[10] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(changed).unwrap();
        for bad in ["", "ak_", "ключ-🔑", changed.as_str(), &"x".repeat(100_000)] {
            let rows = Spi::get_two_with_args::<i64, String>(
                "SELECT count(*), min(code) FROM apikey.verify_api_key($1)",
                &[bad.into()],
            )
            .unwrap();
            assert_eq!(
                (rows.0, rows.1.as_deref()),
                (Some(1), Some("KEY_NOT_FOUND")),
                "input {bad:.20}"
            );
        }
        let null = Spi::get_one::<String>("SELECT code FROM apikey.verify_api_key(NULL)").unwrap();
        assert_eq!(null.as_deref(), Some("KEY_NOT_FOUND"));
    }

    #[pg_test]
    fn well_formed_unknown_key_is_not_found() {
        // A key with a valid checksum that was never stored.
        let made = crate::keymat::generate("ak_").unwrap();
        assert_eq!(code_of(&made.key), "KEY_NOT_FOUND");
    }

    #[pg_test]
    fn malformed_required_permissions_raise_22023_even_for_a_bad_key() {
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '[\"read\"]')"),
            "22023"
        );
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '{\"a\": \"read\"}')"),
            "22023"
        );
        assert_eq!(
            sqlstate_of("SELECT * FROM apikey.verify_api_key('nope', '{\"a\": [\"read\"]}')"),
            "00000"
        );
    }

    /// Where verify finds the columns of `apikey.keys` is forgotten with the table's
    /// invalidation: an `ALTER TABLE` (of a future update script) that moves or retypes
    /// columns without changing their number is never read with the old layout.
    #[pg_test]
    fn the_column_layout_is_forgotten_when_the_table_changes() {
        org("layout");
        let (_, key) = org_key("layout", "{}");
        assert_eq!(code_of(&key), "VALID");
        assert!(crate::verify::layout_is_known());
        Spi::run("ALTER TABLE apikey.keys ALTER COLUMN name SET STATISTICS 200").unwrap();
        assert!(!crate::verify::layout_is_known());
        assert_eq!(code_of(&key), "VALID");
        assert!(crate::verify::layout_is_known());
    }
}
