//! The single writer: every write to the store runs here, in batches that share one fsync.
//!
//! Requests queue on a bounded channel. The writer thread takes the first waiting request, then
//! up to [`BATCH_JOBS_COUNT_MAX`] more that are already waiting, runs them all inside one redb
//! write transaction with `Durability::Immediate`, commits, and only then answers each request.
//! So an acknowledged write is on disk (invariant 1), and under load many requests share each
//! fsync (group commit). A command refused for bad input writes nothing; a storage failure rolls
//! back the whole batch and every request in it gets the error.
//!
//! A batch of replication imports only waits a little for more ([`IMPORT_LINGER_MS`]) before
//! it runs: changes from many peers, which arrive one at a time, then share one commit. A local
//! write ends the wait at once, and a batch carrying many changes never waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;

use motcua_schema::rating::Rating;
use motcua_schema::signed::SignedChange;
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Registry, SignedRecord};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::commands::{CommandError, Ctx, EventRequest, Identity, NewDossier, NewRating};
use crate::reference::Reference;
use crate::store::Store;
use crate::store::apply::{Applied, Apply};
use crate::store::peers::{self, FeedMark};

/// Most requests run in one write transaction.
pub const BATCH_JOBS_COUNT_MAX: usize = 256;
/// Most requests waiting for the writer; further senders wait for room.
pub const QUEUE_JOBS_COUNT_MAX: usize = 4096;
/// Most envelopes in one import command.
pub const IMPORT_CHANGES_COUNT_MAX: usize = 10_000;
/// How long the writer holds back a batch made only of replication imports, waiting for more to
/// share its commit, in milliseconds (group commit with a linger). A province takes in one
/// change at a time from a hundred communes, each in its own transaction; held back a few
/// seconds, they share one, and every table page the transaction touches is written once for
/// all of them. Local writes never wait: one arriving ends the wait, and the batch runs with it.
pub const IMPORT_LINGER_MS: u64 = 10_000;
/// A held-back batch runs at once when its imports carry at least this many changes. The
/// linger is for the trickle of one or two changes at a time from many peers; a peer catching
/// up (a commune's day after its link comes back, tens of changes) gains nothing from waiting
/// and must not wait: the whole day should be at the province within seconds.
pub const IMPORT_LINGER_CHANGES_MIN: usize = 8;

/// A write request.
#[derive(Debug)]
pub enum Command {
    /// Receive a dossier.
    CreateDossier {
        /// The request.
        req: NewDossier,
        /// Staff account.
        by: String,
    },
    /// Record a lifecycle step.
    AddEvent {
        /// Dossier code.
        code: String,
        /// The step.
        req: EventRequest,
        /// Staff account.
        by: String,
    },
    /// Record a rating.
    Rate(NewRating),
    /// Apply signed changes from elsewhere (a peer, a bundle, a restore). They were verified
    /// (parsed, hashed, signature and actor binding checked) by whoever decoded them, off the
    /// writer thread; enrolment, scope and equivocation are checked here, against the store.
    Import {
        /// The verified changes.
        changes: Vec<SignedChange>,
        /// How many envelopes of the same batch did not verify (already logged by the caller).
        invalid: u64,
        /// Where they came from, for the reject log.
        origin: String,
        /// A peer's feed position to store in the same transaction (replication checkpoint).
        checkpoint: Option<([u8; 32], FeedMark)>,
    },
    /// Update what this node remembers about a peer (not its checkpoint, which only travels
    /// with the changes it covers).
    PeerSeen {
        /// The peer's node key.
        peer: [u8; 32],
        /// What the peer said of how far it holds this node's feed, if it said anything:
        /// `Some(mark)` replaces the acknowledgement kept for it, and `Some(None)` forgets it
        /// (the peer holds no valid position of this feed, e.g. it was restored from a backup,
        /// so a bundle for it must start from the beginning).
        acked: Option<Option<FeedMark>>,
        /// Set when the two just caught up with each other.
        caught_up: bool,
        /// Set when a connection was just established.
        connected: bool,
    },
    /// Write a catalog or calendar version (province).
    PutReference {
        /// `catalog` or `calendar`.
        kind: &'static str,
        /// Version number.
        version: u32,
        /// JSON text.
        json: String,
    },
    /// Add root-signed records to the local trust table, and publish them in the registry
    /// document if this node is the province.
    AddRecords(Vec<SignedRecord>),
    /// Sign (and publish) a checkpoint of the audit log if one is due; `seal` makes one whenever
    /// the log holds anything uncovered, as an export needs (`crate::audit`).
    AuditCheckpoint {
        /// Cover everything now.
        seal: bool,
    },
}

