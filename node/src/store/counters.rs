//! Report counters maintained incrementally, per unit, local day and metric.
//!
//! A record contributes +1 to a set of counters (e.g. a dossier received online on 16/11
//! contributes to `received` and `received.online` of that day). When a dossier's summary
//! changes, the store subtracts the old contribution and adds the new one, in the same write
//! transaction, so counters always equal the contributions of the current summaries: two nodes
//! with the same records hold the same counters (invariant 2). Sums over day ranges answer the
//! dashboard and the hall's TV board without reading any document.

use motcua_schema::calendar::Outcome;
use motcua_schema::dossier::{ReturnMethod, Status};
use motcua_schema::rating::{Rating, Score};
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::{Timestamp, date_key};

/// One counter cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    /// The unit.
    pub unit: String,
    /// Local day `YYYYMMDD`.
    pub day: u32,
    /// Metric name.
    pub metric: String,
}

fn day(t: Timestamp) -> u32 {
    date_key(t.local_date())
}

fn cell(unit: &str, t: Timestamp, metric: impl Into<String>) -> Cell {
    Cell {
        unit: unit.to_owned(),
        day: day(t),
        metric: metric.into(),
    }
}

/// The metric name of an outcome.
pub fn outcome_metric(o: Outcome) -> &'static str {
    match o {
        Outcome::Early => "resolved.early",
        Outcome::OnTime => "resolved.on_time",
        Outcome::Overdue => "resolved.overdue",
    }
}

/// The metric name of a score.
pub fn score_metric(s: Score) -> &'static str {
    match s {
        Score::Satisfied => "rating.satisfied",
        Score::Neutral => "rating.neutral",
        Score::Dissatisfied => "rating.dissatisfied",
    }
}

/// The counters a dossier summary contributes to.
pub fn dossier_cells(s: &DossierSummary) -> Vec<Cell> {
    let unit = s.unit.as_str();
    let mut out = Vec::new();
    if let Some(received) = s.received_at {
        out.push(cell(unit, received, "received"));
        out.push(cell(
            unit,
            received,
            format!("received.{}", channel_name(s)),
        ));
        if s.digitised {
            out.push(cell(unit, received, "received.digitised"));
        }
    }
    if let (Some(resolved), Some(outcome)) = (s.resolved_at, s.outcome) {
        out.push(cell(unit, resolved, "resolved"));
        out.push(cell(unit, resolved, outcome_metric(outcome)));
    }
    if let (Some(status), Some(closed)) = (s.status, s.closed_at) {
        let metric = match status {
            Status::Returned => Some("returned"),
            Status::Refused => Some("refused"),
            Status::Withdrawn => Some("withdrawn"),
            Status::Stopped => Some("stopped"),
            _ => None,
        };
        if let Some(m) = metric {
            out.push(cell(unit, closed, m));
        }
        if status == Status::Returned && s.return_method == Some(ReturnMethod::Postal) {
            out.push(cell(unit, closed, "returned.postal"));
        }
    }
    out
}

fn channel_name(s: &DossierSummary) -> &'static str {
    match s.channel {
        motcua_schema::dossier::Channel::Direct => "direct",
        motcua_schema::dossier::Channel::Online => "online",
        motcua_schema::dossier::Channel::Postal => "postal",
    }
}

/// The counters a rating contributes to: the unit's score, and the official's if named.
pub fn rating_cells(r: &Rating) -> Vec<Cell> {
    let unit = r.unit.as_str();
    let metric = score_metric(r.score);
    let mut out = vec![cell(unit, r.at, metric), cell(unit, r.at, "rating")];
    if let Some(official) = r.official.as_deref().filter(|o| !o.is_empty()) {
        out.push(cell(unit, r.at, format!("official/{official}/{metric}")));
        out.push(cell(unit, r.at, format!("official/{official}/rating")));
    }
    out
}
