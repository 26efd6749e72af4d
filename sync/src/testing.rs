//! Test support: an in-memory [`ChangeStore`], change generators and a two-session harness.
//!
//! Why it is public (behind the `testing` feature): the simulator drives [`Session`] through the
//! same trait and wants the same store; other crates' tests want realistic envelopes.
//!
//! **Hashes in [`MemStore`].** [`MemStore::insert`] identifies a change by [`test_hash`], a
//! SHA-256 over the whole envelope under a test domain, so synthetic envelopes (which are not
//! Automerge changes) work too. The node uses the Automerge change hash
//! (`SignedChange::decode(..).hash()`); the protocol does not care which, as long as both peers
//! agree, which every test here ensures by using `MemStore` on both sides. Use
//! [`MemStore::insert_with_hash`] to store under a hash of your choice.
//!
//! The [`Pair`] harness follows quinn-proto's tests: two sessions and two stores, a simulated
//! clock and latency, every message encoded and decoded (so byte counts are what a link would
//! carry), cuts at any message boundary followed by fresh sessions resuming from the checkpoints
//! the simulated driver stored durably.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};

use crate::session::{ApplyReport, Checkpoint, Event, FailReason, Local, Session, SessionConfig};
use crate::store::{ChangeStore, FeedEntry, Scope, StoreError};

/// The hash [`MemStore::insert`] gives an envelope: SHA-256 of `"motcua-sync/test-hash/v1"`
/// followed by the envelope bytes.
pub fn test_hash(envelope: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"motcua-sync/test-hash/v1");
    h.update(envelope);
    h.finalize().into()
}

/// The document id of a v1 envelope (byte 1 is its length, the text follows), if well formed.
pub fn doc_id_of(envelope: &[u8]) -> Option<&str> {
    if envelope.first() != Some(&1) {
        return None;
    }
    let len = usize::from(*envelope.get(1)?);
    std::str::from_utf8(envelope.get(2..2 + len)?).ok()
}

/// The length of the raw Automerge change inside a v1 envelope, if well formed.
pub fn change_len_of(envelope: &[u8]) -> Option<usize> {
    let doc_len = usize::from(*envelope.get(1)?);
    let at = 2 + doc_len + 32 + 64;
    let len = u32::from_be_bytes(envelope.get(at..at + 4)?.try_into().ok()?) as usize;
    (envelope.len() == at + 4 + len).then_some(len)
}

/// An envelope with the v1 layout but pseudo-random key, signature and change bytes (not a
/// valid signed change): for tests of the protocol that do not need real changes.
pub fn synthetic_envelope(doc_id: &str, seed: u64, change_size_bytes: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5eed_5eed_5eed_5eed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u8
    };
    let mut e = vec![1, doc_id.len() as u8];
    e.extend_from_slice(doc_id.as_bytes());
    for _ in 0..96 {
        e.push(next());
    }
    e.extend_from_slice(&(change_size_bytes as u32).to_be_bytes());
    for _ in 0..change_size_bytes {
        e.push(next());
    }
    e
}

