//! The audit-log document: the checkpoints one unit's node published on one local day, so that
//! they replicate to peers (who keep them as witnesses) like any other record.
//!
//! ```text
//! { schema: 1, kind: "log", "c/<tree size, 20 digits>": "<CheckpointRecord JSON>" }
//! ```
//! A record is the signed note and its consistency proof (`crate::audit::archive`); the note
//! is verifiable on its own, whoever carried it.

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};

use super::{LayoutError, check_kind, put_kind, put_record, read_record};
use crate::audit::archive::CheckpointRecord;

const KIND: &str = "log";
const PREFIX: &str = "c/";

/// Adds the checkpoint of tree size `size`.
pub fn put(
    tx: &mut impl Transactable,
    size: u64,
    record: &CheckpointRecord,
) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_record(tx, &ROOT, &format!("{PREFIX}{size:020}"), record)
}

/// Every checkpoint record, in tree-size order (unverified: the caller opens each note).
pub fn read(doc: &impl ReadDoc) -> Result<Vec<CheckpointRecord>, LayoutError> {
    check_kind(doc, KIND)?;
    let mut out = Vec::new();
    for key in doc.keys(ROOT).filter(|k| k.starts_with(PREFIX)) {
        if let Some((value, _)) = doc.get(ROOT, key.as_str())? {
            out.push(read_record("checkpoint record", &value)?);
        }
    }
    Ok(out)
}
