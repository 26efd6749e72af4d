//! The simulator's own record of everything that was acknowledged: the ground truth the
//! province's figures are checked against.
//!
//! Why independent of the stores: "the provincial report is right" means it equals the report of
//! what actually happened. The simulator records each acknowledged write as it asked for it (the
//! header it sent, each event with the clock reading and due dates computed here from the
//! published calendar), folds the events with the domain's own fold, and computes the report
//! with `report::compute`. Nothing here reads a node's store.

use std::collections::BTreeMap;

use motcua_schema::calendar::Calendar;
use motcua_schema::dossier::{DossierState, Event, EventBody, Header, RecordedEvent};
use motcua_schema::rating::Rating;
use motcua_schema::report::{Period, Report, compute};
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::Timestamp;

/// One acknowledged dossier.
#[derive(Debug, Clone)]
pub struct TruthDossier {
    /// The header the receiving node was asked to write.
    pub header: Header,
    /// Acknowledged events with the hash of the change that carried each.
    pub events: Vec<(Event, [u8; 32])>,
}

impl TruthDossier {
    /// The folded state.
    pub fn state(&self) -> DossierState {
        let recorded = self
            .events
            .iter()
            .enumerate()
            .map(|(i, (e, _))| RecordedEvent {
                id: format!("{i}@truth"),
                actor: String::new(),
                event: e.clone(),
            })
            .collect();
        DossierState::fold(self.header.clone(), recorded)
    }

    /// The summary the folded state gives.
    pub fn summary(&self) -> DossierSummary {
        DossierSummary::from(&self.state())
    }

    /// The instant of the last supplement request, if the dossier is waiting for one.
    pub fn paused_at(&self) -> Option<Timestamp> {
        self.events
            .iter()
            .rev()
            .find(|(e, _)| matches!(e.body, EventBody::SupplementRequested { .. }))
            .map(|(e, _)| e.at)
    }
}

/// The ground truth.
#[derive(Debug, Default)]
pub struct Truth {
    /// Dossiers by code.
    pub dossiers: BTreeMap<String, TruthDossier>,
    /// Ratings by id, with their change hash.
    pub ratings: BTreeMap<String, (Rating, [u8; 32])>,
    /// Acknowledged writes later lost to a restore from an older backup (they had reached no
    /// other node): the expected cost of that fault, reported, not a violation.
    pub lost_to_restore: u64,
    /// Codes or ids handed out twice by a node (a violation).
    pub reused_ids: Vec<String>,
}

impl Truth {
    /// Records a new dossier; returns false if its code was already used.
    pub fn add_dossier(&mut self, header: Header, first: Event, hash: [u8; 32]) -> bool {
        let code = header.code.to_string();
        if self.dossiers.contains_key(&code) {
            self.reused_ids.push(code);
            return false;
        }
        self.dossiers.insert(
            code,
            TruthDossier {
                header,
                events: vec![(first, hash)],
            },
        );
        true
    }

    /// Records an acknowledged event.
    pub fn add_event(&mut self, code: &str, event: Event, hash: [u8; 32]) {
        if let Some(d) = self.dossiers.get_mut(code) {
            d.events.push((event, hash));
        }
    }

    /// Records an acknowledged rating; returns false if its id was already used.
    pub fn add_rating(&mut self, rating: Rating, hash: [u8; 32]) -> bool {
        if self.ratings.contains_key(&rating.id) {
            self.reused_ids.push(rating.id.clone());
            return false;
        }
        self.ratings.insert(rating.id.clone(), (rating, hash));
        true
    }

    /// Forgets every acknowledged write whose change `exists` says no honest node holds any more
    /// (after a restore); returns how many.
    pub fn forget_lost(&mut self, exists: impl Fn(&[u8; 32]) -> bool) -> u64 {
        let mut lost = 0u64;
        let mut gone = Vec::new();
        for (code, d) in self.dossiers.iter_mut() {
            if !exists(&d.events[0].1) {
                lost += d.events.len() as u64;
                gone.push(code.clone());
                continue;
            }
            let before = d.events.len();
            d.events.retain(|(_, h)| exists(h));
            lost += (before - d.events.len()) as u64;
        }
        for code in gone {
            self.dossiers.remove(&code);
        }
        let before = self.ratings.len();
        self.ratings.retain(|_, (_, h)| exists(h));
        lost += (before - self.ratings.len()) as u64;
        self.lost_to_restore += lost;
        lost
    }

    /// Every acknowledged change hash.
    pub fn hashes(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.dossiers
            .values()
            .flat_map(|d| d.events.iter().map(|(_, h)| h))
            .chain(self.ratings.values().map(|(_, h)| h))
    }

    /// The report over `period` computed from the ground truth.
    pub fn report(&self, scope: &str, period: &Period) -> Report {
        let summaries: Vec<DossierSummary> =
            self.dossiers.values().map(TruthDossier::summary).collect();
        let ratings: Vec<Rating> = self.ratings.values().map(|(r, _)| r.clone()).collect();
        compute(scope, period, &summaries, &ratings)
    }
}

/// The due instant a node computes at intake, recomputed here from the published calendar.
pub fn due_at(
    calendar: &Calendar,
    now: Timestamp,
    processing: motcua_schema::catalog::ProcessingTime,
    cutoff: Option<time::Time>,
) -> Option<Timestamp> {
    calendar.due_at(now, processing, cutoff).ok()
}
