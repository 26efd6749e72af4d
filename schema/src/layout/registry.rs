//! The trust registry document, written by the province.
//!
//! ```text
//! { schema: 1, kind: "registry", "r/<record id>": "{\"body\": \"<signed JSON text>\", \"signature\": \"<hex>\"}" }
//! ```
//! The record body is kept as the exact text the root signed, so that it can be verified again.

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};

use super::{LayoutError, check_kind, put_kind, put_record, read_record};
use crate::trust::SignedRecord;

const KIND: &str = "registry";
const PREFIX: &str = "r/";

/// Adds a record.
pub fn put(tx: &mut impl Transactable, record: &SignedRecord) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_record(tx, &ROOT, &format!("{PREFIX}{}", record.id()), record)
}

/// Reads every record (unverified: the caller verifies each against the root key).
pub fn read(doc: &impl ReadDoc) -> Result<Vec<SignedRecord>, LayoutError> {
    check_kind(doc, KIND)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        if let Some((value, _)) = doc.get(ROOT, key.as_str())? {
            out.push(read_record("registry record", &value)?);
        }
    }
    Ok(out)
}