impl Command {
    /// How many changes the command imports (0 for everything else).
    pub fn import_changes(&self) -> usize {
        match self {
            Command::Import { changes, .. } => changes.len(),
            _ => 0,
        }
    }
}

/// What a write produced.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// A dossier's new summary.
    Dossier(Box<DossierSummary>),
    /// A rating.
    Rating(Rating),
    /// Counts of an import.
    Imported(ImportReport),
    /// Done.
    Done,
}

/// The outcome of importing changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Applied.
    pub stored: u64,
    /// Already held.
    pub duplicate: u64,
    /// Waiting for dependencies.
    pub pending: u64,
    /// Refused (see the reject log).
    pub rejected: u64,
    /// Did not decode or verify.
    pub invalid: u64,
}

impl From<ImportReport> for motcua_sync::ApplyReport {
    /// What a session is told of an import: changes held pending count as stored (they are),
    /// and those that did not verify as rejected.
    fn from(r: ImportReport) -> Self {
        motcua_sync::ApplyReport {
            stored: r.stored + r.pending,
            pending: r.pending,
            duplicate: r.duplicate,
            rejected: r.rejected + r.invalid,
        }
    }
}

/// A request to the writer.
struct Job {
    command: Command,
    /// The clock reading to run it at (the batch's when `None`).
    at: Option<Timestamp>,
    /// Whether the writer may hold it back to share a commit ([`IMPORT_LINGER_MS`]).
    may_wait: bool,
    /// The replication link whose writes it keeps in order, if any.
    order: Option<WriteOrder>,
    reply: oneshot::Sender<Result<Reply, CommandError>>,
}

/// The order of one replication link's writes.
///
/// Why: a link hands the writer its batches one after the other without waiting for each to be
/// written, so that they linger together and share a commit. (Waiting for each, a trickle of
/// single changes lingered [`IMPORT_LINGER_MS`] per batch, one after another, and the peer gave
/// up on its announces.) The writer runs a link's jobs in the order it received them; once one
/// fails, it refuses the link's later ones, so that no checkpoint is written past a batch that
/// was not.
#[derive(Debug, Clone, Default)]
pub struct WriteOrder {
    broken: Arc<AtomicBool>,
}

impl WriteOrder {
    /// Whether one of the link's writes failed (its later ones are refused).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn set_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }
}

/// A command handed to the writer, not yet answered.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<Reply, CommandError>>,
}

impl Pending {
    /// Waits until the command is durable (or refused).
    pub async fn wait(self) -> Result<Reply, CommandError> {
        self.rx
            .await
            .map_err(|_| CommandError::Internal("writer stopped".into()))?
    }
}

/// The handle through which the rest of the node writes.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

