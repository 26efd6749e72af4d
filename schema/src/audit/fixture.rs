//! Archives built from scratch: a province root, enrolled nodes that write real signed dossier
//! changes, an exporter's log with checkpoints, and the archive bytes, exactly as
//! `motcua audit export` lays them out.
//!
//! The verifier's tests use it to build archives that no honest node would export (a revoked
//! signer, a change out of scope, an equivocation, a rewritten log), and the verification
//! benchmark uses it to build an archive of a million changes without running a node for hours.
//! It writes through the same [`ArchiveWriter`] as the node.

use automerge::Automerge;
use automerge::transaction::CommitOptions;
use ed25519_dalek::SigningKey;

use super::archive::{
    ArchiveWriter, CheckpointRecord, Exporter, Filter, LogSection, Manifest, ManifestLog,
    ProofEntryJson, RegistrySection, WitnessSection, WitnessedLog, b64,
};
use super::merkle::{self, Hash, MemoryTree, empty_root, leaf_hash};
use super::note::Checkpoint;
use crate::catalog::ProcessingTime;
use crate::dossier::{Applicant, Channel, Event, EventBody, Header};
use crate::ids::{DocId, DossierCode, UnitCode};
use crate::layout;
use crate::signed::{SignedChange, actor_for};
use crate::timestamp::Timestamp;
use crate::trust::{RecordBody, Role, SignedRecord};

/// A node that writes changes: its key, unit and the actor epoch of its process.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Signing key.
    pub key: SigningKey,
    /// Unit.
    pub unit: UnitCode,
    /// Actor epoch.
    pub epoch: [u8; 8],
}

impl Writer {
    /// A writer with the key derived from `seed` (tests only: keys from seeds are not secret).
    pub fn new(seed: u8, unit: &str) -> Writer {
        Writer {
            key: SigningKey::from_bytes(&[seed; 32]),
            unit: UnitCode::new(unit).expect("valid unit code"),
            epoch: [seed; 8],
        }
    }

    /// The public key bytes.
    pub fn public(&self) -> [u8; 32] {
        *self.key.verifying_key().as_bytes()
    }

    fn commit(
        &self,
        doc: &mut Automerge,
        doc_id: &DocId,
        at: Timestamp,
        build: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> SignedChange {
        doc.set_actor(actor_for(&self.key.verifying_key(), self.epoch));
        let mut tx = doc.transaction();
        build(&mut tx);
        tx.commit_with(CommitOptions::default().with_time(at.0.div_euclid(1000)));
        let change = doc.get_last_local_change().expect("a change was made");
        SignedChange::sign(doc_id, change, &self.key).expect("actor bound to key")
    }

    /// Receives dossier number `number` of `unit`'s day containing `at` (`unit` may differ from
    /// the writer's own, to make out-of-scope changes). Returns the document and its change.
    pub fn new_dossier(
        &self,
        unit: &UnitCode,
        number: u32,
        at: Timestamp,
    ) -> (Automerge, DocId, SignedChange) {
        let code = DossierCode::new(unit, at.local_date(), number).expect("valid dossier code");
        let header = Header {
            code: code.clone(),
            unit: unit.clone(),
            procedure_code: "1.004873".into(),
            procedure_name: "Cấp Giấy xác nhận tình trạng hôn nhân".into(),
            agency: "Tư pháp".into(),
            processing: ProcessingTime::WorkingDays(3),
            channel: Channel::Direct,
            applicant: Applicant {
                name: format!("Người thử {number}"),
                id_number: format!("{:012}", 1_000_000 + u64::from(number)),
                phone: String::new(),
                address: String::new(),
            },
            digitised: number.is_multiple_of(2),
        };
        let event = Event {
            at,
            by: "tiepnhan".into(),
            unit: self.unit.clone(),
            body: EventBody::Received {
                due_at: at.plus_millis(3 * 86_400_000),
            },
        };
        let doc_id = DocId::Dossier(code);
        let mut doc = Automerge::new();
        let signed = self.commit(&mut doc, &doc_id, at, |tx| {
            layout::dossier::create(tx, &header, &event).expect("layout writes");
        });
        (doc, doc_id, signed)
    }

    /// Appends an event to a dossier document this writer holds.
    pub fn event(
        &self,
        doc: &mut Automerge,
        doc_id: &DocId,
        body: EventBody,
        at: Timestamp,
    ) -> SignedChange {
        let event = Event {
            at,
            by: "xuly".into(),
            unit: self.unit.clone(),
            body,
        };
        self.commit(doc, doc_id, at, |tx| {
            layout::dossier::append(tx, &event).expect("layout writes");
        })
    }
}

/// An exporter's store, in memory: registry, log, witnessed checkpoints, fork proofs, rejects.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The province root key.
    pub root: SigningKey,
    /// Root-signed records.
    pub records: Vec<SignedRecord>,
    /// The exporting node.
    pub exporter: Writer,
    /// The exporter's role.
    pub exporter_role: Role,
    /// Envelopes in log order.
    pub log: Vec<Vec<u8>>,
    tree: MemoryTree,
    /// The exporter's checkpoints.
    pub checkpoints: Vec<CheckpointRecord>,
    last: (u64, Hash),
    /// Witnessed logs.
    pub witness: Vec<WitnessedLog>,
    /// Fork proofs.
    pub forks: Vec<serde_json::Value>,
    /// Rejects.
    pub rejects: Vec<serde_json::Value>,
}

