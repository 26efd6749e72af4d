//! The dossier (hồ sơ): its header, its append-only list of events, and the fold that turns the
//! events into the current state.
//!
//! Why a fold: two offices may act on the same dossier while partitioned. Automerge merges both
//! event lists into one deterministic order, and every node folds that list the same way. An event
//! that is not a valid transition from the folded state is kept and marked as a conflict for a
//! person to resolve; nothing is dropped or silently overwritten.
//!
//! The statuses are those of the national systems (DOMAIN.md): 1 registered online, 2 received,
//! 3 refused at intake, 4 in processing, 5 supplement requested, 6 payment requested,
//! 7 withdrawn, 8 stopped, 9 resolved, 10 result returned.

use serde::{Deserialize, Serialize};

use crate::calendar::{Outcome, outcome};
use crate::catalog::ProcessingTime;
use crate::ids::{DossierCode, UnitCode};
use crate::limits::{DOSSIER_EVENTS_COUNT_MAX, SHORT_ID_SIZE_CHARS_MAX, TEXT_FIELD_SIZE_CHARS_MAX};
use crate::timestamp::Timestamp;

/// How the dossier reached the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// In person at the counter (trực tiếp).
    Direct,
    /// Through the online public service portal (trực tuyến).
    Online,
    /// Through the public postal service (bưu chính công ích).
    Postal,
}

impl Channel {
    /// All channels, in report order.
    pub const ALL: [Channel; 3] = [Channel::Online, Channel::Postal, Channel::Direct];

    /// The Vietnamese name shown in the UI and reports.
    pub fn label_vi(self) -> &'static str {
        match self {
            Channel::Direct => "Trực tiếp",
            Channel::Online => "Trực tuyến",
            Channel::Postal => "Bưu chính công ích",
        }
    }
}

/// How the result was handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnMethod {
    /// At the counter.
    Counter,
    /// By the public postal service.
    Postal,
    /// Online.
    Online,
}

impl ReturnMethod {
    /// The Vietnamese name.
    pub fn label_vi(self) -> &'static str {
        match self {
            ReturnMethod::Counter => "Tại bộ phận một cửa",
            ReturnMethod::Postal => "Qua bưu chính công ích",
            ReturnMethod::Online => "Trực tuyến",
        }
    }
}

/// The applicant. Every field is personal data (Decree 13/2023): never shown by the public lookup,
/// never written to logs or URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    /// Full name.
    pub name: String,
    /// Citizen identity number (CCCD, 12 digits).
    pub id_number: String,
    /// Phone number.
    pub phone: String,
    /// Address.
    pub address: String,
}

/// What the dossier is for and who it belongs to: written once, by the receiving unit, in the
/// change that creates the dossier document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The dossier code.
    pub code: DossierCode,
    /// The receiving unit (the prefix of the code).
    pub unit: UnitCode,
    /// National procedure code, opaque.
    pub procedure_code: String,
    /// Procedure name at the time of receipt.
    pub procedure_name: String,
    /// Responsible agency at the time of receipt.
    pub agency: String,
    /// Statutory processing time at the time of receipt.
    pub processing: ProcessingTime,
    /// Channel of submission.
    pub channel: Channel,
    /// The applicant.
    pub applicant: Applicant,
    /// Whether the papers were scanned and attached (counts towards the digitised share).
    pub digitised: bool,
}

