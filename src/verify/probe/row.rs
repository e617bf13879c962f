//! A key's row as verify reads it: which columns of `apikey.keys` ([`COLUMNS`]), where
//! they sit in the table's rows, and their values copied out of the buffer ([`KeyRead`]).
use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys::{self, Datum};
use pgrx::prelude::*;
use pgrx::Uuid;

use crate::error;
use crate::jsonb::Jsonb;

/// The columns of `apikey.keys` that verify reads, in this order. Those after
/// [`REQUIRED`] came with 0.2.0: a database still at 0.1.0 (the new library installed,
/// `ALTER EXTENSION pg_apikey UPDATE` not yet run) has none of them, and they read as NULL.
pub(super) const COLUMNS: [&CStr; 13] = [
    c"id",
    c"org_id",
    c"user_id",
    c"name",
    c"permissions",
    c"metadata",
    c"remaining",
    c"expires_at",
    c"revoked_at",
    c"enabled",
    c"last_used_at",
    c"rate_limit_max",
    c"rate_limits",
];
const REQUIRED: usize = 12;
pub const ID: usize = 0;
pub const ORG_ID: usize = 1;
pub const USER_ID: usize = 2;
pub const NAME: usize = 3;
pub const PERMISSIONS: usize = 4;
pub const METADATA: usize = 5;
const REMAINING: usize = 6;
pub const EXPIRES_AT: usize = 7;
const REVOKED_AT: usize = 8;
const ENABLED: usize = 9;
const LAST_USED_AT: usize = 10;
const RATE_LIMIT_MAX: usize = 11;
pub(super) const RATE_LIMITS: usize = 12;

/// A found key's columns, copied out of the buffer (detoasted) into the current memory
/// context, so they outlive the scan. The decision reads them through typed accessors;
/// the entry point passes [`KeyRead::datum`]s through to the result row.
pub struct KeyRead {
    values: [Datum; COLUMNS.len()],
    nulls: [bool; COLUMNS.len()],
    /// Read from a 0.1.0 table (no 0.2.0 columns).
    legacy: bool,
}

impl KeyRead {
    /// The column as the datum it is, for the result row.
    pub fn datum(&self, col: usize) -> Option<Datum> {
        (!self.nulls[col]).then_some(self.values[col])
    }

    pub fn id(&self) -> Uuid {
        // SAFETY: id is a NOT NULL uuid column, copied out by `lookup`.
        unsafe { Uuid::from_datum(self.values[ID], false) }.expect("id is never NULL")
    }

    /// Whether the key was read from a database still at 0.1.0.
    pub fn is_from_0_1_0(&self) -> bool {
        self.legacy
    }

    pub fn revoked(&self) -> bool {
        !self.nulls[REVOKED_AT]
    }

    pub fn enabled(&self) -> bool {
        // enabled is a by-value boolean column.
        self.datum(ENABLED).is_some_and(|d| d.value() != 0)
    }

    /// A timestamptz column as microseconds since 2000-01-01 (by value).
    fn timestamp(&self, col: usize) -> Option<pg_sys::TimestampTz> {
        self.datum(col).map(|d| d.value() as pg_sys::TimestampTz)
    }

    pub fn expires_at(&self) -> Option<pg_sys::TimestampTz> {
        self.timestamp(EXPIRES_AT)
    }

    pub fn last_used_at(&self) -> Option<pg_sys::TimestampTz> {
        self.timestamp(LAST_USED_AT)
    }

    /// remaining is a by-value bigint column.
    pub fn remaining(&self) -> Option<i64> {
        self.datum(REMAINING).map(|d| d.value() as i64)
    }

    /// Whether the key has a quota or a rate limit of its own.
    pub fn is_limited(&self) -> bool {
        !self.nulls[REMAINING] || !self.nulls[RATE_LIMIT_MAX] || !self.nulls[RATE_LIMITS]
    }

    pub fn org_id(&self) -> Option<String> {
        // SAFETY: a text column (or NULL, as `nulls` says), copied out by `lookup`.
        unsafe { String::from_datum(self.values[ORG_ID], self.nulls[ORG_ID]) }
    }

    pub fn user_id(&self) -> Option<String> {
        // SAFETY: a text column (or NULL, as `nulls` says), copied out by `lookup`.
        unsafe { String::from_datum(self.values[USER_ID], self.nulls[USER_ID]) }
    }

    pub fn permissions(&self) -> Option<Jsonb> {
        // SAFETY: a jsonb column (or NULL, as `nulls` says), copied out by `lookup`.
        unsafe { Jsonb::from_datum(self.values[PERMISSIONS], self.nulls[PERMISSIONS]) }
    }
}