/// Real signed changes of realistic dossiers: `dossiers` dossiers of unit `unit`, each created
/// at the counter and then taken through `events_per_dossier - 1` further steps, each step one
/// Automerge change signed by a node key derived from `seed` (actor bound to the key, as the
/// node writes them). Returns the encoded envelopes in the order they were made.
pub fn realistic_dossier_changes(
    unit: &str,
    dossiers: usize,
    events_per_dossier: usize,
    seed: u8,
) -> Vec<Vec<u8>> {
    use motcua_schema::automerge::Automerge;
    use motcua_schema::automerge::transaction::CommitOptions;
    use motcua_schema::catalog::ProcessingTime;
    use motcua_schema::dossier::{
        Applicant, Channel, Event as DossierEvent, EventBody, Header, ReturnMethod,
    };
    use motcua_schema::ed25519_dalek::SigningKey;
    use motcua_schema::ids::{DocId, DossierCode, UnitCode};
    use motcua_schema::layout;
    use motcua_schema::signed::{SignedChange, actor_for};
    use motcua_schema::timestamp::Timestamp;

    let key = SigningKey::from_bytes(&[seed; 32]);
    let actor = actor_for(&key.verifying_key(), [seed; 8]);
    let unit_code = UnitCode::new(unit).expect("valid unit code");
    // Varied personal data, so that compression is not flattered by repetition.
    let families = [
        "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    ];
    let middles = ["Văn", "Thị", "Hữu", "Minh", "Thanh", "Ngọc", "Đức", "Thu"];
    let givens = [
        "An", "Bình", "Cường", "Dung", "Giang", "Hà", "Hải", "Hạnh", "Hùng", "Khánh", "Lan",
        "Linh", "Long", "Mai", "Nam", "Phúc", "Quân", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Vy",
        "Yến",
    ];
    let streets = [
        "Lê Lợi",
        "Trần Hưng Đạo",
        "Nguyễn Trãi",
        "Hai Bà Trưng",
        "Quang Trung",
        "Lý Thường Kiệt",
        "Phan Đình Phùng",
        "Điện Biên Phủ",
        "Hùng Vương",
        "Nguyễn Huệ",
    ];
    let mut rng = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let base = 1_735_700_000_000i64;
    let mut out = Vec::new();
    for d in 0..dossiers {
        // A unit numbers at most 99,999 dossiers a day: large sets span several days.
        let day = 6 + d / 90_000;
        let code = DossierCode::parse(&format!("{unit}-2501{day:02}-{:04}", d % 90_000 + 1))
            .expect("valid code");
        let doc_id = DocId::Dossier(code.clone());
        let at = Timestamp(base + d as i64 * 60_000);
        let header = Header {
            code,
            unit: unit_code.clone(),
            procedure_code: "1.001193".into(),
            procedure_name: "Đăng ký khai sinh".into(),
            agency: "Tư pháp - Hộ tịch".into(),
            processing: ProcessingTime::WorkingDays(3),
            channel: Channel::Direct,
            applicant: Applicant {
                name: format!(
                    "{} {} {}",
                    families[next(families.len())],
                    middles[next(middles.len())],
                    givens[next(givens.len())]
                ),
                id_number: format!("0{:02}{:09}", next(96), next(1_000_000_000)),
                phone: format!("09{:08}", next(100_000_000)),
                address: format!(
                    "Số {} đường {}, tổ {}, phường {}",
                    next(400) + 1,
                    streets[next(streets.len())],
                    next(30) + 1,
                    unit
                ),
            },
            digitised: d % 2 == 0,
        };
        let mut events = vec![EventBody::Received {
            due_at: at.plus_millis(3 * 86_400_000),
        }];
        events.extend(
            [
                EventBody::PaymentRequested {
                    amount_vnd: 8_000,
                    note: "Lệ phí".into(),
                },
                EventBody::Paid { amount_vnd: 8_000 },
                EventBody::Resolved {
                    note: "Đã cấp giấy khai sinh".into(),
                },
                EventBody::Returned {
                    method: ReturnMethod::Counter,
                },
            ]
            .into_iter()
            .cycle()
            .take(events_per_dossier.saturating_sub(1)),
        );
        let mut doc = Automerge::new().with_actor(actor.clone());
        for (i, body) in events.into_iter().enumerate() {
            let event = DossierEvent {
                at: at.plus_millis(i as i64 * 3_600_000),
                by: "canbo.motcua01".into(),
                unit: unit_code.clone(),
                body,
            };
            let mut tx = doc.transaction();
            if i == 0 {
                layout::dossier::create(&mut tx, &header, &event).expect("layout");
            } else {
                layout::dossier::append(&mut tx, &event).expect("layout");
            }
            tx.commit_with(CommitOptions::default().with_time(event.at.0 / 1000));
            let change = doc.get_last_local_change().expect("a change was made");
            let signed = SignedChange::sign(&doc_id, change, &key).expect("actor is bound");
            out.push(signed.encode());
        }
    }
    out
}

/// What [`MemStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored at this feed position.
    Stored(u64),
    /// Already held.
    Duplicate,
    /// Refused: the envelope has no readable document id.
    Rejected,
}

#[derive(Debug, Clone)]
struct Stored {
    envelope: Vec<u8>,
    doc_id: String,
}

/// An in-memory [`ChangeStore`]: a `BTreeMap` feed, scope filtering by the document id read from
/// each envelope, and transfers recorded by [`MemStore::mark_transferred`].
#[derive(Debug, Clone)]
pub struct MemStore {
    store_id: [u8; 16],
    feed: BTreeMap<u64, [u8; 32]>,
    changes: HashMap<[u8; 32], Stored>,
    hashes: BTreeSet<[u8; 32]>,
    transfers: HashMap<String, HashSet<String>>,
}

impl MemStore {
    /// An empty store with this id.
    pub fn new(store_id: [u8; 16]) -> MemStore {
        MemStore {
            store_id,
            feed: BTreeMap::new(),
            changes: HashMap::new(),
            hashes: BTreeSet::new(),
            transfers: HashMap::new(),
        }
    }

    /// Stores an envelope under [`test_hash`].
    pub fn insert(&mut self, envelope: Vec<u8>) -> Inserted {
        let hash = test_hash(&envelope);
        self.insert_with_hash(hash, envelope)
    }

