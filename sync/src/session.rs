//! One replication session with one peer: the protocol's state machine.
//!
//! Why a sans-IO state machine: the iroh driver in the node and the deterministic simulator must
//! run exactly the same protocol, and the protocol must be testable with a simulated clock,
//! latency and cuts. So a [`Session`] never touches a socket, a clock or a disk: messages and
//! time come in, messages, deadlines and events come out, and the store is read through
//! [`ChangeStore`] (writes are the driver's, on [`Event::Apply`]).
//!
//! A session is symmetric: each end pulls the other's feed and serves its own, at the same time.
//!
//! ```text
//!  A (pulls B's feed)                                        B (serves its feed)
//!  ── Hello{id, head, resume_from: my checkpoint of B, seen: B's id} ──►
//!  ◄── Hello{...} ──   (both cross; if B's head == my checkpoint: CaughtUp. Idle sync ends here.)
//!
//!  normal path (the checkpoint is valid: B's id is the one I saved, and within B's head)
//!  ◄── Announce{after, upto, head, [(short id, size)]} ──   at most 4 in flight
//!  ── Need{upto, bitmap of what I lack} ──►                 sent when I can take another batch
//!  ◄── Changes{upto, deflate(envelopes)} ──                 (only if the bitmap is not empty)
//!  Event::Apply{batch, envelopes, checkpoint upto}: the driver verifies and applies the
//!  envelopes and stores the checkpoint in one durable transaction, then calls `applied`.
//!  ... until upto == B's head: CaughtUp. Then B's new changes are announced as B stores them
//!  (`local_feed_advanced`), continuous-changes style.
//!
//!  repair path (no checkpoint, or B's id changed, e.g. B was restored from a backup)
//!  ── SketchRequest{0, 4} ──►            B freezes its set at its head H
//!  ◄── Sketch{H, 0, symbols} ──          A subtracts its own symbols and peels
//!  ── SketchRequest{4, 4} ──► ...        blocks double until items peel, then grow by a
//!                                        third, until decoded
//!  ── Reconciled{offer: what B lacks} ──►   B then Wants those from A (same exchange, reversed)
//!  ── Want{short ids A lacks} ──►  ◄── Supply{answered, envelopes} ──
//!  Event::Apply{.., checkpoint H};  ── Resume{from: H} ──►   the normal path continues after H
//! ```
//!
//! Anti-entropy is the repair path without the checkpoint: started by a timer
//! ([`SessionConfig::anti_entropy_interval_ms`]) or by [`Session::start_reconcile`], while the
//! feed goes on.
//!
//! **Resumability.** The checkpoint is stored in the same transaction as the changes it covers,
//! so a new session started from it (after any cut) asks for exactly what was not applied; the
//! announce/need exchange then skips whatever arrived meanwhile by another path.
//!
//! **Scope.** An envelope is only ever sent if its hash came from [`ChangeStore::feed_after`]
//! with the peer's scope, or from [`ChangeStore::for_each_hash`] with the reconciliation scope
//! (the intersection of both peers' scopes).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::reconcile::{Decoder, checksum_key, encode_block, next_block_count};
use crate::store::{ChangeStore, FeedEntry, Scope, StoreError, short_id};
use crate::wire::{
    AnnounceEntry, BATCH_CHANGES_COUNT_MAX, BATCH_SIZE_BYTES_MAX, ERROR_MESSAGE_SIZE_BYTES_MAX,
    ErrorCode, Message, PROTOCOL_VERSION, RECONCILE_DIFFERENCES_COUNT_MAX,
    SKETCH_SYMBOLS_COUNT_MAX, WANT_SHORTS_COUNT_MAX, WireError,
};

/// How long a request may go unanswered before the session fails, in milliseconds.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long a session may receive nothing before it pings the peer, in milliseconds.
pub const PING_INTERVAL_MS: u64 = 15_000;
/// Most announces a server has sent that the peer has not answered with `Need`.
pub const ANNOUNCES_IN_FLIGHT_COUNT_MAX: usize = 4;
/// Most batches a puller has requested (or is having applied) at once.
pub const BATCHES_IN_FLIGHT_COUNT_MAX: usize = 4;
/// Most `Want` requests in flight at once.
pub const WANTS_IN_FLIGHT_COUNT_MAX: usize = 2;
/// Most short ids a session remembers having received from its peer, so it does not announce
/// them straight back.
pub const RECENT_RECEIVED_COUNT_MAX: usize = 4096;
/// Once caught up, a run of feed positions with nothing for the peer is announced (to advance
/// its checkpoint) when it is at least this long, or after [`EMPTY_ANNOUNCE_DELAY_MS`].
pub const EMPTY_ANNOUNCE_POSITIONS_MIN: u64 = 1024;
/// Longest delay before an empty run of feed positions is announced, in milliseconds. Each empty
/// announce costs the receiver a checkpoint write; at a province whose feed grows all day with
/// other communes' records, a short delay made every idle commune write every few seconds.
pub const EMPTY_ANNOUNCE_DELAY_MS: u64 = 300_000;
/// Most `feed_after` calls in one call into the session; the rest continue on a timer at `now`.
pub const FEED_SCANS_PER_CALL_COUNT_MAX: usize = 64;
/// Most coded symbols one reconciliation may use (about 45 bytes each); past it the difference
/// is too large for reconciliation to beat reading the feed.
pub const SKETCH_SYMBOLS_TOTAL_COUNT_MAX: u64 = 98_304;
/// Fewest symbols a repair may use before it gives up for the feed.
pub const REPAIR_SYMBOLS_COUNT_MIN: u64 = 256;
/// Most short ids waiting to be wanted.
pub const WANT_QUEUE_COUNT_MAX: usize = 2 * RECONCILE_DIFFERENCES_COUNT_MAX;
/// Most messages one call into a session can queue (a few announces, needs and wants, and one
/// answer); the driver drains [`Session::poll_transmit`] after every call, so the queue never
/// holds more.
pub const OUTBOX_MESSAGES_COUNT_MAX: usize = 64;

