//! Local commands: what staff ask a node to record, turned into signed Automerge changes and
//! run through the apply pipeline.
//!
//! Each command validates everything it can before writing anything (so a refused command
//! leaves nothing behind in the batch's transaction), makes one Automerge change under this
//! process's actor, signs it with the node key, and hands it to [`Apply::change`] with the
//! document it already holds.

use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge};
use ed25519_dalek::SigningKey;
use motcua_schema::catalog::ProcessingTime;
use motcua_schema::dossier::{
    Applicant, Channel, DossierError, Event, EventBody, Header, ReturnMethod, Status,
};
use motcua_schema::ids::{DocId, DossierCode, UnitCode};
use motcua_schema::layout::{self, LayoutError};
use motcua_schema::rating::{Criterion, Rating, Score};
use motcua_schema::signed::SignedChange;
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::{Timestamp, date_key};
use motcua_schema::trust::{Role, SignedRecord};
use serde::Deserialize;

use crate::reference::Reference;
use crate::store::StoreError;
use crate::store::apply::{Applied, Apply};

/// Who this node is, for making changes.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The signing key.
    pub key: SigningKey,
    /// The Automerge actor of this process (key ‖ per-process epoch).
    pub actor: ActorId,
    /// The unit.
    pub unit: UnitCode,
    /// The role.
    pub role: Role,
}

/// A new dossier at the counter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDossier {
    /// National procedure code from the catalog.
    pub procedure_code: String,
    /// Channel.
    pub channel: Channel,
    /// The applicant.
    pub applicant: Applicant,
    /// Papers scanned and attached.
    #[serde(default)]
    pub digitised: bool,
    /// Registered online, not yet accepted (status 1): no due date yet.
    #[serde(default)]
    pub registered_only: bool,
}

/// A lifecycle step, as staff ask for it. The node fills in time, author and due dates.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventRequest {
    /// Accept an online registration.
    Received,
    /// Transfer to another unit or agency.
    Transferred {
        /// Receiving unit.
        to_unit: UnitCode,
        /// Agency.
        #[serde(default)]
        to_agency: Option<String>,
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// Ask the citizen to supplement.
    SupplementRequested {
        /// What is missing.
        reason: String,
    },
    /// The citizen supplemented.
    Supplemented,
    /// Ask for fees.
    PaymentRequested {
        /// Amount in đồng.
        amount_vnd: u64,
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// Fees paid.
    Paid {
        /// Amount in đồng.
        amount_vnd: u64,
    },
    /// Refuse at intake.
    Refused {
        /// Why.
        reason: String,
    },
    /// The citizen withdrew.
    Withdrawn {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Stop processing.
    Stopped {
        /// Why.
        reason: String,
    },
    /// Result ready.
    Resolved {
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// Apologise with a new appointment.
    Apologized {
        /// Why late.
        reason: String,
        /// New appointment (RFC 3339).
        new_appointment_at: String,
    },
    /// Result handed back.
    Returned {
        /// How.
        method: ReturnMethod,
    },
    /// Settle a conflict.
    ConflictResolved {
        /// The conflicting event's id.
        event_id: String,
        /// Decision.
        note: String,
    },
}

impl EventRequest {
    /// The event kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventRequest::Received => "received",
            EventRequest::Transferred { .. } => "transferred",
            EventRequest::SupplementRequested { .. } => "supplement_requested",
            EventRequest::Supplemented => "supplemented",
            EventRequest::PaymentRequested { .. } => "payment_requested",
            EventRequest::Paid { .. } => "paid",
            EventRequest::Refused { .. } => "refused",
            EventRequest::Withdrawn { .. } => "withdrawn",
            EventRequest::Stopped { .. } => "stopped",
            EventRequest::Resolved { .. } => "resolved",
            EventRequest::Apologized { .. } => "apologized",
            EventRequest::Returned { .. } => "returned",
            EventRequest::ConflictResolved { .. } => "conflict_resolved",
        }
    }
}

/// A new rating from the counter's tablet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRating {
    /// Score.
    pub score: Score,
    /// The official rated.
    #[serde(default)]
    pub official: Option<String>,
    /// The dossier, if known.
    #[serde(default)]
    pub dossier: Option<String>,
    /// Criteria met.
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    /// Comment.
    #[serde(default)]
    pub comment: String,
    /// Device.
    #[serde(default)]
    pub device: String,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such record (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Not possible in the record's current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// This node may not do it (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Storage failed (HTTP 500); the whole batch was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Automerge or signing failed: a bug (HTTP 500).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<DossierError> for CommandError {
    fn from(e: DossierError) -> Self {
        match e {
            DossierError::Transition { .. }
            | DossierError::NoSuchConflict(_)
            | DossierError::TooManyEvents => CommandError::Conflict(e.to_string()),
            _ => CommandError::Invalid(e.to_string()),
        }
    }
}

impl From<LayoutError> for CommandError {
    fn from(e: LayoutError) -> Self {
        CommandError::Internal(e.to_string())
    }
}

/// The context a command runs in.
pub struct Ctx<'a> {
    /// Who signs.
    pub identity: &'a Identity,
    /// Catalog and calendar.
    pub reference: &'a Reference,
    /// The node's clock reading for this batch.
    pub now: Timestamp,
}