/// State the writer shares with readers.
#[derive(Clone)]
pub struct Shared {
    /// The store.
    pub store: Arc<Store>,
    /// The trust registry.
    pub registry: Arc<RwLock<Registry>>,
    /// Catalog and calendar.
    pub reference: Arc<RwLock<Reference>>,
    /// Who this node is.
    pub identity: Arc<Identity>,
    /// The local feed's head, published after every commit that stored changes, so that
    /// replication sessions push new changes to connected peers at once.
    pub feed: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped when the store takes a new store id (it found it was restored from a backup):
    /// replication sessions end and start again under the new id.
    pub store_epoch: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The node's clock, read only here and in the drivers. Rural clocks drift; the reading is
/// recorded as is and compared with peers elsewhere, never corrected silently.
#[allow(clippy::disallowed_methods)]
pub fn clock_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

impl Writer {
    /// Starts the writer thread.
    pub fn start(shared: Shared) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE_JOBS_COUNT_MAX);
        thread::Builder::new()
            .name("motcua-writer".into())
            .spawn(move || run(shared, rx))
            .expect("spawning the writer thread");
        Writer { queue }
    }

    /// Submits a command and waits until it is durable (or refused).
    pub async fn submit(&self, command: Command) -> Result<Reply, CommandError> {
        self.send(command, false, None).await?.wait().await
    }

    /// Submits what a replication link received (its imports, its notes about the peer) and
    /// waits until it is durable: the writer may hold it back for [`IMPORT_LINGER_MS`] so that
    /// the imports of many links share a commit. Nothing a person waits for goes this way, a
    /// bundle import at the command line included.
    pub async fn submit_replicated(&self, command: Command) -> Result<Reply, CommandError> {
        self.send(command, true, None).await?.wait().await
    }

    /// Hands a replication link's command to the writer in the link's `order` (see
    /// [`WriteOrder`]) and returns without waiting for it to be written. Like
    /// [`Writer::submit_replicated`], it may be held back for the linger.
    pub async fn enqueue_replicated(
        &self,
        command: Command,
        order: &WriteOrder,
    ) -> Result<Pending, CommandError> {
        self.send(command, true, Some(order.clone())).await
    }

    async fn send(
        &self,
        command: Command,
        may_wait: bool,
        order: Option<WriteOrder>,
    ) -> Result<Pending, CommandError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            command,
            at: None,
            may_wait,
            order,
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| CommandError::Internal("writer stopped".into()))?;
        Ok(Pending { rx })
    }

    /// Submits from a thread outside the async runtime, as if the clock read `at` (`None`: the
    /// clock). Only the node's own tools use `at` (the demo's sample history, tests); the HTTP
    /// API never lets a client choose the time.
    pub fn submit_blocking(
        &self,
        command: Command,
        at: Option<Timestamp>,
    ) -> Result<Reply, CommandError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            command,
            at,
            may_wait: false,
            order: None,
            reply,
        };
        self.queue
            .blocking_send(job)
            .map_err(|_| CommandError::Internal("writer stopped".into()))?;
        rx.blocking_recv()
            .map_err(|_| CommandError::Internal("writer stopped".into()))?
    }
}

fn run(shared: Shared, mut rx: mpsc::Receiver<Job>) {
    // The linger's timer: a runtime of the writer thread's own, with a clock and nothing else.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("building the writer's timer");
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        take_waiting(&mut rx, &mut jobs);
        if lingers(&jobs) {
            let deadline =
                tokio::time::Instant::now() + std::time::Duration::from_millis(IMPORT_LINGER_MS);
            while lingers(&jobs) {
                let next =
                    timer.block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await });
                match next {
                    Ok(Some(job)) => {
                        jobs.push(job);
                        take_waiting(&mut rx, &mut jobs);
                    }
                    // The linger is over, or the node is stopping: write what was gathered.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        run_batch(&shared, jobs);
    }
}

