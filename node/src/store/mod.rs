//! The node's store: one redb database holding the signed changes (the source of truth), the
//! document states derived from them, the query indexes and the report counters.
//!
//! Reads go through [`Store`]'s methods on read transactions and may run concurrently with the
//! single writer. Writes go through [`apply::Apply`] inside a write transaction owned by the
//! writer task (`crate::writer`), which commits many requests' work with one fsync.
//!
//! **Architecture invariant:** every derived table (documents, summaries, indexes, counters,
//! ratings) is updated in the same write transaction as the change that alters it, so a crash
//! can never leave them disagreeing with the changes.

pub mod apply;
pub mod counters;
pub mod doc_cache;
mod migrate;
pub mod peers;
pub mod tables;
mod web_queries;

use std::collections::BTreeMap;
use std::path::Path;

use automerge::Automerge;
use motcua_schema::dossier::{DossierState, Status};
use motcua_schema::ids::DocId;
use motcua_schema::layout;
use motcua_schema::rating::Rating;
use motcua_schema::report::Period;
use motcua_schema::signed::stored_signer_and_signature;
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::{Timestamp, date_key};
use motcua_schema::trust::SignedRecord;
use redb::{
    Database, ReadableDatabase, ReadableMultimapTable, ReadableTable, ReadableTableMetadata,
};
use serde::Serialize;

use tables::*;

/// Page size of the redb cache, in bytes. A province's hot set (indexes, summaries) fits.
pub const CACHE_SIZE_BYTES: usize = 256 * 1024 * 1024;
/// Most rows one list query returns.
pub const LIST_ROWS_COUNT_MAX: usize = 500;

/// A storage failure. Distinct from validation failures, which are the caller's errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// A stored value does not decode: the store is damaged or from another version.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt {
        /// What.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The store was written by a newer format.
    #[error("store format {0} is newer than this motcua understands ({STORE_FORMAT_VERSION})")]
    Format(u32),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.into()) }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub(crate) fn corrupt(what: &'static str, e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        message: e.to_string(),
    }
}

/// Counts shown in the node status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Dossiers held.
    pub dossiers: u64,
    /// Ratings held.
    pub ratings: u64,
    /// Signed changes held.
    pub changes: u64,
    /// Changes waiting for their dependencies.
    pub pending: u64,
    /// Rejected changes logged.
    pub rejects: u64,
    /// Fork proofs held.
    pub forks: u64,
    /// Dossiers per status name.
    pub by_status: BTreeMap<String, u64>,
}

/// What a list query asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only unfinished dossiers due before this instant (overdue when it is now).
    pub due_before: Option<Timestamp>,
    /// Only this code.
    pub code: Option<String>,
    /// Only this applicant ID number.
    pub id_number: Option<String>,
    /// Only dossiers whose applicant name or procedure contains this text (diacritics-folded).
    pub text: Option<String>,
    /// Only dossiers received by this unit.
    pub unit: Option<String>,
    /// At most this many rows.
    pub limit: usize,
}

/// One change of a document, as shown with its dossier.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeInfo {
    /// Change hash, hex.
    pub hash: String,
    /// Signer key, hex.
    pub signer: String,
    /// Actor, hex.
    pub actor: String,
    /// Sequence number of the actor.
    pub seq: u64,
    /// The change's own time (seconds, advisory).
    pub time: i64,
    /// Signature, hex.
    pub signature: String,
    /// Dependencies, hex.
    pub deps: Vec<String>,
}

/// A dossier with its folded history and the signed changes behind it.
#[derive(Debug, Clone, Serialize)]
pub struct DossierView {
    /// The summary.
    pub summary: DossierSummary,
    /// The folded state with every event.
    pub state: DossierState,
    /// The changes, in causal order.
    pub changes: Vec<ChangeInfo>,
}

/// The stored bytes of document `id`'s state in a read transaction.
fn stored_doc_state(tx: &redb::ReadTransaction, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(tx
        .open_table(DOC_ROWS)?
        .get(doc_state_key(id))?
        .map(|v| v.value().to_vec()))
}