/// Settings of a session. The defaults are the constants of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long a request may go unanswered, in milliseconds.
    pub request_timeout_ms: u64,
    /// How long without receiving anything before a ping, in milliseconds.
    pub ping_interval_ms: u64,
    /// Run anti-entropy reconciliation this often, in milliseconds (`None`: never by timer).
    pub anti_entropy_interval_ms: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            ping_interval_ms: PING_INTERVAL_MS,
            anti_entropy_interval_ms: None,
        }
    }
}

/// How far a node has durably applied a peer's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The peer's store id this position refers to.
    pub peer_store_id: [u8; 16],
    /// Every change of the peer's feed at positions `<= upto` in this node's scope is held.
    pub upto: u64,
}

/// What this node says about itself in its `Hello`, and what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// This store's id (random, never all zeros).
    pub store_id: [u8; 16],
    /// This store's feed head when the session starts.
    pub feed_head: u64,
    /// This node's saved checkpoint of the peer, if any.
    pub checkpoint: Option<Checkpoint>,
    /// What this node itself receives (its own scope), for the reconciliation intersection.
    pub scope: Scope,
}

/// What the driver's apply of one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// Changes stored (applied or pending their dependencies).
    pub stored: u64,
    /// Of `stored`, changes held pending their dependencies. The session then reconciles with
    /// the peer at once: the dependencies may sit at positions of the peer's feed this node's
    /// checkpoint already passed while they were outside its scope (the earlier history of a
    /// dossier just transferred to this node), which only a reconciliation finds.
    pub pending: u64,
    /// Changes already held.
    pub duplicate: u64,
    /// Changes refused by verification.
    pub rejected: u64,
}

/// What a reconciliation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// A repair of a void checkpoint (`false`: anti-entropy).
    pub repair: bool,
    /// Whether the difference was decoded.
    pub decoded: bool,
    /// Coded symbols received.
    pub symbols: u64,
    /// Changes the peer holds that this node lacks.
    pub remote_only: u64,
    /// Changes this node holds that the peer lacks (offered to it).
    pub local_only: u64,
    /// The repair gave up and reads the peer's feed from the start instead.
    pub fell_back_to_feed: bool,
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer introduced itself.
    PeerHello {
        /// Its store id.
        store_id: [u8; 16],
        /// Its feed head.
        feed_head: u64,
        /// Whether this node's checkpoint of it is valid.
        checkpoint_valid: bool,
        /// How far the peer holds this node's feed: its durable checkpoint of it, sent in its
        /// `Hello`, when that refers to this node's store and lies within this node's head
        /// (`None` otherwise). The driver keeps it, so that a bundle cut for the peer later
        /// carries only what came after.
        acked: Option<u64>,
    },
    /// Verify and apply these envelopes, and store `checkpoint` (if any) in the same durable
    /// transaction; then call [`Session::applied`] with `batch`. Apply events must be handled in
    /// the order they are emitted.
    Apply {
        /// The batch id to pass to [`Session::applied`].
        batch: u64,
        /// Signed envelopes, unverified.
        envelopes: Vec<Vec<u8>>,
        /// The checkpoint to store with them.
        checkpoint: Option<Checkpoint>,
    },
    /// Everything the peer announced is applied, up to its head as last known.
    CaughtUp {
        /// The peer's feed head.
        peer_head: u64,
    },
    /// A reconciliation ended.
    ReconcileDone(ReconcileReport),
    /// The session ended; drop it. A new one resumes from the stored checkpoint.
    Failed {
        /// Why.
        reason: FailReason,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {found}, this node speaks {PROTOCOL_VERSION}")]
    Version {
        /// The peer's version.
        found: u8,
    },
    /// The peer sent bytes that are not a message.
    #[error("undecodable message: {0}")]
    Wire(WireError),
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A request went unanswered.
    #[error("no answer to {request} within {timeout_ms} ms")]
    Timeout {
        /// What was asked.
        request: &'static str,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The peer ended the session.
    #[error("peer ended the session ({code:?}): {message}")]
    Peer {
        /// Its code.
        code: ErrorCode,
        /// Its text.
        message: String,
    },
    /// This node's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This node closed the session.
    #[error("closed by this node")]
    Closed,
}

/// Per-peer counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Changes sent to the peer.
    pub changes_sent: u64,
    /// Envelope bytes sent to the peer (before compression).
    pub envelope_bytes_sent: u64,
    /// Changes received from the peer.
    pub changes_received: u64,
    /// Envelope bytes received from the peer (after decompression).
    pub envelope_bytes_received: u64,
    /// Received changes the driver stored.
    pub stored: u64,
    /// Received changes the driver already held.
    pub duplicates: u64,
    /// Received changes the driver refused.
    pub rejects_reported: u64,
    /// When this session last caught up with the peer (ms).
    pub last_caught_up_at: Option<u64>,
    /// The peer's feed head, as last known.
    pub peer_head: u64,
    /// This node's durable checkpoint of the peer's feed.
    pub checkpoint: u64,
    /// Reconciliations this session decoded.
    pub reconciliations: u64,
    /// Changes found missing (by reconciliation, or offered by the peer) that were not asked
    /// for because the want queue was full; the next anti-entropy run finds them again.
    pub wants_dropped: u64,
}

