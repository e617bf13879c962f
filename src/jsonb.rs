//! jsonb values kept exactly.
//!
//! A caller's `permissions`, `metadata` and `required_permissions` are stored and
//! returned as the jsonb datums PostgreSQL holds — never through text or a JSON parser,
//! whose numbers are 64-bit floats and whose nesting is bounded. Shapes are checked on
//! the jsonb value itself, walked with PostgreSQL's own iterator, without recursion.
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::nullable::Nullable;
use pgrx::pg_sys::{self, Datum};
use pgrx::{FromDatum, IntoDatum, PgMemoryContexts};

/// A jsonb datum exactly as PostgreSQL holds it.
#[derive(Clone, Copy, Debug)]
pub struct Jsonb(Datum);

impl Jsonb {
    pub fn datum(self) -> Datum {
        self.0
    }

    /// The value's structure, for shape checks: strings and keys are copied, numbers and
    /// other scalars are only named (their values stay in the datum, untouched).
    pub fn value(self) -> Value {
        // SAFETY: a valid jsonb datum (the type system of the call or the table says so);
        // the iterator and the detoasted copy live in the current memory context.
        unsafe {
            let jb = pg_sys::pg_detoast_datum(self.0.cast_mut_ptr()) as *mut pg_sys::Jsonb;
            let mut it = pg_sys::JsonbIteratorInit(&mut (*jb).root);
            let mut v: pg_sys::JsonbValue = std::mem::zeroed();
            let mut stack: Vec<Frame> = Vec::new();
            loop {
                let token = pg_sys::JsonbIteratorNext(&mut it, &mut v, false);
                use pg_sys::JsonbIteratorToken::*;
                match token {
                    WJB_BEGIN_ARRAY => stack.push(Frame::Array(Vec::new(), v.val.array.rawScalar)),
                    WJB_BEGIN_OBJECT => stack.push(Frame::Object(Vec::new(), None)),
                    WJB_KEY => {
                        if let Some(Frame::Object(_, key)) = stack.last_mut() {
                            *key = Some(string_of(&v));
                        }
                    }
                    WJB_ELEM | WJB_VALUE => {
                        let scalar = scalar_of(&v);
                        push(&mut stack, scalar);
                    }
                    WJB_END_ARRAY | WJB_END_OBJECT => {
                        let done = match stack.pop() {
                            Some(Frame::Array(mut items, true)) if items.len() == 1 => {
                                items.pop().expect("one element")
                            }
                            Some(Frame::Array(items, _)) => Value::Array(items),
                            Some(Frame::Object(pairs, _)) => Value::Object(pairs),
                            None => Value::Null,
                        };
                        if stack.is_empty() {
                            return done;
                        }
                        push(&mut stack, done);
                    }
                    _ => return Value::Null,
                }
            }
        }
    }

    /// Whether the value is a JSON object (and not an array or a scalar).
    pub fn is_object(self) -> bool {
        // SAFETY: reads the root container's header of a valid jsonb datum.
        unsafe {
            let jb = pg_sys::pg_detoast_datum(self.0.cast_mut_ptr()) as *mut pg_sys::Jsonb;
            (*jb).root.header & pg_sys::JB_FOBJECT != 0
        }
    }
}

enum Frame {
    Array(Vec<Value>, bool),
    Object(Vec<(String, Value)>, Option<String>),
}

fn push(stack: &mut [Frame], value: Value) {
    match stack.last_mut() {
        Some(Frame::Array(items, _)) => items.push(value),
        Some(Frame::Object(pairs, key)) => pairs.push((key.take().unwrap_or_default(), value)),
        None => {}
    }
}

/// The string of a string value (or of an object's key).
///
/// # Safety
/// `v` is a `jbvString` value filled in by the jsonb iterator, whose bytes are valid for
/// the call.
unsafe fn string_of(v: &pg_sys::JsonbValue) -> String {
    // SAFETY: `v` is a string value (the caller's contract): `val.string` is the union
    // field in use, and its `val`/`len` point at `len` valid bytes.
    let bytes = unsafe {
        let s = v.val.string;
        std::slice::from_raw_parts(s.val as *const u8, s.len as usize)
    };
    String::from_utf8_lossy(bytes).into_owned()
}