/// The node's database.
pub struct Store {
    db: Database,
    /// Parsed documents for the apply pipeline (`doc_cache`).
    docs: doc_cache::DocCache,
}

impl Store {
    /// Opens (or creates) the store at `path`, creating every table.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE_BYTES)
            .create(path)?;
        Store::init(db)
    }

    /// A store held in memory (redb's in-memory backend), for the simulator and tests: the same
    /// tables, transactions and pipeline, no file. `store_id` makes runs reproducible.
    pub fn open_in_memory(store_id: [u8; 16]) -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        let tx = db.begin_write()?;
        tx.open_table(META)?
            .insert("store_id", store_id.as_slice())?;
        tx.commit()?;
        Store::init(db)
    }

    /// A store over any redb storage backend (the simulator's fault-injecting disk): the same
    /// tables, transactions and pipeline, with a page cache of `cache_size_bytes`. An image that
    /// already holds a store keeps its id; a new one is given `store_id`, so runs are
    /// reproducible.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        store_id: [u8; 16],
        cache_size_bytes: usize,
    ) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_size_bytes)
            .create_with_backend(backend)?;
        let tx = db.begin_write()?;
        if tx.open_table(META)?.get("store_id")?.is_none() {
            tx.open_table(META)?
                .insert("store_id", store_id.as_slice())?;
        }
        tx.commit()?;
        Store::init(db)
    }

    /// Creates every table and checks the format.
    fn init(db: Database) -> Result<Store, StoreError> {
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let format = meta.get("format")?.map(|v| v.value().to_vec());
            match format {
                Some(bytes) => {
                    let v = u32::from_be_bytes(
                        bytes.try_into().map_err(|_| corrupt("format", "length"))?,
                    );
                    if v > STORE_FORMAT_VERSION {
                        return Err(StoreError::Format(v));
                    }
                    if v < STORE_FORMAT_VERSION {
                        migrate::run(&tx, v)?;
                        meta.insert("format", STORE_FORMAT_VERSION.to_be_bytes().as_slice())?;
                    }
                }
                None => {
                    meta.insert("format", STORE_FORMAT_VERSION.to_be_bytes().as_slice())?;
                }
            }
            if meta.get("store_id")?.is_none() {
                let mut id = [0u8; 16];
                rand::fill(&mut id);
                id[0] |= 1; // never all zeros
                meta.insert("store_id", id.as_slice())?;
            }
            tx.open_table(CHANGES)?;
            tx.open_table(FEED)?;
            tx.open_table(DOC_ROWS)?;
            tx.open_multimap_table(PENDING)?;
            tx.open_table(FORKS)?;
            tx.open_table(IDX_STATUS)?;
            tx.open_table(IDX_DUE)?;
            tx.open_table(IDX_APPLICANT)?;
            tx.open_table(IDX_UNIT)?;
            tx.open_table(IDX_TRANSFER)?;
            tx.open_table(PEERS)?;
            tx.open_table(COUNTERS)?;
            tx.open_table(RATINGS)?;
            tx.open_table(IDX_RATING_UNIT)?;
            tx.open_table(SEQUENCES)?;
            tx.open_table(REJECTS)?;
            tx.open_table(REFUSED)?;
            tx.open_table(TRUST)?;
            tx.open_table(USERS)?;
            tx.open_table(SESSIONS)?;
            tx.open_table(DEVICES)?;
        }
        tx.commit()?;
        Ok(Store {
            db,
            docs: doc_cache::DocCache::default(),
        })
    }

    /// The database, for the writer and the auth module.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Whether any change waits for its dependencies (`pending` is not empty).
    pub fn has_pending(&self) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_multimap_table(PENDING)?;
        Ok(pending.iter()?.next().is_some())
    }

    /// The apply pipeline's cache of parsed documents.
    pub fn doc_cache(&self) -> &doc_cache::DocCache {
        &self.docs
    }

    /// The summary of a dossier.
    pub fn summary(&self, code: &str) -> Result<Option<DossierSummary>, StoreError> {
        let tx = self.db.begin_read()?;
        stored_summary(
            &tx.open_table(DOC_ROWS)?,
            &motcua_schema::ids::dossier_doc_text(code),
        )
    }

    /// Loads a document's current state.
    pub fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, StoreError> {
        self.doc_state_bytes(&doc.to_string())?
            .map(|b| Automerge::load(&b).map_err(|e| corrupt("document", e)))
            .transpose()
    }

    /// The stored bytes of document `id`'s state (its row of `doc-rows` with no actor), as
    /// Automerge loads them.
    pub fn doc_state_bytes(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        stored_doc_state(&self.db.begin_read()?, id)
    }

    /// A dossier with its history and signatures.
    pub fn dossier(&self, code: &str) -> Result<Option<DossierView>, StoreError> {
        let Ok(code) = motcua_schema::ids::DossierCode::parse(code) else {
            return Ok(None);
        };
        let doc_id = DocId::Dossier(code);
        let tx = self.db.begin_read()?;
        let Some(bytes) = stored_doc_state(&tx, &doc_id.to_string())? else {
            return Ok(None);
        };
        let doc = Automerge::load(&bytes).map_err(|e| corrupt("document", e))?;
        let state = layout::dossier::read(&doc).map_err(|e| corrupt("dossier", e))?;
        let summary = DossierSummary::from(&state);
        let envelopes = tx.open_table(CHANGES)?;
        let mut changes = Vec::new();
        for change in doc.get_changes(&[]) {
            let hash = change.hash().0;
            let Some(env) = envelopes.get(&hash)? else {
                continue;
            };
            let (signer, signature) = stored_signer_and_signature(env.value())
                .ok_or_else(|| corrupt("change", "envelope header"))?;
            changes.push(ChangeInfo {
                hash: hex::encode(hash),
                signer: hex::encode(signer),
                actor: change.actor_id().to_hex_string(),
                seq: change.seq(),
                time: change.timestamp(),
                signature: hex::encode(signature),
                deps: change.deps().iter().map(|d| hex::encode(d.0)).collect(),
            });
        }
        Ok(Some(DossierView {
            summary,
            state,
            changes,
        }))
    }

    /// Dossiers matching `filter`, newest first where the index allows.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<DossierSummary>, StoreError> {
        let limit = filter.limit.clamp(1, LIST_ROWS_COUNT_MAX);
        let tx = self.db.begin_read()?;
        let rows = tx.open_table(DOC_ROWS)?;
        let mut codes: Vec<String> = Vec::new();
        // Choose the most selective index the filter allows; the rest is checked per row.
        if let Some(code) = &filter.code {
            codes.push(code.clone());
        } else if let Some(id) = &filter.id_number {
            let idx = tx.open_table(IDX_APPLICANT)?;
            for row in idx.range((id.as_str(), "")..)? {
                let (k, _) = row?;
                let (idn, code) = k.value();
                if idn != id {
                    break;
                }
                codes.push(code.to_owned());
            }
        } else if let Some(before) = filter.due_before {
            let idx = tx.open_table(IDX_DUE)?;
            for row in idx.range(..(before.0, ""))? {
                codes.push(row?.0.value().1.to_owned());
            }
        } else if let Some(status) = filter.status {
            let idx = tx.open_table(IDX_STATUS)?;
            let n = status.number();
            // Only this status's rows: the range once ran to the end of the index and skipped
            // every later status's rows one by one.
            for row in idx.range((n, "")..(n + 1, ""))?.rev() {
                codes.push(row?.0.value().1.to_owned());
            }
        } else {
            let idx = tx.open_table(IDX_UNIT)?;
            for row in idx.iter()?.rev() {
                let (k, _) = row?;
                codes.push(k.value().2.to_owned());
                if filter.text.is_none() && filter.unit.is_none() && codes.len() >= limit {
                    break;
                }
            }
        }
        let text = filter
            .text
            .as_deref()
            .map(motcua_schema::catalog::fold_diacritics);
        let mut out = Vec::new();
        for code in codes {
            let Some(s) = stored_summary(&rows, &motcua_schema::ids::dossier_doc_text(&code))?
            else {
                continue;
            };
            if filter.status.is_some_and(|st| s.status != Some(st))
                || filter.unit.as_deref().is_some_and(|u| s.unit.as_str() != u)
                || filter
                    .id_number
                    .as_deref()
                    .is_some_and(|i| s.applicant_id_number != i)
            {
                continue;
            }
            if let Some(t) = &text {
                let hay = motcua_schema::catalog::fold_diacritics(&format!(
                    "{} {} {} {}",
                    s.code, s.applicant_name, s.procedure_name, s.procedure_code
                ));
                if !hay.contains(t.as_str()) {
                    continue;
                }
            }
            out.push(s);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The summaries and ratings a report over `period` needs, for `units` (all when `None`).
    /// Summaries: every dossier received before the period's end that was still open at its
    /// start or that was received, resolved or closed inside it.
    pub fn report_inputs(
        &self,
        units: Option<&[String]>,
        period: &Period,
    ) -> Result<(Vec<DossierSummary>, Vec<Rating>), StoreError> {
        let tx = self.db.begin_read()?;
        let rows = tx.open_table(DOC_ROWS)?;
        let idx = tx.open_table(IDX_UNIT)?;
        let (start, end) = (period.start(), period.end());
        let wanted = |unit: &str| units.is_none_or(|us| us.iter().any(|u| u == unit));
        let mut summaries = Vec::new();
        for row in idx.iter()? {
            let (k, _) = row?;
            let (unit, received, code) = k.value();
            if !wanted(unit) || received >= end.0 {
                continue;
            }
            let Some(s) = stored_summary(&rows, &motcua_schema::ids::dossier_doc_text(code))?
            else {
                continue;
            };
            let touches = |t: Option<Timestamp>| t.is_some_and(|t| period.contains(t));
            if s.open_at(start)
                || touches(s.received_at)
                || touches(s.resolved_at)
                || touches(s.closed_at)
                || s.open_at(end)
            {
                summaries.push(s);
            }
        }
        let ratings_table = tx.open_table(RATINGS)?;
        let ridx = tx.open_table(IDX_RATING_UNIT)?;
        let mut ratings = Vec::new();
        for row in ridx.iter()? {
            let (k, _) = row?;
            let (unit, at, id) = k.value();
            if !wanted(unit) || at < start.0 || at >= end.0 {
                continue;
            }
            if let Some(v) = ratings_table.get(id)? {
                ratings.push(decode_json("rating", v.value())?);
            }
        }
        Ok((summaries, ratings))
    }

    /// Sums of counters over local days `from..=to` for `unit` (all units when `None`).
    pub fn counter_sums(
        &self,
        unit: Option<&str>,
        from: time::Date,
        to: time::Date,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(COUNTERS)?;
        let (from, to) = (date_key(from), date_key(to));
        let mut out = BTreeMap::new();
        let units: Vec<String> = match unit {
            Some(u) => vec![u.to_owned()],
            None => self.units_with_counters(&table)?,
        };
        for u in units {
            for row in table.range((u.as_str(), from, "")..)? {
                let (k, v) = row?;
                let (ku, day, metric) = k.value();
                if ku != u || day > to {
                    break;
                }
                *out.entry(metric.to_owned()).or_insert(0) += v.value();
            }
        }
        Ok(out)
    }

    fn units_with_counters(
        &self,
        table: &redb::ReadOnlyTable<(&str, u32, &str), i64>,
    ) -> Result<Vec<String>, StoreError> {
        let mut units = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let row = match &next {
                None => table.first()?.map(|(k, _)| k.value().0.to_owned()),
                Some(after) => {
                    // Skip to the first key past every key of `after`.
                    let bound = format!("{after}\u{0}");
                    table
                        .range((bound.as_str(), 0u32, "")..)?
                        .next()
                        .transpose()?
                        .map(|(k, _)| k.value().0.to_owned())
                }
            };
            match row {
                Some(u) => {
                    units.push(u.clone());
                    next = Some(u);
                }
                None => return Ok(units),
            }
        }
    }

    /// Units that have dossiers or ratings in this store.
    pub fn units(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(COUNTERS)?;
        self.units_with_counters(&table)
    }

    /// Counts for the node status.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let tx = self.db.begin_read()?;
        let mut c = Counts {
            // Every summary has exactly one row in the unit index (`Apply::put_summary`).
            dossiers: tx.open_table(IDX_UNIT)?.len()?,
            ratings: tx.open_table(RATINGS)?.len()?,
            changes: tx.open_table(CHANGES)?.len()?,
            pending: tx.open_multimap_table(PENDING)?.len()?,
            rejects: tx.open_table(REJECTS)?.len()?,
            forks: tx.open_table(FORKS)?.len()?,
            by_status: BTreeMap::new(),
        };
        let idx = tx.open_table(IDX_STATUS)?;
        for status in Status::ALL {
            let n = status.number();
            let count = idx.range((n, "")..(n + 1, ""))?.count() as u64;
            if count > 0 {
                c.by_status.insert(status.name().to_owned(), count);
            }
        }
        Ok(c)
    }

    /// Every root-signed registry record this node holds.
    pub fn trust_records(&self) -> Result<Vec<SignedRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(TRUST)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode_json("registry record", row?.1.value())?);
        }
        Ok(out)
    }

    /// The latest rejects, newest first, as stored JSON.
    pub fn rejects(&self, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REJECTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            out.push(decode_json("reject", row?.1.value())?);
        }
        Ok(out)
    }

    /// Every stored change of one document, encoded.
    pub fn doc_changes(&self, doc: &DocId) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(DOC_ROWS)?;
        let changes = tx.open_table(CHANGES)?;
        let id = doc.to_string();
        let mut out = Vec::new();
        for row in idx.range(doc_changes_start(&id)..)? {
            let (key, hash) = row?;
            if key.value().0 != id {
                break;
            }
            let hash: &[u8; 32] = hash
                .value()
                .try_into()
                .map_err(|e| corrupt("change row", e))?;
            if let Some(env) = changes.get(hash)? {
                out.push(env.value().to_vec());
            }
        }
        Ok(out)
    }

    /// The id of this store, chosen when it was created.
    pub fn store_id(&self) -> Result<[u8; 16], StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let v = meta
            .get("store_id")?
            .ok_or_else(|| corrupt("store id", "missing"))?;
        v.value()
            .try_into()
            .map_err(|_| corrupt("store id", "length"))
    }

    /// The position of the last change in the local feed (0 when empty).
    pub fn feed_head(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(FEED)?.last()?.map_or(0, |(k, _)| k.value()))
    }
}

