//! jsonb kept exactly: shapes read from the value, stored values equal to what was given, key_info built from the columns.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::pgrx_tests::support::*;
    use pgrx::prelude::*;

    /// depth jsonb accepts, raw scalars, with no text or JSON parser on the way.
    #[pg_test]
    fn jsonb_shapes_are_read_from_the_value() {
        use crate::jsonb::{parse, Value};
        let v = parse(
            r#"{"a": 1e400, "b": [123456789012345678901234567890, "x", true, null], "c": {}}"#,
        )
        .value();
        assert_eq!(
            v,
            Value::Object(vec![
                ("a".into(), Value::Number(format!("1{}", "0".repeat(400)))),
                (
                    "b".into(),
                    Value::Array(vec![
                        Value::Number("123456789012345678901234567890".into()),
                        Value::String("x".into()),
                        Value::Bool(true),
                        Value::Null
                    ])
                ),
                ("c".into(), Value::Object(vec![])),
            ])
        );
        assert_eq!(parse("-0.50").value(), Value::Number("-0.50".into()));
        assert_eq!(parse(r#""s""#).value(), Value::String("s".into()));
        assert_eq!(parse("[]").value(), Value::Array(vec![]));
        assert!(parse("{}").is_object());
        assert!(!parse("[{}]").is_object());
        assert!(!parse("1").is_object());
        // 2,000 levels: walked without recursion.
        let deep = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
        let mut v = parse(&deep).value();
        let mut depth = 0;
        while let Value::Array(mut items) = v {
            depth += 1;
            v = items.pop().expect("one element per level");
        }
        assert_eq!((depth, v), (2000, Value::Number("1".into())));
    }

    /// What goes in comes out: create, read back and verify keep the caller's datum.
    #[pg_test]
    fn stored_jsonb_equals_what_was_given() {
        org("exact");
        // Compared as text: jsonb's = compares numbers by value (1.000 = 1, 1.50 = 1.5).
        let given = r#"{"a": 123456789012345678901234567890, "b": 0.1000000000000000000001, "c": 1e400, "d": 1.000, "e": -0.0, "f": 1.50}"#;
        let same = Spi::get_one_with_args::<bool>(
            "WITH k AS (SELECT key_id, key, metadata FROM apikey.create_api_key(org_id => 'exact', metadata => $1::jsonb)) \
             SELECT k.metadata::text = $1::jsonb::text \
                AND (SELECT g.metadata FROM apikey.get_api_key(k.key_id) g)::text = $1::jsonb::text \
                AND (SELECT v.metadata FROM apikey.verify_api_key(k.key) v)::text = $1::jsonb::text \
               FROM k",
            &[given.into()],
        )
        .unwrap();
        assert_eq!(same, Some(true));
        // The comparison sees a change of scale that = would not.
        let rewritten =
            Spi::get_one::<bool>(r#"SELECT '{"d": 1.000}'::jsonb::text = '{"d": 1}'::jsonb::text"#)
                .unwrap();
        assert_eq!(rewritten, Some(false));
    }

    /// `apikey.key_info` is built in one place, `apikey.key_info_of`: each field is the
    /// column of `apikey.keys` of the same name and type (`key_id` is `id`) with its value,
    /// the digest is not one of them, and every statement that returns or records a key
    /// calls the function instead of listing columns.
    #[pg_test]
    fn key_info_is_built_in_one_place_from_the_keys_columns() {
        let unmatched = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_attribute t
               LEFT JOIN pg_attribute c ON c.attrelid = 'apikey.keys'::regclass
                     AND c.attname = CASE t.attname WHEN 'key_id' THEN 'id' ELSE t.attname END
                     AND c.atttypid = t.atttypid AND NOT c.attisdropped
              WHERE t.attrelid = 'apikey.key_info'::regclass AND t.attnum > 0
                AND NOT t.attisdropped AND (c.attname IS NULL OR t.attname = 'digest')",
        )
        .unwrap();
        assert_eq!(unmatched, Some(0));
        org("acme");
        Spi::run(
            r#"SELECT apikey.create_api_key(org_id => 'acme', name => 'n', remaining => 3,
                   permissions => '{"a": ["b"]}', metadata => '{"m": 1.50}',
                   rate_limits => '[{"name": "x", "limit": 1, "window": "1 minute"}]')"#,
        )
        .unwrap();
        let differing = Spi::get_one::<i64>(
            "SELECT count(*) FROM apikey.keys k, jsonb_each(to_jsonb(apikey.key_info_of(k, NULL))) f
              WHERE f.value IS DISTINCT FROM
                    to_jsonb(k) -> CASE f.key WHEN 'key_id' THEN 'id' ELSE f.key END",
        )
        .unwrap();
        assert_eq!(differing, Some(0));
        // remaining is what is left in total: the row's count and what the key's budget
        // slots hold.
        Spi::run(
            "INSERT INTO apikey.key_slots (key_id, slot, quota, windows, by_cost, used_at)
             SELECT id, s, 10 * (s + 1), '{1}', '{f}', now() FROM apikey.keys, generate_series(0, 1) s",
        )
        .unwrap();
        let remaining = Spi::get_one::<i64>(
            "SELECT (apikey.key_info_of(k, apikey.key_held(k.id))).remaining FROM apikey.keys k",
        )
        .unwrap();
        assert_eq!(remaining, Some(3 + 10 + 20));
        // Inlined into the statements that call it: no function call per row (bulk
        // provisioning builds one key_info per key).
        let plan: Vec<String> = Spi::connect(|c| {
            c.select(
                "EXPLAIN (VERBOSE, COSTS OFF) SELECT apikey.key_info_of(k, NULL) FROM apikey.keys k",
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        });
        assert!(
            !plan.join("\n").contains("key_info_of"),
            "not inlined: {plan:?}"
        );
        let files = [
            ("key_get.sql", include_str!("../sql/queries/key_get.sql")),
            (
                "key_list_all.sql",
                include_str!("../sql/queries/key_list_all.sql"),
            ),
            (
                "key_list_org.sql",
                include_str!("../sql/queries/key_list_org.sql"),
            ),
            (
                "key_list_user.sql",
                include_str!("../sql/queries/key_list_user.sql"),
            ),
            (
                "key_revoke.sql",
                include_str!("../sql/queries/key_revoke.sql"),
            ),
            (
                "key_update.sql",
                include_str!("../sql/queries/key_update.sql"),
            ),
            (
                "key_insert.sql",
                include_str!("../sql/queries/key_insert.sql"),
            ),
            (
                "key_delete.sql",
                include_str!("../sql/queries/key_delete.sql"),
            ),
            (
                "delete_expired.sql",
                include_str!("../sql/queries/delete_expired.sql"),
            ),
            (
                "audit_key.sql",
                include_str!("../sql/queries/audit_key.sql"),
            ),
            (
                "key_import.sql",
                include_str!("../sql/queries/key_import.sql"),
            ),
        ];
        for (name, sql) in files {
            assert!(sql.contains("apikey.key_info_of("), "{name}");
            assert!(
                !sql.contains("::apikey.key_info"),
                "{name} lists key_info's columns"
            );
        }
    }
}