/// A numeric's text as `numeric_out` writes it: every digit, never an exponent.
///
/// # Safety
/// `n` points at a valid numeric.
unsafe fn numeric_text(n: pg_sys::Numeric) -> String {
    // SAFETY: numeric_out takes a valid numeric datum (the caller's contract) and returns
    // a palloc'd C string.
    let text = unsafe {
        pgrx::direct_function_call::<&std::ffi::CStr>(pg_sys::numeric_out, &[Some(Datum::from(n))])
    };
    text.map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A scalar value's structure.
///
/// # Safety
/// `v` is a scalar value filled in by the jsonb iterator.
unsafe fn scalar_of(v: &pg_sys::JsonbValue) -> Value {
    // SAFETY: each arm reads the union field that `type_` says is in use; strings and
    // numerics point into the value the iterator walks (the caller's contract).
    unsafe {
        match v.type_ {
            pg_sys::jbvType::jbvString => Value::String(string_of(v)),
            pg_sys::jbvType::jbvNumeric => Value::Number(numeric_text(v.val.numeric)),
            pg_sys::jbvType::jbvBool => Value::Bool(v.val.boolean),
            _ => Value::Null,
        }
    }
}

/// The structure of a jsonb value. Numbers carry PostgreSQL's own text of the numeric
/// (exact at any size), for the settings that need a count; nothing built from a `Value`
/// is ever stored.
#[derive(Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(datum: Datum, is_null: bool, _: pg_sys::Oid) -> Option<Jsonb> {
        (!is_null).then_some(Jsonb(datum))
    }

    unsafe fn from_datum_in_memory_context(
        mut memory_context: PgMemoryContexts,
        datum: Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Jsonb> {
        if is_null {
            return None;
        }
        // A copy that outlives the SPI call it was read in.
        // SAFETY: a non-null jsonb datum (this trait's contract), copied into a valid
        // memory context that the caller chose.
        unsafe {
            memory_context.switch_to(|_| {
                Some(Jsonb(Datum::from(pg_sys::pg_detoast_datum_copy(
                    datum.cast_mut_ptr(),
                ))))
            })
        }
    }
}

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// The SQL type is jsonb, whose datums this type carries unchanged.
pgrx::impl_sql_translatable!(Jsonb, "jsonb");

// SAFETY: a jsonb argument is unboxed as the datum it is (FromDatum above).
unsafe impl<'fcx> ArgAbi<'fcx> for Jsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Jsonb {
        let index = arg.index();
        // SAFETY: the argument is a jsonb datum (the function's declaration says so).
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Jsonb> {
        // SAFETY: the argument is a jsonb datum or NULL (the function's declaration).
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the datum returned is a valid jsonb datum, as every `Jsonb` holds.
unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        // SAFETY: a valid jsonb datum, as every `Jsonb` holds, for a jsonb result.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

/// Whether `container` contains `contained` (jsonb's `@>`).
pub fn contains(container: Jsonb, contained: Jsonb) -> bool {
    // SAFETY: two valid jsonb datums.
    unsafe {
        pgrx::direct_function_call::<bool>(
            pg_sys::jsonb_contains,
            &[Some(container.0), Some(contained.0)],
        )
    }
    .unwrap_or(false)
}

/// A jsonb value written as JSON text, for tests and for values the extension makes
/// itself (never for a caller's value, which arrives as a datum).
pub fn parse(text: &str) -> Jsonb {
    let text = std::ffi::CString::new(text).expect("JSON text without NUL");
    // SAFETY: jsonb_in takes a C string; it raises 22P02 on bad JSON.
    let datum = unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(Datum::from(text.as_ptr()))])
    };
    Jsonb(datum.expect("jsonb_in returns a value"))
}

#[cfg(test)]
impl From<serde_json::Value> for Value {
    /// For unit tests of shape checks: a JSON value as a `Value`.
    fn from(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n.to_string()),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}