/// One thing that happened to a dossier, as written in its document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, by the clock of the node that recorded it.
    pub at: Timestamp,
    /// The staff account that did it.
    pub by: String,
    /// The unit of the node that recorded it.
    pub unit: UnitCode,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened, with the data of each kind of event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// Registered online, not yet accepted (status 1).
    Registered,
    /// Received at the counter, or an online registration accepted (status 2). `due_at` is the
    /// statutory due instant computed by the receiving node from the calendar.
    Received {
        /// Statutory due instant.
        due_at: Timestamp,
    },
    /// Handed to another unit or agency (liên thông); moves the dossier into processing.
    Transferred {
        /// The unit that receives it.
        to_unit: UnitCode,
        /// The agency inside that unit, if named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_agency: Option<String>,
        /// Free note for the process control slip.
        #[serde(default)]
        note: String,
    },
    /// The citizen must supplement the dossier; the clock stops.
    SupplementRequested {
        /// What is missing.
        reason: String,
    },
    /// The citizen supplemented; the clock restarts with the due instant moved by the pause.
    Supplemented {
        /// The new statutory due instant.
        due_at: Timestamp,
    },
    /// Fees or tax must be paid.
    PaymentRequested {
        /// Amount in đồng.
        amount_vnd: u64,
        /// What for.
        #[serde(default)]
        note: String,
    },
    /// Fees or tax paid.
    Paid {
        /// Amount in đồng.
        amount_vnd: u64,
    },
    /// Refused at intake (end state).
    Refused {
        /// Why.
        reason: String,
    },
    /// Withdrawn by the citizen (end state).
    Withdrawn {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Processing stopped (end state).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Resolved: the result is ready.
    Resolved {
        /// A note on the result.
        #[serde(default)]
        note: String,
    },
    /// An apology for lateness with a new appointment date (Phiếu xin lỗi và hẹn lại).
    Apologized {
        /// Why it is late.
        reason: String,
        /// The new appointment.
        new_appointment_at: Timestamp,
    },
    /// The result was handed back (end state).
    Returned {
        /// How.
        method: ReturnMethod,
    },
    /// A person looked at a conflicting event and settled it.
    ConflictResolved {
        /// The id of the conflicting event (see [`FoldedEvent::id`]).
        event_id: String,
        /// What was decided.
        note: String,
    },
}

impl EventBody {
    /// The snake_case kind name used on the wire and in the document.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Registered => "registered",
            EventBody::Received { .. } => "received",
            EventBody::Transferred { .. } => "transferred",
            EventBody::SupplementRequested { .. } => "supplement_requested",
            EventBody::Supplemented { .. } => "supplemented",
            EventBody::PaymentRequested { .. } => "payment_requested",
            EventBody::Paid { .. } => "paid",
            EventBody::Refused { .. } => "refused",
            EventBody::Withdrawn { .. } => "withdrawn",
            EventBody::Stopped { .. } => "stopped",
            EventBody::Resolved { .. } => "resolved",
            EventBody::Apologized { .. } => "apologized",
            EventBody::Returned { .. } => "returned",
            EventBody::ConflictResolved { .. } => "conflict_resolved",
        }
    }

    /// The Vietnamese name of the event shown on the timeline.
    pub fn label_vi(&self) -> &'static str {
        match self {
            EventBody::Registered => "Đăng ký trực tuyến",
            EventBody::Received { .. } => "Tiếp nhận",
            EventBody::Transferred { .. } => "Chuyển xử lý",
            EventBody::SupplementRequested { .. } => "Yêu cầu bổ sung",
            EventBody::Supplemented { .. } => "Đã bổ sung",
            EventBody::PaymentRequested { .. } => "Yêu cầu nộp phí, lệ phí",
            EventBody::Paid { .. } => "Đã nộp phí, lệ phí",
            EventBody::Refused { .. } => "Từ chối tiếp nhận",
            EventBody::Withdrawn { .. } => "Công dân rút hồ sơ",
            EventBody::Stopped { .. } => "Dừng xử lý",
            EventBody::Resolved { .. } => "Đã xử lý xong",
            EventBody::Apologized { .. } => "Xin lỗi và hẹn lại",
            EventBody::Returned { .. } => "Đã trả kết quả",
            EventBody::ConflictResolved { .. } => "Giải quyết xung đột",
        }
    }

    /// Checks the sizes of the free-text fields.
    pub fn validate(&self) -> Result<(), DossierError> {
        let text = |field: &'static str, s: &str| {
            if s.chars().count() > TEXT_FIELD_SIZE_CHARS_MAX {
                Err(DossierError::TooLong(field))
            } else {
                Ok(())
            }
        };
        match self {
            EventBody::Transferred {
                to_agency, note, ..
            } => {
                text("to_agency", to_agency.as_deref().unwrap_or(""))?;
                text("note", note)
            }
            EventBody::SupplementRequested { reason }
            | EventBody::Refused { reason }
            | EventBody::Withdrawn { reason }
            | EventBody::Stopped { reason } => text("reason", reason),
            EventBody::PaymentRequested { note, .. } | EventBody::Resolved { note } => {
                text("note", note)
            }
            EventBody::Apologized { reason, .. } => text("reason", reason),
            EventBody::ConflictResolved { event_id, note } => {
                if event_id.chars().count() > SHORT_ID_SIZE_CHARS_MAX * 2 {
                    return Err(DossierError::TooLong("event_id"));
                }
                text("note", note)
            }
            EventBody::Registered
            | EventBody::Received { .. }
            | EventBody::Supplemented { .. }
            | EventBody::Paid { .. }
            | EventBody::Returned { .. } => Ok(()),
        }
    }
}

