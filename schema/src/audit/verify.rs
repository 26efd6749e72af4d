//! The verifier's checks, as pure functions of an archive's bytes: what `motcua audit verify`
//! runs and what `docs/audit-format.md` ("Verification") asks of any verifier.
//!
//! Order: the container and manifest; the registry (root signatures); each change (envelope,
//! hash, checksum, actor binding, signature, enrolment and revocation at its time, role scope,
//! equivocation); the exporter's log (checkpoint signatures, their chain of consistency proofs,
//! the range proof placing every change); witnessed logs (signatures, consistency, split views,
//! and the exporter's own checkpoints seen by others); fork proofs; then clock sanity.
//!
//! Signatures are the expensive part, so the caller supplies the function that checks them
//! ([`check_signatures`] here, or the same split over threads by the node's CLI).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{Automerge, Change};
use ed25519_dalek::VerifyingKey;

use super::archive::{self, Archive, CheckpointRecord, Section, hash_from_b64};
use super::change::{ChangeHeader, Envelope, parse_change, parse_envelope};
use super::merkle::{self, Hash, empty_root, leaf_hash};
use super::note::Checkpoint;
use super::report::{Finding, PROVINCE_WIDE, Report, SignerSummary};
use super::sig::{self, Job, KeyCache, Mode};
use crate::ids::DocId;
use crate::layout;
use crate::signed::{SignedChange, signing_message};
use crate::timestamp::Timestamp;
use crate::trust::{Registry, Role, SignedRecord};

/// How far a change's time may run ahead of the checkpoint that first logged it (and a change
/// ahead of... its dependency), in milliseconds, before it is flagged as a clock anomaly.
pub const CLOCK_SKEW_MS_MAX: i64 = 10 * 60 * 1000;

/// Most changes in the history read to check one transfer-scoped change, in changes: a dossier
/// holds at most `DOSSIER_EVENTS_COUNT_MAX` events, so a longer history is not a dossier's, and
/// the bound keeps a hostile archive from making the check quadratic.
pub const TRANSFER_HISTORY_CHANGES_MAX: usize = 2 * crate::limits::DOSSIER_EVENTS_COUNT_MAX;

/// What the caller asks of a verification.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The province root key the inspector trusts (obtained elsewhere); `None` accepts the
    /// archive's, and the report prints it for the inspector to compare.
    pub root_key: Option<[u8; 32]>,
    /// Checkpoints of other archives' witness sections, to compare with this one's logs.
    pub witnesses: Vec<archive::WitnessedLog>,
}

/// One signature to check: the change `hash` in `doc_id`, signed by `key`.
#[derive(Debug, Clone, Copy)]
pub struct SigInput<'a> {
    /// Signer key.
    pub key: &'a [u8; 32],
    /// Signature.
    pub signature: &'a [u8; 64],
    /// Document id as signed.
    pub doc_id: &'a str,
    /// Change hash.
    pub hash: Hash,
}

/// Checks signatures in one thread (see `sig` for the modes).
pub fn check_signatures(inputs: &[SigInput<'_>], cache: &mut KeyCache, mode: Mode) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = inputs
        .iter()
        .map(|i| signing_message(i.doc_id, &i.hash))
        .collect();
    let jobs: Vec<Job<'_>> = inputs
        .iter()
        .zip(&messages)
        .map(|(i, m)| Job {
            key: i.key,
            message: m,
            signature: i.signature,
        })
        .collect();
    sig::verify_all(&jobs, cache, mode)
}

/// A change that could be read.
struct Entry<'a> {
    position: usize,
    leaf: u64,
    env: Envelope<'a>,
    header: ChangeHeader<'a>,
    doc: DocId,
    unit: &'a str,
}

impl Entry<'_> {
    fn record(&self) -> String {
        format!(
            "change #{} (leaf {}, {})",
            self.position, self.leaf, self.env.doc_id
        )
    }

    fn time(&self) -> Timestamp {
        Timestamp(self.header.time.saturating_mul(1000))
    }

    fn finding(&self, reason: &str, message: String) -> Finding {
        Finding {
            reason: reason.into(),
            record: self.record(),
            hash: Some(hex::encode(self.header.hash)),
            unit: Some(self.unit.to_owned()),
            message,
        }
    }
}

fn plain(reason: &str, record: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        reason: reason.into(),
        record: record.into(),
        hash: None,
        unit: None,
        message: message.into(),
    }
}

