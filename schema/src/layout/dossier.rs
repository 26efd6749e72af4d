//! The dossier document.
//!
//! ```text
//! { schema: 1, kind: "dossier", header: "<Header JSON>", events: [ "<Event JSON>", ... ] }
//! ```
//! The receiving unit creates `header` and `events` in the dossier's first change; every later
//! change only appends to `events`. Concurrent appends from partitioned offices are all kept, in
//! Automerge's deterministic list order, and the fold decides what each means.

use automerge::transaction::Transactable;
use automerge::{ObjId as ExId, ObjType, ROOT, ReadDoc, Value};

use super::{
    LayoutError, check_kind, check_kind_values, object_actor, push_record, put_kind, put_record,
    read_record,
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
    put_record(tx, &ROOT, "header", header)?;
    let events = tx.put_object(ROOT, "events", ObjType::List)?;
    push_record(tx, &events, first)
}

/// Appends an event.
pub fn append(tx: &mut impl Transactable, event: &Event) -> Result<(), LayoutError> {
    let events = events_obj(tx)?;
    push_record(tx, &events, event)
}

/// Every `events` list of the document, in a deterministic order: one, unless two creators
/// made the document concurrently (see [`read_colliding_headers`]).
fn all_events_objs(doc: &impl ReadDoc) -> Result<Vec<ExId>, LayoutError> {
    let mut lists: Vec<ExId> = doc
        .get_all(ROOT, "events")?
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::List)).then_some(id))
        .collect();
    if lists.is_empty() {
        return Err(LayoutError::Field("events".into()));
    }
    lists.sort_by_key(|id| id.to_string());
    Ok(lists)
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
    match doc.get(ROOT, "header")? {
        Some((value, _)) => read_record("header", &value),
        None => Err(LayoutError::Field("header".into())),
    }
}

/// Reads every event in document order with its id and author actor. An element that does not
/// decode is an error: every change was verified and authorised before it was applied, so an
/// undecodable event means a bug or a newer layout, which must be seen rather than skipped.
pub fn read_events(doc: &impl ReadDoc) -> Result<Vec<RecordedEvent>, LayoutError> {
    events_of(doc, all_events_objs(doc)?)
}

fn events_of(doc: &impl ReadDoc, lists: Vec<ExId>) -> Result<Vec<RecordedEvent>, LayoutError> {
    let mut out = Vec::new();
    for events in lists {
        // One pass over the list (indexing each element was a lookup per element).
        for item in doc.list_range(&events, ..) {
            // The id is written out once: formatting it (its actor in hex) costs more than
            // taking the actor from the text.
            let id = item.id().to_string();
            let value: Value<'static> = item.value.into();
            let event: Event = read_record("event", &value)?;
            out.push(RecordedEvent {
                actor: object_actor(&id),
                id,
                event,
            });
        }
    }
    Ok(out)
}

/// Reads and folds the whole dossier.
///
/// The root's four keys are read in one pass over the root map: each `get` is a seek through
/// the document's operations, and reading them one by one (kind, version, header, events,
/// colliding headers) made this read a tenth of the simulator's time. Keys with concurrent
/// values (a code collision) take the slower path that reads all of them.
pub fn read(doc: &impl ReadDoc) -> Result<DossierState, LayoutError> {
    let mut version = None;
    let mut kind = None;
    let mut header = None;
    let mut events = None;
    let mut conflict = false;
    for item in doc.map_range(ROOT, ..) {
        conflict |= item.conflict && matches!(item.key.as_ref(), "header" | "events");
        match item.key.as_ref() {
            "schema" => version = scalar(item.value.into()),
            "kind" => kind = scalar(item.value.into()),
            "header" => header = Some(Value::from(item.value)),
            "events" if item.value == automerge::ValueRef::Object(ObjType::List) => {
                events = Some(item.id());
            }
            _ => {}
        }
    }
    check_kind_values(version.as_ref(), kind.as_ref(), KIND)?;
    if conflict {
        let mut state = DossierState::fold(read_header(doc)?, read_events(doc)?);
        state.colliding_headers = read_colliding_headers(doc)?;
        state.open_conflicts += state.colliding_headers.len();
        return Ok(state);
    }
    let header = header.ok_or_else(|| LayoutError::Field("header".into()))?;
    let events = events.ok_or_else(|| LayoutError::Field("events".into()))?;
    Ok(DossierState::fold(
        read_record("header", &header)?,
        events_of(doc, vec![events])?,
    ))
}