/// Why a dossier command or document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DossierError {
    /// A text field is over its bound.
    #[error("field {0} is too long")]
    TooLong(&'static str),
    /// A required field is empty.
    #[error("field {0} is required")]
    Missing(&'static str),
    /// The ID number is not 12 digits.
    #[error("id number must be 12 digits")]
    IdNumber,
    /// The event cannot happen in the dossier's current status.
    #[error("cannot record {event} while the dossier is {status}")]
    Transition {
        /// The event kind.
        event: &'static str,
        /// The current status.
        status: &'static str,
    },
    /// The dossier has too many events.
    #[error("dossier has reached {DOSSIER_EVENTS_COUNT_MAX} events")]
    TooManyEvents,
    /// The referenced event does not exist or is not a conflict.
    #[error("no unresolved conflict with id {0}")]
    NoSuchConflict(String),
}

impl Applicant {
    /// Checks the applicant's fields: a name, a 12-digit CCCD number, bounded texts.
    pub fn validate(&self) -> Result<(), DossierError> {
        if self.name.trim().is_empty() {
            return Err(DossierError::Missing("applicant.name"));
        }
        if self.id_number.len() != 12 || !self.id_number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DossierError::IdNumber);
        }
        for (field, value) in [
            ("applicant.name", &self.name),
            ("applicant.phone", &self.phone),
            ("applicant.address", &self.address),
        ] {
            if value.chars().count() > TEXT_FIELD_SIZE_CHARS_MAX {
                return Err(DossierError::TooLong(field));
            }
        }
        Ok(())
    }
}

/// The status of a dossier, numbered as in the national systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 1: registered online, not yet accepted.
    Registered,
    /// 2: received.
    Received,
    /// 3: refused at intake (end state).
    Refused,
    /// 4: in processing.
    InProcessing,
    /// 5: supplement requested (clock stopped).
    SupplementRequested,
    /// 6: payment of fees or tax requested.
    PaymentRequested,
    /// 7: withdrawn by the citizen (end state).
    Withdrawn,
    /// 8: processing stopped (end state).
    Stopped,
    /// 9: resolved, result ready.
    Resolved,
    /// 10: result returned (end state).
    Returned,
}

impl Status {
    /// Every status, in national order.
    pub const ALL: [Status; 10] = [
        Status::Registered,
        Status::Received,
        Status::Refused,
        Status::InProcessing,
        Status::SupplementRequested,
        Status::PaymentRequested,
        Status::Withdrawn,
        Status::Stopped,
        Status::Resolved,
        Status::Returned,
    ];

    /// The national number of the status (1-10).
    pub fn number(self) -> u8 {
        Status::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(0, |i| i as u8 + 1)
    }

