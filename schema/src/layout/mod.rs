//! How each kind of record is laid out in its Automerge document, written and read through one
//! module per kind. Nothing outside this module touches Automerge paths.
//!
//! Every document has two scalar root keys, `schema` (the layout version, [`SCHEMA_VERSION`])
//! and `kind`. Records that several nodes may add concurrently live under distinct root keys
//! (`r/<id>`) rather than inside a shared container object, because two nodes that each create
//! "the" container concurrently would produce two objects of which only one stays visible.
//!
//! Structured values are written as native Automerge maps, lists and scalars through a small
//! bridge from `serde_json::Value`, so that an auditor reading a document with any Automerge
//! implementation sees ordinary fields, not opaque blobs.

pub mod dossier;
pub mod ratings;
pub mod registry;
pub mod versioned;

use automerge::transaction::Transactable;
use automerge::{ObjId as ExId, ObjType, ReadDoc, ScalarValue, Value};
use serde_json::{Map, Number, Value as Json};

/// The layout version written into every document.
pub const SCHEMA_VERSION: i64 = 1;
/// Deepest nesting the bridge reads or writes.
pub const JSON_DEPTH_MAX: usize = 8;

/// Why a document could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// A field is missing or has the wrong type.
    #[error("document field {0} is missing or malformed")]
    Field(String),
    /// The document was written by a newer layout version.
    #[error("document layout version {0} is not supported")]
    Version(i64),
    /// The document is of another kind.
    #[error("document kind {found} where {expected} was expected")]
    Kind {
        /// Expected.
        expected: &'static str,
        /// Found.
        found: String,
    },
    /// A value does not decode into its domain type.
    #[error("decoding {what}: {message}")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// Serde's message.
        message: String,
    },
    /// Nesting is deeper than [`JSON_DEPTH_MAX`].
    #[error("value nested deeper than {JSON_DEPTH_MAX}")]
    TooDeep,
}

/// Writes the `schema` and `kind` root keys.
pub(crate) fn put_kind(tx: &mut impl Transactable, kind: &str) -> Result<(), LayoutError> {
    tx.put(automerge::ROOT, "schema", SCHEMA_VERSION)?;
    tx.put(automerge::ROOT, "kind", kind)?;
    Ok(())
}

/// Checks the `schema` and `kind` root keys.
pub(crate) fn check_kind(doc: &impl ReadDoc, expected: &'static str) -> Result<(), LayoutError> {
    let version = get_scalar(doc, &automerge::ROOT, "schema")
        .and_then(|s| s.as_i64())
        .ok_or_else(|| LayoutError::Field("schema".into()))?;
    if version > SCHEMA_VERSION {
        return Err(LayoutError::Version(version));
    }
    let kind =
        get_scalar(doc, &automerge::ROOT, "kind").and_then(|s| s.as_str().map(str::to_owned));
    match kind {
        Some(k) if k == expected => Ok(()),
        Some(found) => Err(LayoutError::Kind { expected, found }),
        None => Err(LayoutError::Field("kind".into())),
    }
}

