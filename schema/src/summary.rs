//! The compact facts of one dossier that lists, indexes and reports need, without its events.
//!
//! The node keeps one summary per dossier in its store, derived from the folded document state,
//! so that a report over a period reads summaries instead of documents. Because a summary is a
//! pure function of the document, two nodes holding the same changes hold the same summaries.

use serde::{Deserialize, Serialize};

use crate::calendar::Outcome;
use crate::dossier::{Channel, DossierState, ReturnMethod, Status};
use crate::ids::{DossierCode, UnitCode};
use crate::timestamp::Timestamp;

/// What reports and lists need to know about a dossier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierSummary {
    /// The code.
    pub code: DossierCode,
    /// The receiving unit.
    pub unit: UnitCode,
    /// The unit holding it now.
    pub holder: UnitCode,
    /// Every unit it was transferred to (these units may write to it).
    #[serde(default)]
    pub transfers: Vec<UnitCode>,
    /// Responsible agency.
    pub agency: String,
    /// Procedure code.
    pub procedure_code: String,
    /// Procedure name.
    pub procedure_name: String,
    /// Channel.
    pub channel: Channel,
    /// Papers scanned and attached.
    pub digitised: bool,
    /// Current status (`None`: the document has no valid first event).
    pub status: Option<Status>,
    /// Accepted at.
    pub received_at: Option<Timestamp>,
    /// Statutory due instant.
    pub due_at: Option<Timestamp>,
    /// Appointment given to the citizen.
    pub appointment_at: Option<Timestamp>,
    /// Resolved at.
    pub resolved_at: Option<Timestamp>,
    /// Outcome once resolved.
    pub outcome: Option<Outcome>,
    /// Reached an end state at.
    pub closed_at: Option<Timestamp>,
    /// How the result was returned.
    pub return_method: Option<ReturnMethod>,
    /// Applicant's name (personal data: for staff lists only).
    pub applicant_name: String,
    /// Applicant's ID number (personal data: for staff search only).
    pub applicant_id_number: String,
    /// Unsettled conflicts.
    pub open_conflicts: u32,
    /// Number of events.
    pub events: u32,
}

impl From<&DossierState> for DossierSummary {
    fn from(s: &DossierState) -> DossierSummary {
        DossierSummary {
            code: s.header.code.clone(),
            unit: s.header.unit.clone(),
            holder: s.holder.clone(),
            transfers: s.transfers.clone(),
            agency: s.header.agency.clone(),
            procedure_code: s.header.procedure_code.clone(),
            procedure_name: s.header.procedure_name.clone(),
            channel: s.header.channel,
            digitised: s.header.digitised,
            status: s.status,
            received_at: s.received_at,
            due_at: s.due_at,
            appointment_at: s.appointment_at,
            resolved_at: s.resolved_at,
            outcome: s.outcome,
            closed_at: s.closed_at,
            return_method: s.return_method,
            applicant_name: s.header.applicant.name.clone(),
            applicant_id_number: s.header.applicant.id_number.clone(),
            open_conflicts: s.open_conflicts as u32,
            events: s.events.len() as u32,
        }
    }
}

impl DossierSummary {
    /// Whether processing was still open at instant `t`: received by then and neither resolved
    /// nor closed by then.
    pub fn open_at(&self, t: Timestamp) -> bool {
        let Some(received) = self.received_at else {
            return false;
        };
        let finished = match (self.resolved_at, self.closed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        received < t && finished.is_none_or(|f| f >= t)
    }
}