    /// The status with national number `n`.
    pub fn from_number(n: u8) -> Option<Status> {
        Status::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Registered => "registered",
            Status::Received => "received",
            Status::Refused => "refused",
            Status::InProcessing => "in_processing",
            Status::SupplementRequested => "supplement_requested",
            Status::PaymentRequested => "payment_requested",
            Status::Withdrawn => "withdrawn",
            Status::Stopped => "stopped",
            Status::Resolved => "resolved",
            Status::Returned => "returned",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The Vietnamese name.
    pub fn label_vi(self) -> &'static str {
        match self {
            Status::Registered => "Đăng ký trực tuyến, chưa tiếp nhận",
            Status::Received => "Đã tiếp nhận",
            Status::Refused => "Từ chối tiếp nhận",
            Status::InProcessing => "Đang xử lý",
            Status::SupplementRequested => "Chờ bổ sung",
            Status::PaymentRequested => "Chờ nộp phí, lệ phí",
            Status::Withdrawn => "Công dân rút hồ sơ",
            Status::Stopped => "Dừng xử lý",
            Status::Resolved => "Đã xử lý xong, chờ trả kết quả",
            Status::Returned => "Đã trả kết quả",
        }
    }

    /// No work remains on the dossier: refused, withdrawn, stopped or returned. A resolved
    /// dossier still waits for its result to be handed back, but its processing is finished.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            Status::Refused | Status::Withdrawn | Status::Stopped | Status::Returned
        )
    }

    /// Processing is over (resolved or closed); the due date no longer matters.
    pub fn is_finished(self) -> bool {
        self.is_closed() || self == Status::Resolved
    }
}

/// The status an event leads to from `from`, or `None` if it is not a valid transition.
pub fn transition(from: Option<Status>, body: &EventBody) -> Option<Status> {
    use Status as S;
    let open = |s: S| !s.is_finished();
    match (from, body) {
        (None, EventBody::Registered) => Some(S::Registered),
        (None | Some(S::Registered), EventBody::Received { .. }) => Some(S::Received),
        (Some(S::Registered | S::Received), EventBody::Refused { .. }) => Some(S::Refused),
        (Some(S::Received | S::InProcessing), EventBody::Transferred { .. }) => {
            Some(S::InProcessing)
        }
        (Some(S::Received | S::InProcessing), EventBody::SupplementRequested { .. }) => {
            Some(S::SupplementRequested)
        }
        (Some(S::SupplementRequested), EventBody::Supplemented { .. }) => Some(S::InProcessing),
        (Some(S::Received | S::InProcessing), EventBody::PaymentRequested { .. }) => {
            Some(S::PaymentRequested)
        }
        (Some(S::PaymentRequested), EventBody::Paid { .. }) => Some(S::InProcessing),
        (Some(s), EventBody::Withdrawn { .. }) if open(s) => Some(S::Withdrawn),
        (Some(s), EventBody::Stopped { .. }) if open(s) && s != S::Registered => Some(S::Stopped),
        (Some(S::Received | S::InProcessing), EventBody::Resolved { .. }) => Some(S::Resolved),
        (Some(s), EventBody::Apologized { .. }) if open(s) && s != S::Registered => Some(s),
        (Some(S::Resolved), EventBody::Returned { .. }) => Some(S::Returned),
        // Settling a conflict never moves the dossier; it is checked against the conflicts.
        (Some(s), EventBody::ConflictResolved { .. }) => Some(s),
        _ => None,
    }
}

/// An event as the fold saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoldedEvent {
    /// A stable id of the event: the Automerge id of its object in the document
    /// (`<counter>@<actor hex>`), the same on every node.
    pub id: String,
    /// The Automerge actor (hex) that wrote the event; bound to the signing key.
    pub actor: String,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// The status before the event.
    pub status_before: Option<Status>,
    /// Set when the event was not a valid transition from `status_before`: it is kept but did
    /// not change the state.
    pub conflict: Option<String>,
    /// Set when a later `ConflictResolved` settled this conflict: that event's id.
    pub resolved_by: Option<String>,
}

/// An event read from a document, with its id and author actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// See [`FoldedEvent::id`].
    pub id: String,
    /// See [`FoldedEvent::actor`].
    pub actor: String,
    /// The event.
    pub event: Event,
}

