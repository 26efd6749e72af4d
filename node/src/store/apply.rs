//! The apply pipeline: the one path by which any signed change, made here or received from a
//! peer or a bundle, enters the store.
//!
//! For each change, inside the caller's write transaction:
//! 1. skip it if its hash is already stored (idempotent);
//! 2. check the signer's enrolment at the change's time (`Registry::check_key`);
//! 3. detect equivocation: another change with the same (actor, document, seq) is kept as a fork
//!    proof naming the signer, and this one is refused;
//! 4. if the document lacks one of its dependencies, store it as pending (it is verified, so it is
//!    never dropped) and stop;
//! 5. check the role's scope against the document's current state (`Registry::authorize`);
//! 6. apply it to the document, then retry any pending changes of the document;
//! 7. update the document state, summary, indexes, counters, ratings or registry;
//! 8. store the envelope, append it to the feed and to the audit log (`crate::audit`).
//!
//! Every check happens before any write for that change, so a refused change leaves nothing
//! behind but its line in the reject log.

use automerge::{Automerge, ReadDoc};
use motcua_schema::ids::{DocId, UnitCode};
use motcua_schema::layout;
use motcua_schema::rating::Rating;
use motcua_schema::signed::SignedChange;
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Registry, SignedRecord};
use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};
use serde::Serialize;

use super::counters::{Cell, dossier_cells, rating_cells};
use super::doc_cache::{self, DocCache};
use super::tables::*;
use super::{StoreError, corrupt};

/// The key of `signed`'s row among its document's rows: (document, actor, seq). It finds a
/// second change with the same (actor, seq) (an equivocation) and lists a document's history
/// in one key range; the row's value is the change's hash.
fn change_row_key(signed: &SignedChange) -> (&str, &[u8], u64) {
    (
        signed.doc_id_text(),
        signed.actor().to_bytes(),
        signed.seq(),
    )
}

/// Whether `doc` lacks one of the changes `signed` depends on. Asks the document's change graph
/// (`get_missing_deps`); `get_change_by_hash`, used before, rebuilt each dependency's change
/// bytes from the op set just to test that it is there.
fn lacks_deps(doc: &Automerge, signed: &SignedChange) -> bool {
    // The pipeline never leaves changes queued in a document (it applies a change only when
    // its dependencies are present), so what is missing is exactly what the graph lacks.
    !doc.get_missing_deps(signed.change().deps()).is_empty()
}

/// What happened to a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored and applied, at this feed position.
    Stored(u64),
    /// Already held.
    Duplicate,
    /// Verified and stored, waiting for its dependencies.
    Pending(u64),
    /// Refused, with a reason.
    Rejected(Reject),
}

/// A refused change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// A stable reason name (`not_enrolled`, `out_of_scope`, `equivocation`, ...).
    pub reason: &'static str,
    /// A sentence for people.
    pub message: String,
}

/// What an apply changed beyond the store, for the caller to act on.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// The trust registry gained records.
    pub registry_changed: bool,
    /// The catalog or calendar document changed.
    pub config_changed: bool,
    /// The local feed grew to this head.
    pub feed_head: Option<u64>,
    /// The store found it lacks a change signed by this node's own key, so it lost history
    /// (restored from a backup): it took a new store id, and peers must start over from it.
    pub store_rotated: bool,
}

/// The pipeline bound to one write transaction.
pub struct Apply<'t> {
    tx: &'t WriteTransaction,
    registry: &'t mut Registry,
    docs: &'t DocCache,
    own_key: Option<[u8; 32]>,
    /// The summary the last applied dossier change derived, for a command to answer with
    /// (reading the document once more for it cost a fold of its whole history).
    derived: Option<DossierSummary>,
    /// Effects accumulated over the transaction.
    pub effects: Effects,
}

#[derive(Serialize)]
struct RejectRecord<'a> {
    at: Timestamp,
    origin: &'a str,
    doc: &'a str,
    hash: String,
    signer: String,
    reason: &'static str,
    message: &'a str,
}

