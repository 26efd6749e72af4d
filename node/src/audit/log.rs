//! The node's audit log in redb: the Merkle tree over every stored change, this node's signed
//! checkpoints, and the checkpoints of peers it witnessed.
//!
//! - [`append`] runs inside the apply pipeline's write transaction for every stored change
//!   (leaf `pos − 1` for feed position `pos`), so the log can never disagree with the feed. A
//!   store written before the audit log existed is caught up from the feed on first use.
//! - [`checkpoint`] signs the log's current size and root with the consistency proof from the
//!   previous checkpoint, stores it, and publishes it as a change of this node's
//!   `log/<unit>/<day>` document, through the same pipeline, so it replicates to peers.
//! - [`witness`] runs when a `log/…` document changes here: it opens each checkpoint note (a
//!   signature check), checks its consistency proof, and keeps it; a checkpoint that contradicts
//!   one already held is kept too (it is the evidence) and logged as a warning.
//!
//! **What is stored, and why so little.** Per change, only the *frontier* is rewritten: the
//! hashes of the perfect subtrees the log's size decomposes into (one row, at most 64 hashes),
//! from which the root follows. Subtrees of [`STORED_LEVEL_MIN`] levels and more are kept as
//! they complete (one row per 256 changes); smaller ones are recomputed from the feed's
//! envelopes when a proof needs them. Storing every node cost a fifth of durable intake
//! throughput (measured with the intake benchmark); this costs one small row per change.

use std::time::Duration;

use automerge::transaction::CommitOptions;
use motcua_schema::audit::archive::{CheckpointRecord, WitnessedLog, b64, hash_from_b64};
use motcua_schema::audit::merkle::{
    self, Hash, ProofEntry, RootBuilder, Subtrees, empty_root, leaf_hash, node_hash,
};
use motcua_schema::audit::note::Checkpoint;
use motcua_schema::ids::DocId;
use motcua_schema::layout;
use motcua_schema::signed::SignedChange;
use motcua_schema::timestamp::date_key;
use motcua_schema::trust::Role;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::commands::{CommandError, Ctx};
use crate::store::apply::{Applied, Apply};
use crate::store::tables::{
    AUDIT_CHECKPOINTS, AUDIT_FRONTIER, AUDIT_TREE, AUDIT_WITNESS, CHANGES, FEED,
};
use crate::store::{StoreError, corrupt};
use crate::writer::{Command, Writer};

/// How often a serving node considers signing a checkpoint, in milliseconds. It signs one only
/// when its log holds a change that is not a checkpoint publication, so an idle node and its
/// peers do not trade checkpoints for nothing.
pub const CHECKPOINT_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// Most feed positions a checkpoint catches up in one transaction on a store written before
/// the audit log existed, in entries; a larger gap is caught up over several checkpoints.
pub const BACKFILL_ENTRIES_MAX: u64 = 200_000;
/// Lowest level of the tree kept in `audit-tree`, in levels: subtrees of fewer than 2^8 = 256
/// leaves are recomputed from the feed when a proof needs one (a consistency proof needs at
/// most two, so at most 510 envelope reads).
pub const STORED_LEVEL_MIN: u32 = 8;
/// The key of the frontier's single row.
const FRONTIER_KEY: &str = "log";