/// The current state of a dossier: the deterministic fold over its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DossierState {
    /// The header.
    pub header: Header,
    /// Current status; `None` only for a document whose first event is missing or invalid.
    pub status: Option<Status>,
    /// When it was received (accepted); the clock starts here.
    pub received_at: Option<Timestamp>,
    /// The statutory due instant (moved by supplement pauses).
    pub due_at: Option<Timestamp>,
    /// The latest appointment given to the citizen (the due instant, or the one from an apology).
    pub appointment_at: Option<Timestamp>,
    /// When it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// Early / on time / overdue, for a resolved dossier.
    pub outcome: Option<Outcome>,
    /// When it reached an end state (refused, withdrawn, stopped, returned).
    pub closed_at: Option<Timestamp>,
    /// How the result was returned.
    pub return_method: Option<ReturnMethod>,
    /// The unit currently holding the dossier (the receiving unit until transferred).
    pub holder: UnitCode,
    /// Every unit it was transferred to, in order.
    pub transfers: Vec<UnitCode>,
    /// Whether an apology slip was issued.
    pub apologized: bool,
    /// Conflicting events not yet settled.
    pub open_conflicts: usize,
    /// Every event, in document order, with its fold annotations.
    pub events: Vec<FoldedEvent>,
    /// Other dossiers created concurrently under the same code (normally empty; see
    /// `layout::dossier::read_colliding_headers`): a conflict for a person to settle.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub colliding_headers: Vec<Header>,
}

impl DossierState {
    /// Folds `events` (in document order) over `header`. Deterministic: the same inputs give the
    /// same state on every node.
    pub fn fold(header: Header, events: Vec<RecordedEvent>) -> DossierState {
        let mut state = DossierState {
            holder: header.unit.clone(),
            header,
            status: None,
            received_at: None,
            due_at: None,
            appointment_at: None,
            resolved_at: None,
            outcome: None,
            closed_at: None,
            return_method: None,
            transfers: Vec::new(),
            apologized: false,
            open_conflicts: 0,
            events: Vec::with_capacity(events.len()),
            colliding_headers: Vec::new(),
        };
        for recorded in events {
            state.step(recorded);
        }
        state
    }

    fn step(&mut self, recorded: RecordedEvent) {
        let before = self.status;
        let mut conflict = transition(before, &recorded.event.body).is_none().then(|| {
            format!(
                "{} is not valid while {}",
                recorded.event.body.kind(),
                before.map_or("not yet received", Status::name)
            )
        });
        if conflict.is_none()
            && let EventBody::ConflictResolved { event_id, .. } = &recorded.event.body
        {
            match self
                .events
                .iter_mut()
                .find(|e| &e.id == event_id && e.conflict.is_some() && e.resolved_by.is_none())
            {
                Some(target) => {
                    target.resolved_by = Some(recorded.id.clone());
                    self.open_conflicts -= 1;
                }
                None => conflict = Some(format!("no unresolved conflict with id {event_id}")),
            }
        }
        if conflict.is_none() {
            self.apply(&recorded.event);
        } else {
            self.open_conflicts += 1;
        }
        self.events.push(FoldedEvent {
            id: recorded.id,
            actor: recorded.actor,
            event: recorded.event,
            status_before: before,
            conflict,
            resolved_by: None,
        });
    }

