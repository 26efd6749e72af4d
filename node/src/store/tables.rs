//! Every redb table of a node, in one place, each with a versioned name and its layout.
//!
//! A table's name ends in `-<version>`; a change of key or value layout gets a new name and a
//! migration in `store::migrate`. Values marked *JSON* are `serde_json` encodings of the named
//! `motcua_schema` type; they are derived data except where marked *source*.
//!
//! Source of truth: `changes`, `feed`, the change rows of `doc-rows` and `pending` hold the
//! signed changes exactly as received; `audit-checkpoints` and `audit-witness` hold signed
//! checkpoints. Everything else is derived from them (the same changes through the apply
//! pipeline give the same rows, which is how a new node fills its store when it first syncs)
//! and is maintained in the same write transaction as the change that alters it.

use redb::{MultimapTableDefinition, TableDefinition};

/// Node metadata: key → bytes. Keys: `format` (u32 BE store format), `store_id` (16 random
/// bytes chosen when the store is created: peers' checkpoints of this node's feed refer to it).
pub const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta-1");

/// *Source.* Change hash (32 bytes) → signed change envelope (`motcua_schema::signed`, v1).
pub const CHANGES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("changes-1");

/// *Source.* Local feed position (u64, from 1, gapless) → (change hash, envelope size in bytes,
/// document id). The order in which this node stored changes; replication peers ask for
/// "everything after position P" in their scope, which the document id decides without reading
/// the envelope.
pub const FEED: TableDefinition<'_, u64, (&[u8; 32], u32, &str)> = TableDefinition::new("feed-2");

/// A document's rows, next to each other, keyed (document id, actor bytes, seq):
/// - **its changes**: (document, actor, seq) → change hash (32 bytes), one row per stored change
///   (applied, pending, or stored and then refused). A document's changes are one key range,
///   and a second change with a document's (actor, seq) finds the first one's row: an
///   equivocation. *Source*, like `changes`.
/// - **its state**: (document, no actor, 0) → the Automerge bytes of the state after every
///   applied change: a saved document (or nothing) followed by the change chunks applied since,
///   compacted every few changes (`store::doc_cache`). Any Automerge load reads them. Derived.
/// - **a dossier's summary**: (document, no actor, 1) → JSON `DossierSummary`, what lists,
///   reports and the indexes below are made of. Derived.
///
/// Every change has an actor, so the rows at no actor (the document's derived rows) come
/// first and never collide with a change's.
///
/// One table, so that the rows a change writes (its own, its document's new state and a
/// dossier's new summary) share a path of one tree: store format 3 merged `docs-1` and
/// `doc-changes-2`, format 4 moved `dossiers-1` in (see `store::migrate`), as format 2 had
/// merged `doc-changes-1` and `actor-seq-1`.
pub const DOC_ROWS: TableDefinition<'_, (&str, &[u8], u64), &[u8]> =
    TableDefinition::new("doc-rows-3");

/// The key of a document's state in [`DOC_ROWS`].
pub fn doc_state_key(doc: &str) -> (&str, &'static [u8], u64) {
    (doc, &[], 0)
}

/// The key of a dossier's summary in [`DOC_ROWS`] (`doc`: the dossier's document id).
pub fn doc_summary_key(doc: &str) -> (&str, &'static [u8], u64) {
    (doc, &[], 1)
}

/// The first key of a document's change rows in [`DOC_ROWS`] (they follow its derived rows, and
/// end where the document id changes).
pub fn doc_changes_start(doc: &str) -> (&str, &'static [u8], u64) {
    (doc, &[], 2)
}

/// Whether a key of [`DOC_ROWS`] is a change's row (not one of its document's derived rows).
pub fn is_doc_change_key(key: (&str, &[u8], u64)) -> bool {
    key >= doc_changes_start(key.0)
}

/// Document id → hashes of verified changes whose dependencies have not arrived yet. They are
/// stored and forwarded but not yet part of the document state.
pub const PENDING: MultimapTableDefinition<'_, &str, &[u8; 32]> =
    MultimapTableDefinition::new("pending-1");

/// Fork proof number (u64, from 1) → JSON `{doc, actor, seq, signer, first, second}` with both
/// envelopes in hex. *Source* (evidence).
pub const FORKS: TableDefinition<'_, u64, &str> = TableDefinition::new("forks-1");

/// (status number 1-10, dossier code) → ().
pub const IDX_STATUS: TableDefinition<'_, (u8, &str), ()> = TableDefinition::new("idx-status-1");

/// (due instant ms, dossier code) → () for dossiers whose processing is not finished.
pub const IDX_DUE: TableDefinition<'_, (i64, &str), ()> = TableDefinition::new("idx-due-1");

/// (applicant ID number, dossier code) → (). Personal data: never leaves the node's API.
pub const IDX_APPLICANT: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("idx-applicant-1");

/// (unit a dossier was transferred to, dossier code) → (): the dossiers outside a commune's own
/// numbering that are in its replication scope.
pub const IDX_TRANSFER: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("idx-transfer-1");