/// The hashes of the perfect subtrees the log's size decomposes into, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    fn decode(bytes: &[u8]) -> Result<Frontier, StoreError> {
        let bad = || corrupt("audit frontier", "length");
        let size = u64::from_be_bytes(
            bytes
                .get(..8)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        let rest = &bytes[8..];
        if rest.len() != size.count_ones() as usize * 32 {
            return Err(bad());
        }
        let hashes = rest
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        Ok(Frontier { size, hashes })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.hashes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Appends a leaf; `completed` sees every subtree the leaf completes (level ≥ 1, index).
    fn push(
        &mut self,
        leaf: Hash,
        mut completed: impl FnMut(u32, u64, &Hash) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let n = self.size;
        let (mut level, mut cur) = (0u32, leaf);
        while n & (1u64 << level) != 0 {
            let left = self
                .hashes
                .pop()
                .ok_or_else(|| corrupt("audit frontier", "too short"))?;
            cur = node_hash(&left, &cur);
            level += 1;
            completed(level, (n + 1 - (1u64 << level)) >> level, &cur)?;
        }
        self.hashes.push(cur);
        self.size += 1;
        Ok(())
    }

    fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(mut acc) = iter.next().copied() else {
            return empty_root();
        };
        for left in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

fn read_frontier<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
) -> Result<Frontier, StoreError> {
    t.get(FRONTIER_KEY)?
        .map(|v| Frontier::decode(v.value()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Subtree hashes: stored ones from the tree table, smaller ones recomputed from the feed.
struct TreeView<'a, T, F, C> {
    tree: &'a T,
    feed: &'a F,
    changes: &'a C,
}

impl<T, F, C> Subtrees for TreeView<'_, T, F, C>
where
    T: ReadableTable<(u8, u64), &'static [u8; 32]>,
    F: ReadableTable<u64, (&'static [u8; 32], u32, &'static str)>,
    C: ReadableTable<&'static [u8; 32], &'static [u8]>,
{
    type Error = StoreError;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        if level >= STORED_LEVEL_MIN {
            let l = u8::try_from(level).map_err(|_| corrupt("audit tree", "level above 255"))?;
            return self
                .tree
                .get((l, index))?
                .map(|v| *v.value())
                .ok_or_else(|| {
                    corrupt(
                        "audit tree",
                        format!("no subtree at level {level} index {index}"),
                    )
                });
        }
        let first = (index << level) + 1;
        let last = first + (1u64 << level) - 1;
        let mut b = RootBuilder::new();
        for row in self.feed.range(first..=last)? {
            let (_, v) = row?;
            let hash = *v.value().0;
            let env = self.changes.get(&hash)?.ok_or_else(|| {
                corrupt(
                    "feed",
                    format!("change {} is not stored", hex::encode(hash)),
                )
            })?;
            b.push(leaf_hash(env.value()));
        }
        if b.size() != 1u64 << level {
            return Err(corrupt(
                "feed",
                format!("positions {first} to {last} are not all present"),
            ));
        }
        Ok(b.root())
    }
}

/// Pushes one leaf, keeping completed subtrees of the stored levels.
fn push_leaf(
    tree: &mut redb::Table<'_, (u8, u64), &'static [u8; 32]>,
    frontier: &mut Frontier,
    leaf: Hash,
) -> Result<(), StoreError> {
    frontier.push(leaf, |level, index, hash| {
        if level >= STORED_LEVEL_MIN {
            tree.insert((level as u8, index), hash)?;
        }
        Ok(())
    })
}

/// Adds the envelope stored at feed position `pos` as leaf `pos − 1`.
pub fn append(tx: &WriteTransaction, pos: u64, envelope: &[u8]) -> Result<(), StoreError> {
    let index = pos - 1;
    let mut frontier_table = tx.open_table(AUDIT_FRONTIER)?;
    let mut frontier = read_frontier(&frontier_table)?;
    if frontier.size < index {
        // A store written before the audit log existed: rare, and `catch_up` opens the table.
        drop(frontier_table);
        frontier = catch_up(tx, index)?;
        frontier_table = tx.open_table(AUDIT_FRONTIER)?;
    }
    if frontier.size != index {
        return Err(corrupt(
            "audit frontier",
            format!(
                "holds {} leaves where feed position {pos} is next",
                frontier.size
            ),
        ));
    }
    push_leaf(
        &mut tx.open_table(AUDIT_TREE)?,
        &mut frontier,
        leaf_hash(envelope),
    )?;
    frontier_table.insert(FRONTIER_KEY, frontier.encode().as_slice())?;
    Ok(())
}

/// Appends the leaves of feed positions the log lacks, up to `upto` leaves (a store written
/// before the audit log existed). Returns the frontier reached, also stored.
fn catch_up(tx: &WriteTransaction, upto: u64) -> Result<Frontier, StoreError> {
    let mut frontier = read_frontier(&tx.open_table(AUDIT_FRONTIER)?)?;
    {
        let mut tree = tx.open_table(AUDIT_TREE)?;
        let feed = tx.open_table(FEED)?;
        let changes = tx.open_table(CHANGES)?;
        for row in feed.range(frontier.size + 1..=upto)? {
            let (k, v) = row?;
            if k.value() != frontier.size + 1 {
                return Err(corrupt(
                    "feed",
                    format!("position {} follows {}", k.value(), frontier.size),
                ));
            }
            let hash = *v.value().0;
            let envelope = changes.get(&hash)?.ok_or_else(|| {
                corrupt(
                    "feed",
                    format!("change {} is not stored", hex::encode(hash)),
                )
            })?;
            push_leaf(&mut tree, &mut frontier, leaf_hash(envelope.value()))?;
        }
    }
    tx.open_table(AUDIT_FRONTIER)?
        .insert(FRONTIER_KEY, frontier.encode().as_slice())?;
    Ok(frontier)
}

/// The feed head, with the log caught up to it (at most [`BACKFILL_ENTRIES_MAX`] per call).
fn caught_up_size(tx: &WriteTransaction) -> Result<(u64, bool), StoreError> {
    let head = tx.open_table(FEED)?.last()?.map_or(0, |(k, _)| k.value());
    let size = read_frontier(&tx.open_table(AUDIT_FRONTIER)?)?.size;
    let target = head.min(size + BACKFILL_ENTRIES_MAX);
    let reached = if size < target {
        catch_up(tx, target)?.size
    } else {
        size
    };
    Ok((reached, reached == head))
}

fn parse_record(text: &str) -> Result<CheckpointRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("checkpoint record", e))
}