    fn apply(&mut self, event: &Event) {
        let next = transition(self.status, &event.body);
        match &event.body {
            EventBody::Received { due_at } => {
                self.received_at = Some(event.at);
                self.due_at = Some(*due_at);
                self.appointment_at = Some(*due_at);
            }
            EventBody::Supplemented { due_at } => {
                // The appointment moves with the statutory due date unless an apology set a later one.
                if self.appointment_at == self.due_at {
                    self.appointment_at = Some(*due_at);
                }
                self.due_at = Some(*due_at);
            }
            EventBody::Transferred { to_unit, .. } => {
                self.holder = to_unit.clone();
                self.transfers.push(to_unit.clone());
            }
            EventBody::Apologized {
                new_appointment_at, ..
            } => {
                self.apologized = true;
                self.appointment_at = Some(*new_appointment_at);
            }
            EventBody::Resolved { .. } => {
                self.resolved_at = Some(event.at);
                self.outcome = self.due_at.map(|due| outcome(event.at, due));
            }
            EventBody::Returned { method } => self.return_method = Some(*method),
            _ => {}
        }
        self.status = next;
        if next.is_some_and(Status::is_closed) {
            self.closed_at = Some(event.at);
        }
    }

    /// Whether the dossier is past its due instant at `now` without being resolved.
    pub fn is_overdue_at(&self, now: Timestamp) -> bool {
        match (self.status, self.due_at) {
            (Some(status), Some(due)) => !status.is_finished() && now > due,
            _ => false,
        }
    }