/// The summary stored for the dossier whose document id is `doc`, read from `rows`, the
/// [`DOC_ROWS`] table of a read or a write transaction (so that a caller reading many opens
/// one).
pub fn stored_summary(
    rows: &impl ReadableTable<(&'static str, &'static [u8], u64), &'static [u8]>,
    doc: &str,
) -> Result<Option<DossierSummary>, StoreError> {
    rows.get(doc_summary_key(doc))?
        .map(|v| decode_json("summary", v.value()))
        .transpose()
}

/// The codes of the dossiers transferred to `unit`, in code order, read from `idx`, the
/// [`IDX_TRANSFER`] table of a read or a write transaction; `None` if there are more than
/// `codes_max`.
pub fn transferred_to(
    idx: &impl ReadableTable<(&'static str, &'static str), ()>,
    unit: &str,
    codes_max: usize,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut codes = Vec::new();
    for row in idx.range((unit, "")..)? {
        let (k, _) = row?;
        let (to, code) = k.value();
        if to != unit {
            break;
        }
        if codes.len() == codes_max {
            return Ok(None);
        }
        codes.push(code.to_owned());
    }
    Ok(Some(codes))
}

/// Decodes a JSON row value, stored as text or as bytes; `what` names it in the error.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: impl AsRef<[u8]>,
) -> Result<T, StoreError> {
    serde_json::from_slice(text.as_ref()).map_err(|e| corrupt(what, e))
}

