//! One honest node as the simulator runs it: the real store, apply pipeline and commands of
//! `motcua-node` over a simulated disk and a simulated clock.
//!
//! Why here and not the node's writer thread: the writer owns a thread, a tokio channel and the
//! system clock. The simulator needs none of them, so [`HonestNode::run_batch`] does what
//! `writer::run_batch` does (one write transaction, [`motcua_node::writer::execute`] for each
//! command, one commit, roll back on a storage failure, rebuild the registry after a failed
//! commit, reload the reference data after a catalog or calendar change) with the simulated
//! clock reading. A crash drops the process state; a restart reopens the disk and takes a new
//! actor epoch, exactly as `runtime::Node::open` does.

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use motcua_node::commands::{CommandError, Ctx, Identity};
use motcua_node::reference::Reference;
use motcua_node::store::apply::Apply;
use motcua_node::store::tables::{DOC_ROWS, FEED, META};
use motcua_node::store::{Store, stored_summary};
use motcua_node::writer::{Command, Reply, execute};
use motcua_schema::ids::UnitCode;
use motcua_schema::signed::actor_for;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Registry, Role};
use motcua_sync::Scope;
use redb::{ReadableDatabase, ReadableTable};

use crate::disk::Disk;

/// Size of each simulated store's redb page cache, in bytes. The simulated disk is memory
/// already, and redb keeps in its cache a copy of every page it writes, up to this size: with
/// redb's default (1 GiB) every one of a run's stores held a second copy of itself. 16 MiB holds
/// a commune's whole store (about 3 MB after 30 days); the 30-day benchmark's peak
/// memory fell from 2.28 GB to 2.00 GB and its system time (the kernel zeroing pages it hands
/// out) from 3.6 s to 3.1 s (medians), its wall time within noise (BENCHMARKS.md).
pub const STORE_CACHE_SIZE_BYTES: usize = 16 << 20;

/// A node's role in the simulated province.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The provincial centre.
    Province,
    /// A commune office.
    Commune,
    /// An inspector's node following the province.
    Auditor,
}

/// One new entry of a node's feed, as the simulator tracks it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its feed position.
    pub position: u64,
    /// The change hash.
    pub hash: [u8; 32],
    /// Its document id.
    pub doc: String,
}

/// What a batch did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Each command's result (all errors when the commit failed).
    pub results: Vec<Result<Reply, CommandError>>,
    /// Whether the transaction committed.
    pub committed: bool,
    /// Feed entries the batch added, in feed order.
    pub new_entries: Vec<NewEntry>,
    /// For each command, the feed head once it had run (`None`: nothing stored yet), so that a
    /// caller can tell which command stored which entry.
    pub heads: Vec<Option<u64>>,
}

impl BatchOutcome {
    /// Splits the new entries at command `index`: the entries the commands before it stored,
    /// and those it and the later ones stored.
    pub fn split_entries_at(&mut self, index: usize) -> (Vec<NewEntry>, Vec<NewEntry>) {
        let before = index
            .checked_sub(1)
            .and_then(|i| self.heads.get(i).copied().flatten())
            .unwrap_or(0);
        let entries = std::mem::take(&mut self.new_entries);
        entries.into_iter().partition(|e| e.position <= before)
    }
}

/// An honest node.
pub struct HonestNode {
    /// Index in the simulation.
    pub index: usize,
    /// Name for people (`province`, `commune-007`, `auditor`).
    pub name: String,
    /// Role.
    pub kind: Kind,
    /// The unit.
    pub unit: UnitCode,
    /// The node key.
    pub key: SigningKey,
    /// The disk.
    pub disk: Disk,
    /// The open store; `None` while the node is down.
    pub store: Option<Store>,
    /// The trust registry held in memory (as the writer holds it).
    pub registry: Registry,
    /// Catalog and calendar in force.
    pub reference: Reference,
    /// Who signs, with the current process's actor epoch.
    pub identity: Identity,
    /// This store's id.
    pub store_id: [u8; 16],
    /// The clock's offset from true time, ms (skew and jumps).
    pub clock_offset_ms: i64,
    /// Feed head the simulator has read up to.
    pub feed_seen: u64,
    /// Process starts (1 for the first).
    pub starts: u64,
}

