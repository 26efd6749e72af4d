//! Byzantine nodes: enrolled (or not) nodes that lie.
//!
//! Why a real session over a crafted store: a liar that speaks the protocol correctly is the
//! dangerous one, because everything it serves reaches the apply pipeline. So a Byzantine node
//! runs the real [`motcua_sync::Session`] over a [`MemStore`] filled with crafted envelopes:
//! validly signed dossiers of its own unit (which must be accepted), changes with broken
//! signatures (which must never be stored), validly signed changes to another unit's dossiers
//! (refused as out of scope, or held pending and never applied when their dependencies are
//! missing), and equivocations (two changes with one actor and seq: a fork proof must result).
//! Wire attacks (oversized frames, malformed bytes, replayed messages) are injected by the event
//! loop on its connection.

use automerge::Automerge;
use automerge::transaction::CommitOptions;
use ed25519_dalek::SigningKey;
use motcua_schema::catalog::ProcessingTime;
use motcua_schema::dossier::{Applicant, Channel, Event, EventBody, Header};
use motcua_schema::ids::{DocId, DossierCode, UnitCode};
use motcua_schema::layout;
use motcua_schema::signed::{SignedChange, actor_for};
use motcua_schema::timestamp::Timestamp;
use motcua_sync::testing::MemStore;
use time::Date;

use crate::rng::Rng;
use crate::scenario::Byzantine;

/// What a crafted change is, and so what the checks expect of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crafted {
    /// Valid and in scope: must be accepted.
    Valid,
    /// Broken signature: must never be stored anywhere.
    Forged,
    /// Validly signed, another unit's dossier: must never be applied.
    OutOfScope,
    /// As `OutOfScope`, with a missing dependency: may be stored pending, never applied.
    OutOfScopePending,
    /// One of two changes with one actor and seq.
    Equivocation {
        /// The actor, hex.
        actor: String,
        /// The seq.
        seq: u64,
        /// The document id.
        doc: String,
    },
}

/// One crafted change.
#[derive(Debug, Clone)]
pub struct CraftedChange {
    /// Its change hash.
    pub hash: [u8; 32],
    /// Its document.
    pub doc: String,
    /// What it is.
    pub kind: Crafted,
}

/// A Byzantine node.
pub struct ByzNode {
    /// Name for people.
    pub name: String,
    /// Its unit (enrolled as a commune of it, or claiming it when not enrolled).
    pub unit: UnitCode,
    /// Its key.
    pub key: SigningKey,
    /// Whether the root enrolled it.
    pub enrolled: bool,
    /// Its crafted store.
    pub store: MemStore,
    /// What it holds, and what each is.
    pub crafted: Vec<CraftedChange>,
    /// Wire attacks still to make.
    pub spec: Byzantine,
    /// Encoded messages it sent, for replays.
    pub sent: Vec<Vec<u8>>,
}

/// Most messages a Byzantine node remembers for replays.
pub const REPLAY_MEMORY_MESSAGES_COUNT_MAX: usize = 64;

fn applicant(rng: &mut Rng) -> Applicant {
    let mut id = String::new();
    for _ in 0..12 {
        id.push(char::from(b'0' + rng.below(10) as u8));
    }
    Applicant {
        name: format!("Kẻ Gian {}", rng.below(1000)),
        id_number: id,
        phone: "0900000000".into(),
        address: "Không rõ".into(),
    }
}

fn header(code: &DossierCode, rng: &mut Rng) -> Header {
    Header {
        code: code.clone(),
        unit: code.unit(),
        procedure_code: "1.001193".into(),
        procedure_name: "Đăng ký khai sinh".into(),
        agency: "Tư pháp - Hộ tịch".into(),
        processing: ProcessingTime::WorkingDays(0),
        channel: Channel::Direct,
        applicant: applicant(rng),
        digitised: false,
    }
}

/// Makes the first change of a new dossier document under `actor_epoch`.
fn create(
    key: &SigningKey,
    epoch: [u8; 8],
    code: &DossierCode,
    at: Timestamp,
    rng: &mut Rng,
) -> (Automerge, SignedChange) {
    let mut doc = Automerge::new().with_actor(actor_for(&key.verifying_key(), epoch));
    let h = header(code, rng);
    let event = Event {
        at,
        by: "ke.gian".into(),
        unit: code.unit(),
        body: EventBody::Received {
            due_at: at.plus_millis(86_400_000),
        },
    };
    let mut tx = doc.transaction();
    layout::dossier::create(&mut tx, &h, &event).expect("layout writes");
    tx.commit_with(CommitOptions::default().with_time(at.0 / 1000));
    let change = doc.get_last_local_change().expect("a change").clone();
    let signed = SignedChange::sign(&DocId::Dossier(code.clone()), change, key).expect("bound");
    (doc, signed)
}