impl Fixture {
    /// A fixture whose root key comes from `root_seed` and whose exporter is `exporter`,
    /// enrolled with `role` from time 0.
    pub fn new(root_seed: u8, exporter: Writer, role: Role) -> Fixture {
        let mut f = Fixture {
            root: SigningKey::from_bytes(&[root_seed; 32]),
            records: Vec::new(),
            exporter: exporter.clone(),
            exporter_role: role,
            log: Vec::new(),
            tree: MemoryTree::new(),
            checkpoints: Vec::new(),
            last: (0, empty_root()),
            witness: Vec::new(),
            forks: Vec::new(),
            rejects: Vec::new(),
        };
        f.enrol(&exporter, role, Timestamp(0));
        f
    }

    /// Enrols a writer.
    pub fn enrol(&mut self, w: &Writer, role: Role, valid_from: Timestamp) {
        self.records.push(SignedRecord::sign(
            &RecordBody::Enrolment {
                node_key: hex::encode(w.public()),
                unit: w.unit.clone(),
                unit_name: format!("Đơn vị {}", w.unit),
                role,
                valid_from,
                valid_until: None,
                issued_at: valid_from,
            },
            &self.root,
        ));
    }

    /// Revokes a writer from `at` on.
    pub fn revoke(&mut self, w: &Writer, at: Timestamp) {
        self.records.push(SignedRecord::sign(
            &RecordBody::Revocation {
                node_key: hex::encode(w.public()),
                revoked_at: at,
                reason: "mất máy".into(),
                issued_at: at,
            },
            &self.root,
        ));
    }

    /// Appends an envelope to the exporter's log; returns its leaf index.
    pub fn append(&mut self, envelope: Vec<u8>) -> u64 {
        self.tree.push(leaf_hash(&envelope));
        self.log.push(envelope);
        self.tree.size() - 1
    }

    /// Signs a checkpoint of the whole log at `time` with the consistency proof from the last.
    pub fn checkpoint(&mut self, time: Timestamp) -> CheckpointRecord {
        let record = make_checkpoint(&self.exporter.key, &self.tree, self.last, time);
        self.last = (
            self.tree.size(),
            merkle::root(&self.tree, self.tree.size()).expect("in memory"),
        );
        self.checkpoints.push(record.clone());
        record
    }

