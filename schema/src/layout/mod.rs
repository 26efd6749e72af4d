//! How each kind of record is laid out in its Automerge document, written and read through one
//! module per kind. Nothing outside this module touches Automerge paths.
//!
//! Every document has two scalar root keys, `schema` (the layout version, [`SCHEMA_VERSION`])
//! and `kind`. Records that several nodes may add concurrently live under distinct root keys
//! (`r/<id>`) rather than inside a shared container object, because two nodes that each create
//! "the" container concurrently would produce two objects of which only one stays visible.
//!
//! Each record (a dossier header, an event, a rating, a registry record) is one string scalar
//! holding its compact JSON text. Records are written once and never edited in place, so
//! splitting them into Automerge map fields would buy no merge behaviour, and it costs: a
//! header as a native map is about twenty operations, which made intake several times slower
//! (measured with the intake benchmark). An auditor reading a document with any Automerge
//! implementation still sees plain text, and the JSON is decoded into typed, validated domain
//! values here.

pub mod dossier;
pub mod log;
pub mod ratings;
pub mod registry;
pub mod versioned;

use automerge::transaction::Transactable;
use automerge::{ObjId as ExId, ReadDoc, ScalarValue, Value};

/// The layout version written into every document.
pub const SCHEMA_VERSION: i64 = 1;
/// Largest record text read back from a document, in bytes.
pub const RECORD_SIZE_BYTES_MAX: usize = 64 * 1024;

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
}

/// Writes the `schema` and `kind` root keys, unless the document already has them (documents
/// that gain records over time, like a day's ratings, then carry them once, not per record).
pub(crate) fn put_kind(tx: &mut impl Transactable, kind: &str) -> Result<(), LayoutError> {
    if get_scalar(tx, &automerge::ROOT, "kind").is_some_and(|k| k.as_str() == Some(kind)) {
        return Ok(());
    }
    tx.put(automerge::ROOT, "schema", SCHEMA_VERSION)?;
    tx.put(automerge::ROOT, "kind", kind)?;
    Ok(())
}

/// Checks the `schema` and `kind` root keys.
pub(crate) fn check_kind(doc: &impl ReadDoc, expected: &'static str) -> Result<(), LayoutError> {
    let version = get_scalar(doc, &automerge::ROOT, "schema");
    let kind = get_scalar(doc, &automerge::ROOT, "kind");
    check_kind_values(version.as_ref(), kind.as_ref(), expected)
}

/// Checks the values of the `schema` and `kind` root keys, however they were read.
pub(crate) fn check_kind_values(
    version: Option<&ScalarValue>,
    kind: Option<&ScalarValue>,
    expected: &'static str,
) -> Result<(), LayoutError> {
    let version = version
        .and_then(|s| s.as_i64())
        .ok_or_else(|| LayoutError::Field("schema".into()))?;
    if version > SCHEMA_VERSION {
        return Err(LayoutError::Version(version));
    }
    match kind.and_then(|s| s.as_str()) {
        Some(k) if k == expected => Ok(()),
        Some(found) => Err(LayoutError::Kind {
            expected,
            found: found.to_owned(),
        }),
        None => Err(LayoutError::Field("kind".into())),
    }
}

pub(crate) fn get_scalar(doc: &impl ReadDoc, obj: &ExId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

/// Puts `value`'s JSON text at `obj[key]`.
pub(crate) fn put_record<T: serde::Serialize>(
    tx: &mut impl Transactable,
    obj: &ExId,
    key: &str,
    value: &T,
) -> Result<(), LayoutError> {
    tx.put(obj, key, record_text(value))?;
    Ok(())
}

/// Appends `value`'s JSON text to the end of list `list`.
pub(crate) fn push_record<T: serde::Serialize>(
    tx: &mut impl Transactable,
    list: &ExId,
    value: &T,
) -> Result<(), LayoutError> {
    let index = tx.length(list);
    tx.insert(list, index, record_text(value))?;
    Ok(())
}

fn record_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types serialise to JSON")
}

/// Decodes a record read back as a scalar value; `what` names it in errors.
pub(crate) fn read_record<T: serde::de::DeserializeOwned>(
    what: &'static str,
    value: &Value<'_>,
) -> Result<T, LayoutError> {
    let text = match value {
        Value::Scalar(s) => s
            .as_str()
            .ok_or_else(|| LayoutError::Field(what.to_owned()))?,
        Value::Object(_) => return Err(LayoutError::Field(what.to_owned())),
    };
    if text.len() > RECORD_SIZE_BYTES_MAX {
        return Err(LayoutError::Field(what.to_owned()));
    }
    serde_json::from_str(text).map_err(|e| LayoutError::Decode {
        what,
        message: e.to_string(),
    })
}

/// The actor hex of the change that created an object, from the object id's text
/// (`<counter>@<actor>`, as `ExId`'s `Display` writes it).
pub(crate) fn object_actor(id_text: &str) -> String {
    id_text
        .split_once('@')
        .map(|(_, a)| a.to_owned())
        .unwrap_or_default()
}