impl ByzNode {
    /// A Byzantine node of `unit` attacking the province of `victim` units, its crafted store
    /// built from `rng`.
    // One argument per ingredient of the crafted store reads better than a builder here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        unit: UnitCode,
        key: SigningKey,
        spec: Byzantine,
        victim: &UnitCode,
        day: Date,
        at: Timestamp,
        rng: &mut Rng,
    ) -> ByzNode {
        let mut store_id = [0u8; 16];
        rng.fill(&mut store_id);
        store_id[0] |= 1;
        let mut node = ByzNode {
            name,
            unit: unit.clone(),
            key: key.clone(),
            enrolled: spec.enrolled,
            store: MemStore::new(store_id),
            crafted: Vec::new(),
            spec: spec.clone(),
            sent: Vec::new(),
        };
        let mut epoch = [0u8; 8];
        rng.fill(&mut epoch);
        let mut number = 9000u32;
        let mut next_code = |u: &UnitCode| {
            number += 1;
            DossierCode::new(u, day, number).expect("valid code")
        };
        for _ in 0..spec.valid {
            let (_, c) = create(&key, epoch, &next_code(&unit), at, rng);
            node.put(c.encode(), c.hash(), c.doc_id_text(), Crafted::Valid);
        }
        for _ in 0..spec.forged {
            let (_, c) = create(&key, epoch, &next_code(&unit), at, rng);
            let mut env = c.encode();
            // Flip one bit of the signature (after version, doc id and signer key).
            let at_sig = 2 + c.doc_id_text().len() + 32 + rng.below(64) as usize;
            env[at_sig] ^= 1 << rng.below(8);
            node.put(env, c.hash(), c.doc_id_text(), Crafted::Forged);
        }
        for _ in 0..spec.out_of_scope {
            let (_, c) = create(&key, epoch, &next_code(victim), at, rng);
            node.put(c.encode(), c.hash(), c.doc_id_text(), Crafted::OutOfScope);
        }
        for _ in 0..spec.out_of_scope_pending {
            let code = next_code(victim);
            let (mut doc, _first) = create(&key, epoch, &code, at, rng);
            let event = Event {
                at,
                by: "ke.gian".into(),
                unit: victim.clone(),
                body: EventBody::Resolved {
                    note: "giả mạo".into(),
                },
            };
            let mut tx = doc.transaction();
            layout::dossier::append(&mut tx, &event).expect("layout writes");
            tx.commit_with(CommitOptions::default().with_time(at.0 / 1000));
            let change = doc.get_last_local_change().expect("a change").clone();
            let c = SignedChange::sign(&DocId::Dossier(code), change, &key).expect("bound");
            // Only the second change is served: its dependency never arrives.
            node.put(
                c.encode(),
                c.hash(),
                c.doc_id_text(),
                Crafted::OutOfScopePending,
            );
        }
        for _ in 0..spec.equivocations {
            let code = next_code(&unit);
            let (_, a) = create(&key, epoch, &code, at, rng);
            let (_, b) = create(&key, epoch, &code, at.plus_millis(1000), rng);
            for c in [a, b] {
                let kind = Crafted::Equivocation {
                    actor: c.actor().to_hex_string(),
                    seq: c.seq(),
                    doc: c.doc_id_text().to_owned(),
                };
                node.put(c.encode(), c.hash(), c.doc_id_text(), kind);
            }
        }
        node
    }

    fn put(&mut self, envelope: Vec<u8>, hash: [u8; 32], doc: &str, kind: Crafted) {
        self.store.insert_with_hash(hash, envelope);
        self.crafted.push(CraftedChange {
            hash,
            doc: doc.to_owned(),
            kind,
        });
    }

    /// Takes what a peer sent it (it keeps valid changes so that it serves a plausible feed).
    pub fn absorb(&mut self, envelopes: Vec<Vec<u8>>) -> motcua_sync::ApplyReport {
        let mut report = motcua_sync::ApplyReport::default();
        for env in envelopes {
            match SignedChange::decode(&env) {
                Ok(c) => match self.store.insert_with_hash(c.hash(), env) {
                    motcua_sync::testing::Inserted::Stored(_) => report.stored += 1,
                    motcua_sync::testing::Inserted::Duplicate => report.duplicate += 1,
                    motcua_sync::testing::Inserted::Rejected => report.rejected += 1,
                },
                Err(_) => report.rejected += 1,
            }
        }
        report
    }

    /// Remembers a message it sent, for a later replay.
    pub fn remember(&mut self, bytes: &[u8]) {
        if self.sent.len() < REPLAY_MEMORY_MESSAGES_COUNT_MAX {
            self.sent.push(bytes.to_vec());
        }
    }
}
