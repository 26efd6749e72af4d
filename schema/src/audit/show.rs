//! A dossier's history reproduced from an archive alone: every event, who signed the change that
//! recorded it, and when, as `motcua audit show CODE ARCHIVE` prints it.
//!
//! Only changes that verify (strict signature, hash, checksum, actor binding) enter the
//! document; the others are listed as problems. The state is folded by the same code every node
//! uses (`crate::dossier`), so an inspector sees what the nodes saw. Personal data in the
//! header (name, ID number, phone, address) is left out.

use std::fmt::Write as _;

use automerge::{Automerge, Change};
use serde::Serialize;

use super::archive;
use super::merkle::Hash;
use super::verify::registry_of;
use crate::ids::{DocId, DossierCode};
use crate::layout;
use crate::signed::SignedChange;
use crate::timestamp::Timestamp;

/// One event with the change behind it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    /// The event's time (the recording node's clock).
    pub at: Timestamp,
    /// Kind (`received`, `transferred`, …).
    pub kind: String,
    /// Vietnamese label.
    pub label: String,
    /// Staff account.
    pub by: String,
    /// Unit that recorded it.
    pub unit: String,
    /// Status before it.
    pub status_before: Option<String>,
    /// Set when it was not a valid transition (kept, flagged).
    pub conflict: Option<String>,
    /// The change that recorded it (hex).
    pub change: Option<String>,
    /// Its signer key (hex).
    pub signer: Option<String>,
    /// The signer's enrolment, as `role unit (name)`.
    pub signer_enrolment: Option<String>,
    /// The change's own time (signer's clock).
    pub signed_at: Option<Timestamp>,
    /// Its leaf in the exporter's log.
    pub leaf: Option<u64>,
}

/// A dossier's history.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Dossier code.
    pub code: String,
    /// Procedure code and name.
    pub procedure: String,
    /// Receiving unit.
    pub unit: String,
    /// Channel.
    pub channel: String,
    /// Current status.
    pub status: Option<String>,
    /// Events in document order.
    pub events: Vec<HistoryEvent>,
    /// Changes of the dossier in the archive.
    pub changes: usize,
    /// Changes left out because they do not verify, and other problems.
    pub problems: Vec<String>,
}

/// Why a history could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// The code is not a dossier code.
    #[error("{0}")]
    Code(String),
    /// The archive holds no verifiable change of this dossier.
    #[error("the archive holds no verifiable change of dossier {0}")]
    NotFound(String),
    /// The changes do not make a readable dossier.
    #[error("the dossier's changes do not make a readable document: {0}")]
    Document(String),
}

struct Made {
    hash: Hash,
    signer: [u8; 32],
    actor: String,
    start_op: u64,
    ops: u64,
    time: i64,
    leaf: u64,
}