fn kind_of(doc: &DocId) -> &'static str {
    match doc {
        DocId::Dossier(_) => "dossier",
        DocId::Ratings(..) => "ratings",
        DocId::Log(..) => "log",
        DocId::Catalog => "catalog",
        DocId::Calendar => "calendar",
        DocId::Registry => "registry",
    }
}

/// The unit part of a valid document id, borrowed ([`PROVINCE_WIDE`] for province-wide ones).
fn unit_slice(doc_id: &str) -> &str {
    if let Some(code) = doc_id.strip_prefix("dossier/") {
        // `<unit>-<YYMMDD>-<NNNN>`: a unit code never contains '-'.
        return code.split('-').next().unwrap_or(PROVINCE_WIDE);
    }
    for prefix in ["ratings/", "log/"] {
        if let Some(rest) = doc_id.strip_prefix(prefix) {
            return rest.split('/').next().unwrap_or(PROVINCE_WIDE);
        }
    }
    PROVINCE_WIDE
}

fn unit_of(doc: &DocId) -> String {
    doc.unit()
        .map_or_else(|| PROVINCE_WIDE.to_owned(), |u| u.to_string())
}

fn key_from_hex(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Verifies an archive. `signatures` checks a slice of signatures and returns one answer each.
pub fn verify(
    bytes: &[u8],
    options: &Options,
    signatures: &mut dyn FnMut(&[SigInput<'_>]) -> Vec<bool>,
) -> Report {
    let a = archive::parse(bytes);
    let mut r = Report::default();
    for p in &a.problems {
        r.fail(plain(
            "archive_format",
            format!("section {}", p.section),
            p.message.clone(),
        ));
    }
    let exporter = check_manifest(bytes, &a, &mut r);
    let registry = check_registry(&a, options, &mut r);
    if let Some(key) = exporter {
        match registry.as_ref().and_then(|reg| reg.standing(&key)) {
            Some(s) => {
                r.exporter_unit = Some(format!("{} {} ({})", s.role.name(), s.unit, s.unit_name))
            }
            None => r.fail(plain(
                "exporter_not_enrolled",
                "manifest",
                format!(
                    "exporter {} holds no enrolment in the registry",
                    hex::encode(key)
                ),
            )),
        }
    }
    let entries = read_changes(&a, &mut r);
    check_signatures_of(&entries, signatures, &mut r);
    let registry = registry.unwrap_or_else(|| {
        Registry::new(VerifyingKey::from_bytes(&[0; 32]).expect("zero key decodes"))
    });
    check_authority(&entries, &registry, &mut r);
    check_equivocation(&entries, &registry, &mut r);
    let own = check_log(&a, exporter, &mut r);
    check_witnesses(&a, options, exporter, &own, &registry, &mut r);
    check_forks(&a, &registry, &mut r);
    check_clocks(&entries, &own, &registry, &mut r);
    count_rejects(&a, &mut r);
    r.ok = r.failures_by_reason.is_empty();
    r
}

fn check_manifest(bytes: &[u8], a: &Archive<'_>, r: &mut Report) -> Option<[u8; 32]> {
    let m = &a.manifest;
    r.created_at = Some(Timestamp(m.created_at));
    r.exporter = m.exporter.key.clone();
    a.spans[Section::Manifest as usize - 1]?;
    if m.format != archive::FORMAT {
        r.fail(plain(
            "manifest",
            "manifest",
            format!("format {:?} is not {:?}", m.format, archive::FORMAT),
        ));
    }
    let key = key_from_hex(&m.exporter.key);
    match (key, a.signature) {
        (Some(k), Some(s))
            if sig::verify_one(&k, &archive::manifest_message(a.manifest_bytes), &s) => {}
        (None, _) => r.fail(plain(
            "manifest_signature",
            "manifest",
            "exporter key is not 32 hex bytes",
        )),
        _ => r.fail(plain(
            "manifest_signature",
            "manifest",
            "the exporter's signature over the manifest does not verify",
        )),
    }
    for (i, section) in Section::ALL[..6].iter().enumerate() {
        let Some(payload) = a.payload(bytes, *section) else {
            continue;
        };
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(payload));
        let declared = m.sections.get(i);
        let matches = declared.is_some_and(|d| {
            d.name == section.name() && d.bytes == payload.len() as u64 && d.sha256 == digest
        });
        if !matches {
            r.fail(plain(
                "section_digest",
                format!("section {}", section.name()),
                format!(
                    "{} bytes with SHA-256 {digest}, not what the signed manifest lists",
                    payload.len()
                ),
            ));
        }
    }
    if m.sections.len() != 6 {
        r.fail(plain(
            "manifest",
            "manifest",
            format!("lists {} sections, not 6", m.sections.len()),
        ));
    }
    if m.changes != a.changes.len() as u64 {
        r.fail(plain(
            "change_count",
            "section changes",
            format!(
                "holds {} changes where the manifest lists {}",
                a.changes.len(),
                m.changes
            ),
        ));
    }
    key
}

fn check_registry(a: &Archive<'_>, options: &Options, r: &mut Report) -> Option<Registry> {
    r.root_key = a.registry.root_key.clone();
    let Some(root_bytes) = key_from_hex(&a.registry.root_key) else {
        r.fail(plain(
            "root_key",
            "section registry",
            "root key is not 32 hex bytes",
        ));
        return None;
    };
    if let Some(pinned) = options.root_key
        && pinned != root_bytes
    {
        r.fail(plain(
            "root_key",
            "section registry",
            format!(
                "archive names root key {} but the inspector trusts {}",
                a.registry.root_key,
                hex::encode(pinned)
            ),
        ));
    }
    let Ok(root) = VerifyingKey::from_bytes(&root_bytes) else {
        r.fail(plain(
            "root_key",
            "section registry",
            "root key is not a valid Ed25519 key",
        ));
        return None;
    };
    let mut registry = Registry::new(root);
    for (i, record) in a.registry.records.iter().enumerate() {
        match registry.insert(record.clone()) {
            Ok(_) => r.checks.registry_records += 1,
            Err(e) => r.fail(plain(
                e.reason(),
                format!("registry record #{i} ({})", record.id()),
                e.to_string(),
            )),
        }
    }
    Some(registry)
}

/// What one unit's changes add up to, accumulated without allocating per change.
#[derive(Default)]
struct UnitAcc<'a> {
    changes: u64,
    kinds: BTreeMap<&'static str, u64>,
    signers: HashMap<[u8; 32], u64>,
    docs: HashSet<&'a str>,
}

fn read_changes<'a>(a: &Archive<'a>, r: &mut Report) -> Vec<Entry<'a>> {
    let mut out = Vec::with_capacity(a.changes.len());
    r.checks.changes = a.changes.len() as u64;
    let mut units: HashMap<&'a str, UnitAcc<'a>> = HashMap::new();
    let mut seen: HashMap<Hash, usize> = HashMap::with_capacity(a.changes.len());
    let mut last_leaf: Option<u64> = None;
    for raw in &a.changes {
        let record = || format!("change #{} (leaf {})", raw.position, raw.leaf);
        if let Some(l) = last_leaf.filter(|&l| raw.leaf <= l) {
            r.fail(plain(
                "leaf_order",
                format!("{} after change #{} (leaf {l})", record(), raw.position - 1),
                "changes must be in strictly increasing log order",
            ));
        }
        last_leaf = Some(raw.leaf);
        let env = match parse_envelope(raw.envelope) {
            Ok(e) => e,
            Err(e) => {
                r.fail(plain(e.reason(), record(), e.to_string()));
                continue;
            }
        };
        let doc = match DocId::parse(env.doc_id) {
            Ok(d) => d,
            Err(e) => {
                r.fail(plain("doc_id", record(), e.to_string()));
                continue;
            }
        };
        let header = match parse_change(env.change) {
            Ok(h) => h,
            Err(e) => {
                r.fail(plain(e.reason(), record(), e.to_string()));
                continue;
            }
        };
        let entry = Entry {
            position: raw.position,
            leaf: raw.leaf,
            env,
            header,
            unit: unit_slice(env.doc_id),
            doc,
        };
        if !entry.header.checksum_ok {
            r.fail(entry.finding(
                "checksum",
                "the chunk checksum is not the first four bytes of the change hash".into(),
            ));
        }
        if entry.header.bound_key() != Some(&entry.env.signer[..]) {
            r.fail(entry.finding(
                "actor_binding",
                format!(
                    "actor {} is not the signer key {} followed by an 8-byte epoch",
                    hex::encode(entry.header.actor),
                    hex::encode(entry.env.signer)
                ),
            ));
        }
        if let Some(first) = seen.insert(entry.header.hash, entry.position) {
            r.fail(entry.finding(
                "duplicate_change",
                format!("the same change is also change #{first}"),
            ));
        }
        let u = units.entry(entry.unit).or_default();
        u.changes += 1;
        *u.kinds.entry(kind_of(&entry.doc)).or_insert(0) += 1;
        *u.signers.entry(*entry.env.signer).or_insert(0) += 1;
        u.docs.insert(entry.env.doc_id);
        out.push(entry);
    }
    for (unit, acc) in units {
        let u = r.units.entry(unit.to_owned()).or_default();
        u.changes += acc.changes;
        u.documents += acc.docs.len() as u64;
        for (k, n) in acc.kinds {
            *u.kinds.entry(k.to_owned()).or_insert(0) += n;
        }
        for (key, n) in acc.signers {
            *u.signers.entry(hex::encode(key)).or_insert(0) += n;
        }
    }
    out
}

