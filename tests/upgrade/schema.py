"""Compare the schema of pg_apikey in two databases.

`pg_dump --schema-only` alone prints an extension as one CREATE EXTENSION line, so the
upgrade test dumps with `--binary-upgrade`, which writes out every member object of the
extension (as pg_upgrade needs them). This module turns such a dump into a sorted list of
object blocks with the parts that differ between equal schemas taken out (object ids,
dump headers and session settings), and compares two of them.

    python3 schema.py DUMP_A DUMP_B     exit 1 and print a unified diff when they differ
"""
import difflib
import re
import sys

# Lines that differ between two databases with the same schema.
_NOISE = (
    re.compile(r"^--"),  # comments, including the TOC headers
    re.compile(r"^SET "),
    re.compile(r"^SELECT pg_catalog\.set_config\('search_path'"),
    re.compile(r"^SELECT pg_catalog\.binary_upgrade_set_next_"),  # preserved oids
    re.compile(r"^SELECT pg_catalog\.setval\("),
    # Whether an extension object's privileges are recorded as initial ones (pg_init_privs):
    # pg_upgrade turns an explicit owner-only ACL into the default one (NULL), which means
    # the same privileges; the test compares effective privileges separately.
    re.compile(r"^SELECT pg_catalog\.binary_upgrade_set_record_init_privs\("),  # sequence positions: data, not schema
    # A table's relfrozenxid and relminmxid, kept by pg_upgrade: transaction ids.
    re.compile(r"^UPDATE pg_catalog\.pg_class$"),
    re.compile(r"^WHERE oid = '[^']*'(::pg_catalog\.regclass)?;$"),
    # The stored value that rows written before ALTER TABLE … ADD COLUMN … DEFAULT read for
    # the new column (pg_attribute.attmissingval, a constant default's fast path): how old
    # rows are stored, not the column's definition, which the CREATE TABLE block shows.
    re.compile(r"^SELECT pg_catalog\.binary_upgrade_set_missing_value\("),
    re.compile(r"^\\(un)?restrict "),  # psql meta-commands of newer pg_dump
    re.compile(r"^\\connect "),
)
# What run.sh appends to a dump, one fact a line: the extension's configuration tables
# and the effective privileges of each relation and function. Each line is a block of its
# own, compared as it is.
RECORD = "RECORD: "
# Each object of the dump starts with such a header: "-- Name: keys; Type: TABLE; ...".
_TOC_HEADER = re.compile(r"^-- (Data for )?Name: ")
_EMPTY_EXTENSION = re.compile(r"binary_upgrade_create_empty_extension\(")
_OID_ARRAY = re.compile(r"'\{[0-9,]*\}'")



def normalise(dump):
    """The dump's object blocks (one per TOC entry, headed by its "-- Name:" line),
    without the noise, sorted."""
    blocks, current = [], None
    for raw in dump.splitlines():
        line = raw.rstrip()
        if line.startswith(RECORD):
            blocks.append(line)
            continue
        if _TOC_HEADER.match(line):
            if current is not None:
                blocks.append("\n".join(current).strip())
            current = [line]
            continue
        if current is None or any(p.match(line) for p in _NOISE):
            continue
        if _EMPTY_EXTENSION.search(line):
            # The extension's configuration tables are named by oid here; the test
            # compares them by name separately.
            line = _OID_ARRAY.sub("'{<oids>}'", line)
        if line or (current and current[-1]):
            current.append(line)
    if current is not None:
        blocks.append("\n".join(current).strip())
    # A dump block left with its header alone says nothing; a record always does.
    return sorted(b for b in blocks if "\n" in b or b.startswith(RECORD))


def compare(dump_a, dump_b, name_a="a", name_b="b"):
    """A unified diff of the two normalised dumps; empty when the schemas are equal."""
    a = "\n\n".join(normalise(dump_a)).splitlines()
    b = "\n\n".join(normalise(dump_b)).splitlines()
    return list(difflib.unified_diff(a, b, name_a, name_b, lineterm=""))


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as fa, open(argv[2]) as fb:
        diff = compare(fa.read(), fb.read(), argv[1], argv[2])
    if diff:
        print("\n".join(diff))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