    /// Checks that `body` may be recorded now: a valid transition and, for a conflict
    /// resolution, an unresolved conflict with that id. Used before writing a local event;
    /// events from peers are never refused this way, only flagged by the fold.
    pub fn check_next(&self, body: &EventBody) -> Result<(), DossierError> {
        body.validate()?;
        if self.events.len() >= DOSSIER_EVENTS_COUNT_MAX {
            return Err(DossierError::TooManyEvents);
        }
        if let EventBody::ConflictResolved { event_id, .. } = body {
            let found = self
                .events
                .iter()
                .any(|e| &e.id == event_id && e.conflict.is_some() && e.resolved_by.is_none());
            return if found {
                Ok(())
            } else {
                Err(DossierError::NoSuchConflict(event_id.clone()))
            };
        }
        match transition(self.status, body) {
            Some(_) => Ok(()),
            None => Err(DossierError::Transition {
                event: body.kind(),
                status: self.status.map_or("not yet received", Status::name),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn header() -> Header {
        let unit = UnitCode::new("X1").unwrap();
        Header {
            code: DossierCode::parse("X1-250101-0001").unwrap(),
            unit,
            procedure_code: "1.001193".into(),
            procedure_name: "Đăng ký khai sinh".into(),
            agency: "Tư pháp".into(),
            processing: ProcessingTime::WorkingDays(3),
            channel: Channel::Direct,
            applicant: Applicant {
                name: "Nguyễn Văn A".into(),
                id_number: "001099012345".into(),
                phone: "0912345678".into(),
                address: "Thôn 1".into(),
            },
            digitised: true,
        }
    }

    fn ev(i: usize, at: i64, body: EventBody) -> RecordedEvent {
        RecordedEvent {
            id: format!("{i}@aa"),
            actor: "aa".into(),
            event: Event {
                at: Timestamp(at),
                by: "cb1".into(),
                unit: UnitCode::new("X1").unwrap(),
                body,
            },
        }
    }

    #[test]
    fn happy_path_reaches_returned_on_time() {
        // Why: the common life of a dossier must fold to the national statuses and an outcome.
        let state = DossierState::fold(
            header(),
            vec![
                ev(
                    1,
                    0,
                    EventBody::Received {
                        due_at: Timestamp(1_000),
                    },
                ),
                ev(
                    2,
                    10,
                    EventBody::Transferred {
                        to_unit: UnitCode::new("P").unwrap(),
                        to_agency: None,
                        note: String::new(),
                    },
                ),
                ev(
                    3,
                    1_000,
                    EventBody::Resolved {
                        note: String::new(),
                    },
                ),
                ev(
                    4,
                    2_000,
                    EventBody::Returned {
                        method: ReturnMethod::Postal,
                    },
                ),
            ],
        );
        assert_eq!(state.status, Some(Status::Returned));
        assert_eq!(state.holder.as_str(), "P");
        assert_eq!(state.closed_at, Some(Timestamp(2_000)));
        assert_eq!(state.return_method, Some(ReturnMethod::Postal));
        assert_eq!(state.open_conflicts, 0);
        assert!(state.outcome.is_some());
    }

    #[test]
    fn invalid_transition_is_kept_as_conflict_and_can_be_resolved() {
        // Why: partitioned offices may both act; neither event may be dropped.
        let state = DossierState::fold(
            header(),
            vec![
                ev(
                    1,
                    0,
                    EventBody::Received {
                        due_at: Timestamp(1_000),
                    },
                ),
                ev(
                    2,
                    5,
                    EventBody::Withdrawn {
                        reason: "đổi ý".into(),
                    },
                ),
                ev(
                    3,
                    6,
                    EventBody::Resolved {
                        note: String::new(),
                    },
                ),
            ],
        );
        assert_eq!(state.status, Some(Status::Withdrawn));
        assert_eq!(state.open_conflicts, 1);
        assert_eq!(state.events.len(), 3);
        assert!(state.events[2].conflict.is_some());
        assert!(
            state
                .check_next(&EventBody::ConflictResolved {
                    event_id: "9@aa".into(),
                    note: String::new()
                })
                .is_err()
        );
        let body = EventBody::ConflictResolved {
            event_id: "3@aa".into(),
            note: "giữ rút hồ sơ".into(),
        };
        state.check_next(&body).unwrap();
        let mut events: Vec<RecordedEvent> = state
            .events
            .iter()
            .map(|e| RecordedEvent {
                id: e.id.clone(),
                actor: e.actor.clone(),
                event: e.event.clone(),
            })
            .collect();
        events.push(ev(4, 7, body));
        let settled = DossierState::fold(header(), events);
        assert_eq!(settled.open_conflicts, 0);
        assert_eq!(settled.events[2].resolved_by.as_deref(), Some("4@aa"));
    }

    #[test]
    fn local_checks_refuse_invalid_steps() {
        // Why: the counter must get a clear 4xx, not a conflict, for a step that cannot happen now.
        let state = DossierState::fold(
            header(),
            vec![ev(
                1,
                0,
                EventBody::Received {
                    due_at: Timestamp(9),
                },
            )],
        );
        let err = state
            .check_next(&EventBody::Returned {
                method: ReturnMethod::Counter,
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot record returned while the dossier is received"
        );
        assert!(
            state
                .check_next(&EventBody::Resolved {
                    note: String::new()
                })
                .is_ok()
        );
    }

    #[test]
    fn supplement_moves_due_and_appointment() {
        // Why: time waiting for the citizen does not count against the office.
        let state = DossierState::fold(
            header(),
            vec![
                ev(
                    1,
                    0,
                    EventBody::Received {
                        due_at: Timestamp(100),
                    },
                ),
                ev(
                    2,
                    10,
                    EventBody::SupplementRequested {
                        reason: "thiếu giấy".into(),
                    },
                ),
                ev(
                    3,
                    50,
                    EventBody::Supplemented {
                        due_at: Timestamp(140),
                    },
                ),
            ],
        );
        assert_eq!(state.status, Some(Status::InProcessing));
        assert_eq!(state.due_at, Some(Timestamp(140)));
        assert_eq!(state.appointment_at, Some(Timestamp(140)));
    }

    #[test]
    fn applicant_validation() {
        // Why: the CCCD number is 12 digits; a typo must be caught at the counter.
        let mut a = header().applicant;
        a.validate().unwrap();
        a.id_number = "12345".into();
        assert_eq!(a.validate(), Err(DossierError::IdNumber));
        a.id_number = "001099012345".into();
        a.name = " ".into();
        assert_eq!(a.validate(), Err(DossierError::Missing("applicant.name")));
    }

    #[test]
    fn status_numbers_match_national_order() {
        // Why: exports to the national systems use these numbers.
        assert_eq!(Status::Registered.number(), 1);
        assert_eq!(Status::Returned.number(), 10);
        for s in Status::ALL {
            assert_eq!(Status::from_number(s.number()), Some(s));
            assert_eq!(Status::parse(s.name()), Some(s));
        }
    }
}