fn check_signatures_of(
    entries: &[Entry<'_>],
    signatures: &mut dyn FnMut(&[SigInput<'_>]) -> Vec<bool>,
    r: &mut Report,
) {
    let inputs: Vec<SigInput<'_>> = entries
        .iter()
        .map(|e| SigInput {
            key: e.env.signer,
            signature: e.env.signature,
            doc_id: e.env.doc_id,
            hash: e.header.hash,
        })
        .collect();
    let results = signatures(&inputs);
    for (e, ok) in entries.iter().zip(results) {
        if ok {
            r.checks.signatures_valid += 1;
        } else {
            r.fail(e.finding(
                "signature",
                format!(
                    "the signature of {} over this change does not verify (strict Ed25519)",
                    hex::encode(e.env.signer)
                ),
            ));
        }
    }
}

fn check_authority(entries: &[Entry<'_>], registry: &Registry, r: &mut Report) {
    let mut transfer_scoped: Vec<usize> = Vec::new();
    let mut signers: HashMap<[u8; 32], u64> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        *signers.entry(*e.env.signer).or_insert(0) += 1;
        let at = e.time();
        let standing = match registry.check_key(e.env.signer, at) {
            Ok(s) => s,
            Err(err) => {
                r.fail(e.finding(
                    err.reason(),
                    format!("{err} at the change's time {}", at.to_rfc3339()),
                ));
                continue;
            }
        };
        let foreign_dossier = matches!((&e.doc, standing.role), (DocId::Dossier(_), Role::Commune) if e.unit != standing.unit.as_str());
        if foreign_dossier {
            transfer_scoped.push(i);
            continue;
        }
        if let Err(err) = registry.authorize(e.env.signer, at, &e.doc, &[]) {
            r.fail(e.finding(err.reason(), err.to_string()));
        }
    }
    for (key, changes) in signers {
        let s = registry.standing(&key);
        r.signers.insert(
            hex::encode(key),
            SignerSummary {
                unit: s.map(|s| s.unit.to_string()),
                unit_name: s.map(|s| s.unit_name.clone()),
                role: s.map(|s| s.role.name().to_owned()),
                changes,
            },
        );
    }
    check_transfers(entries, &transfer_scoped, registry, r);
}

/// A commune may write another unit's dossier only once that dossier was transferred to it:
/// the transfer must be in the change's own history, read from the dossier as it stood at the
/// change's dependencies (rebuilt from the archive's changes that are its ancestors).
fn check_transfers(entries: &[Entry<'_>], which: &[usize], registry: &Registry, r: &mut Report) {
    if which.is_empty() {
        return;
    }
    let mut by_hash: HashMap<Hash, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.doc, DocId::Dossier(_)) {
            by_hash.entry(e.header.hash).or_insert(i);
        }
    }
    for &i in which {
        r.checks.transfer_scoped += 1;
        let e = &entries[i];
        let mut history: Vec<Change> = Vec::new();
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut stack: Vec<Hash> = e.header.deps().collect();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            if seen.len() > TRANSFER_HISTORY_CHANGES_MAX {
                break;
            }
            let Some(&j) = by_hash.get(&h) else { continue };
            if entries[j].env.doc_id != e.env.doc_id {
                continue;
            }
            stack.extend(entries[j].header.deps());
            if let Ok(c) = Change::from_bytes(entries[j].env.change.to_vec()) {
                history.push(c);
            }
        }
        if seen.len() > TRANSFER_HISTORY_CHANGES_MAX {
            r.fail(e.finding(
                "out_of_scope",
                format!(
                    "the change's history holds more than {TRANSFER_HISTORY_CHANGES_MAX} changes; no dossier is that long, so its transfer cannot be checked"
                ),
            ));
            continue;
        }
        let mut doc = Automerge::new();
        let transfers = doc
            .apply_changes(history)
            .ok()
            .and_then(|_| layout::dossier::read(&doc).ok())
            .map(|s| s.transfers)
            .unwrap_or_default();
        if let Err(err) = registry.authorize(e.env.signer, e.time(), &e.doc, &transfers) {
            r.fail(e.finding(
                err.reason(),
                format!(
                    "{err}: the dossier was not transferred to the signer's unit before this change"
                ),
            ));
        }
    }
}

fn check_equivocation(entries: &[Entry<'_>], registry: &Registry, r: &mut Report) {
    let mut slots: HashMap<(&[u8], &str, u64), usize> = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(&first) = slots.get(&(e.header.actor, e.env.doc_id, e.header.seq)) {
            let f = &entries[first];
            if f.header.hash != e.header.hash {
                r.fail(e.finding(
                    "equivocation",
                    format!(
                        "signer {} ({}) made two different changes with seq {} in {}: this one and change #{} ({})",
                        hex::encode(e.env.signer),
                        signer_label(registry, e.env.signer),
                        e.header.seq,
                        e.env.doc_id,
                        f.position,
                        hex::encode(f.header.hash)
                    ),
                ));
            }
        } else {
            slots.insert((e.header.actor, e.env.doc_id, e.header.seq), i);
        }
    }
}

fn signer_label(registry: &Registry, key: &[u8; 32]) -> String {
    registry.standing(key).map_or_else(
        || "not enrolled".into(),
        |s| format!("{} {}", s.role.name(), s.unit),
    )
}

/// A checkpoint that opened, with where it came from.
#[derive(Debug, Clone)]
struct Opened {
    cp: Checkpoint,
    record: String,
}

fn open_record(
    rec: &CheckpointRecord,
    record: String,
    key: &[u8; 32],
    r: &mut Report,
    prefix: &str,
) -> Option<(Opened, Vec<Hash>)> {
    let cp = match Checkpoint::open(&rec.note) {
        Ok(cp) => cp,
        Err(e) => {
            r.fail(plain(
                &format!("{prefix}{}", e.reason()),
                record,
                e.to_string(),
            ));
            return None;
        }
    };
    if &cp.key != key {
        r.fail(plain(
            &format!("{prefix}checkpoint_key"),
            record,
            format!(
                "note is signed by {}, not {}",
                hex::encode(cp.key),
                hex::encode(key)
            ),
        ));
        return None;
    }
    let proof: Option<Vec<Hash>> = rec.consistency.iter().map(|h| hash_from_b64(h)).collect();
    let Some(proof) = proof else {
        r.fail(plain(
            &format!("{prefix}checkpoint_proof"),
            record,
            "consistency proof holds a hash that is not canonical base64 of 32 bytes",
        ));
        return None;
    };
    Some((Opened { cp, record }, proof))
}

/// Checks a chain of checkpoints (oldest first) whose every link must hold; returns those that
/// opened.
fn check_chain(
    records: &[CheckpointRecord],
    key: &[u8; 32],
    label: &str,
    prefix: &str,
    r: &mut Report,
) -> Vec<Opened> {
    let mut out: Vec<Opened> = Vec::new();
    for (k, rec) in records.iter().enumerate() {
        let Some((opened, proof)) =
            open_record(rec, format!("{label} checkpoint #{k}"), key, r, prefix)
        else {
            continue;
        };
        let cp = opened.cp;
        let (prev_size, prev_root) = out
            .last()
            .map_or((0, empty_root()), |p| (p.cp.size, p.cp.root));
        if (cp.prev_size, cp.prev_root) != (prev_size, prev_root) {
            r.fail(plain(
                &format!("{prefix}checkpoint_chain"),
                opened.record.clone(),
                format!("names checkpoint of size {} as its previous, but the previous one here has size {prev_size}", cp.prev_size),
            ));
        }
        if let Err(e) =
            merkle::verify_consistency(cp.prev_size, cp.size, &cp.prev_root, &cp.root, &proof)
        {
            r.fail(plain(
                &format!("{prefix}checkpoint_inconsistent"),
                opened.record.clone(),
                format!(
                    "the log of size {} is not an extension of the log of size {}: {e}",
                    cp.size, cp.prev_size
                ),
            ));
        }
        if let Some(p) = out.last()
            && cp.time < p.cp.time
        {
            r.anomaly(plain(
                "clock_checkpoint_regression",
                opened.record.clone(),
                format!(
                    "made at {}, before the previous checkpoint ({})",
                    cp.time.to_rfc3339(),
                    p.cp.time.to_rfc3339()
                ),
            ));
        }
        out.push(opened);
    }
    out
}

fn check_log(a: &Archive<'_>, exporter: Option<[u8; 32]>, r: &mut Report) -> Vec<Opened> {
    let Some(key) = exporter else {
        return Vec::new();
    };
    if key_from_hex(&a.log.key) != Some(key) {
        r.fail(plain(
            "log_key",
            "section log",
            format!(
                "log of {} in an archive exported by {}",
                a.log.key,
                hex::encode(key)
            ),
        ));
        return Vec::new();
    }
    let chain = check_chain(&a.log.checkpoints, &key, "log", "", r);
    r.checks.checkpoints = chain.len() as u64;
    let Some(last) = chain.last() else {
        if !a.changes.is_empty() {
            r.fail(plain(
                "no_checkpoint",
                "section log",
                "no signed checkpoint places the changes in the exporter's log",
            ));
        }
        return chain;
    };
    r.log.size = last.cp.size;
    r.log.root = archive::b64(&last.cp.root);
    r.log.first_checkpoint_at = chain.first().map(|c| c.cp.time);
    r.log.last_checkpoint_at = Some(last.cp.time);
    if a.manifest.log.size != last.cp.size
        || hash_from_b64(&a.manifest.log.root) != Some(last.cp.root)
    {
        r.fail(plain(
            "manifest_log",
            "manifest",
            "the manifest's log size and root are not the last checkpoint's",
        ));
    }
    let Some(entries_proof) = a
        .log
        .proof
        .iter()
        .map(|e| e.to_entry())
        .collect::<Option<Vec<_>>>()
    else {
        r.fail(plain(
            "log_proof",
            "section log",
            "range proof holds a hash that is not canonical base64 of 32 bytes",
        ));
        return chain;
    };
    // Every change in the archive is a leaf; the ones that did not parse still count as leaves
    // (their bytes are hashed as they are), so a damaged change is named once, not also as missing.
    let mut leaves: Vec<(u64, Hash)> = a
        .changes
        .iter()
        .map(|c| (c.leaf, leaf_hash(c.envelope)))
        .collect();
    leaves.sort_by_key(|(i, _)| *i);
    leaves.dedup_by_key(|(i, _)| *i);
    let outcome = merkle::verify_range_proof(last.cp.size, &leaves, &entries_proof);
    for (start, end) in &outcome.missing {
        let which = if end - start == 1 {
            format!("leaf {start}")
        } else {
            format!("leaves {start} to {}", end - 1)
        };
        r.fail(plain(
            "missing_leaf",
            which.clone(),
            format!("{which} of the exporter's log is neither in the archive nor covered by the log proof: a change was removed"),
        ));
    }
    for e in &outcome.unused_entries {
        r.fail(plain(
            "log_proof",
            format!("proof entry {}..{}", e.start, e.end),
            "the entry does not fit the log's shape or covers exported changes",
        ));
    }
    for leaf in &outcome.out_of_range {
        for c in a.changes.iter().filter(|c| c.leaf == *leaf) {
            r.fail(plain(
                "leaf_out_of_range",
                format!("change #{} (leaf {leaf})", c.position),
                format!(
                    "leaf {leaf} is past the last checkpoint's size {}",
                    last.cp.size
                ),
            ));
        }
    }
    if outcome.complete() && outcome.root != last.cp.root {
        r.fail(plain(
            "log_root_mismatch",
            last.record.clone(),
            "the archive's changes in their log positions do not reproduce the checkpoint's root: changes were altered, reordered or replaced",
        ));
    }
    chain
}

fn check_witnesses(
    a: &Archive<'_>,
    options: &Options,
    exporter: Option<[u8; 32]>,
    own: &[Opened],
    registry: &Registry,
    r: &mut Report,
) {
    let mut by_key: BTreeMap<[u8; 32], Vec<(String, CheckpointRecord)>> = BTreeMap::new();
    let sources = a
        .witness
        .logs
        .iter()
        .map(|l| ("witness", l))
        .chain(options.witnesses.iter().map(|l| ("other archive", l)));
    for (source, log) in sources {
        let Some(key) = key_from_hex(&log.key) else {
            r.fail(plain(
                "witness_key",
                format!("{source} log {}", log.key),
                "log key is not 32 hex bytes",
            ));
            continue;
        };
        for (k, rec) in log.checkpoints.iter().enumerate() {
            by_key.entry(key).or_default().push((
                format!(
                    "{source} log {} checkpoint #{k}",
                    log.key.chars().take(16).collect::<String>()
                ),
                rec.clone(),
            ));
        }
    }
    r.checks.witnessed_logs = by_key.keys().filter(|k| Some(**k) != exporter).count() as u64;
    for (key, records) in by_key {
        if registry.standing(&key).is_none() {
            r.fail(plain(
                "witness_not_enrolled",
                format!("log {}", hex::encode(key)),
                "the registry holds no enrolment for this log's key",
            ));
        }
        let mut opened: Vec<(Opened, Vec<Hash>)> = Vec::new();
        for (record, rec) in &records {
            if let Some(o) = open_record(rec, record.clone(), &key, r, "witness_") {
                opened.push(o);
            }
        }
        r.checks.witnessed_checkpoints += opened.len() as u64;
        // Every checkpoint the node ever signed, by size: two roots for one size is a split view.
        let mut roots: BTreeMap<u64, BTreeSet<Hash>> = BTreeMap::new();
        for (o, _) in &opened {
            roots.entry(o.cp.size).or_default().insert(o.cp.root);
        }
        if Some(key) == exporter {
            for o in own {
                roots.entry(o.cp.size).or_default().insert(o.cp.root);
            }
        }
        for (size, set) in &roots {
            if set.len() > 1 {
                r.fail(plain(
                    "log_fork",
                    format!("log {}", hex::encode(key)),
                    format!("{} different roots signed for size {size}: the node showed different histories", set.len()),
                ));
            }
        }
        // Each note names its previous checkpoint and carries the proof from it, so every link
        // is checkable on its own, whether or not the previous note is here too.
        for (o, proof) in &opened {
            let cp = &o.cp;
            if let Err(e) =
                merkle::verify_consistency(cp.prev_size, cp.size, &cp.prev_root, &cp.root, proof)
            {
                r.fail(plain(
                    "witness_inconsistent",
                    o.record.clone(),
                    format!(
                        "size {} is not an extension of size {}: {e}",
                        cp.size, cp.prev_size
                    ),
                ));
            }
        }
        // A previous checkpoint named with a root other than the one signed for its size is a
        // fork too (the chain branched there).
        for (o, _) in &opened {
            if let Some(set) = roots.get(&o.cp.prev_size)
                && o.cp.prev_size > 0
                && !set.contains(&o.cp.prev_root)
            {
                r.fail(plain(
                    "log_fork",
                    o.record.clone(),
                    format!("extends a checkpoint of size {} whose root differs from the one signed for that size", o.cp.prev_size),
                ));
            }
        }
        if Some(key) == exporter {
            // The exporter's own chain holds every checkpoint it ever made; one that a witness
            // saw and the chain lacks means the log was rewritten or restored from a backup.
            let chain: HashSet<(u64, Hash)> = own.iter().map(|o| (o.cp.size, o.cp.root)).collect();
            for (o, _) in &opened {
                if !chain.contains(&(o.cp.size, o.cp.root)) {
                    r.fail(plain(
                        "log_fork",
                        o.record.clone(),
                        format!(
                            "a witness holds the exporter's checkpoint of size {} made at {}, which its own log does not contain: history was rewritten or restored from a backup",
                            o.cp.size,
                            o.cp.time.to_rfc3339()
                        ),
                    ));
                }
            }
        }
    }
}

fn check_forks(a: &Archive<'_>, registry: &Registry, r: &mut Report) {
    for (k, proof) in a.forks.iter().enumerate() {
        r.checks.fork_proofs += 1;
        let record = format!("fork proof #{k}");
        let decode = |field: &str| {
            proof
                .get(field)
                .and_then(|v| v.as_str())
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| SignedChange::decode(&b).ok())
        };
        let (Some(first), Some(second)) = (decode("first"), decode("second")) else {
            r.fail(plain(
                "fork_proof_invalid",
                record,
                "a fork proof must hold two envelopes that verify",
            ));
            continue;
        };
        let same_slot = first.signer() == second.signer()
            && first.actor() == second.actor()
            && first.doc_id_text() == second.doc_id_text()
            && first.seq() == second.seq()
            && first.hash() != second.hash();
        if !same_slot {
            r.fail(plain(
                "fork_proof_invalid",
                record,
                "the two changes are not two different changes of one actor, document and seq",
            ));
            continue;
        }
        let key = first.signer().as_bytes();
        let unit = registry.standing(key).map(|s| s.unit.to_string());
        r.fail(Finding {
            reason: "equivocation".into(),
            record,
            hash: Some(hex::encode(second.hash())),
            unit,
            message: format!(
                "signer {} ({}) signed two different changes with seq {} in {}: {} and {}",
                hex::encode(key),
                signer_label(registry, key),
                first.seq(),
                first.doc_id_text(),
                hex::encode(first.hash()),
                hex::encode(second.hash())
            ),
        });
    }
}