/// Adds the requests already waiting, up to a full batch.
fn take_waiting(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < BATCH_JOBS_COUNT_MAX {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Whether a gathered batch may wait for more ([`IMPORT_LINGER_MS`]): only what replication
/// links submitted, with room for more (see [`may_wait_for_more`]).
fn lingers(jobs: &[Job]) -> bool {
    jobs.iter().all(|j| j.may_wait) && may_wait_for_more(jobs.iter().map(|j| &j.command))
}

/// Whether a batch of what replication links submitted may wait for more: it has room for more
/// and its imports carry fewer than [`IMPORT_LINGER_CHANGES_MIN`] changes. The simulator's model
/// of the writer asks the same.
pub fn may_wait_for_more<'a>(commands: impl Iterator<Item = &'a Command> + Clone) -> bool {
    commands.clone().count() < BATCH_JOBS_COUNT_MAX
        && commands.map(Command::import_changes).sum::<usize>() < IMPORT_LINGER_CHANGES_MIN
}

fn run_batch(shared: &Shared, jobs: Vec<Job>) {
    let now = clock_now();
    let reference = shared.reference.read().expect("reference lock").clone();
    let tx = match shared.store.db().begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            let message = format!("storage: {e}");
            for Job { reply, order, .. } in jobs {
                if let Some(order) = order {
                    order.set_broken();
                }
                let _ = reply.send(Err(CommandError::Internal(message.clone())));
            }
            return;
        }
    };
    let mut registry = shared.registry.write().expect("registry lock");
    let mut apply = Apply::new(&tx, &mut registry, shared.store.doc_cache());
    apply.set_own_key(*shared.identity.key.verifying_key().as_bytes());
    let mut results = Vec::with_capacity(jobs.len());
    let mut storage_failed = None;
    let mut replies = Vec::with_capacity(jobs.len());
    let mut orders = Vec::new();
    for Job {
        command,
        at,
        order,
        reply,
        ..
    } in jobs
    {
        let ctx = Ctx {
            identity: &shared.identity,
            reference: &reference,
            now: at.unwrap_or(now),
        };
        let result = if storage_failed.is_some() {
            Err(CommandError::Internal("batch rolled back".into()))
        } else if order.as_ref().is_some_and(WriteOrder::is_broken) {
            Err(CommandError::Internal(
                "an earlier write of this link failed; the later ones wait for a new session"
                    .into(),
            ))
        } else {
            execute(&ctx, &mut apply, command)
        };
        if let Err(CommandError::Store(e)) = &result {
            storage_failed = Some(e.to_string());
        }
        if let Some(order) = order {
            if result.is_err() {
                order.set_broken();
            }
            orders.push(order);
        }
        results.push(result);
        replies.push(reply);
    }
    let effects = std::mem::take(&mut apply.effects);
    let committed = match storage_failed {
        Some(message) => Err(message),
        None => tx.commit().map_err(|e| e.to_string()),
    };
    if committed.is_err() {
        for order in &orders {
            order.set_broken();
        }
        // Nothing of this batch is on disk; the in-memory registry may hold records that were
        // not committed, so rebuild it from the store.
        if let Ok(records) = shared.store.trust_records() {
            let mut fresh = Registry::new(*registry.root());
            for r in records {
                let _ = fresh.insert(r);
            }
            *registry = fresh;
        }
    }
    drop(registry);
    if committed.is_ok()
        && let Some(head) = effects.feed_head
    {
        shared.feed.send_replace(head);
    }
    if committed.is_ok() && effects.store_rotated {
        shared.store_epoch.send_modify(|e| *e += 1);
    }
    if committed.is_ok() && effects.config_changed {
        match Reference::load(&shared.store) {
            Ok(r) => *shared.reference.write().expect("reference lock") = r,
            Err(e) => tracing::error!(error = %e, "reloading catalog and calendar"),
        }
    }
    for (result, reply) in results.into_iter().zip(replies) {
        let answer = match &committed {
            Ok(()) => result,
            Err(message) => Err(CommandError::Internal(format!(
                "write failed, nothing saved: {message}"
            ))),
        };
        let _ = reply.send(answer);
    }
}