    /// The archive of the leaves `keep` selects, against the last checkpoint, made at `created_at`.
    pub fn build_with(&self, keep: &dyn Fn(u64) -> bool, created_at: Timestamp) -> Vec<u8> {
        let size = self.last.0;
        let exported: Vec<u64> = (0..size).filter(|&i| keep(i)).collect();
        let proof = merkle::range_proof(&self.tree, size, &exported).expect("in memory");
        let mut w = ArchiveWriter::new(Vec::new()).expect("writing to memory");
        w.registry(&RegistrySection {
            root_key: hex::encode(self.root.verifying_key().as_bytes()),
            records: self.records.clone(),
        })
        .expect("in order");
        w.log(&LogSection {
            key: hex::encode(self.exporter.public()),
            checkpoints: self.checkpoints.clone(),
            proof: proof.iter().map(ProofEntryJson::from_entry).collect(),
        })
        .expect("in order");
        w.witness(&WitnessSection {
            logs: self.witness.clone(),
        })
        .expect("in order");
        w.forks(&self.forks).expect("in order");
        w.rejects(&self.rejects).expect("in order");
        let bytes: u64 = exported
            .iter()
            .map(|&i| self.log[i as usize].len() as u64)
            .sum();
        w.begin_changes(exported.len() as u64, bytes)
            .expect("in order");
        for &i in &exported {
            w.change(i, &self.log[i as usize]).expect("in order");
        }
        w.end_changes().expect("in order");
        let manifest = Manifest {
            exporter: Exporter {
                key: hex::encode(self.exporter.public()),
                unit: self.exporter.unit.to_string(),
                unit_name: format!("Đơn vị {}", self.exporter.unit),
                role: self.exporter_role.name().into(),
            },
            created_at: created_at.0,
            filter: Filter::default(),
            changes: exported.len() as u64,
            log: ManifestLog {
                size,
                root: b64(&self.last.1),
            },
            ..Manifest::default()
        };
        w.finish(manifest, &self.exporter.key).expect("in order")
    }

    /// The archive of every leaf up to the last checkpoint.
    pub fn build(&self, created_at: Timestamp) -> Vec<u8> {
        self.build_with(&|_| true, created_at)
    }
}

/// Signs the checkpoint of `tree` extending `prev` (size, root) at `time`.
pub fn make_checkpoint(
    key: &SigningKey,
    tree: &MemoryTree,
    prev: (u64, Hash),
    time: Timestamp,
) -> CheckpointRecord {
    let size = tree.size();
    let cp = Checkpoint {
        key: *key.verifying_key().as_bytes(),
        size,
        root: merkle::root(tree, size).expect("in memory"),
        time,
        prev_size: prev.0,
        prev_root: prev.1,
    };
    let proof = merkle::consistency_proof(tree, prev.0, size).expect("in memory");
    CheckpointRecord {
        note: cp.sign(key),
        consistency: proof.iter().map(b64).collect(),
    }
}

/// A small honest archive: a commune `X1` (the exporter) receives `dossiers` dossiers, each
/// followed by a transfer-free processing step, with checkpoints every `per_checkpoint` changes.
pub fn commune_fixture(dossiers: u32, per_checkpoint: u64) -> Fixture {
    let x1 = Writer::new(11, "X1");
    let mut f = Fixture::new(9, x1.clone(), Role::Commune);
    let day = Timestamp(1_750_000_000_000);
    for n in 1..=dossiers {
        let at = day.plus_millis(i64::from(n) * 60_000);
        let (mut doc, doc_id, first) = x1.new_dossier(&x1.unit, n, at);
        f.append(first.encode());
        let next = x1.event(
            &mut doc,
            &doc_id,
            EventBody::Resolved {
                note: String::new(),
            },
            at.plus_millis(30_000),
        );
        f.append(next.encode());
        if (f.log.len() as u64).is_multiple_of(per_checkpoint) {
            f.checkpoint(at.plus_millis(40_000));
        }
    }
    f.checkpoint(day.plus_millis(i64::from(dossiers + 1) * 60_000));
    f
}