fn check_clocks(entries: &[Entry<'_>], own: &[Opened], registry: &Registry, r: &mut Report) {
    let times: HashMap<Hash, i64> = entries
        .iter()
        .map(|e| (e.header.hash, e.header.time))
        .collect();
    let sizes: Vec<u64> = own.iter().map(|o| o.cp.size).collect();
    for e in entries {
        for dep in e.header.deps() {
            match times.get(&dep) {
                Some(&t) if e.header.time < t => r.anomaly(e.finding(
                    "clock_before_dependency",
                    format!(
                        "made at {}, before the change it depends on ({}, made at {})",
                        e.time().to_rfc3339(),
                        hex::encode(dep),
                        Timestamp(t.saturating_mul(1000)).to_rfc3339()
                    ),
                )),
                Some(_) => {}
                None => r.anomaly(e.finding(
                    "dependency_absent",
                    format!("depends on {}, which is not in the archive (never received, or outside the export)", hex::encode(dep)),
                )),
            }
        }
        let covering = sizes.partition_point(|&s| s <= e.leaf);
        let Some(cp) = own.get(covering).map(|o| o.cp) else {
            continue;
        };
        if e.time().0 > cp.time.0.saturating_add(CLOCK_SKEW_MS_MAX) {
            r.anomaly(e.finding(
                "clock_after_log",
                format!(
                    "claims {}, after the exporter had already logged it (checkpoint at {})",
                    e.time().to_rfc3339(),
                    cp.time.to_rfc3339()
                ),
            ));
        }
        if let Some(revoked) = registry.standing(e.env.signer).and_then(|s| s.revoked_at)
            && e.time() < revoked
            && cp.time.0 >= revoked.0.saturating_add(CLOCK_SKEW_MS_MAX)
        {
            r.anomaly(e.finding(
                "logged_after_revocation",
                format!(
                    "claims {}, before its signer's revocation at {}, but was first logged at {}: possibly back-dated",
                    e.time().to_rfc3339(),
                    revoked.to_rfc3339(),
                    cp.time.to_rfc3339()
                ),
            ));
        }
    }
}

fn count_rejects(a: &Archive<'_>, r: &mut Report) {
    for reject in &a.rejects {
        r.checks.rejects += 1;
        let unit = reject
            .get("doc")
            .and_then(|d| d.as_str())
            .and_then(|d| DocId::parse(d).ok())
            .map_or_else(|| PROVINCE_WIDE.to_owned(), |d| unit_of(&d));
        let reason = reject
            .get("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned();
        *r.units
            .entry(unit)
            .or_default()
            .rejects
            .entry(reason)
            .or_insert(0) += 1;
    }
}

/// The registry records of an archive, for tools that only need who signed what.
pub fn registry_of(a: &Archive<'_>) -> Option<Registry> {
    let root = VerifyingKey::from_bytes(&key_from_hex(&a.registry.root_key)?).ok()?;
    let mut registry = Registry::new(root);
    for record in &a.registry.records {
        let _ = registry.insert(SignedRecord::clone(record));
    }
    Some(registry)
}