/// Runs one command inside the batch's write transaction: the writer's body, public so that the
/// deterministic simulator drives exactly this code with its own clock, batches and disk.
pub fn execute(
    ctx: &Ctx<'_>,
    apply: &mut Apply<'_>,
    command: Command,
) -> Result<Reply, CommandError> {
    match command {
        Command::CreateDossier { req, by } => ctx
            .create_dossier(apply, req, &by)
            .map(|s| Reply::Dossier(Box::new(s))),
        Command::AddEvent { code, req, by } => ctx
            .add_event(apply, &code, req, &by)
            .map(|s| Reply::Dossier(Box::new(s))),
        Command::Rate(req) => ctx.rate(apply, req).map(Reply::Rating),
        Command::Import {
            changes,
            invalid,
            origin,
            checkpoint,
        } => {
            if changes.len() > IMPORT_CHANGES_COUNT_MAX {
                return Err(CommandError::Invalid(format!(
                    "at most {IMPORT_CHANGES_COUNT_MAX} changes per import"
                )));
            }
            let mut report = ImportReport {
                invalid,
                ..ImportReport::default()
            };
            for signed in &changes {
                match apply.change(signed, None, &origin, ctx.now)? {
                    Applied::Stored(_) => report.stored += 1,
                    Applied::Duplicate => report.duplicate += 1,
                    Applied::Pending(_) => report.pending += 1,
                    Applied::Rejected(_) => report.rejected += 1,
                }
            }
            if let Some((peer, mark)) = checkpoint {
                let mut state = peers::read_in(apply.tx(), &peer)?;
                state.checkpoint = Some(mark);
                peers::write_in(apply.tx(), &peer, &state)?;
            }
            Ok(Reply::Imported(report))
        }
        Command::PeerSeen {
            peer,
            acked,
            caught_up,
            connected,
        } => {
            let mut state = peers::read_in(apply.tx(), &peer)?;
            if let Some(acked) = acked {
                state.acked = acked;
            }
            if caught_up {
                state.last_caught_up_at = Some(ctx.now);
            }
            if connected {
                state.last_connected_at = Some(ctx.now);
            }
            peers::write_in(apply.tx(), &peer, &state)?;
            Ok(Reply::Done)
        }
        Command::PutReference {
            kind,
            version,
            json,
        } => ctx
            .put_reference(apply, kind, version, &json)
            .map(|()| Reply::Done),
        Command::AuditCheckpoint { seal } => {
            crate::audit::log::checkpoint(ctx, apply, seal).map(|_| Reply::Done)
        }
        Command::AddRecords(records) => {
            for r in &records {
                apply.add_trust_record(r.clone())?;
            }
            // The province publishes every record it holds in the replicated registry document,
            // once it may sign (its own enrolment can arrive after other records).
            let me = ctx.identity.key.verifying_key();
            if ctx.identity.role == motcua_schema::trust::Role::Province
                && apply.registry().check_key(me.as_bytes(), ctx.now).is_ok()
            {
                let all: Vec<SignedRecord> = apply.registry().records().cloned().collect();
                ctx.publish_records(apply, &all)?;
            }
            Ok(Reply::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use motcua_schema::ids::UnitCode;
    use motcua_schema::signed::actor_for;
    use motcua_schema::trust::Role;

    use super::*;

    fn peer_seen(store: &Store, identity: &Identity, acked: Option<Option<FeedMark>>) {
        let reference = Reference::load(store).unwrap();
        let mut registry = Registry::new(SigningKey::from_bytes(&[9; 32]).verifying_key());
        let tx = store.db().begin_write().unwrap();
        {
            let mut apply = Apply::new(&tx, &mut registry, store.doc_cache());
            let ctx = Ctx {
                identity,
                reference: &reference,
                now: Timestamp(1_000),
            };
            let command = Command::PeerSeen {
                peer: [7; 32],
                acked,
                caught_up: false,
                connected: true,
            };
            execute(&ctx, &mut apply, command).unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn a_peer_acknowledgement_is_kept_replaced_and_forgotten_as_the_peer_says() {
        // Why: `bundle export` starts after the peer's acknowledgement. A write that says
        // nothing of it must keep it; a peer that holds no valid position of this feed (it was
        // restored from a backup) must make this node forget it, or a bundle would skip
        // changes the peer lost.
        let store = Store::open_in_memory([1; 16]).unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let identity = Identity {
            actor: actor_for(&key.verifying_key(), [0; 8]),
            key,
            unit: UnitCode::new("X1").unwrap(),
            role: Role::Commune,
        };
        let mark = FeedMark {
            store_id: [1; 16],
            upto: 42,
        };
        peer_seen(&store, &identity, Some(Some(mark)));
        assert_eq!(store.peer_state(&[7; 32]).unwrap().acked, Some(mark));
        peer_seen(&store, &identity, None);
        assert_eq!(store.peer_state(&[7; 32]).unwrap().acked, Some(mark));
        peer_seen(&store, &identity, Some(None));
        assert_eq!(store.peer_state(&[7; 32]).unwrap().acked, None);
    }

    fn job(command: Command) -> Job {
        Job {
            command,
            at: None,
            may_wait: true,
            order: None,
            reply: oneshot::channel().0,
        }
    }

    fn import_of(changes: usize) -> Command {
        use automerge::transaction::Transactable;
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut doc = automerge::Automerge::new();
        doc.set_actor(actor_for(&key.verifying_key(), [0; 8]));
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "k", 1).unwrap();
        tx.commit();
        let change = doc.get_last_local_change().unwrap();
        let signed = SignedChange::sign(&motcua_schema::ids::DocId::Catalog, change, &key).unwrap();
        Command::Import {
            changes: vec![signed; changes],
            invalid: 0,
            origin: "test".into(),
            checkpoint: None,
        }
    }

    #[test]
    fn only_small_batches_of_imports_wait_for_more() {
        // Why: the linger may only delay replicated changes and notes about peers, never a
        // person at the counter, and never a peer catching up, whose full batches share
        // nothing by waiting.
        assert!(lingers(&[job(import_of(1))]));
        assert!(lingers(&[job(import_of(1)), job(import_of(0))]));
        assert!(!lingers(&[job(import_of(IMPORT_LINGER_CHANGES_MIN))]));
        assert!(!lingers(&[
            job(import_of(IMPORT_LINGER_CHANGES_MIN - 1)),
            job(import_of(1))
        ]));
        let note = Command::PeerSeen {
            peer: [7; 32],
            acked: None,
            caught_up: true,
            connected: false,
        };
        assert!(lingers(&[job(import_of(1)), job(note)]));
        let local = Job {
            may_wait: false,
            ..job(Command::AuditCheckpoint { seal: false })
        };
        assert!(!lingers(&[job(import_of(1)), local]));
        let bundle = Job {
            may_wait: false,
            ..job(import_of(1))
        };
        assert!(
            !lingers(&[bundle]),
            "a bundle import at the command line never waits"
        );
        let full: Vec<Job> = (0..BATCH_JOBS_COUNT_MAX)
            .map(|_| job(import_of(0)))
            .collect();
        assert!(!lingers(&full));
    }

    #[test]
    fn a_links_writes_after_a_failed_one_are_refused_while_other_links_go_on() {
        // Why: a link hands the writer its batches without waiting for each to be written. Were
        // a later batch written after an earlier one failed, its checkpoint would pass changes
        // that were never stored, and the feed would never offer them again.
        let dir = crate::test_nodes::temp("write-order");
        let node = crate::test_nodes::node(
            &dir.0,
            "000.01.01.H99",
            Role::Commune,
            crate::setup::Trust::NewRoot,
            None,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(links_in_order(&node.writer));
    }

    async fn links_in_order(writer: &Writer) {
        let (link, other) = (WriteOrder::default(), WriteOrder::default());
        let enqueue = |command, order| writer.enqueue_replicated(command, order);
        let first = enqueue(import_of(1), &link).await.unwrap();
        let failing = enqueue(import_of(IMPORT_CHANGES_COUNT_MAX + 1), &link)
            .await
            .unwrap();
        let later = enqueue(import_of(1), &link).await.unwrap();
        // Enough changes that nothing lingers: the test waits for no timer.
        let elsewhere = enqueue(import_of(IMPORT_LINGER_CHANGES_MIN), &other)
            .await
            .unwrap();
        assert!(matches!(first.wait().await, Ok(Reply::Imported(_))));
        assert!(matches!(
            failing.wait().await,
            Err(CommandError::Invalid(_))
        ));
        let refused = later.wait().await.unwrap_err().to_string();
        assert!(
            refused.contains("earlier write of this link failed"),
            "{refused}"
        );
        assert!(matches!(elsewhere.wait().await, Ok(Reply::Imported(_))));
        assert!(link.is_broken());
        assert!(!other.is_broken());
    }
}
