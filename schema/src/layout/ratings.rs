//! The ratings document of one unit and one local day.
//!
//! ```text
//! { schema: 1, kind: "ratings", "r/<rating id>": "<Rating JSON>", ... }
//! ```
//! One root key per rating, so ratings taken concurrently (or re-sent) merge without conflict.

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};

use super::{LayoutError, check_kind, put_kind, put_record, read_record};
use crate::rating::Rating;

const KIND: &str = "ratings";
const PREFIX: &str = "r/";

/// Adds a rating (and the kind keys, which are idempotent).
pub fn put(tx: &mut impl Transactable, rating: &Rating) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_record(tx, &ROOT, &format!("{PREFIX}{}", rating.id), rating)
}

/// Reads every rating, in id order.
pub fn read(doc: &impl ReadDoc) -> Result<Vec<Rating>, LayoutError> {
    check_kind(doc, KIND)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        if let Some((value, _)) = doc.get(ROOT, key.as_str())? {
            out.push(read_record("rating", &value)?);
        }
    }
    Ok(out)
}
