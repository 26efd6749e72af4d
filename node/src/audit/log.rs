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

use std::time::Duration;

use automerge::transaction::CommitOptions;
use motcua_schema::audit::archive::{CheckpointRecord, WitnessedLog, b64, hash_from_b64};
use motcua_schema::audit::merkle::{
    self, Hash, ProofEntry, Subtrees, empty_root, leaf_hash, node_hash,
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
use crate::store::tables::{AUDIT_CHECKPOINTS, AUDIT_TREE, AUDIT_WITNESS, CHANGES, FEED};
use crate::store::{StoreError, corrupt};
use crate::writer::{Command, Writer};

/// How often a serving node considers signing a checkpoint, in milliseconds. It signs one only
/// when its log holds a change that is not a checkpoint publication, so an idle node and its
/// peers do not trade checkpoints for nothing.
pub const CHECKPOINT_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// Most feed positions [`append`] backfills in one transaction when catching up an old store,
/// in entries; a larger gap is caught up over several transactions.
pub const BACKFILL_ENTRIES_MAX: u64 = 200_000;

/// Subtree hashes read from a table of this transaction.
struct TreeView<'a, T: ReadableTable<(u8, u64), &'static [u8; 32]>>(&'a T);

impl<T: ReadableTable<(u8, u64), &'static [u8; 32]>> Subtrees for TreeView<'_, T> {
    type Error = StoreError;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let level = u8::try_from(level).map_err(|_| corrupt("audit tree", "level above 255"))?;
        self.0
            .get((level, index))?
            .map(|v| *v.value())
            .ok_or_else(|| {
                corrupt(
                    "audit tree",
                    format!("no subtree at level {level} index {index}"),
                )
            })
    }
}

/// Number of leaves in the tree.
fn tree_size<T: ReadableTable<(u8, u64), &'static [u8; 32]>>(t: &T) -> Result<u64, StoreError> {
    let last = t.range((0u8, 0u64)..(1u8, 0u64))?.next_back().transpose()?;
    Ok(last.map_or(0, |(k, _)| k.value().1 + 1))
}

fn push_leaf(
    t: &mut redb::Table<'_, (u8, u64), &'static [u8; 32]>,
    index: u64,
    leaf: Hash,
) -> Result<(), StoreError> {
    t.insert((0u8, index), &leaf)?;
    let (mut level, mut i, mut cur) = (0u8, index, leaf);
    while i & 1 == 1 {
        let left = t.get((level, i - 1))?.map(|v| *v.value()).ok_or_else(|| {
            corrupt(
                "audit tree",
                format!("no left sibling at level {level} index {}", i - 1),
            )
        })?;
        cur = node_hash(&left, &cur);
        level += 1;
        i >>= 1;
        t.insert((level, i), &cur)?;
    }
    Ok(())
}

/// Adds the envelope stored at feed position `pos` as leaf `pos − 1`.
pub fn append(tx: &WriteTransaction, pos: u64, envelope: &[u8]) -> Result<(), StoreError> {
    let index = pos - 1;
    let mut size = {
        let t = tx.open_table(AUDIT_TREE)?;
        tree_size(&t)?
    };
    if size < index {
        size = catch_up(tx, index)?;
    }
    if size != index {
        return Err(corrupt(
            "audit tree",
            format!("holds {size} leaves where feed position {pos} is next"),
        ));
    }
    push_leaf(&mut tx.open_table(AUDIT_TREE)?, index, leaf_hash(envelope))
}

/// Appends the leaves of feed positions the tree lacks, up to `upto` leaves (a store written
/// before the audit log existed). Returns the tree size reached.
pub fn catch_up(tx: &WriteTransaction, upto: u64) -> Result<u64, StoreError> {
    let mut t = tx.open_table(AUDIT_TREE)?;
    let feed = tx.open_table(FEED)?;
    let changes = tx.open_table(CHANGES)?;
    let mut size = tree_size(&t)?;
    for row in feed.range(size + 1..=upto)? {
        let (k, v) = row?;
        if k.value() != size + 1 {
            return Err(corrupt(
                "feed",
                format!("position {} follows {size}", k.value()),
            ));
        }
        let hash = *v.value().0;
        let envelope = changes.get(&hash)?.ok_or_else(|| {
            corrupt(
                "feed",
                format!("change {} is not stored", hex::encode(hash)),
            )
        })?;
        push_leaf(&mut t, size, leaf_hash(envelope.value()))?;
        size += 1;
    }
    Ok(size)
}

/// The feed head, with the tree caught up to it (at most [`BACKFILL_ENTRIES_MAX`] per call).
fn caught_up_size(tx: &WriteTransaction) -> Result<(u64, bool), StoreError> {
    let head = tx.open_table(FEED)?.last()?.map_or(0, |(k, _)| k.value());
    let size = tree_size(&tx.open_table(AUDIT_TREE)?)?;
    let target = head.min(size + BACKFILL_ENTRIES_MAX);
    let reached = if size < target {
        catch_up(tx, target)?
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

/// Signs a checkpoint of the log if one is due (always, with `seal`, when the log holds
/// anything uncovered but this node's own publications: what an export needs). Returns its size.
pub fn checkpoint(
    ctx: &Ctx<'_>,
    apply: &mut Apply<'_>,
    seal: bool,
) -> Result<Option<u64>, CommandError> {
    let tx = apply.tx();
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
    let t = tx.open_table(AUDIT_TREE)?;
    let view = TreeView(&t);
    Ok((
        merkle::root(&view, size)?,
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
    let t = tx.open_table(AUDIT_TREE)?;
    merkle::range_proof(&TreeView(&t), size, exported)
}

/// The root of the first `size` leaves.
pub fn root(tx: &ReadTransaction, size: u64) -> Result<Hash, StoreError> {
    let t = tx.open_table(AUDIT_TREE)?;
    merkle::root(&TreeView(&t), size)
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
    fn catch_up_builds_the_same_tree_as_appending() {
        // Why: a store written before the audit log existed must get exactly the log it would
        // have had, or its first checkpoint would contradict nothing and prove nothing.
        let store = crate::store::Store::open_in_memory([1; 16]).unwrap();
        let db = store.db();
        let tx = db.begin_write().unwrap();
        let mut mem = MemoryTree::new();
        {
            let mut feed = tx.open_table(FEED).unwrap();
            let mut changes = tx.open_table(CHANGES).unwrap();
            for i in 1..=37u64 {
                let env = format!("envelope {i}").into_bytes();
                let hash: [u8; 32] = leaf_hash(&env);
                changes.insert(&hash, env.as_slice()).unwrap();
                feed.insert(i, (&hash, env.len() as u32, "dossier/X1-250101-0001"))
                    .unwrap();
                mem.push(leaf_hash(&env));
            }
        }
        // The first new change finds 37 positions without leaves and catches them up.
        let env = b"envelope 38".to_vec();
        let hash = leaf_hash(&env);
        tx.open_table(CHANGES)
            .unwrap()
            .insert(&hash, env.as_slice())
            .unwrap();
        tx.open_table(FEED)
            .unwrap()
            .insert(38, (&hash, 11u32, "dossier/X1-250101-0001"))
            .unwrap();
        append(&tx, 38, &env).unwrap();
        mem.push(leaf_hash(&env));
        let t = tx.open_table(AUDIT_TREE).unwrap();
        assert_eq!(tree_size(&t).unwrap(), 38);
        for size in [1, 2, 17, 32, 38] {
            assert_eq!(
                merkle::root(&TreeView(&t), size).unwrap(),
                merkle::root(&mem, size).unwrap()
            );
        }
    }
}