fn scalar(value: Value<'_>) -> Option<automerge::ScalarValue> {
    match value {
        Value::Scalar(s) => Some(s.into_owned()),
        Value::Object(_) => None,
    }
}

/// Headers written concurrently under the same code by different creators, other than the one
/// Automerge's deterministic winner chose. Normally empty. A node restored from an old backup
/// and working offline can number a new dossier with a code another node already used for a
/// different dossier; both creations then live in one document. Nothing is hidden: both
/// headers are read and both event lists are folded, and the state names the collision so that
/// a person settles it.
pub fn read_colliding_headers(doc: &impl ReadDoc) -> Result<Vec<Header>, LayoutError> {
    let all = doc.get_all(ROOT, "header")?;
    if all.len() < 2 {
        return Ok(Vec::new());
    }
    let winner = read_header(doc)?;
    let mut others = Vec::new();
    for (value, _) in all {
        let h: Header = read_record("header", &value)?;
        if h != winner && !others.contains(&h) {
            others.push(h);
        }
    }
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProcessingTime;
    use crate::dossier::{Applicant, Channel, EventBody, ReturnMethod};
    use crate::ids::{DossierCode, UnitCode};
    use crate::timestamp::Timestamp;
    use automerge::transaction::CommitOptions;
    use automerge::{ActorId, Automerge, ReadDoc};
    use proptest::prelude::*;

    fn header() -> Header {
        let unit = UnitCode::new("X1").unwrap();
        Header {
            code: DossierCode::parse("X1-250101-0001").unwrap(),
            unit,
            procedure_code: "1.004873".into(),
            procedure_name: "Cấp Giấy xác nhận tình trạng hôn nhân".into(),
            agency: "Tư pháp".into(),
            processing: ProcessingTime::WorkingDays(3),
            channel: Channel::Direct,
            applicant: Applicant {
                name: "Trần Thị B".into(),
                id_number: "001099012345".into(),
                phone: String::new(),
                address: String::new(),
            },
            digitised: false,
        }
    }

    fn body(kind: u8, t: i64) -> EventBody {
        match kind % 9 {
            0 => EventBody::Transferred {
                to_unit: UnitCode::new("P1").unwrap(),
                to_agency: None,
                note: String::new(),
            },
            1 => EventBody::SupplementRequested {
                reason: "thiếu".into(),
            },
            2 => EventBody::Supplemented {
                due_at: Timestamp(t + 500),
            },
            3 => EventBody::PaymentRequested {
                amount_vnd: 10_000,
                note: String::new(),
            },
            4 => EventBody::Paid { amount_vnd: 10_000 },
            5 => EventBody::Resolved {
                note: String::new(),
            },
            6 => EventBody::Returned {
                method: ReturnMethod::Counter,
            },
            7 => EventBody::Withdrawn {
                reason: String::new(),
            },
            _ => EventBody::Stopped {
                reason: "dừng".into(),
            },
        }
    }

    fn append_events(doc: &mut Automerge, actor: u8, kinds: &[u8]) {
        doc.set_actor(ActorId::from(vec![actor; 40]));
        for (i, k) in kinds.iter().enumerate() {
            let t = i64::from(actor) * 1_000 + i as i64;
            let event = Event {
                at: Timestamp(t),
                by: format!("cb{actor}"),
                unit: UnitCode::new("X1").unwrap(),
                body: body(*k, t),
            };
            let mut tx = doc.transaction();
            append(&mut tx, &event).unwrap();
            tx.commit_with(CommitOptions::default().with_time(t));
        }
    }

    #[test]
    fn two_dossiers_created_under_one_code_are_both_kept_and_flagged() {
        // Why: a node restored from an old backup may number a new dossier with a code already
        // used elsewhere; merging must hide neither dossier and must say so.
        let make = |actor: u8, name: &str| {
            let mut doc = Automerge::new().with_actor(ActorId::from(vec![actor; 40]));
            let mut h = header();
            h.applicant.name = name.into();
            let first = Event {
                at: Timestamp(i64::from(actor)),
                by: "cb".into(),
                unit: UnitCode::new("X1").unwrap(),
                body: EventBody::Received {
                    due_at: Timestamp(10_000),
                },
            };
            let mut tx = doc.transaction();
            create(&mut tx, &h, &first).unwrap();
            tx.commit_with(CommitOptions::default().with_time(0));
            doc
        };
        let mut a = make(1, "Người thứ nhất");
        let mut b = make(2, "Người thứ hai");
        a.merge(&mut b).unwrap();
        let state = read(&a).unwrap();
        assert_eq!(state.events.len(), 2, "both creations' events are folded");
        assert_eq!(state.colliding_headers.len(), 1);
        let names = [
            state.header.applicant.name.as_str(),
            state.colliding_headers[0].applicant.name.as_str(),
        ];
        assert!(names.contains(&"Người thứ nhất") && names.contains(&"Người thứ hai"));
        assert!(state.open_conflicts >= 1);
    }

    #[test]
    fn a_document_of_another_kind_or_a_newer_layout_is_refused_by_the_one_pass_read() {
        // Why: `read` checks the root's `kind` and `schema` from its single scan; it must refuse
        // what `check_kind` refuses, not fold whatever it finds.
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        put_kind(&mut tx, "ratings").unwrap();
        tx.commit();
        assert!(matches!(read(&doc), Err(LayoutError::Kind { .. })));
        let mut tx = doc.transaction();
        tx.put(ROOT, "kind", KIND).unwrap();
        tx.put(ROOT, "schema", super::super::SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit();
        assert!(matches!(read(&doc), Err(LayoutError::Version(_))));
    }

    proptest! {
        #[test]
        fn fold_is_the_same_whatever_order_concurrent_events_merge_in(
            a in proptest::collection::vec(0u8..9, 0..6),
            b in proptest::collection::vec(0u8..9, 0..6),
            c in proptest::collection::vec(0u8..9, 0..6),
            order in 0usize..6,
        ) {
            // Why: two offices that act on one dossier while partitioned must end with the same
            // state and the same conflicts on every node, whatever order the changes arrive in.
            let mut origin = Automerge::new().with_actor(ActorId::from(vec![1u8; 40]));
            let mut tx = origin.transaction();
            let first = Event { at: Timestamp(0), by: "cb".into(), unit: UnitCode::new("X1").unwrap(), body: EventBody::Received { due_at: Timestamp(10_000) } };
            create(&mut tx, &header(), &first).unwrap();
            tx.commit_with(CommitOptions::default().with_time(0));
            let mut replicas: Vec<Automerge> = (0..3).map(|_| origin.fork()).collect();
            for (i, kinds) in [a, b, c].iter().enumerate() {
                append_events(&mut replicas[i], 10 + i as u8, kinds);
            }
            // Every node receives every change, in a different order.
            let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
            let all_changes: Vec<Vec<automerge::Change>> = replicas.iter().map(|r| r.get_changes(&[])).collect();
            let mut states = Vec::new();
            for p in [perms[order], perms[(order + 3) % 6]] {
                let mut node = Automerge::new();
                for i in p {
                    node.apply_changes(all_changes[i].iter().cloned()).unwrap();
                }
                states.push(read(&node).unwrap());
            }
            let mut merged = replicas[2].clone();
            merged.merge(&mut replicas[0].clone()).unwrap();
            merged.merge(&mut replicas[1].clone()).unwrap();
            states.push(read(&merged).unwrap());
            prop_assert_eq!(&states[0], &states[1]);
            prop_assert_eq!(&states[0], &states[2]);
            // The one-pass read of the root is the key-by-key read.
            let by_key = DossierState::fold(read_header(&merged).unwrap(), read_events(&merged).unwrap());
            prop_assert_eq!(&states[2], &by_key);
            // Nothing is dropped: every event written anywhere is in the fold.
            let written = 1 + replicas.iter().map(|r| read_events(r).unwrap().len() - 1).sum::<usize>();
            prop_assert_eq!(states[0].events.len(), written);
            prop_assert_eq!(states[0].events.len(), merged.length(events_obj(&merged).unwrap()));
        }
    }
}