/// Peer node key (32 bytes) → JSON `replication::PeerState`: this node's durable checkpoint of
/// the peer's feed (stored in the same transaction as the changes it covers), the peer's last
/// acknowledged position of this node's feed, and when the two last caught up.
pub const PEERS: TableDefinition<'_, &[u8; 32], &str> = TableDefinition::new("peers-1");

/// (receiving unit, received instant ms, dossier code) → ().
pub const IDX_UNIT: TableDefinition<'_, (&str, i64, &str), ()> = TableDefinition::new("idx-unit-1");

/// (unit, local day `YYYYMMDD`, metric name) → count. Maintained incrementally: each summary
/// contributes to a set of counters, and a change to a summary subtracts the old contribution
/// and adds the new one (see `store::counters`).
pub const COUNTERS: TableDefinition<'_, (&str, u32, &str), i64> =
    TableDefinition::new("counters-1");

/// Rating id → JSON `Rating`.
pub const RATINGS: TableDefinition<'_, &str, &str> = TableDefinition::new("ratings-1");

/// (unit, rating instant ms, rating id) → ().
pub const IDX_RATING_UNIT: TableDefinition<'_, (&str, i64, &str), ()> =
    TableDefinition::new("idx-rating-unit-1");

/// (unit, sequence name, local day `YYYYMMDD`) → last number allocated. Sequence names: `D`
/// dossiers, `R` ratings. Only the node that owns a unit allocates its numbers.
pub const SEQUENCES: TableDefinition<'_, (&str, &str, u32), u32> =
    TableDefinition::new("sequences-1");

/// Reject number (u64, from 1) → JSON `{at, peer, doc, hash, reason, message}`.
pub const REJECTS: TableDefinition<'_, u64, &str> = TableDefinition::new("rejects-1");

/// (change hash, reject reason) → the number of the reject that first logged it. A peer that
/// keeps offering a refused change (an equivocation, a forgery, a change outside its scope) is
/// refused every time, but logged, and its fork proof kept, once.
pub const REFUSED: TableDefinition<'_, (&[u8; 32], &str), u64> = TableDefinition::new("refused-1");

/// Registry record id → JSON `SignedRecord` (every root-signed record this node has verified).
pub const TRUST: TableDefinition<'_, &str, &str> = TableDefinition::new("trust-1");

/// Username → JSON `User` (argon2id password hash, role, full name, disabled flag).
pub const USERS: TableDefinition<'_, &str, &str> = TableDefinition::new("users-1");

/// SHA-256 of a session token (32 bytes) → JSON `Session` (username, expiry). The token itself
/// is never stored.
pub const SESSIONS: TableDefinition<'_, &[u8; 32], &str> = TableDefinition::new("sessions-1");

/// The audit log's Merkle tree (`crate::audit::log`): (level, index) → SHA-256 of the perfect
/// subtree of `2^level` leaves starting at leaf `index · 2^level`, kept for levels 8 and up
/// only (one row per 256 changes); smaller subtrees are recomputed from `feed` and `changes`.
/// Leaf `i` is the envelope at feed position `i + 1`, so the tree is derived from `feed` and
/// `changes`, appended in the transaction that stores the change.
pub const AUDIT_TREE: TableDefinition<'_, (u8, u64), &[u8; 32]> =
    TableDefinition::new("audit-tree-1");

/// The audit log's frontier, one row `"log"` → u64 BE tree size ‖ the 32-byte hashes of the
/// perfect subtrees that size decomposes into, largest first: the log's size and root, updated
/// with every stored change. Derived, like `audit-tree`.
pub const AUDIT_FRONTIER: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("audit-frontier-1");

/// *Source* (evidence). This node's signed checkpoints of its audit log: tree size → JSON
/// `motcua_schema::audit::archive::CheckpointRecord` (signed note and consistency proof from the
/// previous checkpoint). Append only.
pub const AUDIT_CHECKPOINTS: TableDefinition<'_, u64, &str> =
    TableDefinition::new("audit-checkpoints-1");

/// *Source* (evidence). Checkpoints of other nodes' logs this node witnessed, taken from the
/// `log/<unit>/<day>` documents it received: (node key, tree size, root) → JSON
/// `CheckpointRecord`. Keyed by root too, so two different roots for one size (a split view)
/// are both kept. Append only.
pub const AUDIT_WITNESS: TableDefinition<'_, (&[u8; 32], u64, &[u8; 32]), &str> =
    TableDefinition::new("audit-witness-1");

/// SHA-256 of a device token (32 bytes) → JSON `auth::Device` (rating tablets and hall TVs,
/// each with its own narrow rights). The token itself is never stored.
pub const DEVICES: TableDefinition<'_, &[u8; 32], &str> = TableDefinition::new("devices-1");

/// The store format this code writes.
pub const STORE_FORMAT_VERSION: u32 = 4;