/// The latest checkpoint of this node's log.
fn latest(tx: &WriteTransaction) -> Result<Option<Checkpoint>, StoreError> {
    let t = tx.open_table(AUDIT_CHECKPOINTS)?;
    let Some((_, v)) = t.last()? else {
        return Ok(None);
    };
    let record = parse_record(v.value())?;
    Checkpoint::open(&record.note)
        .map(Some)
        .map_err(|e| corrupt("own checkpoint", e))
}

/// Whether feed positions `from..=to` hold a change that the next checkpoint should cover:
/// with `any_but_own`, anything but this node's own checkpoint publications; otherwise
/// anything but checkpoint publications at all (peers' checkpoints arriving do not make a node
/// sign one, or two nodes would answer each other's checkpoints forever).
fn has_news(
    tx: &WriteTransaction,
    from: u64,
    to: u64,
    own_prefix: &str,
    any_but_own: bool,
) -> Result<bool, StoreError> {
    let feed = tx.open_table(FEED)?;
    for row in feed.range(from..=to)? {
        let (_, v) = row?;
        let doc = v.value().2;
        let counts = if any_but_own {
            !doc.starts_with(own_prefix)
        } else {
            !doc.starts_with("log/")
        };
        if counts {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates the audit tables if this store has none yet (a node that never stored a change), so
/// that readers find them.
fn ensure_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(AUDIT_TREE)?;
    tx.open_table(AUDIT_FRONTIER)?;
    tx.open_table(AUDIT_CHECKPOINTS)?;
    tx.open_table(AUDIT_WITNESS)?;
    Ok(())
}

/// Signs a checkpoint of the log if one is due (always, with `seal`, when the log holds
/// anything uncovered but this node's own publications: what an export needs). Returns its size.
pub fn checkpoint(
    ctx: &Ctx<'_>,
    apply: &mut Apply<'_>,
    seal: bool,
) -> Result<Option<u64>, CommandError> {
    let tx = apply.tx();
    ensure_tables(tx)?;
    let (size, complete) = caught_up_size(tx)?;
    if !complete {
        // An old store is still being caught up; a later call continues.
        return Ok(None);
    }
    let prev = latest(tx)?;
    let (prev_size, prev_root) = prev.map_or((0, empty_root()), |c| (c.size, c.root));
    let own_prefix = format!("log/{}/", ctx.identity.unit);
    if size <= prev_size || !has_news(tx, prev_size + 1, size, &own_prefix, seal)? {
        return Ok(None);
    }
    let (root, proof) = root_and_proof(tx, prev_size, size)?;
    let cp = Checkpoint {
        key: *ctx.identity.key.verifying_key().as_bytes(),
        size,
        root,
        time: ctx.now,
        prev_size,
        prev_root,
    };
    let record = CheckpointRecord {
        note: cp.sign(&ctx.identity.key),
        consistency: proof.iter().map(b64).collect(),
    };
    store_checkpoint(tx, size, &record)?;
    // Published only by a node that may write its log document now (an auditor writes nothing;
    // a revoked node's change would be refused): the others keep their checkpoints locally.
    let key = ctx.identity.key.verifying_key();
    let may_write = matches!(ctx.identity.role, Role::Province | Role::Commune)
        && apply.registry().check_key(key.as_bytes(), ctx.now).is_ok();
    if may_write {
        publish(ctx, apply, size, &record)?;
    }
    tracing::info!(size, root = %b64(&root), "audit checkpoint signed");
    Ok(Some(size))
}

fn root_and_proof(
    tx: &WriteTransaction,
    prev_size: u64,
    size: u64,
) -> Result<(Hash, Vec<Hash>), StoreError> {
    let frontier = read_frontier(&tx.open_table(AUDIT_FRONTIER)?)?;
    if frontier.size != size {
        return Err(corrupt("audit frontier", "not at the feed head"));
    }
    let (tree, feed, changes) = (
        tx.open_table(AUDIT_TREE)?,
        tx.open_table(FEED)?,
        tx.open_table(CHANGES)?,
    );
    let view = TreeView {
        tree: &tree,
        feed: &feed,
        changes: &changes,
    };
    Ok((
        frontier.root(),
        merkle::consistency_proof(&view, prev_size, size)?,
    ))
}

fn store_checkpoint(
    tx: &WriteTransaction,
    size: u64,
    record: &CheckpointRecord,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(record).expect("record serialises");
    tx.open_table(AUDIT_CHECKPOINTS)?
        .insert(size, json.as_str())?;
    Ok(())
}

/// Writes the checkpoint into this node's `log/<unit>/<day>` document through the pipeline.
fn publish(
    ctx: &Ctx<'_>,
    apply: &mut Apply<'_>,
    size: u64,
    record: &CheckpointRecord,
) -> Result<(), CommandError> {
    let doc_id = DocId::Log(ctx.identity.unit.clone(), date_key(ctx.now.local_date()));
    let mut doc = apply.doc(&doc_id)?.unwrap_or_default();
    doc.set_actor(ctx.identity.actor.clone());
    let mut tx = doc.transaction();
    if let Err(e) = layout::log::put(&mut tx, size, record) {
        tx.rollback();
        return Err(e.into());
    }
    tx.commit_with(CommitOptions::default().with_time(ctx.now.0.div_euclid(1000)));
    let change = doc
        .get_last_local_change()
        .ok_or_else(|| CommandError::Internal("no checkpoint change produced".into()))?;
    let signed = SignedChange::sign(&doc_id, change, &ctx.identity.key)
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    match apply.change(&signed, Some(doc), "local", ctx.now)? {
        Applied::Stored(_) => Ok(()),
        Applied::Rejected(r) => Err(CommandError::Forbidden(r.message)),
        other => Err(CommandError::Internal(format!(
            "checkpoint change not applied: {other:?}"
        ))),
    }
}

/// Keeps every checkpoint record that opens (its note's signature verifies) and is new.
pub fn witness(tx: &WriteTransaction, records: &[CheckpointRecord]) -> Result<(), StoreError> {
    let mut table = tx.open_table(AUDIT_WITNESS)?;
    for record in records {
        let cp = match Checkpoint::open(&record.note) {
            Ok(cp) => cp,
            Err(e) => {
                tracing::warn!(error = %e, "a published checkpoint does not verify; not witnessed");
                continue;
            }
        };
        if table.get((&cp.key, cp.size, &cp.root))?.is_some() {
            continue;
        }
        let proof: Option<Vec<Hash>> = record
            .consistency
            .iter()
            .map(|h| hash_from_b64(h))
            .collect();
        let consistent = proof.is_some_and(|p| {
            merkle::verify_consistency(cp.prev_size, cp.size, &cp.prev_root, &cp.root, &p).is_ok()
        });
        let same_size_other_root = table
            .range((&cp.key, cp.size, &[0u8; 32])..=(&cp.key, cp.size, &[0xffu8; 32]))?
            .next()
            .is_some();
        let prev_contradicted = cp.prev_size > 0 && {
            let mut held = table.range(
                (&cp.key, cp.prev_size, &[0u8; 32])..=(&cp.key, cp.prev_size, &[0xffu8; 32]),
            )?;
            held.next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().2 != &cp.prev_root)
        };
        if !consistent || same_size_other_root || prev_contradicted {
            tracing::warn!(
                node = %hex::encode(cp.key),
                size = cp.size,
                consistent,
                "witnessed checkpoint contradicts the node's log as seen before: kept as evidence"
            );
        }
        let json = serde_json::to_string(record).expect("record serialises");
        table.insert((&cp.key, cp.size, &cp.root), json.as_str())?;
    }
    Ok(())
}

/// Every checkpoint of this node's log, oldest first.
pub fn own_checkpoints(tx: &ReadTransaction) -> Result<Vec<CheckpointRecord>, StoreError> {
    let t = tx.open_table(AUDIT_CHECKPOINTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(parse_record(row?.1.value())?);
    }
    Ok(out)
}

/// Every witnessed checkpoint, grouped by node, oldest first.
pub fn witnessed(tx: &ReadTransaction) -> Result<Vec<WitnessedLog>, StoreError> {
    let t = tx.open_table(AUDIT_WITNESS)?;
    let mut out: Vec<WitnessedLog> = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let key = hex::encode(k.value().0);
        let record = parse_record(v.value())?;
        match out.last_mut() {
            Some(log) if log.key == key => log.checkpoints.push(record),
            _ => out.push(WitnessedLog {
                key,
                checkpoints: vec![record],
            }),
        }
    }
    Ok(out)
}

