//! Documents that hold versions of province-wide configuration: the procedure catalog and the
//! working-day calendar.
//!
//! ```text
//! { schema: 1, kind: "catalog" | "calendar", "v/<version, 10 digits>": "<JSON text of that version>" }
//! ```
//! Each version is one string value, written once: configuration is read whole, so there is
//! nothing to gain from splitting it into fields, and a string keeps a 1,500-procedure catalog
//! to one operation.

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};

use super::{LayoutError, check_kind, get_scalar, put_kind};

const PREFIX: &str = "v/";

/// Writes version `version` of a `kind` document.
pub fn put(
    tx: &mut impl Transactable,
    kind: &'static str,
    version: u32,
    json_text: &str,
) -> Result<(), LayoutError> {
    put_kind(tx, kind)?;
    tx.put(ROOT, format!("{PREFIX}{version:010}"), json_text)?;
    Ok(())
}

/// Every version's JSON text, oldest first.
pub fn read_all(doc: &impl ReadDoc, kind: &'static str) -> Result<Vec<(u32, String)>, LayoutError> {
    check_kind(doc, kind)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        let version: u32 = key[PREFIX.len()..]
            .parse()
            .map_err(|_| LayoutError::Field(key.clone()))?;
        let text = get_scalar(doc, &ROOT, &key)
            .and_then(|s| s.as_str().map(str::to_owned))
            .ok_or_else(|| LayoutError::Field(key.clone()))?;
        out.push((version, text));
    }
    Ok(out)
}