/// Where one of [`COLUMNS`] sits in the table's rows, and how its values are stored.
#[derive(Clone, Copy)]
pub(super) struct Column {
    /// Zero-based attribute index; [`ABSENT`] for a 0.2.0 column of a 0.1.0 table.
    index: usize,
    byval: bool,
    /// `attlen`: -1 for varlena, else the fixed length in bytes.
    len: i16,
}

pub(super) const ABSENT: usize = usize::MAX;

const NO_COLUMN: Column = Column {
    index: 0,
    byval: false,
    len: 0,
};

thread_local! {
    /// (relation oid, number of attributes, where COLUMNS sit): recomputed when the table
    /// is re-created or gains columns.
    static ATTNUMS: Cell<(pg_sys::Oid, i32, [Column; COLUMNS.len()])> =
        const { Cell::new((pg_sys::InvalidOid, 0, [NO_COLUMN; COLUMNS.len()])) };
}

/// Whether where the columns sit is known (for tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn layout_is_known() -> bool {
    ATTNUMS.with(Cell::get).0 != pg_sys::InvalidOid
}

/// Forget where the columns sit (the table was invalidated).
pub(super) fn forget_layout() {
    ATTNUMS.with(|c| c.set((pg_sys::InvalidOid, 0, [NO_COLUMN; COLUMNS.len()])));
}

/// Where [`COLUMNS`] sit in `rel`'s rows.
///
/// # Safety
/// `rel` is an open relation (its relcache entry and descriptor stay valid while it is
/// open).
pub(super) unsafe fn attnums(rel: pg_sys::Relation) -> [Column; COLUMNS.len()] {
    // SAFETY: `rel` is open (the caller's contract), so it and its descriptor are valid.
    let (relid, natts) = unsafe { ((*rel).rd_id, (*(*rel).rd_att).natts) };
    let (cached_rel, cached_natts, cached) = ATTNUMS.with(Cell::get);
    if cached_rel == relid && cached_natts == natts {
        return cached;
    }
    // pgrx's descriptor wrapper reads attributes the same way on every major (PostgreSQL
    // 18 moved them behind TupleDescAttr); it borrows the relcache's descriptor.
    // SAFETY: the descriptor of an open relation, borrowed for this function only.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att) };
    let mut found = [NO_COLUMN; COLUMNS.len()];
    for (i, (slot, name)) in found.iter_mut().zip(COLUMNS).enumerate() {
        // SAFETY: an open relation and a NUL-terminated name; missing_ok is false only
        // for system columns, which these are not (a missing column answers 0).
        let n = unsafe { pg_sys::attnameAttNum(rel, name.as_ptr(), false) };
        if n <= 0 && i >= REQUIRED {
            *slot = Column {
                index: ABSENT,
                ..NO_COLUMN
            };
            continue;
        }
        if n <= 0 {
            error::not_ready(
                format!("apikey.keys has no column {}", name.to_string_lossy()),
                "Reinstall the extension: ALTER EXTENSION pg_apikey UPDATE, or DROP and CREATE it.",
            );
        }
        let index = n as usize - 1;
        let attr = desc
            .get(index)
            .expect("attribute number within the descriptor");
        *slot = Column {
            index,
            byval: attr.attbyval,
            len: attr.attlen,
        };
    }
    ATTNUMS.with(|c| c.set((relid, natts, found)));
    found
}

/// The columns of [`COLUMNS`] from a row's `values`, laid out as `cols` says, copied
/// into the current memory context.
///
/// # Safety
/// `values` and `isnull` are a slot's deformed row of `apikey.keys`, valid for the call.
pub(super) unsafe fn copy_out(
    cols: &[Column; COLUMNS.len()],
    values: &[Datum],
    isnull: &[bool],
) -> KeyRead {
    let mut read = KeyRead {
        values: [Datum::from(0); COLUMNS.len()],
        nulls: [true; COLUMNS.len()],
        legacy: cols[RATE_LIMITS].index == ABSENT,
    };
    for (i, col) in cols.iter().enumerate() {
        let a = col.index;
        if a == ABSENT {
            continue;
        }
        read.nulls[i] = isnull[a];
        if isnull[a] {
            continue;
        }
        read.values[i] = if col.byval {
            values[a]
        } else if col.len == -1 {
            // SAFETY: a non-null varlena datum of the row; the copy is palloc'd in
            // the current memory context.
            Datum::from(unsafe { pg_sys::pg_detoast_datum_copy(values[a].cast_mut_ptr()) })
        } else {
            // Fixed-length by reference (uuid): copy its `len` bytes.
            let len = col.len as usize;
            // SAFETY: palloc of `len` bytes, and a copy of the datum's `len` bytes
            // (attlen of a fixed-length by-reference type) into it; no overlap.
            unsafe {
                let copy = pg_sys::palloc(len);
                std::ptr::copy_nonoverlapping(
                    values[a].cast_mut_ptr::<u8>(),
                    copy.cast::<u8>(),
                    len,
                );
                Datum::from(copy)
            }
        };
    }
    read
}