pub(crate) fn get_scalar(doc: &impl ReadDoc, obj: &ExId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

fn scalar_of(n: &Number) -> ScalarValue {
    if let Some(i) = n.as_i64() {
        ScalarValue::Int(i)
    } else if let Some(u) = n.as_u64() {
        ScalarValue::Uint(u)
    } else {
        ScalarValue::F64(n.as_f64().unwrap_or(0.0))
    }
}

fn scalar_json(value: &Json) -> Option<ScalarValue> {
    Some(match value {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => scalar_of(n),
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => return None,
    })
}

/// Puts `value` at `obj[key]`: objects become maps, arrays lists, the rest scalars.
pub(crate) fn put_json(
    tx: &mut impl Transactable,
    obj: &ExId,
    key: &str,
    value: &Json,
) -> Result<(), LayoutError> {
    put_json_depth(tx, obj, key, value, 0)
}

fn put_json_depth(
    tx: &mut impl Transactable,
    obj: &ExId,
    key: &str,
    value: &Json,
    depth: usize,
) -> Result<(), LayoutError> {
    if depth > JSON_DEPTH_MAX {
        return Err(LayoutError::TooDeep);
    }
    match value {
        Json::Object(map) => {
            let child = tx.put_object(obj, key, ObjType::Map)?;
            fill_map(tx, &child, map, depth + 1)
        }
        Json::Array(items) => {
            let child = tx.put_object(obj, key, ObjType::List)?;
            fill_list(tx, &child, items, depth + 1)
        }
        scalar => Ok(tx.put(obj, key, scalar_json(scalar).expect("scalar"))?),
    }
}

/// Appends `value` to the end of list `obj` and returns the id of what was inserted (for a map
/// or list; the list element's id for a scalar is not needed by any caller).
pub(crate) fn push_json(
    tx: &mut impl Transactable,
    list: &ExId,
    value: &Json,
) -> Result<(), LayoutError> {
    let index = tx.length(list);
    insert_json(tx, list, index, value, 0)
}

fn insert_json(
    tx: &mut impl Transactable,
    list: &ExId,
    index: usize,
    value: &Json,
    depth: usize,
) -> Result<(), LayoutError> {
    if depth > JSON_DEPTH_MAX {
        return Err(LayoutError::TooDeep);
    }
    match value {
        Json::Object(map) => {
            let child = tx.insert_object(list, index, ObjType::Map)?;
            fill_map(tx, &child, map, depth + 1)
        }
        Json::Array(items) => {
            let child = tx.insert_object(list, index, ObjType::List)?;
            fill_list(tx, &child, items, depth + 1)
        }
        scalar => Ok(tx.insert(list, index, scalar_json(scalar).expect("scalar"))?),
    }
}

fn fill_map(
    tx: &mut impl Transactable,
    obj: &ExId,
    map: &Map<String, Json>,
    depth: usize,
) -> Result<(), LayoutError> {
    for (k, v) in map {
        put_json_depth(tx, obj, k, v, depth)?;
    }
    Ok(())
}

fn fill_list(
    tx: &mut impl Transactable,
    obj: &ExId,
    items: &[Json],
    depth: usize,
) -> Result<(), LayoutError> {
    for (i, v) in items.iter().enumerate() {
        insert_json(tx, obj, i, v, depth)?;
    }
    Ok(())
}

/// Reads the object `obj` (a map or list) back as JSON.
pub(crate) fn read_json(doc: &impl ReadDoc, obj: &ExId, depth: usize) -> Result<Json, LayoutError> {
    if depth > JSON_DEPTH_MAX {
        return Err(LayoutError::TooDeep);
    }
    match doc.object_type(obj)? {
        ObjType::Map | ObjType::Table => {
            let mut out = Map::new();
            for key in doc.keys(obj) {
                if let Some((value, id)) = doc.get(obj, key.as_str())? {
                    out.insert(key, value_json(doc, value, &id, depth)?);
                }
            }
            Ok(Json::Object(out))
        }
        ObjType::List => {
            let mut out = Vec::new();
            for i in 0..doc.length(obj) {
                if let Some((value, id)) = doc.get(obj, i)? {
                    out.push(value_json(doc, value, &id, depth)?);
                }
            }
            Ok(Json::Array(out))
        }
        ObjType::Text => Ok(Json::String(doc.text(obj)?)),
    }
}

fn value_json(
    doc: &impl ReadDoc,
    value: Value<'_>,
    id: &ExId,
    depth: usize,
) -> Result<Json, LayoutError> {
    Ok(match value {
        Value::Object(_) => read_json(doc, id, depth + 1)?,
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => Json::String(s.to_string()),
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Json::from(*i),
            ScalarValue::Uint(u) => Json::from(*u),
            ScalarValue::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            ScalarValue::Counter(c) => Json::from(i64::from(c)),
            ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
        },
    })
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    value: Json,
) -> Result<T, LayoutError> {
    serde_json::from_value(value).map_err(|e| LayoutError::Decode {
        what,
        message: e.to_string(),
    })
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).expect("domain types serialise to JSON")
}

/// The actor hex of the change that created object `id` (`<counter>@<actor>`).
pub(crate) fn object_actor(id: &ExId) -> String {
    let text = id.to_string();
    text.split_once('@')
        .map(|(_, a)| a.to_owned())
        .unwrap_or_default()
}
