"""Unit tests of the upgrade test's schema comparison (schema.py): it must see a
difference of one column or one function, and only real differences."""
import unittest

from schema import RECORD, compare

BASE = """--
-- PostgreSQL database dump
--
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: pg_apikey; Type: EXTENSION; Schema: -; Owner: -
--

-- For binary upgrade, create an empty extension and insert objects into it
DROP EXTENSION IF EXISTS pg_apikey;
SELECT pg_catalog.binary_upgrade_create_empty_extension('pg_apikey', 'apikey', false, '0.2.0', '{16390,16402}', '{"",""}', ARRAY[]::pg_catalog.text[]);

--
-- Name: keys; Type: TABLE; Schema: apikey; Owner: postgres
--

-- For binary upgrade, must preserve pg_type oid
SELECT pg_catalog.binary_upgrade_set_next_pg_type_oid('16404'::pg_catalog.oid);
CREATE TABLE apikey.keys (
    id uuid NOT NULL,
    digest bytea NOT NULL,
    remaining bigint
);

-- For binary upgrade, set heap's relfrozenxid and relminmxid
UPDATE pg_catalog.pg_class
SET relfrozenxid = '744', relminmxid = '1'
WHERE oid = 'apikey.keys'::pg_catalog.regclass;

-- For binary upgrade, handle extension membership the hard way
ALTER EXTENSION pg_apikey ADD TABLE apikey.keys;

--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: apikey; Owner: postgres
--

SELECT pg_catalog.setval('apikey.audit_log_id_seq', 1, false);

--
-- Name: verify_api_key(text); Type: FUNCTION; Schema: apikey; Owner: postgres
--

CREATE FUNCTION apikey.verify_api_key(key text) RETURNS boolean
    LANGUAGE c
    AS '$libdir/pg_apikey', 'verify_api_key_fast';

ALTER EXTENSION pg_apikey ADD FUNCTION apikey.verify_api_key(key text);

--
-- Name: TABLE keys; Type: ACL; Schema: apikey; Owner: postgres
--

SELECT pg_catalog.binary_upgrade_set_record_init_privs(true);
SELECT pg_catalog.binary_upgrade_set_record_init_privs(false);
"""


def reordered(dump):
    """The same dump with its object blocks in another order and other oids."""
    head, rest = dump.split("--\n-- Name: keys", 1)
    keys, func = rest.split("--\n-- Name: verify_api_key", 1)
    return (
        (head + "--\n-- Name: verify_api_key" + func + "\n--\n-- Name: keys" + keys)
        .replace("16404", "20001")
        .replace("{16390,16402}", "{30000,30001}")
        .replace("relfrozenxid = '744'", "relfrozenxid = '9120'")
        .replace("'apikey.audit_log_id_seq', 1, false", "'apikey.audit_log_id_seq', 52, true")
    )


# What run.sh appends to each dump: the extension's configuration tables and the effective
# privileges of every relation and function of the schema, as schema.RECORD lines.
RECORDS = (
    "extension pg_apikey 0.2.0 config apikey.audit_log WHERE , apikey.keys WHERE \n"
    "privileges apikey.keys: postgres=INSERT,postgres=SELECT\n"
    "privileges apikey.verify_api_key(text): PUBLIC=EXECUTE,postgres=EXECUTE\n"
)


def with_records(dump, records=RECORDS):
    return dump + "".join(RECORD + line + "\n" for line in records.splitlines())