/// Reproduces dossier `code` from the archive `bytes`.
pub fn dossier_history(bytes: &[u8], code: &str) -> Result<History, ShowError> {
    let code = DossierCode::parse(code).map_err(|e| ShowError::Code(e.to_string()))?;
    let doc_id = DocId::Dossier(code.clone()).to_string();
    let a = archive::parse(bytes);
    let registry = registry_of(&a);
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    let mut made = Vec::new();
    let mut count = 0;
    for raw in &a.changes {
        let Ok(env) = super::change::parse_envelope(raw.envelope) else {
            continue;
        };
        if env.doc_id != doc_id {
            continue;
        }
        count += 1;
        match SignedChange::decode(raw.envelope) {
            Ok(signed) => {
                made.push(Made {
                    hash: signed.hash(),
                    signer: *signed.signer().as_bytes(),
                    actor: signed.actor().to_hex_string(),
                    start_op: signed.change().start_op().get(),
                    ops: signed.change().len() as u64,
                    time: signed.change().timestamp(),
                    leaf: raw.leaf,
                });
                changes.push(Change::clone(signed.change()));
            }
            Err(e) => problems.push(format!(
                "change #{} (leaf {}) left out: {e}",
                raw.position, raw.leaf
            )),
        }
    }
    if changes.is_empty() {
        return Err(ShowError::NotFound(code.to_string()));
    }
    let mut doc = Automerge::new();
    doc.apply_changes(changes)
        .map_err(|e| ShowError::Document(e.to_string()))?;
    let state = layout::dossier::read(&doc).map_err(|e| ShowError::Document(e.to_string()))?;
    let events = state
        .events
        .iter()
        .map(|fe| {
            let counter: Option<u64> = fe.id.split_once('@').and_then(|(c, _)| c.parse().ok());
            let m = made.iter().find(|m| {
                m.actor == fe.actor
                    && counter.is_some_and(|c| c >= m.start_op && c < m.start_op + m.ops)
            });
            let enrolment = m.and_then(|m| registry.as_ref()?.standing(&m.signer).cloned());
            HistoryEvent {
                at: fe.event.at,
                kind: fe.event.body.kind().into(),
                label: fe.event.body.label_vi().into(),
                by: fe.event.by.clone(),
                unit: fe.event.unit.to_string(),
                status_before: fe.status_before.map(|s| s.name().to_owned()),
                conflict: fe.conflict.clone(),
                change: m.map(|m| hex::encode(m.hash)),
                signer: m.map(|m| hex::encode(m.signer)),
                signer_enrolment: enrolment
                    .map(|s| format!("{} {} ({})", s.role.name(), s.unit, s.unit_name)),
                signed_at: m.map(|m| Timestamp(m.time.saturating_mul(1000))),
                leaf: m.map(|m| m.leaf),
            }
        })
        .collect();
    if registry.is_none() {
        problems.push(
            "the archive's registry does not read: signers are shown without enrolment".into(),
        );
    }
    Ok(History {
        code: code.to_string(),
        procedure: format!(
            "{} {}",
            state.header.procedure_code, state.header.procedure_name
        ),
        unit: state.header.unit.to_string(),
        channel: state.header.channel.label_vi().into(),
        status: state.status.map(|s| s.name().to_owned()),
        events,
        changes: count,
        problems,
    })
}

impl History {
    /// The history for people.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "Hồ sơ / dossier {}", self.code);
        let _ = writeln!(t, "  thủ tục / procedure: {}", self.procedure);
        let _ = writeln!(
            t,
            "  đơn vị tiếp nhận / unit: {}   kênh / channel: {}",
            self.unit, self.channel
        );
        let _ = writeln!(
            t,
            "  trạng thái / status: {}",
            self.status.as_deref().unwrap_or("?")
        );
        let _ = writeln!(
            t,
            "  {} changes in the archive; personal data not shown",
            self.changes
        );
        for (i, e) in self.events.iter().enumerate() {
            let _ = writeln!(
                t,
                "\n{}. {} {} ({})",
                i + 1,
                e.at.to_rfc3339(),
                e.label,
                e.kind
            );
            let _ = writeln!(t, "   by {} at unit {}", e.by, e.unit);
            if let Some(c) = &e.conflict {
                let _ = writeln!(t, "   XUNG ĐỘT / conflict: {c}");
            }
            match (&e.signer, &e.change) {
                (Some(s), Some(h)) => {
                    let _ = writeln!(
                        t,
                        "   signed by {s} {} at {} (change {h}, leaf {})",
                        e.signer_enrolment.as_deref().unwrap_or("(not enrolled)"),
                        e.signed_at.map(Timestamp::to_rfc3339).unwrap_or_default(),
                        e.leaf.map(|l| l.to_string()).unwrap_or_default()
                    );
                }
                _ => {
                    let _ = writeln!(t, "   (no verified change found for this event)");
                }
            }
        }
        for p in &self.problems {
            let _ = writeln!(t, "\n! {p}");
        }
        t
    }
}