/// What a change's scope is judged against.
#[derive(Clone, Copy)]
enum Judged<'a> {
    /// The document's stored state: for a dossier, its stored summary.
    Stored(Option<&'a DossierSummary>),
    /// The document it joins: a pending change released by a change of this batch is judged
    /// against it, since the summary is only saved after the pending changes are drained.
    Joining(&'a Automerge),
}

impl<'t> Apply<'t> {
    /// Binds the pipeline to a write transaction, the node's registry and the store's document
    /// cache (`Store::doc_cache`).
    pub fn new(
        tx: &'t WriteTransaction,
        registry: &'t mut Registry,
        docs: &'t DocCache,
    ) -> Apply<'t> {
        Apply {
            tx,
            registry,
            docs,
            own_key: None,
            derived: None,
            effects: Effects::default(),
        }
    }

    /// Tells the pipeline which key is this node's own, so that it notices when a peer sends
    /// back a change this node signed but no longer holds.
    pub fn set_own_key(&mut self, key: [u8; 32]) {
        self.own_key = Some(key);
    }

    /// The write transaction.
    pub fn tx(&self) -> &'t WriteTransaction {
        self.tx
    }

    /// Takes the summary the last dossier change this pipeline applied derived.
    pub fn take_derived(&mut self) -> Option<DossierSummary> {
        self.derived.take()
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        self.registry
    }

    /// Runs a change through the pipeline. `local_doc` is the document that already contains
    /// the change when this node just made it (saves reloading it); `origin` names where it came
    /// from for the reject log; `now` is when it was received.
    pub fn change(
        &mut self,
        signed: &SignedChange,
        local_doc: Option<Automerge>,
        origin: &str,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        self.derived = None;
        let hash = signed.hash();
        if self.tx.open_table(CHANGES)?.get(&hash)?.is_some() {
            return Ok(Applied::Duplicate);
        }
        let change_time = Timestamp(signed.change().timestamp().saturating_mul(1000));
        let signer = *signed.signer().as_bytes();
        if local_doc.is_none() && Some(signer) == self.own_key && !self.effects.store_rotated {
            // A change this node's own key signed, which this store does not hold: the store
            // lost history, i.e. it was restored from a backup. Its feed positions after the
            // backup will be reused for other changes, so peers' checkpoints of it are void: it
            // takes a new store id (peers then reconcile) and says so.
            self.rotate_store_id()?;
            tracing::warn!(
                seq = signed.seq(),
                doc = signed.doc_id_text(),
                "this store lacks a change its own key signed: it was restored from a backup; \
                 taking a new store id so that peers resynchronise"
            );
        }
        if let Err(e) = self.registry.check_key(&signer, change_time) {
            return self.reject(signed, origin, now, e.reason(), e.to_string());
        }
        let doc_text = signed.doc_id_text().to_owned();
        let is_local = local_doc.is_some();
        // Everything this change reads from the document's rows, through one handle: at every
        // open redb looks the table up and checks its stored type names, and at every drop it
        // stages the table's root again. (Opening it at each step, as before, and the audit
        // frontier twice, cost 0.8% more instructions in a 3-day simulator run.)
        let (stored_doc, prior) = {
            let rows = self.tx.open_table(DOC_ROWS)?;
            let existing: Option<[u8; 32]> = rows
                .get(change_row_key(signed))?
                .map(|v| v.value().try_into())
                .transpose()
                .map_err(|e| corrupt("change row", e))?;
            if let Some(first) = existing {
                drop(rows);
                let message = format!(
                    "signer {} made two changes with seq {}",
                    hex::encode(signer),
                    signed.seq()
                );
                // The proof is kept with the first refusal, like its line in the reject log.
                if self.log_reject(signed, origin, now, "equivocation", &message)? {
                    self.record_fork(signed, first)?;
                }
                return Ok(Applied::Rejected(Reject {
                    reason: "equivocation",
                    message,
                }));
            }
            let stored_doc = if is_local {
                None
            } else {
                self.load_doc(&rows, &doc_text)?
            };
            // The dossier's stored summary: the scope check reads its transfers, and the
            // derive step compares the new summary with it.
            let prior = match signed.doc_id() {
                DocId::Dossier(_) => super::stored_summary(&rows, &doc_text)?,
                _ => None,
            };
            (stored_doc, prior)
        };
        let mut doc = match local_doc {
            Some(doc) => doc,
            None => {
                let doc = stored_doc.unwrap_or_default();
                if lacks_deps(&doc, signed) {
                    // Scope depends on the document's state, which is incomplete: judge it when
                    // the dependencies arrive (see `drain_pending`).
                    let pos = self.store_envelope(signed)?;
                    self.tx
                        .open_table(DOC_ROWS)?
                        .insert(change_row_key(signed), hash.as_slice())?;
                    self.tx
                        .open_multimap_table(PENDING)?
                        .insert(doc_text.as_str(), &hash)?;
                    return Ok(Applied::Pending(pos));
                }
                doc
            }
        };
        if let Err(reject) = self.authorize(signed, change_time, Judged::Stored(prior.as_ref())) {
            return self.reject(signed, origin, now, reject.reason, reject.message);
        }
        if !is_local {
            doc.apply_changes([signed.change().clone()])
                .map_err(|e| corrupt("change application", e))?;
        }
        let pos = self.store_envelope(signed)?;
        let mut appended = vec![signed.raw_change().to_vec()];
        self.drain_pending(&doc_text, &mut doc, now, &mut appended)?;
        self.save_and_derive(signed, doc, &appended, prior)?;
        Ok(Applied::Stored(pos))
    }

    fn rotate_store_id(&mut self) -> Result<(), StoreError> {
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        id[0] |= 1; // never all zeros
        self.tx
            .open_table(META)?
            .insert("store_id", id.as_slice())?;
        self.effects.store_rotated = true;
        Ok(())
    }

    /// Scope check against the document's current state (see [`Judged`]).
    fn authorize(
        &self,
        signed: &SignedChange,
        at: Timestamp,
        state: Judged<'_>,
    ) -> Result<(), Reject> {
        let transfers: Vec<UnitCode> = match (signed.doc_id(), state) {
            (DocId::Dossier(_), Judged::Joining(doc)) => layout::dossier::read(doc)
                .map(|s| s.transfers)
                .unwrap_or_default(),
            (DocId::Dossier(_), Judged::Stored(summary)) => {
                summary.map(|s| s.transfers.clone()).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        self.registry
            .authorize(signed.signer().as_bytes(), at, signed.doc_id(), &transfers)
            .map(|_| ())
            .map_err(|e| Reject {
                reason: e.reason(),
                message: e.to_string(),
            })
    }

    /// The document's stored state: from the cache when it holds exactly the stored bytes,
    /// parsed from them otherwise.
    fn load_doc(
        &self,
        rows: &impl ReadableTable<(&'static str, &'static [u8], u64), &'static [u8]>,
        doc_text: &str,
    ) -> Result<Option<Automerge>, StoreError> {
        let Some(stored) = rows.get(doc_state_key(doc_text))? else {
            return Ok(None);
        };
        if let Some(doc) = self.docs.take(doc_text, stored.value()) {
            return Ok(Some(doc));
        }
        Automerge::load(stored.value())
            .map(Some)
            .map_err(|e| corrupt("document", e))
    }

    /// Stores the envelope and appends it to the feed. (Its row in its document's rows, which
    /// indexes it by (document, actor, seq), is written by the caller with the document's other
    /// rows: see [`change_row_key`].)
    fn store_envelope(&mut self, signed: &SignedChange) -> Result<u64, StoreError> {
        let hash = signed.hash();
        let envelope = signed.encode();
        self.tx
            .open_table(CHANGES)?
            .insert(&hash, envelope.as_slice())?;
        let mut feed = self.tx.open_table(FEED)?;
        let pos = feed.last()?.map_or(0, |(k, _)| k.value()) + 1;
        let size = u32::try_from(envelope.len()).unwrap_or(u32::MAX);
        feed.insert(pos, (&hash, size, signed.doc_id_text()))?;
        drop(feed);
        // Every stored change is also the next leaf of the audit log, in this same transaction.
        crate::audit::log::append(self.tx, pos, &envelope)?;
        self.effects.feed_head = Some(pos);
        Ok(pos)
    }

    /// Applies pending changes of `doc_text` whose dependencies are now present.
    /// Their change chunks are added to `appended`.
    fn drain_pending(
        &mut self,
        doc_text: &str,
        doc: &mut Automerge,
        now: Timestamp,
        appended: &mut Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        loop {
            let hashes: Vec<[u8; 32]> = {
                let pending = self.tx.open_multimap_table(PENDING)?;
                let mut v = Vec::new();
                for h in pending.get(doc_text)? {
                    v.push(*h?.value());
                }
                v
            };
            let mut progressed = false;
            for hash in hashes {
                let env = self
                    .tx
                    .open_table(CHANGES)?
                    .get(&hash)?
                    .map(|v| v.value().to_vec());
                let Some(env) = env else { continue };
                let signed =
                    SignedChange::decode(&env).map_err(|e| corrupt("pending change", e))?;
                if lacks_deps(doc, &signed) {
                    continue;
                }
                self.tx
                    .open_multimap_table(PENDING)?
                    .remove(doc_text, &hash)?;
                progressed = true;
                let at = Timestamp(signed.change().timestamp().saturating_mul(1000));
                if let Err(reject) = self.authorize(&signed, at, Judged::Joining(doc)) {
                    // It was stored while its scope could not be judged; it stays stored as
                    // evidence but never enters the document.
                    self.log_reject(&signed, "pending", now, reject.reason, &reject.message)?;
                    continue;
                }
                doc.apply_changes([signed.change().clone()])
                    .map_err(|e| corrupt("change application", e))?;
                appended.push(signed.raw_change().to_vec());
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Stores the document, which took in the change chunks `appended` since it was stored (the
    /// first of them `signed`'s), and updates everything derived from it
    /// (`prior`: a dossier's stored summary); the document then goes to the cache.
    fn save_and_derive(
        &mut self,
        signed: &SignedChange,
        doc: Automerge,
        appended: &[Vec<u8>],
        prior: Option<DossierSummary>,
    ) -> Result<(), StoreError> {
        let doc_id = signed.doc_id();
        let text = signed.doc_id_text();
        let summary_row = self.derive(doc_id, text, &doc, prior)?;
        // The change's row, the document's state and its summary, through one handle (see
        // `change`).
        let bytes = {
            let mut rows = self.tx.open_table(DOC_ROWS)?;
            rows.insert(change_row_key(signed), signed.hash().as_slice())?;
            let bytes = {
                let old = rows.get(doc_state_key(text))?;
                doc_cache::stored_bytes(old.as_ref().map(|v| v.value()), appended, &doc)
            };
            rows.insert(doc_state_key(text), bytes.as_slice())?;
            if let Some(json) = summary_row {
                rows.insert(doc_summary_key(text), json.as_slice())?;
            }
            bytes
        };
        // A closed dossier (refused, withdrawn, stopped or returned) expects no more steps, so
        // it is not kept parsed: it would hold about 25 KB of memory and a cache slot that an
        // open dossier's next step needs. (A commune's cache, which never fills, held every
        // dossier it ever wrote: the 30-day simulation peaked at 2.00 GB with them, 1.47 GB
        // without.) The rare later change, such as a conflict settled, parses it from the store.
        let closed = matches!(doc_id, DocId::Dossier(_))
            && self
                .derived
                .as_ref()
                .and_then(|s| s.status)
                .is_some_and(|s| s.is_closed());
        if !closed {
            self.docs.put(text, bytes, doc);
        }
        Ok(())
    }

    /// Updates the summary, indexes, counters, ratings, registry or witnessed checkpoints a
    /// document's new state implies. Returns the dossier's new summary row when it changed,
    /// for the caller to write with the document's other rows.
    fn derive(
        &mut self,
        doc_id: &DocId,
        text: &str,
        doc: &Automerge,
        prior: Option<DossierSummary>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut summary_row = None;
        match doc_id {
            DocId::Dossier(code) => match layout::dossier::read(doc) {
                Ok(state) => {
                    let summary = DossierSummary::from(&state);
                    summary_row = self.put_summary(code.as_str(), prior, &summary)?;
                    self.derived = Some(summary);
                }
                Err(e) => {
                    tracing::warn!(doc = %text, error = %e, "stored dossier change but cannot read the document")
                }
            },
            DocId::Ratings(..) => match layout::ratings::read(doc) {
                Ok(ratings) => {
                    for r in ratings {
                        self.put_rating(&r)?;
                    }
                }
                Err(e) => {
                    tracing::warn!(doc = %text, error = %e, "stored ratings change but cannot read the document")
                }
            },
            DocId::Registry => match layout::registry::read(doc) {
                Ok(records) => {
                    for record in records {
                        self.add_trust_record(record)?;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stored registry change but cannot read the document")
                }
            },
            DocId::Log(..) => match layout::log::read(doc) {
                // Peers' checkpoints (and this node's own, when they come back): witnessed.
                Ok(records) => crate::audit::log::witness(self.tx, &records)?,
                Err(e) => {
                    tracing::warn!(doc = %text, error = %e, "stored log change but cannot read the document")
                }
            },
            DocId::Catalog | DocId::Calendar => self.effects.config_changed = true,
        }
        Ok(summary_row)
    }

    /// Moves the index entries and counters of dossier `code` from its summary `old`, as
    /// stored, to `new`, and returns the summary row to store in its place (`None`: unchanged).
    ///
    /// Only the index rows and counters whose key changed are written: most lifecycle steps
    /// change the status and little else, and every table a transaction touches costs its
    /// commit a copy of the pages on the path to the row.
    fn put_summary(
        &mut self,
        code: &str,
        old: Option<DossierSummary>,
        new: &DossierSummary,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if old.as_ref() == Some(new) {
            return Ok(None);
        }
        let old_ref = old.as_ref();
        let status_key = |s: &DossierSummary| s.status.map(|st| (st.number(), code));
        self.move_index_row(IDX_STATUS, old_ref.and_then(status_key), status_key(new))?;
        let due_key = |s: &DossierSummary| {
            s.status
                .filter(|st| !st.is_finished())
                .and(s.due_at)
                .map(|d| (d.0, code))
        };
        self.move_index_row(IDX_DUE, old_ref.and_then(due_key), due_key(new))?;
        self.move_index_row(
            IDX_APPLICANT,
            old_ref.map(|o| (o.applicant_id_number.as_str(), code)),
            Some((new.applicant_id_number.as_str(), code)),
        )?;
        let received = |s: &DossierSummary| s.received_at.map_or(i64::MIN, |t| t.0);
        self.move_index_row(
            IDX_UNIT,
            old_ref.map(|o| (o.unit.as_str(), received(o), code)),
            Some((new.unit.as_str(), received(new), code)),
        )?;
        let transfers_old = old_ref.map(|o| o.transfers.as_slice()).unwrap_or_default();
        if transfers_old != new.transfers.as_slice() {
            let mut transfer = self.tx.open_table(IDX_TRANSFER)?;
            for to in transfers_old {
                transfer.remove((to.as_str(), code))?;
            }
            for to in &new.transfers {
                transfer.insert((to.as_str(), code), ())?;
            }
        }
        let old_cells = old_ref.map(dossier_cells).unwrap_or_default();
        self.move_counters(&old_cells, &dossier_cells(new))?;
        Ok(Some(serde_json::to_vec(new).expect("summary serialises")))
    }

    /// Moves one index row of a dossier from key `old` to key `new` (either may be absent);
    /// writes nothing, and leaves the table untouched, when the key did not change.
    fn move_index_row<'k, K: redb::Key + 'static>(
        &self,
        index: redb::TableDefinition<'_, K, ()>,
        old: Option<K::SelfType<'k>>,
        new: Option<K::SelfType<'k>>,
    ) -> Result<(), StoreError>
    where
        K::SelfType<'k>: PartialEq,
    {
        if old == new {
            return Ok(());
        }
        let mut table = self.tx.open_table(index)?;
        if let Some(o) = old {
            table.remove(o)?;
        }
        if let Some(n) = new {
            table.insert(n, ())?;
        }
        Ok(())
    }

    /// Subtracts one from each `old` cell and adds one to each `new` cell; a cell in both is
    /// left alone (it does not move), and the table is not opened when nothing moves.
    fn move_counters(&mut self, old: &[Cell], new: &[Cell]) -> Result<(), StoreError> {
        let mut deltas: std::collections::BTreeMap<&Cell, i64> = std::collections::BTreeMap::new();
        for c in old {
            *deltas.entry(c).or_default() -= 1;
        }
        for c in new {
            *deltas.entry(c).or_default() += 1;
        }
        deltas.retain(|_, d| *d != 0);
        if deltas.is_empty() {
            return Ok(());
        }
        let mut table = self.tx.open_table(COUNTERS)?;
        for (c, delta) in deltas {
            let key = (c.unit.as_str(), c.day, c.metric.as_str());
            let current = table.get(key)?.map_or(0, |v| v.value());
            let next = current + delta;
            if next == 0 {
                table.remove(key)?;
            } else {
                table.insert(key, next)?;
            }
        }
        Ok(())
    }

    /// Stores a rating the first time it is seen. Ratings never change once taken.
    fn put_rating(&mut self, r: &Rating) -> Result<(), StoreError> {
        if self.tx.open_table(RATINGS)?.get(r.id.as_str())?.is_some() {
            return Ok(());
        }
        let json = serde_json::to_string(r).expect("rating serialises");
        self.tx
            .open_table(RATINGS)?
            .insert(r.id.as_str(), json.as_str())?;
        self.tx
            .open_table(IDX_RATING_UNIT)?
            .insert((r.unit.as_str(), r.at.0, r.id.as_str()), ())?;
        self.move_counters(&[], &rating_cells(r))
    }

    /// Verifies a root-signed record and adds it to the registry and the trust table.
    pub fn add_trust_record(&mut self, record: SignedRecord) -> Result<bool, StoreError> {
        match self.registry.insert(record.clone()) {
            Ok(true) => {
                let json = serde_json::to_string(&record).expect("record serialises");
                self.tx
                    .open_table(TRUST)?
                    .insert(record.id().as_str(), json.as_str())?;
                self.effects.registry_changed = true;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "registry record refused");
                Ok(false)
            }
        }
    }

    fn record_fork(
        &mut self,
        second: &SignedChange,
        first_hash: [u8; 32],
    ) -> Result<(), StoreError> {
        let first = self
            .tx
            .open_table(CHANGES)?
            .get(&first_hash)?
            .map(|v| hex::encode(v.value()));
        let proof = serde_json::json!({
            "doc": second.doc_id_text(),
            "actor": second.actor().to_hex_string(),
            "seq": second.seq(),
            "signer": hex::encode(second.signer().as_bytes()),
            "first": first,
            "second": hex::encode(second.encode()),
        });
        let mut forks = self.tx.open_table(FORKS)?;
        let n = forks.last()?.map_or(0, |(k, _)| k.value()) + 1;
        forks.insert(n, proof.to_string().as_str())?;
        tracing::warn!(signer = %hex::encode(second.signer().as_bytes()), doc = second.doc_id_text(), "equivocation: fork proof kept");
        Ok(())
    }

    fn reject(
        &mut self,
        signed: &SignedChange,
        origin: &str,
        now: Timestamp,
        reason: &'static str,
        message: String,
    ) -> Result<Applied, StoreError> {
        self.log_reject(signed, origin, now, reason, &message)?;
        Ok(Applied::Rejected(Reject { reason, message }))
    }

    /// Logs a refusal the first time this change is refused for `reason`, and says whether it
    /// did. Refusals are remembered for the log only, not as verdicts: a change refused because
    /// its signer's enrolment had not arrived yet is judged again, and applied, once it has.
    fn log_reject(
        &mut self,
        signed: &SignedChange,
        origin: &str,
        now: Timestamp,
        reason: &'static str,
        message: &str,
    ) -> Result<bool, StoreError> {
        let hash = signed.hash();
        if self.tx.open_table(REFUSED)?.get((&hash, reason))?.is_some() {
            tracing::debug!(
                origin,
                doc = signed.doc_id_text(),
                reason,
                "change refused again"
            );
            return Ok(false);
        }
        tracing::warn!(
            origin,
            doc = signed.doc_id_text(),
            reason,
            message,
            "change rejected"
        );
        let record = RejectRecord {
            at: now,
            origin,
            doc: signed.doc_id_text(),
            hash: hex::encode(signed.hash()),
            signer: hex::encode(signed.signer().as_bytes()),
            reason,
            message,
        };
        let json = serde_json::to_string(&record).expect("reject serialises");
        let mut rejects = self.tx.open_table(REJECTS)?;
        let n = rejects.last()?.map_or(0, |(k, _)| k.value()) + 1;
        rejects.insert(n, json.as_str())?;
        drop(rejects);
        self.tx.open_table(REFUSED)?.insert((&hash, reason), n)?;
        Ok(true)
    }

    /// Allocates the next number of sequence `name` for `unit` on local day `day`, skipping any
    /// number for which `taken` says a record already exists (e.g. after a restore from backup
    /// whose sequence table is older than its records).
    pub fn next_number(
        &mut self,
        unit: &str,
        name: &str,
        day: u32,
        taken: impl Fn(&Self, u32) -> Result<bool, StoreError>,
    ) -> Result<u32, StoreError> {
        let current = self
            .tx
            .open_table(SEQUENCES)?
            .get((unit, name, day))?
            .map_or(0, |v| v.value());
        let mut n = current + 1;
        while taken(self, n)? {
            n += 1;
        }
        self.tx
            .open_table(SEQUENCES)?
            .insert((unit, name, day), n)?;
        Ok(n)
    }

    /// Whether a dossier with this code exists.
    pub fn has_dossier(&self, code: &str) -> Result<bool, StoreError> {
        let doc = motcua_schema::ids::dossier_doc_text(code);
        Ok(self
            .tx
            .open_table(DOC_ROWS)?
            .get(doc_summary_key(&doc))?
            .is_some())
    }

    /// Whether a rating with this id exists.
    pub fn has_rating(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tx.open_table(RATINGS)?.get(id)?.is_some())
    }

    /// Loads a document inside this transaction (sees this batch's earlier writes).
    pub fn doc(&self, doc: &DocId) -> Result<Option<Automerge>, StoreError> {
        self.load_doc(&self.tx.open_table(DOC_ROWS)?, &doc.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use automerge::transaction::CommitOptions;
    use ed25519_dalek::SigningKey;
    use motcua_schema::catalog::ProcessingTime;
    use motcua_schema::dossier::{Applicant, Channel, Event, EventBody, Header};
    use motcua_schema::ids::DossierCode;
    use motcua_schema::signed::actor_for;
    use motcua_schema::trust::{RecordBody, Role, SignedRecord};

    const T: Timestamp = Timestamp(1_750_000_000_000);

    fn root() -> SigningKey {
        SigningKey::from_bytes(&[200; 32])
    }

    fn registry(enrolled: &[(&SigningKey, &str, Role)]) -> Registry {
        let mut r = Registry::new(root().verifying_key());
        for (key, unit, role) in enrolled {
            let body = RecordBody::Enrolment {
                node_key: hex::encode(key.verifying_key().as_bytes()),
                unit: UnitCode::new(unit).unwrap(),
                unit_name: (*unit).to_owned(),
                role: *role,
                valid_from: Timestamp(0),
                valid_until: None,
                issued_at: Timestamp(0),
            };
            r.insert(SignedRecord::sign(&body, &root())).unwrap();
        }
        r
    }

    fn event(body: EventBody) -> Event {
        Event {
            at: T,
            by: "cb".into(),
            unit: UnitCode::new("X1").unwrap(),
            body,
        }
    }

    /// A dossier document of `unit` with its creating change, signed by `key` under `epoch`.
    fn create(key: &SigningKey, epoch: u8, code: &str) -> (Automerge, SignedChange) {
        let code = DossierCode::parse(code).unwrap();
        let header = Header {
            code: code.clone(),
            unit: code.unit(),
            procedure_code: "1.004873".into(),
            procedure_name: "Xác nhận tình trạng hôn nhân".into(),
            agency: "Tư pháp".into(),
            processing: ProcessingTime::WorkingDays(3),
            channel: Channel::Online,
            applicant: Applicant {
                name: "A".into(),
                id_number: "001099012345".into(),
                phone: String::new(),
                address: String::new(),
            },
            digitised: false,
        };
        let mut doc = Automerge::new().with_actor(actor_for(&key.verifying_key(), [epoch; 8]));
        let mut tx = doc.transaction();
        layout::dossier::create(
            &mut tx,
            &header,
            &event(EventBody::Received {
                due_at: T.plus_millis(1_000_000),
            }),
        )
        .unwrap();
        tx.commit_with(CommitOptions::default().with_time(T.0 / 1000));
        let signed = SignedChange::sign(
            &DocId::Dossier(code),
            doc.get_last_local_change().unwrap(),
            key,
        )
        .unwrap();
        (doc, signed)
    }

    fn append(doc: &mut Automerge, key: &SigningKey, code: &str, body: EventBody) -> SignedChange {
        let mut tx = doc.transaction();
        layout::dossier::append(&mut tx, &event(body)).unwrap();
        tx.commit_with(CommitOptions::default().with_time(T.0 / 1000));
        SignedChange::sign(
            &DocId::Dossier(DossierCode::parse(code).unwrap()),
            doc.get_last_local_change().unwrap(),
            key,
        )
        .unwrap()
    }

    fn apply_all(store: &Store, reg: &mut Registry, changes: &[&SignedChange]) -> Vec<Applied> {
        let tx = store.db().begin_write().unwrap();
        let mut out = Vec::new();
        {
            let mut apply = Apply::new(&tx, reg, store.doc_cache());
            for c in changes {
                out.push(apply.change(c, None, "test", T).unwrap());
            }
        }
        tx.commit().unwrap();
        out
    }

    #[test]
    fn duplicates_are_idempotent_and_dependencies_wait_as_pending() {
        // Why: peers resend and reorder; a change must be stored once, and a change whose
        // dependency has not arrived is kept (verified changes are never dropped) and applied
        // when it does.
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut reg = registry(&[(&key, "X1", Role::Commune)]);
        let store = Store::open_in_memory([9; 16]).unwrap();
        let code = "X1-250601-0001";
        let (mut doc, first) = create(&key, 1, code);
        let second = append(
            &mut doc,
            &key,
            code,
            EventBody::Resolved {
                note: String::new(),
            },
        );
        let r = apply_all(&store, &mut reg, &[&second, &first, &first]);
        assert!(matches!(r[0], Applied::Pending(_)), "{r:?}");
        assert!(matches!(r[1], Applied::Stored(_)), "{r:?}");
        assert_eq!(r[2], Applied::Duplicate);
        let summary = store.summary(code).unwrap().unwrap();
        assert_eq!(
            summary.status,
            Some(motcua_schema::dossier::Status::Resolved)
        );
        assert_eq!(store.counts().unwrap().pending, 0);
    }

    #[test]
    fn an_open_dossier_stays_parsed_and_a_closed_one_is_let_go() {
        // Why: the cache is for documents that will change again; a returned dossier kept
        // parsed took memory and a slot from an open one. Letting it go must not change what a
        // later change to it finds: it is parsed from the store.
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut reg = registry(&[(&key, "X1", Role::Commune)]);
        let store = Store::open_in_memory([9; 16]).unwrap();
        let code = "X1-250601-0003";
        let doc_id = format!("dossier/{code}");
        let cached = |store: &Store| {
            let bytes = store.doc_state_bytes(&doc_id).unwrap().unwrap();
            let doc = store.doc_cache().take(&doc_id, &bytes);
            if let Some(doc) = doc {
                store.doc_cache().put(&doc_id, bytes, doc);
                true
            } else {
                false
            }
        };
        let (mut doc, created) = create(&key, 1, code);
        let resolved = append(
            &mut doc,
            &key,
            code,
            EventBody::Resolved {
                note: String::new(),
            },
        );
        let r = apply_all(&store, &mut reg, &[&created, &resolved]);
        assert!(r.iter().all(|a| matches!(a, Applied::Stored(_))), "{r:?}");
        assert!(
            cached(&store),
            "a resolved dossier still waits to be returned"
        );

        let returned = append(
            &mut doc,
            &key,
            code,
            EventBody::Returned {
                method: motcua_schema::dossier::ReturnMethod::Counter,
            },
        );
        let r = apply_all(&store, &mut reg, &[&returned]);
        assert!(matches!(r[0], Applied::Stored(_)), "{r:?}");
        assert!(!cached(&store), "a returned dossier is closed");
        let status = |store: &Store| store.summary(code).unwrap().unwrap().status;
        assert_eq!(
            status(&store),
            Some(motcua_schema::dossier::Status::Returned)
        );

        // A later change (here an edit after the return, as a conflict settled would be)
        // parses the document from the store and is applied as before.
        let late = append(
            &mut doc,
            &key,
            code,
            EventBody::Resolved {
                note: "sau khi trả".into(),
            },
        );
        let r = apply_all(&store, &mut reg, &[&late]);
        assert!(matches!(r[0], Applied::Stored(_)), "{r:?}");
        let stored = store.doc_state_bytes(&doc_id).unwrap().unwrap();
        let reloaded = Automerge::load(&stored).unwrap();
        assert_eq!(reloaded.get_heads(), doc.get_heads());
    }

    #[test]
    fn equivocation_keeps_a_fork_proof_and_refuses_the_second_change() {
        // Why: two different changes with one (actor, seq) mean a node signed two histories; the
        // evidence must be kept and the signer named.
        let key = SigningKey::from_bytes(&[2; 32]);
        let mut reg = registry(&[(&key, "X1", Role::Commune)]);
        let store = Store::open_in_memory([9; 16]).unwrap();
        let code = "X1-250601-0002";
        let (doc, first) = create(&key, 1, code);
        let mut a = doc.fork();
        let mut b = doc.fork();
        a.set_actor(actor_for(&key.verifying_key(), [1; 8]));
        b.set_actor(actor_for(&key.verifying_key(), [1; 8]));
        let x = append(
            &mut a,
            &key,
            code,
            EventBody::Resolved {
                note: "một".into()
            },
        );
        let y = append(
            &mut b,
            &key,
            code,
            EventBody::Withdrawn {
                reason: "hai".into(),
            },
        );
        assert_eq!((x.seq(), x.actor()), (y.seq(), y.actor()));
        let r = apply_all(&store, &mut reg, &[&first, &x, &y]);
        assert!(
            matches!(&r[2], Applied::Rejected(j) if j.reason == "equivocation"),
            "{r:?}"
        );
        assert_eq!(store.counts().unwrap().forks, 1);
        // A peer that keeps offering it is refused every time, but the proof and the reject
        // are kept once (an equivocating node re-sending in every session made hundreds).
        for _ in 0..3 {
            let r = apply_all(&store, &mut reg, &[&y]);
            assert!(
                matches!(&r[0], Applied::Rejected(j) if j.reason == "equivocation"),
                "{r:?}"
            );
        }
        let counts = store.counts().unwrap();
        assert_eq!((counts.forks, counts.rejects), (1, 1));
    }

    #[test]
    fn changes_outside_scope_or_from_unknown_keys_are_rejected_and_logged() {
        // Why: a commune may write only its own unit's records, and only enrolled keys may write.
        let key = SigningKey::from_bytes(&[3; 32]);
        let stranger = SigningKey::from_bytes(&[4; 32]);
        let mut reg = registry(&[(&key, "X1", Role::Commune)]);
        let store = Store::open_in_memory([9; 16]).unwrap();
        let (_, other_unit) = create(&key, 1, "X2-250601-0001");
        let (_, unknown) = create(&stranger, 1, "X1-250601-0003");
        let r = apply_all(&store, &mut reg, &[&other_unit, &unknown]);
        assert!(
            matches!(&r[0], Applied::Rejected(j) if j.reason == "out_of_scope"),
            "{r:?}"
        );
        assert!(
            matches!(&r[1], Applied::Rejected(j) if j.reason == "not_enrolled"),
            "{r:?}"
        );
        let counts = store.counts().unwrap();
        assert_eq!((counts.rejects, counts.dossiers, counts.changes), (2, 0, 0));
        // Offered again: refused again, logged once.
        let r = apply_all(&store, &mut reg, &[&other_unit, &unknown]);
        assert!(r.iter().all(|a| matches!(a, Applied::Rejected(_))), "{r:?}");
        assert_eq!(store.counts().unwrap().rejects, 2);
    }

    #[test]
    fn a_change_refused_before_its_signer_was_enrolled_is_applied_once_enrolled() {
        // Why: refusals are logged once but never remembered as verdicts; a commune's first
        // changes can arrive before its enrolment record does.
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut reg = registry(&[]);
        let store = Store::open_in_memory([9; 16]).unwrap();
        let (_, created) = create(&key, 1, "X1-250601-0004");
        let r = apply_all(&store, &mut reg, &[&created]);
        assert!(
            matches!(&r[0], Applied::Rejected(j) if j.reason == "not_enrolled"),
            "{r:?}"
        );
        let enrolled = registry(&[(&key, "X1", Role::Commune)]);
        let mut reg = enrolled;
        let r = apply_all(&store, &mut reg, &[&created]);
        assert!(matches!(r[0], Applied::Stored(_)), "{r:?}");
        assert_eq!(store.counts().unwrap().rejects, 1);
    }
}