impl Ctx<'_> {
    fn check_enrolled(&self, apply: &Apply<'_>) -> Result<(), CommandError> {
        apply
            .registry()
            .check_key(self.identity.key.verifying_key().as_bytes(), self.now)
            .map(|_| ())
            .map_err(|e| CommandError::Forbidden(format!("this node cannot sign: {e}")))
    }

    fn commit(
        &self,
        doc: &mut Automerge,
        doc_id: &DocId,
        build: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), LayoutError>,
    ) -> Result<SignedChange, CommandError> {
        doc.set_actor(self.identity.actor.clone());
        let mut tx = doc.transaction();
        if let Err(e) = build(&mut tx) {
            tx.rollback();
            return Err(e.into());
        }
        tx.commit_with(CommitOptions::default().with_time(self.now.0.div_euclid(1000)));
        let change = doc
            .get_last_local_change()
            .ok_or_else(|| CommandError::Internal("no change produced".into()))?;
        SignedChange::sign(doc_id, change, &self.identity.key)
            .map_err(|e| CommandError::Internal(e.to_string()))
    }

    fn submit(
        &self,
        apply: &mut Apply<'_>,
        signed: &SignedChange,
        doc: Automerge,
    ) -> Result<(), CommandError> {
        match apply.change(signed, Some(doc), "local", self.now)? {
            Applied::Stored(_) => Ok(()),
            Applied::Rejected(r) => Err(CommandError::Forbidden(r.message)),
            other => Err(CommandError::Internal(format!(
                "local change not applied: {other:?}"
            ))),
        }
    }

    /// Submits a dossier change and answers with the summary the pipeline derived from it.
    fn submit_dossier(
        &self,
        apply: &mut Apply<'_>,
        signed: &SignedChange,
        doc: Automerge,
    ) -> Result<DossierSummary, CommandError> {
        self.submit(apply, signed, doc)?;
        apply
            .take_derived()
            .ok_or_else(|| CommandError::Internal("the dossier's new state cannot be read".into()))
    }

    fn event(&self, by: &str, body: EventBody) -> Event {
        Event {
            at: self.now,
            by: by.to_owned(),
            unit: self.identity.unit.clone(),
            body,
        }
    }

    /// Receives a new dossier: allocates its code, computes its due date, writes it.
    pub fn create_dossier(
        &self,
        apply: &mut Apply<'_>,
        req: NewDossier,
        by: &str,
    ) -> Result<DossierSummary, CommandError> {
        self.check_enrolled(apply)?;
        req.applicant.validate()?;
        let procedure = self
            .reference
            .catalog
            .get(&req.procedure_code)
            .ok_or_else(|| {
                CommandError::Invalid(format!("unknown procedure code {}", req.procedure_code))
            })?;
        let first = if req.registered_only {
            if req.channel != Channel::Online {
                return Err(CommandError::Invalid(
                    "only online dossiers can be registered without acceptance".into(),
                ));
            }
            EventBody::Registered
        } else {
            EventBody::Received {
                due_at: self.due_at(procedure.processing, procedure.cutoff)?,
            }
        };
        let date = self.now.local_date();
        let unit = self.identity.unit.clone();
        let number = apply.next_number(unit.as_str(), "D", date_key(date), |a, n| {
            let code = DossierCode::new(&unit, date, n)
                .map_err(|e| crate::store::corrupt("dossier code", e))?;
            a.has_dossier(code.as_str())
        })?;
        let code = DossierCode::new(&unit, date, number)
            .map_err(|e| CommandError::Conflict(e.to_string()))?;
        let header = Header {
            code: code.clone(),
            unit: unit.clone(),
            procedure_code: procedure.code.clone(),
            procedure_name: procedure.name.clone(),
            agency: procedure.agency.clone(),
            processing: procedure.processing,
            channel: req.channel,
            applicant: req.applicant,
            digitised: req.digitised,
        };
        let event = self.event(by, first);
        let doc_id = DocId::Dossier(code.clone());
        let mut doc = Automerge::new();
        let signed = self.commit(&mut doc, &doc_id, |tx| {
            layout::dossier::create(tx, &header, &event)
        })?;
        self.submit_dossier(apply, &signed, doc)
    }

    fn due_at(
        &self,
        processing: ProcessingTime,
        cutoff: Option<time::Time>,
    ) -> Result<Timestamp, CommandError> {
        self.reference
            .calendar
            .due_at(self.now, processing, cutoff)
            .map_err(|e| CommandError::Conflict(format!("cannot compute due date: {e}")))
    }

    /// Records a lifecycle step.
    pub fn add_event(
        &self,
        apply: &mut Apply<'_>,
        code: &str,
        req: EventRequest,
        by: &str,
    ) -> Result<DossierSummary, CommandError> {
        self.check_enrolled(apply)?;
        let code = DossierCode::parse(code).map_err(|e| CommandError::NotFound(e.to_string()))?;
        let doc_id = DocId::Dossier(code.clone());
        let mut doc = apply
            .doc(&doc_id)?
            .ok_or_else(|| CommandError::NotFound(format!("no dossier {code}")))?;
        let state = layout::dossier::read(&doc)?;
        let body = match req {
            EventRequest::Received => {
                let cutoff = self
                    .reference
                    .catalog
                    .get(&state.header.procedure_code)
                    .and_then(|p| p.cutoff);
                EventBody::Received {
                    due_at: self.due_at(state.header.processing, cutoff)?,
                }
            }
            EventRequest::Supplemented => {
                if state.status != Some(Status::SupplementRequested) {
                    return Err(CommandError::Conflict("no supplement was requested".into()));
                }
                let paused_at = state
                    .events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.conflict.is_none()
                            && matches!(e.event.body, EventBody::SupplementRequested { .. })
                    })
                    .map(|e| e.event.at)
                    .ok_or_else(|| CommandError::Conflict("no supplement was requested".into()))?;
                let due = state
                    .due_at
                    .ok_or_else(|| CommandError::Conflict("dossier has no due date".into()))?;
                let due_at = self
                    .reference
                    .calendar
                    .extend_for_pause(due, paused_at, self.now)
                    .map_err(|e| CommandError::Conflict(format!("cannot compute due date: {e}")))?;
                EventBody::Supplemented { due_at }
            }
            EventRequest::Transferred {
                to_unit,
                to_agency,
                note,
            } => EventBody::Transferred {
                to_unit,
                to_agency,
                note,
            },
            EventRequest::SupplementRequested { reason } => {
                EventBody::SupplementRequested { reason }
            }
            EventRequest::PaymentRequested { amount_vnd, note } => {
                EventBody::PaymentRequested { amount_vnd, note }
            }
            EventRequest::Paid { amount_vnd } => EventBody::Paid { amount_vnd },
            EventRequest::Refused { reason } => EventBody::Refused { reason },
            EventRequest::Withdrawn { reason } => EventBody::Withdrawn { reason },
            EventRequest::Stopped { reason } => EventBody::Stopped { reason },
            EventRequest::Resolved { note } => EventBody::Resolved { note },
            EventRequest::Apologized {
                reason,
                new_appointment_at,
            } => {
                let at = Timestamp::parse_rfc3339(&new_appointment_at).ok_or_else(|| {
                    CommandError::Invalid("new_appointment_at must be an RFC 3339 time".into())
                })?;
                if at <= self.now {
                    return Err(CommandError::Invalid(
                        "the new appointment must be in the future".into(),
                    ));
                }
                EventBody::Apologized {
                    reason,
                    new_appointment_at: at,
                }
            }
            EventRequest::Returned { method } => EventBody::Returned { method },
            EventRequest::ConflictResolved { event_id, note } => {
                EventBody::ConflictResolved { event_id, note }
            }
        };
        if matches!(
            body,
            EventBody::Refused { .. }
                | EventBody::Stopped { .. }
                | EventBody::SupplementRequested { .. }
                | EventBody::Apologized { .. }
        ) && body_reason(&body).trim().is_empty()
        {
            return Err(CommandError::Invalid("a reason is required".into()));
        }
        state.check_next(&body)?;
        let event = self.event(by, body);
        let signed = self.commit(&mut doc, &doc_id, |tx| layout::dossier::append(tx, &event))?;
        self.submit_dossier(apply, &signed, doc)
    }

    /// Records a rating in the unit's document of the day.
    pub fn rate(&self, apply: &mut Apply<'_>, req: NewRating) -> Result<Rating, CommandError> {
        self.check_enrolled(apply)?;
        let dossier = match req
            .dossier
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => {
                Some(DossierCode::parse(d).map_err(|e| CommandError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        let date = self.now.local_date();
        let day = date_key(date);
        let unit = self.identity.unit.clone();
        let mut rating = Rating {
            id: String::new(),
            unit: unit.clone(),
            official: req
                .official
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty()),
            dossier,
            score: req.score,
            criteria: req.criteria,
            comment: req.comment,
            at: self.now,
            device: req.device,
        };
        rating
            .validate()
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let yymmdd = format!(
            "{:02}{:02}{:02}",
            date.year() % 100,
            u8::from(date.month()),
            date.day()
        );
        // The actor's epoch (random per process) ends the id, so that a node restored from a
        // backup, whose sequence table is older than the ratings it already took, can never
        // issue an id that exists elsewhere (two ratings under one key would hide one).
        let actor = self.identity.actor.to_bytes();
        let epoch = hex::encode(&actor[actor.len().saturating_sub(2)..]);
        let make_id = |n: u32| format!("{unit}-{yymmdd}-R{n:04}-{epoch}");
        let n = apply.next_number(unit.as_str(), "R", day, |a, n| a.has_rating(&make_id(n)))?;
        rating.id = make_id(n);
        let doc_id = DocId::Ratings(unit.clone(), day);
        let mut doc = apply.doc(&doc_id)?.unwrap_or_default();
        let signed = self.commit(&mut doc, &doc_id, |tx| layout::ratings::put(tx, &rating))?;
        self.submit(apply, &signed, doc)?;
        Ok(rating)
    }

    /// Writes a new version of the catalog or calendar (province only).
    pub fn put_reference(
        &self,
        apply: &mut Apply<'_>,
        kind: &'static str,
        version: u32,
        json_text: &str,
    ) -> Result<(), CommandError> {
        self.check_enrolled(apply)?;
        if self.identity.role != Role::Province {
            return Err(CommandError::Forbidden(
                "only the province writes the catalog and calendar".into(),
            ));
        }
        let doc_id = if kind == "catalog" {
            DocId::Catalog
        } else {
            DocId::Calendar
        };
        let mut doc = apply.doc(&doc_id)?.unwrap_or_default();
        let signed = self.commit(&mut doc, &doc_id, |tx| {
            layout::versioned::put(tx, kind, version, json_text)
        })?;
        self.submit(apply, &signed, doc)
    }

    /// Publishes root-signed records in the registry document (province only).
    pub fn publish_records(
        &self,
        apply: &mut Apply<'_>,
        records: &[SignedRecord],
    ) -> Result<(), CommandError> {
        self.check_enrolled(apply)?;
        if self.identity.role != Role::Province {
            return Err(CommandError::Forbidden(
                "only the province publishes the registry".into(),
            ));
        }
        let doc_id = DocId::Registry;
        let mut doc = apply.doc(&doc_id)?.unwrap_or_default();
        // Only records the document does not hold yet: re-publishing would add operations
        // (and replication traffic) for nothing.
        let held: std::collections::BTreeSet<String> = if doc.is_empty() {
            Default::default()
        } else {
            layout::registry::read(&doc)?
                .iter()
                .map(SignedRecord::id)
                .collect()
        };
        let new: Vec<&SignedRecord> = records.iter().filter(|r| !held.contains(&r.id())).collect();
        if new.is_empty() {
            return Ok(());
        }
        let signed = self.commit(&mut doc, &doc_id, |tx| {
            for r in &new {
                layout::registry::put(tx, r)?;
            }
            Ok(())
        })?;
        self.submit(apply, &signed, doc)
    }
}

fn body_reason(body: &EventBody) -> &str {
    match body {
        EventBody::Refused { reason }
        | EventBody::Stopped { reason }
        | EventBody::SupplementRequested { reason }
        | EventBody::Apologized { reason, .. } => reason,
        _ => "",
    }
}