class CompareSchemas(unittest.TestCase):
    def test_identical_dumps_are_equal(self):
        self.assertEqual(compare(BASE, BASE), [])

    def test_order_oids_xids_and_sequence_positions_do_not_count(self):
        self.assertEqual(compare(BASE, reordered(BASE)), [])

    def test_an_acl_block_with_no_statement_is_no_difference(self):
        other = BASE.replace("SELECT pg_catalog.binary_upgrade_set_record_init_privs(true);\n", "").replace(
            "SELECT pg_catalog.binary_upgrade_set_record_init_privs(false);\n", ""
        )
        self.assertEqual(compare(BASE, other), [])

    def test_a_fast_default_for_old_rows_is_no_difference(self):
        other = BASE.replace(
            "ALTER EXTENSION pg_apikey ADD TABLE apikey.keys;\n",
            "SELECT pg_catalog.binary_upgrade_set_missing_value('apikey.keys'::pg_catalog.regclass,'imported','{f}');\n\n"
            "ALTER EXTENSION pg_apikey ADD TABLE apikey.keys;\n",
        )
        self.assertNotEqual(other, BASE)
        self.assertEqual(compare(BASE, other), [])

    def test_a_column_default_is_a_difference(self):
        other = BASE.replace("    remaining bigint\n", "    remaining bigint DEFAULT 0\n")
        self.assertIn("+    remaining bigint DEFAULT 0", compare(BASE, other))

    def test_a_grant_is_a_difference(self):
        other = BASE.replace(
            "SELECT pg_catalog.binary_upgrade_set_record_init_privs(false);\n",
            "GRANT SELECT ON TABLE apikey.keys TO PUBLIC;\nSELECT pg_catalog.binary_upgrade_set_record_init_privs(false);\n",
        )
        self.assertIn("+GRANT SELECT ON TABLE apikey.keys TO PUBLIC;", compare(BASE, other))

    def test_one_more_column_is_a_difference(self):
        other = BASE.replace("    remaining bigint\n", "    remaining bigint,\n    cost integer\n")
        diff = compare(BASE, other)
        self.assertIn("+    cost integer", diff)

    def test_column_type_is_a_difference(self):
        other = BASE.replace("remaining bigint", "remaining integer")
        diff = compare(BASE, other)
        self.assertIn("-    remaining bigint", diff)
        self.assertIn("+    remaining integer", diff)

    def test_one_more_function_is_a_difference(self):
        other = BASE + (
            "\n--\n-- Name: get_owner_limits(text); Type: FUNCTION; Schema: apikey; Owner: postgres\n--\n\n"
            "CREATE FUNCTION apikey.get_owner_limits(org_id text) RETURNS jsonb\n    LANGUAGE c\n"
            "    AS '$libdir/pg_apikey', 'get_owner_limits_wrapper';\n"
        )
        diff = compare(BASE, other)
        self.assertTrue(any(line.startswith("+CREATE FUNCTION apikey.get_owner_limits") for line in diff), diff)

    def test_changed_function_symbol_is_a_difference(self):
        other = BASE.replace("'verify_api_key_fast'", "'verify_api_key_entry'")
        self.assertNotEqual(compare(BASE, other), [])

    def test_extension_membership_is_a_difference(self):
        other = BASE.replace("ALTER EXTENSION pg_apikey ADD TABLE apikey.keys;\n", "")
        self.assertIn("-ALTER EXTENSION pg_apikey ADD TABLE apikey.keys;", compare(BASE, other))

    def test_equal_records_are_equal(self):
        self.assertEqual(compare(with_records(BASE), with_records(reordered(BASE))), [])

    def test_a_privilege_granted_to_public_is_a_difference(self):
        other = RECORDS.replace("postgres=INSERT,postgres=SELECT", "PUBLIC=SELECT,postgres=INSERT,postgres=SELECT")
        diff = compare(with_records(BASE), with_records(BASE, other))
        self.assertIn("+" + RECORD + "privileges apikey.keys: PUBLIC=SELECT,postgres=INSERT,postgres=SELECT", diff)

    def test_a_missing_config_table_is_a_difference(self):
        other = RECORDS.replace(", apikey.keys WHERE ", "")
        diff = compare(with_records(BASE), with_records(BASE, other))
        self.assertTrue(any(line.startswith("-" + RECORD + "extension pg_apikey") for line in diff), diff)

    def test_a_missing_privilege_record_is_a_difference(self):
        other = "\n".join(RECORDS.splitlines()[:-1])
        self.assertNotEqual(compare(with_records(BASE), with_records(BASE, other)), [])

    def test_extension_version_is_a_difference(self):
        other = BASE.replace("'0.2.0'", "'0.1.0'")
        self.assertNotEqual(compare(BASE, other), [])


if __name__ == "__main__":
    unittest.main()