    /// Stores an envelope under `hash`.
    pub fn insert_with_hash(&mut self, hash: [u8; 32], envelope: Vec<u8>) -> Inserted {
        if self.changes.contains_key(&hash) {
            return Inserted::Duplicate;
        }
        let Some(doc_id) = doc_id_of(&envelope).map(str::to_owned) else {
            return Inserted::Rejected;
        };
        let pos = self.feed_head() + 1;
        self.feed.insert(pos, hash);
        self.hashes.insert(hash);
        self.changes.insert(hash, Stored { envelope, doc_id });
        Inserted::Stored(pos)
    }

    /// Applies a batch as a driver would, counting what happened.
    pub fn apply(&mut self, envelopes: Vec<Vec<u8>>) -> ApplyReport {
        let mut r = ApplyReport::default();
        for e in envelopes {
            match self.insert(e) {
                Inserted::Stored(_) => r.stored += 1,
                Inserted::Duplicate => r.duplicate += 1,
                Inserted::Rejected => r.rejected += 1,
            }
        }
        r
    }

    /// Records that dossier `doc_id` was transferred to `unit`.
    pub fn mark_transferred(&mut self, doc_id: &str, unit: &str) {
        self.transfers
            .entry(doc_id.to_owned())
            .or_default()
            .insert(unit.to_owned());
    }

    /// Gives the store a new id, as a node does when restored from a backup.
    pub fn set_store_id(&mut self, id: [u8; 16]) {
        self.store_id = id;
    }

    /// Number of changes held.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether a change is held.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.changes.contains_key(hash)
    }

    /// Every hash held.
    pub fn hash_set(&self) -> BTreeSet<[u8; 32]> {
        self.hashes.clone()
    }

    /// The document ids of every change held.
    pub fn doc_ids(&self) -> impl Iterator<Item = &str> {
        self.changes.values().map(|s| s.doc_id.as_str())
    }

    /// The envelopes admitted by `scope`, in feed order.
    pub fn envelopes_in_feed_order(&self, scope: &Scope) -> Vec<Vec<u8>> {
        self.feed
            .values()
            .map(|h| &self.changes[h])
            .filter(|s| self.admitted(scope, &s.doc_id))
            .map(|s| s.envelope.clone())
            .collect()
    }

    /// A copy of the store as a backup taken now would restore it, but with a new store id.
    pub fn restored_from(&self, new_id: [u8; 16]) -> MemStore {
        let mut s = self.clone();
        s.store_id = new_id;
        s
    }

    fn admitted(&self, scope: &Scope, doc_id: &str) -> bool {
        let transferred = scope.unit().is_some_and(|u| {
            self.transfers
                .get(doc_id)
                .is_some_and(|units| units.contains(u))
        });
        scope.admits(doc_id, transferred)
    }
}

impl ChangeStore for MemStore {
    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn feed_head(&self) -> u64 {
        self.feed.keys().next_back().copied().unwrap_or(0)
    }

    fn feed_after(
        &self,
        after: u64,
        scope: &Scope,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<(Vec<FeedEntry>, u64), StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut last = after;
        for (&pos, hash) in self.feed.range(after + 1..) {
            let s = &self.changes[hash];
            if self.admitted(scope, &s.doc_id) {
                if out.len() == count_max
                    || (!out.is_empty() && bytes + s.envelope.len() > bytes_max)
                {
                    break;
                }
                bytes += s.envelope.len();
                out.push(FeedEntry {
                    pos,
                    hash: *hash,
                    size_bytes: s.envelope.len() as u32,
                });
            }
            last = pos;
        }
        Ok((out, last))
    }

    fn has_short(&self, short: &[u8; 8]) -> Result<bool, StoreError> {
        let mut lo = [0u8; 32];
        lo[..8].copy_from_slice(short);
        let mut hi = [0xffu8; 32];
        hi[..8].copy_from_slice(short);
        Ok(self.hashes.range(lo..=hi).next().is_some())
    }

    fn envelope(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.changes.get(hash).map(|s| s.envelope.clone()))
    }

    fn for_each_hash(
        &self,
        scope: &Scope,
        upto: u64,
        f: &mut dyn FnMut(&[u8; 32]),
    ) -> Result<(), StoreError> {
        for hash in self.feed.range(..=upto).map(|(_, h)| h) {
            if self.admitted(scope, &self.changes[hash].doc_id) {
                f(hash);
            }
        }
        Ok(())
    }
}

