//! The dossier document.
//!
//! ```text
//! { schema: 1, kind: "dossier", header: {Header fields}, events: [ {Event fields}, ... ] }
//! ```
//! The receiving unit creates `header` and `events` in the dossier's first change; every later
//! change only appends to `events`. Concurrent appends from partitioned offices are all kept, in
//! Automerge's deterministic list order, and the fold decides what each means.

use automerge::transaction::Transactable;
use automerge::{ObjId as ExId, ObjType, ROOT, ReadDoc, Value};

use super::{
    LayoutError, check_kind, decode, encode, object_actor, push_json, put_json, put_kind, read_json,
};
use crate::dossier::{DossierState, Event, Header, RecordedEvent};

const KIND: &str = "dossier";

/// Writes a new dossier with its first event, in the transaction that creates the document.
pub fn create(
    tx: &mut impl Transactable,
    header: &Header,
    first: &Event,
) -> Result<(), LayoutError> {
    put_kind(tx, KIND)?;
    put_json(tx, &ROOT, "header", &encode(header))?;
    let events = tx.put_object(ROOT, "events", ObjType::List)?;
    push_json(tx, &events, &encode(first))
}

/// Appends an event.
pub fn append(tx: &mut impl Transactable, event: &Event) -> Result<(), LayoutError> {
    let events = events_obj(tx)?;
    push_json(tx, &events, &encode(event))
}

fn events_obj(doc: &impl ReadDoc) -> Result<ExId, LayoutError> {
    match doc.get(ROOT, "events")? {
        Some((Value::Object(ObjType::List), id)) => Ok(id),
        _ => Err(LayoutError::Field("events".into())),
    }
}

/// Reads the header.
pub fn read_header(doc: &impl ReadDoc) -> Result<Header, LayoutError> {
    check_kind(doc, KIND)?;
    let header = match doc.get(ROOT, "header")? {
        Some((Value::Object(ObjType::Map), id)) => read_json(doc, &id, 0)?,
        _ => return Err(LayoutError::Field("header".into())),
    };
    decode("header", header)
}

/// Reads every event in document order with its id and author actor. An element that does not
/// decode is an error: every change was verified and authorised before it was applied, so an
/// undecodable event means a bug or a newer layout, which must be seen rather than skipped.
pub fn read_events(doc: &impl ReadDoc) -> Result<Vec<RecordedEvent>, LayoutError> {
    let events = events_obj(doc)?;
    let mut out = Vec::with_capacity(doc.length(&events));
    for i in 0..doc.length(&events) {
        let Some((value, id)) = doc.get(&events, i)? else {
            continue;
        };
        let json = match value {
            Value::Object(ObjType::Map) => read_json(doc, &id, 1)?,
            _ => return Err(LayoutError::Field(format!("events[{i}]"))),
        };
        let event: Event = decode("event", json)?;
        out.push(RecordedEvent {
            id: id.to_string(),
            actor: object_actor(&id),
            event,
        });
    }
    Ok(out)
}

/// Reads and folds the whole dossier.
pub fn read(doc: &impl ReadDoc) -> Result<DossierState, LayoutError> {
    Ok(DossierState::fold(read_header(doc)?, read_events(doc)?))
}