impl Stats {
    /// How far behind the peer's feed this node is, in feed positions.
    pub fn behind(&self) -> u64 {
        self.peer_head.saturating_sub(self.checkpoint)
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    store_id: [u8; 16],
}

/// The serving half: announcing this node's feed to the peer.
#[derive(Debug, Default)]
struct Serve {
    started: bool,
    /// End of the last range announced (what the peer expects next announce to start from).
    announced_upto: u64,
    /// End of the feed scanned; `(announced_upto, scan_cursor]` holds nothing for the peer.
    scan_cursor: u64,
    in_flight: VecDeque<InFlightAnnounce>,
    /// Set once an announce has reached the feed head: later empty runs are coalesced.
    caught_up: bool,
    flush_at: Option<u64>,
    rescan_at: Option<u64>,
}

#[derive(Debug)]
struct InFlightAnnounce {
    upto: u64,
    entries: Vec<FeedEntry>,
    sent_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullMode {
    AwaitHello,
    Feed,
    Repair,
}

/// The pulling half: receiving the peer's feed and reconciliation results.
#[derive(Debug)]
struct Pull {
    mode: PullMode,
    announced_upto: u64,
    applied_upto: u64,
    peer_head: u64,
    waiting: VecDeque<(u64, Vec<AnnounceEntry>)>,
    batches: VecDeque<Batch>,
    next_batch: u64,
    caught_up: bool,
    /// The peer's frozen head, to store as the checkpoint once a repair's wants are answered.
    repair_checkpoint: Option<u64>,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    kind: BatchKind,
    state: BatchState,
    checkpoint: Option<u64>,
}

#[derive(Debug)]
enum BatchKind {
    Feed { upto: u64, shorts: Vec<[u8; 8]> },
    Want { shorts: Vec<WantedShort> },
    Checkpoint,
}

#[derive(Debug)]
enum BatchState {
    Awaiting { since: u64 },
    Ready(Vec<Vec<u8>>),
    Applying,
}

#[derive(Debug, Clone, Copy)]
struct WantedShort {
    short: [u8; 8],
    repair: bool,
}

/// A reconciliation this node is decoding.
#[derive(Debug)]
struct Recon {
    repair: bool,
    own_head: u64,
    peer_head: Option<u64>,
    decoder: Decoder,
    key: [u8; 16],
    requested: Option<(u64, u64, u64)>,
    cap: u64,
}

/// Short ids recently received from the peer, bounded, oldest forgotten first.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<[u8; 8]>,
    set: HashSet<[u8; 8]>,
}

impl Recent {
    fn insert(&mut self, s: [u8; 8]) {
        if self.set.insert(s) {
            self.order.push_back(s);
            if self.order.len() > RECENT_RECEIVED_COUNT_MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// One replication session with one peer over one connection.
///
/// Call order, for the driver:
/// 1. [`Session::new`] when the connection opens (it queues this node's `Hello`), then
///    [`Session::want_reconcile`] if the store holds changes pending their dependencies;
/// 2. whenever a message arrives: [`Session::handle`] (or [`Session::handle_bytes`]);
/// 3. after every call into the session: drain [`Session::poll_transmit`] (send each message
///    encoded with [`Message::encode`]) and [`Session::poll_event`], then arm a timer for
///    [`Session::poll_timeout`];
/// 4. when that timer fires: [`Session::handle_timeout`];
/// 5. on [`Event::Apply`]: verify and apply the envelopes and store the checkpoint in one durable
///    transaction, in event order, then call [`Session::applied`] (with how many of them wait
///    pending, which makes the session reconcile);
/// 6. when this node stores new changes (from any source): [`Session::local_feed_advanced`];
/// 7. on [`Event::Failed`]: send what `poll_transmit` still yields (an `Error`), close the
///    connection and drop the session; later, start a new one from the stored checkpoint.
///
/// Times are milliseconds on any monotonic clock the driver chooses.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    local: Local,
    peer_scope: Scope,
    recon_scope: Scope,
    closed: bool,
    peer: Option<Peer>,
    outbox: VecDeque<Message>,
    events: VecDeque<Event>,
    started_at: u64,
    last_received_at: u64,
    ping: Option<(u64, u64)>,
    next_nonce: u64,
    serve: Serve,
    sketch_head: Option<u64>,
    pull: Pull,
    recon: Option<Recon>,
    want_queue: VecDeque<WantedShort>,
    repair_outstanding: u64,
    recent: Recent,
    next_anti_entropy_at: Option<u64>,
    /// A reconciliation is wanted (changes arrived pending their dependencies) and starts as
    /// soon as none is running and the feed is being pulled.
    reconcile_wanted: bool,
    stats: Stats,
}

type Step = Result<(), FailReason>;

fn protocol(msg: impl Into<String>) -> FailReason {
    FailReason::Protocol(msg.into())
}

impl Session {
    /// Starts a session with a peer whose receive scope is `peer_scope` (from the trust
    /// registry) and queues this node's `Hello`.
    pub fn new(config: SessionConfig, local: Local, peer_scope: Scope, now: u64) -> Session {
        let recon_scope = peer_scope.intersect(&local.scope);
        let (resume_from, seen) = match local.checkpoint {
            Some(c) => (c.upto, c.peer_store_id),
            None => (0, [0; 16]),
        };
        let mut outbox = VecDeque::new();
        outbox.push_back(Message::Hello {
            store_id: local.store_id,
            feed_head: local.feed_head,
            resume_from,
            peer_store_id_seen: seen,
        });
        Session {
            config,
            local,
            peer_scope,
            recon_scope,
            closed: false,
            peer: None,
            outbox,
            events: VecDeque::new(),
            started_at: now,
            last_received_at: now,
            ping: None,
            next_nonce: 1,
            serve: Serve::default(),
            sketch_head: None,
            pull: Pull {
                mode: PullMode::AwaitHello,
                announced_upto: 0,
                applied_upto: 0,
                peer_head: 0,
                waiting: VecDeque::new(),
                batches: VecDeque::new(),
                next_batch: 1,
                caught_up: false,
                repair_checkpoint: None,
            },
            recon: None,
            want_queue: VecDeque::new(),
            repair_outstanding: 0,
            recent: Recent::default(),
            next_anti_entropy_at: None,
            reconcile_wanted: false,
            stats: Stats::default(),
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// The next event for the driver, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called (ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        let mut t = self.request_deadline().map(|(_, at)| at);
        let mut take = |x: Option<u64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.ping.is_none() {
            take(Some(self.last_received_at + self.config.ping_interval_ms));
        }
        take(self.serve.flush_at);
        take(self.serve.rescan_at);
        take(self.next_anti_entropy_at);
        t
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The per-peer counters.
    pub fn stats(&self) -> Stats {
        Stats {
            peer_head: self.pull.peer_head,
            checkpoint: self.pull.applied_upto,
            ..self.stats
        }
    }

    /// Handles a message from the peer.
    pub fn handle<S: ChangeStore + ?Sized>(&mut self, now: u64, msg: Message, store: &S) {
        if self.closed {
            return;
        }
        self.last_received_at = now;
        let step = self
            .on_message(now, msg, store)
            .and_then(|_| self.pump(now, store));
        self.settle(step);
    }

    /// Decodes and handles bytes from the peer; undecodable bytes end the session with a typed
    /// reason and an `Error` message telling the peer why.
    pub fn handle_bytes<S: ChangeStore + ?Sized>(&mut self, now: u64, bytes: &[u8], store: &S) {
        if self.closed {
            return;
        }
        match Message::decode(bytes) {
            Ok(msg) => self.handle(now, msg, store),
            Err(WireError::Version { found, .. }) => self.fail(FailReason::Version { found }),
            Err(e) => self.fail(FailReason::Wire(e)),
        }
    }

    /// Handles the timer armed from [`Session::poll_timeout`].
    pub fn handle_timeout<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) {
        if self.closed {
            return;
        }
        if let Some((request, at)) = self.request_deadline()
            && now >= at
        {
            self.fail(FailReason::Timeout {
                request,
                timeout_ms: self.config.request_timeout_ms,
            });
            return;
        }
        if self.ping.is_none() && now >= self.last_received_at + self.config.ping_interval_ms {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            self.outbox.push_back(Message::Ping { nonce });
            self.ping = Some((nonce, now));
        }
        if self.serve.flush_at.is_some_and(|t| now >= t) {
            self.serve.flush_at = None;
            if self.serve.in_flight.len() < ANNOUNCES_IN_FLIGHT_COUNT_MAX
                && self.serve.scan_cursor > self.serve.announced_upto
            {
                self.send_announce(now, store.feed_head(), Vec::new());
            }
        }
        if self.next_anti_entropy_at.is_some_and(|t| now >= t) {
            self.next_anti_entropy_at = self.config.anti_entropy_interval_ms.map(|i| now + i);
            if self.pull.mode == PullMode::Feed {
                let step = self.start_recon(now, store, false).map(|_| ());
                if let Err(e) = step {
                    self.fail(e);
                    return;
                }
            }
        }
        // A rescan timer is served by the pump itself.
        let step = self.pump(now, store);
        self.settle(step);
    }

    /// Tells the session that this node stored new changes, so they are announced to the peer
    /// promptly.
    pub fn local_feed_advanced<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) {
        if self.closed {
            return;
        }
        let step = self.pump(now, store);
        self.settle(step);
    }

    /// Tells the session that the driver durably applied `batch` (from [`Event::Apply`]) with
    /// its checkpoint; the session then asks for more.
    pub fn applied<S: ChangeStore + ?Sized>(
        &mut self,
        now: u64,
        batch: u64,
        report: ApplyReport,
        store: &S,
    ) {
        if self.closed {
            return;
        }
        let Some(pos) = self
            .pull
            .batches
            .iter()
            .position(|b| b.id == batch && matches!(b.state, BatchState::Applying))
        else {
            debug_assert!(false, "applied({batch}) names no batch being applied");
            return;
        };
        debug_assert_eq!(pos, 0, "apply events must be applied in the order emitted");
        let b = self.pull.batches.remove(pos).expect("position is in range");
        if let Some(upto) = b.checkpoint {
            self.pull.applied_upto = self.pull.applied_upto.max(upto);
        }
        self.stats.stored += report.stored;
        self.stats.duplicates += report.duplicate;
        self.stats.rejects_reported += report.rejected;
        self.reconcile_wanted |= report.pending > 0;
        let step = self.pump(now, store);
        self.settle(step);
    }

    /// Starts an anti-entropy reconciliation now, unless one is running or the feed is not
    /// being pulled yet. Returns whether it started.
    pub fn start_reconcile<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) -> bool {
        if self.closed || self.pull.mode != PullMode::Feed {
            return false;
        }
        match self.start_recon(now, store, false) {
            Ok(started) => started,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Asks for an anti-entropy reconciliation as soon as the feed is being pulled. A driver
    /// calls it when a session starts while its store holds changes pending their dependencies:
    /// the session that received them may have ended before it could reconcile (see
    /// [`ApplyReport::pending`]).
    pub fn want_reconcile(&mut self) {
        self.reconcile_wanted = true;
    }

    /// Ends the session from this side (e.g. the node is shutting down).
    pub fn close(&mut self) {
        self.fail(FailReason::Closed);
    }

    fn settle(&mut self, step: Step) {
        if let Err(e) = step {
            self.fail(e);
        }
        debug_assert!(
            self.outbox.len() <= OUTBOX_MESSAGES_COUNT_MAX,
            "the driver must drain poll_transmit after every call"
        );
    }

    fn fail(&mut self, reason: FailReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        let reply = match &reason {
            FailReason::Peer { .. } => None,
            FailReason::Version { .. } => Some((
                ErrorCode::Version,
                format!("this node speaks protocol version {PROTOCOL_VERSION}"),
            )),
            FailReason::Wire(_) | FailReason::Protocol(_) => {
                Some((ErrorCode::Protocol, reason.to_string()))
            }
            FailReason::Timeout { .. } => Some((ErrorCode::Timeout, reason.to_string())),
            FailReason::Store(_) => Some((ErrorCode::Store, "the peer's store failed".into())),
            FailReason::Closed => Some((ErrorCode::Shutdown, "session closed".into())),
        };
        self.outbox.clear();
        if let Some((code, mut message)) = reply {
            if message.len() > ERROR_MESSAGE_SIZE_BYTES_MAX {
                let mut cut = ERROR_MESSAGE_SIZE_BYTES_MAX;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            self.outbox.push_back(Message::Error { code, message });
        }
        self.events.push_back(Event::Failed { reason });
    }

    /// The earliest unanswered request and when it times out.
    fn request_deadline(&self) -> Option<(&'static str, u64)> {
        let t = self.config.request_timeout_ms;
        let mut best: Option<(&'static str, u64)> = None;
        let mut consider = |what: &'static str, since: Option<u64>| {
            if let Some(since) = since {
                let at = since + t;
                if best.is_none_or(|(_, b)| at < b) {
                    best = Some((what, at));
                }
            }
        };
        consider("hello", self.peer.is_none().then_some(self.started_at));
        consider("announce", self.serve.in_flight.front().map(|a| a.sent_at));
        consider(
            "need or want",
            self.pull.batches.iter().find_map(|b| match b.state {
                BatchState::Awaiting { since } => Some(since),
                _ => None,
            }),
        );
        consider(
            "sketch request",
            self.recon
                .as_ref()
                .and_then(|r| r.requested.map(|(_, _, at)| at)),
        );
        consider("ping", self.ping.map(|(_, at)| at));
        best
    }

    fn peer_id(&self) -> [u8; 16] {
        self.peer.map(|p| p.store_id).unwrap_or_default()
    }

    fn on_message<S: ChangeStore + ?Sized>(&mut self, now: u64, msg: Message, store: &S) -> Step {
        if self.peer.is_none() && !matches!(msg, Message::Hello { .. } | Message::Error { .. }) {
            return Err(protocol(format!("{} before hello", msg.name())));
        }
        match msg {
            Message::Hello {
                store_id,
                feed_head,
                resume_from,
                peer_store_id_seen,
            } => self.on_hello(
                now,
                store,
                store_id,
                feed_head,
                resume_from,
                peer_store_id_seen,
            ),
            Message::Resume { from } => {
                if self.serve.started {
                    return Err(protocol("resume while already serving"));
                }
                if from > store.feed_head() {
                    return Err(protocol(format!(
                        "resume from {from} past this feed's head"
                    )));
                }
                self.start_serving(from);
                Ok(())
            }
            Message::Announce {
                after,
                upto,
                head,
                entries,
            } => self.on_announce(after, upto, head, entries),
            Message::Need { upto, wanted } => self.on_need(store, upto, &wanted),
            Message::Changes { upto, envelopes } => self.on_changes(upto, envelopes),
            Message::SketchRequest { start, count } => self.on_sketch_request(store, start, count),
            Message::Sketch {
                head,
                start,
                symbols,
            } => self.on_sketch(now, store, head, start, &symbols),
            Message::Reconciled { offer, .. } => {
                for short in offer {
                    if self.want_queue.len() >= WANT_QUEUE_COUNT_MAX {
                        self.stats.wants_dropped += 1;
                    } else if !store.has_short(&short)? {
                        self.want_queue.push_back(WantedShort {
                            short,
                            repair: false,
                        });
                    }
                }
                Ok(())
            }
            Message::Want { shorts } => self.on_want(store, &shorts),
            Message::Supply {
                answered,
                envelopes,
            } => self.on_supply(answered, envelopes),
            Message::Ping { nonce } => {
                self.outbox.push_back(Message::Pong { nonce });
                Ok(())
            }
            Message::Pong { nonce } => {
                if self.ping.is_some_and(|(n, _)| n == nonce) {
                    self.ping = None;
                }
                Ok(())
            }
            Message::Error { code, message } => Err(FailReason::Peer { code, message }),
        }
    }

    fn on_hello<S: ChangeStore + ?Sized>(
        &mut self,
        now: u64,
        store: &S,
        store_id: [u8; 16],
        feed_head: u64,
        resume_from: u64,
        peer_store_id_seen: [u8; 16],
    ) -> Step {
        if self.peer.is_some() {
            return Err(protocol("second hello"));
        }
        self.peer = Some(Peer { store_id });
        self.pull.peer_head = feed_head;
        // Serving: the peer's checkpoint is judged against the head this node put in its own
        // Hello, so both ends reach the same verdict from the same two messages.
        let acked = (peer_store_id_seen == self.local.store_id
            && resume_from <= self.local.feed_head)
            .then_some(resume_from);
        if let Some(from) = acked {
            self.start_serving(from);
        }
        // Pulling.
        let valid = self
            .local
            .checkpoint
            .filter(|c| c.peer_store_id == store_id && c.upto <= feed_head);
        self.events.push_back(Event::PeerHello {
            store_id,
            feed_head,
            checkpoint_valid: valid.is_some(),
            acked,
        });
        self.next_anti_entropy_at = self.config.anti_entropy_interval_ms.map(|i| now + i);
        if let Some(c) = valid {
            self.pull.mode = PullMode::Feed;
            self.pull.announced_upto = c.upto;
            self.pull.applied_upto = c.upto;
            return Ok(());
        }
        // No valid checkpoint. Reconciliation pays when both sides hold much and differ little,
        // and is exact only when the intersection of scopes is all this node receives.
        let reconcile =
            feed_head > 0 && store.feed_head() > 0 && self.recon_scope == self.local.scope;
        if reconcile {
            self.pull.mode = PullMode::Repair;
            self.start_recon(now, store, true)?;
        } else {
            self.pull_from_start();
        }
        Ok(())
    }

    /// Reads the peer's feed from its first position.
    fn pull_from_start(&mut self) {
        self.pull.mode = PullMode::Feed;
        self.pull.announced_upto = 0;
        self.pull.applied_upto = 0;
        self.outbox.push_back(Message::Resume { from: 0 });
        if self.pull.peer_head == 0 {
            // Nothing to read: store the checkpoint so the peer's store id is remembered.
            self.push_checkpoint_batch(0);
        }
    }

    fn push_checkpoint_batch(&mut self, upto: u64) {
        let id = self.pull.next_batch;
        self.pull.next_batch += 1;
        self.pull.batches.push_back(Batch {
            id,
            kind: BatchKind::Checkpoint,
            state: BatchState::Ready(Vec::new()),
            checkpoint: Some(upto),
        });
    }

    fn start_serving(&mut self, from: u64) {
        self.serve.started = true;
        self.serve.announced_upto = from;
        self.serve.scan_cursor = from;
    }

    fn send_announce(&mut self, now: u64, head: u64, entries: Vec<FeedEntry>) {
        let upto = self.serve.scan_cursor;
        self.outbox.push_back(Message::Announce {
            after: self.serve.announced_upto,
            upto,
            head: head.max(upto),
            entries: entries
                .iter()
                .map(|e| AnnounceEntry {
                    short: e.short(),
                    size_bytes: e.size_bytes,
                })
                .collect(),
        });
        self.serve.in_flight.push_back(InFlightAnnounce {
            upto,
            entries,
            sent_at: now,
        });
        self.serve.announced_upto = upto;
        self.serve.flush_at = None;
    }

    fn pump<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) -> Step {
        if self.reconcile_wanted
            && self.recon.is_none()
            && self.pull.mode == PullMode::Feed
            && self.start_recon(now, store, false)?
        {
            self.reconcile_wanted = false;
        }
        self.pump_serve(now, store)?;
        self.pump_pull(now, store)?;
        self.pump_wants(now, store)?;
        self.finish_repair();
        self.emit_ready();
        self.check_caught_up(now);
        Ok(())
    }

    fn pump_serve<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) -> Step {
        if !self.serve.started {
            return Ok(());
        }
        self.serve.rescan_at = None;
        let mut scans = 0;
        while self.serve.in_flight.len() < ANNOUNCES_IN_FLIGHT_COUNT_MAX {
            if scans == FEED_SCANS_PER_CALL_COUNT_MAX {
                self.serve.rescan_at = Some(now);
                break;
            }
            let after = self.serve.scan_cursor;
            // Nothing follows the head: asking the store would cost it a read snapshot, and
            // this runs on every message and timer of an idle link.
            if after >= store.feed_head() {
                break;
            }
            scans += 1;
            let (entries, scanned) = store.feed_after(
                after,
                &self.peer_scope,
                BATCH_CHANGES_COUNT_MAX,
                BATCH_SIZE_BYTES_MAX,
            )?;
            if scanned <= after {
                break;
            }
            if entries.len() > BATCH_CHANGES_COUNT_MAX
                || entries.iter().any(|e| e.pos <= after || e.pos > scanned)
            {
                return Err(StoreError::Read("feed_after broke its contract".into()).into());
            }
            self.serve.scan_cursor = scanned;
            let entries: Vec<FeedEntry> = entries
                .into_iter()
                .filter(|e| !self.recent.set.contains(&e.short()))
                .collect();
            let head = store.feed_head();
            let due = !entries.is_empty()
                || !self.serve.caught_up
                || scanned - self.serve.announced_upto >= EMPTY_ANNOUNCE_POSITIONS_MIN;
            if due {
                self.send_announce(now, head, entries);
            } else if self.serve.flush_at.is_none() {
                self.serve.flush_at = Some(now + EMPTY_ANNOUNCE_DELAY_MS);
            }
            if scanned >= head {
                self.serve.caught_up = true;
            }
        }
        Ok(())
    }

    fn on_need<S: ChangeStore + ?Sized>(&mut self, store: &S, upto: u64, wanted: &[bool]) -> Step {
        let front = self
            .serve
            .in_flight
            .pop_front()
            .ok_or_else(|| protocol("need without announce"))?;
        if front.upto != upto || front.entries.len() != wanted.len() {
            return Err(protocol(format!(
                "need for {upto} ({} entries) does not match announce for {} ({} entries)",
                wanted.len(),
                front.upto,
                front.entries.len()
            )));
        }
        let mut envelopes = Vec::new();
        let mut bytes = 0usize;
        for e in front
            .entries
            .iter()
            .zip(wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| e)
        {
            let env = store
                .envelope(&e.hash)?
                .ok_or_else(|| StoreError::Missing {
                    hash: hex_of(&e.hash),
                })?;
            bytes += env.len();
            envelopes.push(env);
        }
        if bytes > BATCH_SIZE_BYTES_MAX {
            return Err(
                StoreError::Read("feed sizes disagree with stored envelopes".into()).into(),
            );
        }
        if !envelopes.is_empty() {
            self.stats.changes_sent += envelopes.len() as u64;
            self.stats.envelope_bytes_sent += bytes as u64;
            self.outbox.push_back(Message::Changes { upto, envelopes });
        }
        Ok(())
    }

    fn on_announce(
        &mut self,
        after: u64,
        upto: u64,
        head: u64,
        entries: Vec<AnnounceEntry>,
    ) -> Step {
        if self.pull.mode != PullMode::Feed {
            return Err(protocol("announce while not reading the feed"));
        }
        if after != self.pull.announced_upto {
            return Err(protocol(format!(
                "announce after {after}, expected after {}",
                self.pull.announced_upto
            )));
        }
        if self.pull.waiting.len() >= ANNOUNCES_IN_FLIGHT_COUNT_MAX {
            return Err(protocol("more announces in flight than allowed"));
        }
        self.pull.announced_upto = upto;
        self.pull.peer_head = self.pull.peer_head.max(head);
        self.pull.caught_up = false;
        self.pull.waiting.push_back((upto, entries));
        Ok(())
    }

    fn pump_pull<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) -> Step {
        while self.pull.batches.len() < BATCHES_IN_FLIGHT_COUNT_MAX {
            let Some((upto, entries)) = self.pull.waiting.pop_front() else {
                break;
            };
            let mut wanted = Vec::with_capacity(entries.len());
            let mut shorts = Vec::new();
            for e in &entries {
                let need = !store.has_short(&e.short)?;
                if need {
                    shorts.push(e.short);
                }
                wanted.push(need);
            }
            self.outbox.push_back(Message::Need { upto, wanted });
            let state = if shorts.is_empty() {
                BatchState::Ready(Vec::new())
            } else {
                BatchState::Awaiting { since: now }
            };
            let id = self.pull.next_batch;
            self.pull.next_batch += 1;
            self.pull.batches.push_back(Batch {
                id,
                kind: BatchKind::Feed { upto, shorts },
                state,
                checkpoint: Some(upto),
            });
        }
        Ok(())
    }

    fn on_changes(&mut self, upto: u64, envelopes: Vec<Vec<u8>>) -> Step {
        let batch = self
            .pull
            .batches
            .iter_mut()
            .find(|b| {
                matches!(b.state, BatchState::Awaiting { .. })
                    && matches!(b.kind, BatchKind::Feed { .. })
            })
            .ok_or_else(|| protocol("changes without need"))?;
        let BatchKind::Feed {
            upto: expected,
            shorts,
        } = &batch.kind
        else {
            unreachable!("found a feed batch");
        };
        if *expected != upto || shorts.len() != envelopes.len() {
            return Err(protocol(format!(
                "changes for {upto} ({} envelopes) do not match need for {expected} ({})",
                envelopes.len(),
                shorts.len()
            )));
        }
        for s in shorts {
            self.recent.insert(*s);
        }
        self.stats.changes_received += envelopes.len() as u64;
        self.stats.envelope_bytes_received += envelopes.iter().map(|e| e.len() as u64).sum::<u64>();
        batch.state = BatchState::Ready(envelopes);
        Ok(())
    }

    fn emit_ready(&mut self) {
        let peer_store_id = self.peer_id();
        for b in self.pull.batches.iter_mut() {
            match &mut b.state {
                BatchState::Applying => continue,
                BatchState::Awaiting { .. } => break,
                BatchState::Ready(envelopes) => {
                    let envelopes = std::mem::take(envelopes);
                    self.events.push_back(Event::Apply {
                        batch: b.id,
                        envelopes,
                        checkpoint: b.checkpoint.map(|upto| Checkpoint {
                            peer_store_id,
                            upto,
                        }),
                    });
                    b.state = BatchState::Applying;
                }
            }
        }
    }

    fn check_caught_up(&mut self, now: u64) {
        let feed_pending = self
            .pull
            .batches
            .iter()
            .any(|b| !matches!(b.kind, BatchKind::Want { .. }));
        if self.pull.mode == PullMode::Feed
            && !self.pull.caught_up
            && self.pull.waiting.is_empty()
            && !feed_pending
            && self.pull.applied_upto >= self.pull.peer_head
        {
            self.pull.caught_up = true;
            self.stats.last_caught_up_at = Some(now);
            self.events.push_back(Event::CaughtUp {
                peer_head: self.pull.peer_head,
            });
        }
    }

    fn on_sketch_request<S: ChangeStore + ?Sized>(
        &mut self,
        store: &S,
        start: u64,
        count: u64,
    ) -> Step {
        if count == 0
            || count > SKETCH_SYMBOLS_COUNT_MAX as u64
            || start.saturating_add(count) > SKETCH_SYMBOLS_TOTAL_COUNT_MAX
        {
            return Err(protocol(format!(
                "sketch request [{start}, +{count}) out of bounds"
            )));
        }
        if start == 0 {
            self.sketch_head = Some(store.feed_head());
        }
        let head = self
            .sketch_head
            .ok_or_else(|| protocol("sketch request before its start"))?;
        let key = checksum_key(&self.local.store_id, &self.peer_id());
        let symbols = encode_block(store, &self.recon_scope, head, &key, start, count as usize)?;
        self.outbox.push_back(Message::Sketch {
            head,
            start,
            symbols,
        });
        Ok(())
    }

    /// Starts decoding a reconciliation with the peer; returns whether one started.
    fn start_recon<S: ChangeStore + ?Sized>(
        &mut self,
        now: u64,
        store: &S,
        repair: bool,
    ) -> Result<bool, FailReason> {
        if self.recon.is_some() || self.peer.is_none() {
            return Ok(false);
        }
        let key = checksum_key(&self.peer_id(), &self.local.store_id);
        let count = next_block_count(0, 0);
        self.outbox
            .push_back(Message::SketchRequest { start: 0, count });
        // A repair that needs more symbols than a quarter of the peer's feed would cost more
        // than reading the feed (about 10 bytes a position against 45 a symbol).
        let cap = if repair {
            (self.pull.peer_head / 4)
                .clamp(REPAIR_SYMBOLS_COUNT_MIN, SKETCH_SYMBOLS_TOTAL_COUNT_MAX)
        } else {
            SKETCH_SYMBOLS_TOTAL_COUNT_MAX
        };
        self.recon = Some(Recon {
            repair,
            own_head: store.feed_head(),
            peer_head: None,
            decoder: Decoder::new(key),
            key,
            requested: Some((0, count, now)),
            cap,
        });
        Ok(true)
    }

    fn on_sketch<S: ChangeStore + ?Sized>(
        &mut self,
        now: u64,
        store: &S,
        head: u64,
        start: u64,
        symbols: &[crate::reconcile::CodedSymbol],
    ) -> Step {
        let recon = self
            .recon
            .as_mut()
            .ok_or_else(|| protocol("sketch without request"))?;
        let (rs, rc, _) = recon
            .requested
            .take()
            .ok_or_else(|| protocol("sketch without request"))?;
        if start != rs || symbols.len() as u64 != rc {
            return Err(protocol("sketch does not match its request"));
        }
        if recon.peer_head.is_some_and(|h| h != head) {
            return Err(protocol("sketch head changed during a reconciliation"));
        }
        recon.peer_head = Some(head);
        let local = encode_block(
            store,
            &self.recon_scope,
            recon.own_head,
            &recon.key,
            start,
            symbols.len(),
        )?;
        // Symbol 0 holds every item, so its count difference is the difference of the set
        // sizes: a lower bound on the difference, known after the first round trip.
        let sizes_differ_by = if start == 0 {
            symbols[0].count.wrapping_sub(local[0].count).unsigned_abs()
        } else {
            0
        };
        let hopeless = sizes_differ_by.saturating_mul(4) / 3 > recon.cap
            || sizes_differ_by > RECONCILE_DIFFERENCES_COUNT_MAX as u64;
        let ok = !hopeless
            && recon.decoder.add_block(start, symbols, &local).is_ok()
            && recon.decoder.recovered() <= RECONCILE_DIFFERENCES_COUNT_MAX;
        if ok && recon.decoder.is_decoded() {
            return self.finish_recon(store, head);
        }
        let received = recon.decoder.symbols();
        if !ok || received >= recon.cap {
            self.give_up_recon();
            return Ok(());
        }
        let count = next_block_count(received, recon.decoder.recovered()).min(recon.cap - received);
        recon.requested = Some((received, count, now));
        self.outbox.push_back(Message::SketchRequest {
            start: received,
            count,
        });
        Ok(())
    }

    fn finish_recon<S: ChangeStore + ?Sized>(&mut self, store: &S, peer_head: u64) -> Step {
        let recon = self.recon.as_ref().expect("a reconciliation is running");
        let found = recon.decoder.remote_only().count();
        if recon.repair && self.want_queue.len() + found > WANT_QUEUE_COUNT_MAX {
            // The checkpoint may only move to the peer's head if every missing change is
            // fetched; with no room to queue them all, read the feed instead.
            self.give_up_recon();
            return Ok(());
        }
        let recon = self.recon.take().expect("a reconciliation is running");
        let mut remote_only = 0u64;
        for h in recon.decoder.remote_only() {
            remote_only += 1;
            let short = short_id(h);
            if self.want_queue.len() >= WANT_QUEUE_COUNT_MAX {
                self.stats.wants_dropped += 1;
            } else if !store.has_short(&short)? {
                self.want_queue.push_back(WantedShort {
                    short,
                    repair: recon.repair,
                });
                if recon.repair {
                    self.repair_outstanding += 1;
                }
            }
        }
        let offer: Vec<[u8; 8]> = recon.decoder.local_only().map(short_id).collect();
        let report = ReconcileReport {
            repair: recon.repair,
            decoded: true,
            symbols: recon.decoder.symbols(),
            remote_only,
            local_only: offer.len() as u64,
            fell_back_to_feed: false,
        };
        self.outbox.push_back(Message::Reconciled {
            head: recon.own_head,
            wanted_count: remote_only,
            offer,
        });
        self.stats.reconciliations += 1;
        self.events.push_back(Event::ReconcileDone(report));
        if recon.repair {
            self.pull.repair_checkpoint = Some(peer_head);
        }
        Ok(())
    }

    fn give_up_recon(&mut self) {
        let recon = self.recon.take().expect("a reconciliation is running");
        self.events.push_back(Event::ReconcileDone(ReconcileReport {
            repair: recon.repair,
            decoded: false,
            symbols: recon.decoder.symbols(),
            remote_only: 0,
            local_only: 0,
            fell_back_to_feed: recon.repair,
        }));
        if recon.repair {
            self.pull_from_start();
        }
    }

    /// Once every change a repair found missing is answered, stores the peer's frozen head as
    /// the checkpoint (after those changes, in apply order) and resumes the feed from there.
    fn finish_repair(&mut self) {
        if self.repair_outstanding > 0 {
            return;
        }
        if let Some(upto) = self.pull.repair_checkpoint.take() {
            self.push_checkpoint_batch(upto);
            self.pull.mode = PullMode::Feed;
            self.pull.announced_upto = upto;
            self.pull.peer_head = self.pull.peer_head.max(upto);
            self.outbox.push_back(Message::Resume { from: upto });
        }
    }

    fn pump_wants<S: ChangeStore + ?Sized>(&mut self, now: u64, store: &S) -> Step {
        loop {
            let in_flight = self
                .pull
                .batches
                .iter()
                .filter(|b| {
                    matches!(b.kind, BatchKind::Want { .. })
                        && matches!(b.state, BatchState::Awaiting { .. })
                })
                .count();
            if self.want_queue.is_empty()
                || self.pull.batches.len() >= BATCHES_IN_FLIGHT_COUNT_MAX
                || in_flight >= WANTS_IN_FLIGHT_COUNT_MAX
            {
                return Ok(());
            }
            let mut shorts = Vec::new();
            while shorts.len() < WANT_SHORTS_COUNT_MAX {
                let Some(w) = self.want_queue.pop_front() else {
                    break;
                };
                if store.has_short(&w.short)? {
                    // Arrived meanwhile by another path.
                    if w.repair {
                        self.repair_outstanding -= 1;
                    }
                } else {
                    shorts.push(w);
                }
            }
            if shorts.is_empty() {
                continue;
            }
            self.outbox.push_back(Message::Want {
                shorts: shorts.iter().map(|w| w.short).collect(),
            });
            let id = self.pull.next_batch;
            self.pull.next_batch += 1;
            self.pull.batches.push_back(Batch {
                id,
                kind: BatchKind::Want { shorts },
                state: BatchState::Awaiting { since: now },
                checkpoint: None,
            });
        }
    }

    fn on_supply(&mut self, answered: u64, envelopes: Vec<Vec<u8>>) -> Step {
        let batch = self
            .pull
            .batches
            .iter_mut()
            .find(|b| {
                matches!(b.state, BatchState::Awaiting { .. })
                    && matches!(b.kind, BatchKind::Want { .. })
            })
            .ok_or_else(|| protocol("supply without want"))?;
        let BatchKind::Want { shorts } = &mut batch.kind else {
            unreachable!("found a want batch");
        };
        if answered == 0 || answered > shorts.len() as u64 {
            return Err(protocol(format!(
                "supply answers {answered} of {} wanted",
                shorts.len()
            )));
        }
        let rest = shorts.split_off(answered as usize);
        for w in rest.into_iter().rev() {
            self.want_queue.push_front(w);
        }
        for w in shorts.iter() {
            self.recent.insert(w.short);
            if w.repair {
                self.repair_outstanding -= 1;
            }
        }
        self.stats.changes_received += envelopes.len() as u64;
        self.stats.envelope_bytes_received += envelopes.iter().map(|e| e.len() as u64).sum::<u64>();
        batch.state = BatchState::Ready(envelopes);
        Ok(())
    }

    fn on_want<S: ChangeStore + ?Sized>(&mut self, store: &S, shorts: &[[u8; 8]]) -> Step {
        if shorts.is_empty() {
            return Err(protocol("empty want"));
        }
        let wanted: HashSet<[u8; 8]> = shorts.iter().copied().collect();
        let mut found: HashMap<[u8; 8], Vec<[u8; 32]>> = HashMap::new();
        // Only hashes of the reconciliation scope are ever looked up, so a peer cannot obtain a
        // change outside its scope by guessing its short id.
        store.for_each_hash(&self.recon_scope, store.feed_head(), &mut |h| {
            let s = short_id(h);
            if wanted.contains(&s) {
                found.entry(s).or_default().push(*h);
            }
        })?;
        let mut envelopes: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0usize;
        let mut answered = 0u64;
        for s in shorts {
            let mut these = Vec::new();
            for h in found.get(s).map(Vec::as_slice).unwrap_or_default() {
                if let Some(env) = store.envelope(h)? {
                    these.push(env);
                }
            }
            let these_bytes: usize = these.iter().map(Vec::len).sum();
            let fits = bytes + these_bytes <= BATCH_SIZE_BYTES_MAX
                && envelopes.len() + these.len() <= BATCH_CHANGES_COUNT_MAX;
            if !fits {
                if answered > 0 {
                    break;
                }
                // A lone short id whose matches overflow a batch: send what fits.
                these.truncate(BATCH_CHANGES_COUNT_MAX);
                while these.iter().map(Vec::len).sum::<usize>() > BATCH_SIZE_BYTES_MAX {
                    these.pop();
                }
            }
            bytes += these.iter().map(Vec::len).sum::<usize>();
            envelopes.extend(these);
            answered += 1;
        }
        self.stats.changes_sent += envelopes.len() as u64;
        self.stats.envelope_bytes_sent += bytes as u64;
        self.outbox.push_back(Message::Supply {
            answered,
            envelopes,
        });
        Ok(())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
