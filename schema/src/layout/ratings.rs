//! The ratings document of one unit and one local day.
//!
//! ```text
//! { schema: 1, kind: "ratings", "r/<rating id>": {Rating fields}, ... }
//! ```
//! One root key per rating, so ratings taken concurrently (or re-sent) merge without conflict.

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, Value};

use super::{LayoutError, check_kind, decode, encode, put_json, put_kind, read_json};
use crate::rating::Rating;

const KIND: &str = "ratings";
const PREFIX: &str = "r/";

/// Adds a rating (and the kind keys, which are idempotent).
pub fn put(tx: &mut impl Transactable, rating: &Rating) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_json(
        tx,
        &ROOT,
        &format!("{PREFIX}{}", rating.id),
        &encode(rating),
    )
}

/// Reads every rating, in id order.
pub fn read(doc: &impl ReadDoc) -> Result<Vec<Rating>, LayoutError> {
    check_kind(doc, KIND)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        if let Some((Value::Object(ObjType::Map), id)) = doc.get(ROOT, key.as_str())? {
            out.push(decode("rating", read_json(doc, &id, 1)?)?);
        }
    }
    Ok(out)
}
