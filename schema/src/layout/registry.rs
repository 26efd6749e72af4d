//! The trust registry document, written by the province.
//!
//! ```text
//! { schema: 1, kind: "registry", "r/<record id>": { body: "<signed JSON text>", signature: "<hex>" } }
//! ```
//! The record body is kept as the exact text the root signed, so that it can be verified again.

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, Value};

use super::{LayoutError, check_kind, decode, encode, put_json, put_kind, read_json};
use crate::trust::SignedRecord;

const KIND: &str = "registry";
const PREFIX: &str = "r/";

/// Adds a record.
pub fn put(tx: &mut impl Transactable, record: &SignedRecord) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_json(
        tx,
        &ROOT,
        &format!("{PREFIX}{}", record.id()),
        &encode(record),
    )
}

/// Reads every record (unverified: the caller verifies each against the root key).
pub fn read(doc: &impl ReadDoc) -> Result<Vec<SignedRecord>, LayoutError> {
    check_kind(doc, KIND)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        if let Some((Value::Object(ObjType::Map), id)) = doc.get(ROOT, key.as_str())? {
            out.push(decode("registry record", read_json(doc, &id, 1)?)?);
        }
    }
    Ok(out)
}