/// The range proof of the `exported` leaves (sorted) against the tree of `size` leaves.
pub fn range_proof(
    tx: &ReadTransaction,
    size: u64,
    exported: &[u64],
) -> Result<Vec<ProofEntry>, StoreError> {
    let (tree, feed, changes) = (
        tx.open_table(AUDIT_TREE)?,
        tx.open_table(FEED)?,
        tx.open_table(CHANGES)?,
    );
    merkle::range_proof(
        &TreeView {
            tree: &tree,
            feed: &feed,
            changes: &changes,
        },
        size,
        exported,
    )
}

/// The root of the first `size` leaves.
pub fn root(tx: &ReadTransaction, size: u64) -> Result<Hash, StoreError> {
    let (tree, feed, changes) = (
        tx.open_table(AUDIT_TREE)?,
        tx.open_table(FEED)?,
        tx.open_table(CHANGES)?,
    );
    merkle::root(
        &TreeView {
            tree: &tree,
            feed: &feed,
            changes: &changes,
        },
        size,
    )
}

/// Asks the writer for a checkpoint every [`CHECKPOINT_INTERVAL_MS`] while the node serves.
pub async fn checkpoint_loop(writer: Writer) {
    let mut every = tokio::time::interval(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = writer
            .submit(Command::AuditCheckpoint { seal: false })
            .await
        {
            tracing::error!(error = %e, "signing an audit checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_schema::audit::merkle::MemoryTree;

    #[test]
    fn the_stored_log_proves_like_the_whole_tree() {
        // Why: the store keeps only the frontier and subtrees of 256 leaves and more; roots and
        // proofs made from it (recomputing smaller subtrees from the feed) must be exactly those
        // of the whole tree, and a store written before the audit log existed must be caught up
        // to the log it would have had.
        let store = crate::store::Store::open_in_memory([1; 16]).unwrap();
        let db = store.db();
        let tx = db.begin_write().unwrap();
        let mut mem = MemoryTree::new();
        let n = 700u64;
        let put = |i: u64| {
            let env = format!("envelope {i}").into_bytes();
            let hash: [u8; 32] = leaf_hash(&env);
            tx.open_table(CHANGES)
                .unwrap()
                .insert(&hash, env.as_slice())
                .unwrap();
            tx.open_table(FEED)
                .unwrap()
                .insert(i, (&hash, env.len() as u32, "dossier/X1-250101-0001"))
                .unwrap();
            env
        };
        // The first 300 positions exist before the audit log does.
        for i in 1..=300u64 {
            mem.push(leaf_hash(&put(i)));
        }
        for i in 301..=n {
            let env = put(i);
            append(&tx, i, &env).unwrap();
            mem.push(leaf_hash(&env));
        }
        let frontier = read_frontier(&tx.open_table(AUDIT_FRONTIER).unwrap()).unwrap();
        assert_eq!(frontier.size, n);
        assert_eq!(frontier.root(), merkle::root(&mem, n).unwrap());
        let (tree, feed, changes) = (
            tx.open_table(AUDIT_TREE).unwrap(),
            tx.open_table(FEED).unwrap(),
            tx.open_table(CHANGES).unwrap(),
        );
        let view = TreeView {
            tree: &tree,
            feed: &feed,
            changes: &changes,
        };
        for size in [1, 2, 255, 256, 257, 511, 512, 700] {
            assert_eq!(
                merkle::root(&view, size).unwrap(),
                merkle::root(&mem, size).unwrap(),
                "root {size}"
            );
        }
        for (old, new) in [(1, 700), (255, 513), (300, 700), (512, 700)] {
            assert_eq!(
                merkle::consistency_proof(&view, old, new).unwrap(),
                merkle::consistency_proof(&mem, old, new).unwrap(),
                "consistency {old} {new}"
            );
        }
        let exported: Vec<u64> = (0..n).filter(|i| i % 97 == 3).collect();
        assert_eq!(
            merkle::range_proof(&view, n, &exported).unwrap(),
            merkle::range_proof(&mem, n, &exported).unwrap()
        );
    }
}