impl HonestNode {
    /// Creates a node with an empty disk.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        name: String,
        kind: Kind,
        unit: UnitCode,
        key: SigningKey,
        root: ed25519_dalek::VerifyingKey,
        store_id: [u8; 16],
        epoch: [u8; 8],
        journal: bool,
    ) -> HonestNode {
        let disk = Disk::with_journal(journal);
        let store = Store::open_with_backend(disk.backend(), store_id, STORE_CACHE_SIZE_BYTES)
            .expect("a new store opens");
        let role = role_of(kind);
        let identity = Identity {
            actor: actor_for(&key.verifying_key(), epoch),
            key: key.clone(),
            unit: unit.clone(),
            role,
        };
        let reference = Reference::load(&store).expect("reference loads");
        HonestNode {
            index,
            name,
            kind,
            unit,
            key,
            disk,
            store: Some(store),
            registry: Registry::new(root),
            reference,
            identity,
            store_id,
            clock_offset_ms: 0,
            feed_seen: 0,
            starts: 1,
        }
    }

    /// What this node receives.
    pub fn scope(&self) -> Scope {
        motcua_node::replication::scope_of(role_of(self.kind), self.unit.as_str())
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        self.store.is_some()
    }

    /// The node's clock reading when the true time is `true_ms` (Unix ms).
    pub fn wall(&self, true_ms: i64) -> Timestamp {
        Timestamp(true_ms + self.clock_offset_ms)
    }

    /// The open store. Panics when down: callers check [`HonestNode::is_up`].
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("node is up")
    }

    /// Runs commands in one write transaction, as the writer does.
    pub fn run_batch(&mut self, now: Timestamp, commands: Vec<Command>) -> BatchOutcome {
        let Some(store) = self.store.as_ref() else {
            return BatchOutcome {
                results: commands
                    .iter()
                    .map(|_| Err(CommandError::Internal("node is down".into())))
                    .collect(),
                committed: false,
                new_entries: Vec::new(),
                heads: Vec::new(),
            };
        };
        let tx = match store.db().begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                let message = format!("storage: {e}");
                return BatchOutcome {
                    results: commands
                        .iter()
                        .map(|_| Err(CommandError::Internal(message.clone())))
                        .collect(),
                    committed: false,
                    new_entries: Vec::new(),
                    heads: Vec::new(),
                };
            }
        };
        let reference = self.reference.clone();
        let mut apply = Apply::new(&tx, &mut self.registry, store.doc_cache());
        let ctx = Ctx {
            identity: &self.identity,
            reference: &reference,
            now,
        };
        let mut results = Vec::with_capacity(commands.len());
        let mut heads = Vec::with_capacity(commands.len());
        let mut storage_failed = None;
        for command in commands {
            let result = if storage_failed.is_some() {
                Err(CommandError::Internal("batch rolled back".into()))
            } else {
                execute(&ctx, &mut apply, command)
            };
            if let Err(CommandError::Store(e)) = &result {
                storage_failed = Some(e.to_string());
            }
            results.push(result);
            heads.push(apply.effects.feed_head);
        }
        let effects = std::mem::take(&mut apply.effects);
        drop(apply);
        // What the batch appended to the feed, read in its own transaction before the commit
        // (a read transaction after it was 0.7% of the benchmark's time).
        let mut new_entries = Vec::new();
        let committed = match storage_failed {
            Some(message) => {
                drop(tx);
                Err(message)
            }
            None => match tx
                .open_table(FEED)
                .map_err(redb::Error::from)
                .and_then(|feed| entries_after(&feed, self.feed_seen, &mut new_entries))
            {
                Ok(()) => tx.commit().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(message) = &committed {
            // As the writer: nothing is on disk; rebuild the registry from the store.
            if let Ok(records) = store.trust_records() {
                let mut fresh = Registry::new(*self.registry.root());
                for r in records {
                    let _ = fresh.insert(r);
                }
                self.registry = fresh;
            }
            let results = results
                .into_iter()
                .map(|_| {
                    Err(CommandError::Internal(format!(
                        "write failed, nothing saved: {message}"
                    )))
                })
                .collect();
            return BatchOutcome {
                results,
                committed: false,
                new_entries: Vec::new(),
                heads: Vec::new(),
            };
        }
        if effects.config_changed
            && let Ok(r) = Reference::load(store)
        {
            self.reference = r;
        }
        if let Some(last) = new_entries.last() {
            self.feed_seen = last.position;
        }
        BatchOutcome {
            results,
            committed: true,
            new_entries,
            heads,
        }
    }

    /// Every unit the dossiers with document ids `docs` were transferred to, read in one
    /// transaction: the province asks this for the changes of every batch it stores, to wake
    /// the sessions whose scope they are in (a transaction for each change cost 1.8% of the
    /// benchmark's time).
    pub fn transfers(&self, docs: &[&str]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(store) = self.store.as_ref().filter(|_| !docs.is_empty()) else {
            return out;
        };
        let Ok(tx) = store.db().begin_read() else {
            return out;
        };
        let Ok(rows) = tx.open_table(DOC_ROWS) else {
            return out;
        };
        for doc in docs {
            if let Ok(Some(summary)) = stored_summary(&rows, doc) {
                out.extend(summary.transfers.iter().map(|u| u.to_string()));
            }
        }
        out
    }

    /// Reads feed entries past [`HonestNode::feed_seen`] and moves it to the head.
    pub fn read_new_entries(&mut self) -> Vec<NewEntry> {
        let Some(store) = self.store.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(tx) = store.db().begin_read() else {
            return out;
        };
        // A store that cannot be read yields what was read before the failure.
        if let Ok(feed) = tx.open_table(FEED) {
            let _ = entries_after(&feed, self.feed_seen, &mut out);
        }
        if let Some(last) = out.last() {
            self.feed_seen = last.position;
        }
        out
    }

    /// The power is cut: unsynced writes are lost and the process is gone.
    pub fn crash(&mut self) {
        self.disk.crash();
        self.store = None;
    }

    /// Starts the process again on its disk, with a new actor epoch (a new process).
    pub fn restart(&mut self, epoch: [u8; 8]) -> Result<(), String> {
        let store =
            Store::open_with_backend(self.disk.backend(), self.store_id, STORE_CACHE_SIZE_BYTES)
                .map_err(|e| format!("reopening store: {e}"))?;
        self.open(store, epoch)
    }

    /// Replaces the disk with a backup image and starts on it with a new store id (so peers
    /// learn that their checkpoints of this node are void) and a new epoch.
    pub fn restore(
        &mut self,
        image: Vec<u8>,
        store_id: [u8; 16],
        epoch: [u8; 8],
    ) -> Result<(), String> {
        self.store = None;
        self.disk = Disk::from_image(image);
        let store = Store::open_with_backend(self.disk.backend(), store_id, STORE_CACHE_SIZE_BYTES)
            .map_err(|e| format!("opening restored store: {e}"))?;
        let tx = store.db().begin_write().map_err(|e| e.to_string())?;
        tx.open_table(META)
            .map_err(|e| e.to_string())?
            .insert("store_id", store_id.as_slice())
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        self.store_id = store_id;
        self.feed_seen = 0;
        self.open(store, epoch)
    }

    fn open(&mut self, store: Store, epoch: [u8; 8]) -> Result<(), String> {
        let mut registry = Registry::new(*self.registry.root());
        for record in store.trust_records().map_err(|e| e.to_string())? {
            let _ = registry.insert(record);
        }
        self.registry = registry;
        self.reference = Reference::load(&store).map_err(|e| e.to_string())?;
        self.store_id = store.store_id().map_err(|e| e.to_string())?;
        self.identity.actor = actor_for(&self.key.verifying_key(), epoch);
        self.store = Some(store);
        self.starts += 1;
        Ok(())
    }

    /// The feed head of the open store.
    pub fn feed_head(&self) -> u64 {
        self.store
            .as_ref()
            .and_then(|s| s.feed_head().ok())
            .unwrap_or(0)
    }
}

/// The trust role of a kind.
pub fn role_of(kind: Kind) -> Role {
    match kind {
        Kind::Province => Role::Province,
        Kind::Commune => Role::Commune,
        Kind::Auditor => Role::Auditor,
    }
}

/// Appends to `out` the rows of `feed` (the store's feed table, in a read or a write
/// transaction) after position `seen`.
fn entries_after(
    feed: &impl ReadableTable<u64, (&'static [u8; 32], u32, &'static str)>,
    seen: u64,
    out: &mut Vec<NewEntry>,
) -> Result<(), redb::Error> {
    for row in feed.range(seen + 1..)? {
        let (k, v) = row?;
        let (hash, _, doc) = v.value();
        out.push(NewEntry {
            position: k.value(),
            hash: *hash,
            doc: doc.to_owned(),
        });
    }
    Ok(())
}