/// One end of a [`Pair`]: a store, the scope it receives, its durable checkpoint of the other
/// end, and its current session.
#[derive(Debug)]
pub struct Node {
    /// The node's store.
    pub store: MemStore,
    /// What this node receives.
    pub scope: Scope,
    /// The checkpoint of the other node, as stored durably with the changes it covers.
    pub checkpoint: Option<Checkpoint>,
    /// The current session.
    pub session: Session,
    /// Every event except `Apply`, in order, across sessions.
    pub events: Vec<Event>,
    /// Batches applied, across sessions.
    pub applied: ApplyReport,
    /// `Apply` events received while [`Pair::hold_applies`] is set, not yet applied.
    pub held: VecDeque<(u64, Vec<Vec<u8>>, Option<Checkpoint>)>,
}

impl Node {
    /// Applies one batch as a durable driver would: envelopes and checkpoint together, then
    /// tells the session.
    fn apply_batch(
        &mut self,
        now: u64,
        batch: u64,
        envelopes: Vec<Vec<u8>>,
        checkpoint: Option<Checkpoint>,
    ) {
        let report = self.store.apply(envelopes);
        if let Some(c) = checkpoint {
            self.checkpoint = Some(c);
        }
        self.applied.stored += report.stored;
        self.applied.duplicate += report.duplicate;
        self.applied.rejected += report.rejected;
        self.session.applied(now, batch, report, &self.store);
        if report.stored > 0 {
            self.session.local_feed_advanced(now, &self.store);
        }
    }
}

/// Which end of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Node `a`.
    A,
    /// Node `b`.
    B,
}

/// Two nodes connected by a simulated link with a fixed one-way latency.
#[derive(Debug)]
pub struct Pair {
    /// Simulated time, ms.
    pub now: u64,
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Settings of every session this pair starts.
    pub config: SessionConfig,
    /// Node a.
    pub a: Node,
    /// Node b.
    pub b: Node,
    in_flight: VecDeque<(u64, End, Vec<u8>)>,
    /// Encoded bytes sent by a to b, and by b to a.
    pub bytes_sent: [u64; 2],
    /// Messages sent by a to b, and by b to a.
    pub messages_sent: [u64; 2],
    /// Encoded bytes sent per message name, both ways.
    pub bytes_by_message: BTreeMap<&'static str, u64>,
    /// Messages delivered so far.
    pub delivered: u64,
    /// While set, `Apply` events wait in [`Node::held`] (a slow or stuck driver).
    pub hold_applies: bool,
}

impl Pair {
    /// Connects two stores (each with the scope it receives) with a 50 ms one-way latency, with
    /// no checkpoints yet.
    pub fn new(a: MemStore, a_scope: Scope, b: MemStore, b_scope: Scope) -> Pair {
        Pair::with(a, a_scope, None, b, b_scope, None, SessionConfig::default())
    }

    /// Connects two stores with the given checkpoints and session settings.
    pub fn with(
        a: MemStore,
        a_scope: Scope,
        a_checkpoint: Option<Checkpoint>,
        b: MemStore,
        b_scope: Scope,
        b_checkpoint: Option<Checkpoint>,
        config: SessionConfig,
    ) -> Pair {
        let now = 1_000;
        let sa = new_session(&config, &a, &a_scope, a_checkpoint, &b_scope, now);
        let sb = new_session(&config, &b, &b_scope, b_checkpoint, &a_scope, now);
        let node = |store, scope, checkpoint, session| Node {
            store,
            scope,
            checkpoint,
            session,
            events: Vec::new(),
            applied: ApplyReport::default(),
            held: VecDeque::new(),
        };
        Pair {
            now,
            latency_ms: 50,
            config,
            a: node(a, a_scope, a_checkpoint, sa),
            b: node(b, b_scope, b_checkpoint, sb),
            in_flight: VecDeque::new(),
            bytes_sent: [0; 2],
            messages_sent: [0; 2],
            bytes_by_message: BTreeMap::new(),
            delivered: 0,
            hold_applies: false,
        }
    }

    /// The node at `end`.
    pub fn node(&mut self, end: End) -> &mut Node {
        match end {
            End::A => &mut self.a,
            End::B => &mut self.b,
        }
    }