/// Folds a stored dossier document.
pub fn load_dossier_state(doc: &Automerge) -> Result<DossierState, StoreError> {
    layout::dossier::read(doc).map_err(|e| corrupt("dossier", e))
}

#[cfg(test)]
mod tests {
    use motcua_schema::dossier::Status;
    use motcua_schema::trust::Role;

    use super::ListFilter;
    use crate::commands::EventRequest;
    use crate::setup::Trust;
    use crate::test_nodes::{node, receive, temp};
    use crate::writer::{Command, Reply};

    #[test]
    fn lists_counts_and_counters_follow_a_dossier_through_its_steps() {
        // Why: a list by status, the overdue list, the counts by status and the counter sums
        // each read an index or the counters, never the documents; each must follow a dossier
        // as a step moves its rows, and read only its own status, dossiers and unit.
        let dir = temp("store-queries");
        let node = node(&dir.0, "000.01.01.H99", Role::Commune, Trust::NewRoot, None);
        for n in 1..=3 {
            receive(&node, n);
        }
        let store = &node.shared.store;
        let all = |status: Option<Status>, due_before| {
            let filter = ListFilter {
                status,
                due_before,
                code: None,
                id_number: None,
                text: None,
                unit: None,
                limit: 100,
            };
            let mut codes: Vec<String> = store
                .list(&filter)
                .unwrap()
                .into_iter()
                .map(|s| s.code.to_string())
                .collect();
            codes.sort();
            codes
        };
        let received = all(None, None);
        assert_eq!(received.len(), 3);
        let first = received[0].clone();
        let dues: Vec<_> = received
            .iter()
            .map(|code| store.summary(code).unwrap().unwrap().due_at.unwrap())
            .collect();
        let (earliest, latest) = (*dues.iter().min().unwrap(), *dues.iter().max().unwrap());
        assert_eq!(all(Some(Status::Received), None), received);
        assert_eq!(
            all(None, Some(latest.plus_millis(1))),
            received,
            "all three are due"
        );
        assert!(all(None, Some(earliest.plus_millis(-1_000_000_000))).is_empty());

        let reply = node
            .writer
            .submit_blocking(
                Command::AddEvent {
                    code: first.clone(),
                    req: EventRequest::Resolved {
                        note: String::new(),
                    },
                    by: "xuly".into(),
                },
                None,
            )
            .unwrap();
        assert!(matches!(reply, Reply::Dossier(_)));
        assert_eq!(all(Some(Status::Resolved), None), vec![first.clone()]);
        assert_eq!(all(Some(Status::Received), None), received[1..].to_vec());
        assert_eq!(
            all(None, Some(latest.plus_millis(1))),
            received[1..].to_vec(),
            "a resolved dossier is no longer due"
        );
        let counts = store.counts().unwrap();
        assert_eq!(counts.dossiers, 3);
        assert_eq!(counts.by_status.get(Status::Received.name()), Some(&2));
        assert_eq!(counts.by_status.get(Status::Resolved.name()), Some(&1));
        assert_eq!(store.units().unwrap(), vec!["000.01.01.H99".to_owned()]);
        // Days around today, so that a run across midnight counts the same.
        let today = crate::writer::clock_now().local_date();
        let (from, to) = (today.previous_day().unwrap(), today.next_day().unwrap());
        let sums = store.counter_sums(Some("000.01.01.H99"), from, to).unwrap();
        assert_eq!(sums.get("received"), Some(&3));
        assert_eq!(sums.get("received.direct"), Some(&3));
        assert_eq!(sums.get("resolved"), Some(&1));
        assert_eq!(store.counter_sums(None, from, to).unwrap(), sums);
        assert!(
            store
                .counter_sums(Some("000.01.02.H99"), from, to)
                .unwrap()
                .is_empty()
        );
    }
}