    /// Total encoded bytes both ways.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_sent[0] + self.bytes_sent[1]
    }

    /// Drains both sessions' messages onto the link and their events into the stores.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            for end in [End::A, End::B] {
                let now = self.now;
                let latency = self.latency_ms;
                let node = match end {
                    End::A => &mut self.a,
                    End::B => &mut self.b,
                };
                while let Some(m) = node.session.poll_transmit() {
                    let bytes = m
                        .encode()
                        .expect("sessions only build messages within bounds");
                    let i = end as usize;
                    self.bytes_sent[i] += bytes.len() as u64;
                    self.messages_sent[i] += 1;
                    *self.bytes_by_message.entry(m.name()).or_default() += bytes.len() as u64;
                    self.in_flight.push_back((now + latency, end, bytes));
                    progressed = true;
                }
                while let Some(e) = node.session.poll_event() {
                    progressed = true;
                    match e {
                        Event::Apply {
                            batch,
                            envelopes,
                            checkpoint,
                        } => {
                            if self.hold_applies {
                                node.held.push_back((batch, envelopes, checkpoint));
                            } else {
                                node.apply_batch(now, batch, envelopes, checkpoint);
                            }
                        }
                        other => node.events.push(other),
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Delivers the next message (advancing the clock to its arrival); returns false when none
    /// is in flight.
    pub fn deliver_one(&mut self) -> bool {
        self.flush();
        let Some((at, from, bytes)) = self.in_flight.pop_front() else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        let to = match from {
            End::A => &mut self.b,
            End::B => &mut self.a,
        };
        to.session.handle_bytes(now, &bytes, &to.store);
        self.delivered += 1;
        self.flush();
        true
    }

    /// Delivers messages until none is in flight (timers are not fired); returns how many.
    pub fn run(&mut self) -> u64 {
        let mut n = 0;
        while self.deliver_one() {
            n += 1;
            assert!(n < 10_000_000, "the sessions never go quiet");
        }
        n
    }

    /// Delivers at most `n` messages.
    pub fn run_messages(&mut self, n: u64) -> u64 {
        let mut done = 0;
        while done < n && self.deliver_one() {
            done += 1;
        }
        done
    }

    /// Advances the clock to `until`, delivering messages and firing timers on the way.
    pub fn run_until(&mut self, until: u64) {
        loop {
            self.flush();
            let next_msg = self.in_flight.front().map(|(at, _, _)| *at);
            let next_timer = [self.a.session.poll_timeout(), self.b.session.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next = match (next_msg, next_timer) {
                (Some(m), Some(t)) => m.min(t),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            if next_msg == Some(next) {
                self.deliver_one();
            } else {
                self.now = self.now.max(next);
                let now = self.now;
                for node in [&mut self.a, &mut self.b] {
                    if node.session.poll_timeout().is_some_and(|t| t <= now) {
                        node.session.handle_timeout(now, &node.store);
                    }
                }
            }
        }
        self.now = self.now.max(until);
        self.flush();
    }

    /// Applies every held batch of `end`, in order.
    pub fn release_applies(&mut self, end: End) {
        let now = self.now;
        let node = self.node(end);
        while let Some((batch, envelopes, checkpoint)) = node.held.pop_front() {
            node.apply_batch(now, batch, envelopes, checkpoint);
        }
        self.flush();
    }

    /// Cuts the connection: messages in flight are lost and both sessions are dropped; then a
    /// fresh pair of sessions starts from the checkpoints each node stored.
    pub fn cut_and_reconnect(&mut self) {
        self.in_flight.clear();
        // A driver that was cut never applies what it had not applied yet.
        self.a.held.clear();
        self.b.held.clear();
        self.now += 1_000;
        let now = self.now;
        let (a_scope, b_scope) = (self.a.scope.clone(), self.b.scope.clone());
        self.a.session = new_session(
            &self.config,
            &self.a.store,
            &a_scope,
            self.a.checkpoint,
            &b_scope,
            now,
        );
        self.b.session = new_session(
            &self.config,
            &self.b.store,
            &b_scope,
            self.b.checkpoint,
            &a_scope,
            now,
        );
    }

    /// Stores changes at one node as if written locally, and tells its session.
    pub fn write(&mut self, end: End, envelopes: Vec<Vec<u8>>) {
        let now = self.now;
        let node = self.node(end);
        for e in envelopes {
            node.store.insert(e);
        }
        node.session.local_feed_advanced(now, &node.store);
        self.flush();
    }

    /// The failures either session reported.
    pub fn failures(&self) -> Vec<&FailReason> {
        self.a
            .events
            .iter()
            .chain(&self.b.events)
            .filter_map(|e| match e {
                Event::Failed { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

fn new_session(
    config: &SessionConfig,
    store: &MemStore,
    scope: &Scope,
    checkpoint: Option<Checkpoint>,
    peer_scope: &Scope,
    now: u64,
) -> Session {
    Session::new(
        config.clone(),
        Local {
            store_id: store.store_id(),
            feed_head: store.feed_head(),
            checkpoint,
            scope: scope.clone(),
        },
        peer_scope.clone(),
        now,
    )
}
