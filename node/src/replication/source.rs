//! The node's store as the replication protocol reads it (`motcua_sync::ChangeStore`).
//!
//! Every protocol call into a session gets a fresh [`LazySnapshot`]: the store id and feed head
//! the driver already knows, and one redb read transaction ([`Snapshot`]) opened only if the
//! call reads more, so all the reads of that call see one consistent state while the writer
//! goes on committing, and the pings of an idle link open none.
//! Scope is decided from the document id each feed entry carries, plus the transfer index for
//! dossiers handed to a commune from elsewhere.

use std::cell::OnceCell;

use motcua_sync::{ChangeStore, FeedEntry, Scope, StoreError};
use redb::{ReadTransaction, ReadableTable};

use crate::store::Store;
use crate::store::tables::{CHANGES, FEED, IDX_TRANSFER, META};

/// Most feed positions one `feed_after` call scans, in entries: bounds the work of serving a
/// commune from a province feed full of other units' records; the session continues from the
/// last position scanned.
pub const FEED_SCAN_ENTRIES_MAX: usize = 65_536;

/// A store view for one call into a session: the store id and the feed head are known without
/// a read transaction, which is opened only if the session reads more. The head is what the
/// driver knows to be committed (the node's published feed head, the simulator's tracked one),
/// so it may trail the store by a commit whose wake-up is on its way.
pub struct LazySnapshot<'a> {
    store: &'a Store,
    store_id: [u8; 16],
    head: u64,
    snap: OnceCell<Result<Snapshot, StoreError>>,
}

impl<'a> LazySnapshot<'a> {
    /// A view of `store`, whose id is `store_id` and whose feed head is `head`.
    pub fn new(store: &'a Store, store_id: [u8; 16], head: u64) -> LazySnapshot<'a> {
        LazySnapshot {
            store,
            store_id,
            head,
            snap: OnceCell::new(),
        }
    }

    fn snap(&self) -> Result<&Snapshot, StoreError> {
        self.snap
            .get_or_init(|| Snapshot::new(self.store))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ChangeStore for LazySnapshot<'_> {
    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn feed_head(&self) -> u64 {
        self.head
    }

    fn feed_after(
        &self,
        after: u64,
        scope: &Scope,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<(Vec<FeedEntry>, u64), StoreError> {
        self.snap()?.feed_after(after, scope, count_max, bytes_max)
    }

    fn has_short(&self, short: &[u8; 8]) -> Result<bool, StoreError> {
        self.snap()?.has_short(short)
    }

    fn envelope(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.snap()?.envelope(hash)
    }

    fn for_each_hash(
        &self,
        scope: &Scope,
        upto: u64,
        f: &mut dyn FnMut(&[u8; 32]),
    ) -> Result<(), StoreError> {
        self.snap()?.for_each_hash(scope, upto, f)
    }
}

/// A consistent read view of the store.
pub struct Snapshot {
    tx: ReadTransaction,
    store_id: [u8; 16],
}

fn read_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Read(e.to_string())
}

impl Snapshot {
    /// A view of `store` now, with the store id it has in that view.
    pub fn new(store: &Store) -> Result<Snapshot, StoreError> {
        use redb::ReadableDatabase;
        let tx = store.db().begin_read().map_err(read_err)?;
        let meta = tx.open_table(META).map_err(read_err)?;
        let store_id = meta
            .get("store_id")
            .map_err(read_err)?
            .and_then(|v| v.value().try_into().ok())
            .ok_or_else(|| StoreError::Read("the store has no store id".into()))?;
        drop(meta);
        Ok(Snapshot { tx, store_id })
    }

    /// Whether `doc_id` is in `scope`. `transfers` holds what the scan has learned of the
    /// dossiers transferred to the scope's unit, read on first need and kept for the rest of the
    /// scan: a province's feed is mostly other units' dossiers, and asking the index about each
    /// of them was a large share of serving a commune.
    fn admits(
        &self,
        scope: &Scope,
        doc_id: &str,
        transfers: &mut Option<TransfersIn>,
    ) -> Result<bool, StoreError> {
        let transferred = match (scope.unit(), doc_id.strip_prefix("dossier/")) {
            (Some(unit), Some(code)) if !scope.admits(doc_id, false) => {
                if transfers.is_none() {
                    *transfers = Some(TransfersIn::read(
                        &self.tx,
                        unit,
                        TRANSFERS_IN_SCAN_CODES_MAX,
                    )?);
                }
                transfers
                    .as_ref()
                    .expect("read above")
                    .contains(unit, code)?
            }
            _ => false,
        };
        Ok(scope.admits(doc_id, transferred))
    }
}

/// Most dossier codes a scan keeps of those transferred to its unit. A commune receives a few
/// transfers a month, so its whole list is one short range read, cheaper than asking the index
/// about each foreign dossier even for a scan that passes a few (most scans: a hybrid that asked
/// about the first 32 before reading the list kept most of the asking, BENCHMARKS.md (k)). Past
/// this many, the scan asks the index about each foreign dossier, as it did before the list was
/// kept, having read this many rows for nothing: the bound keeps that waste small.
pub const TRANSFERS_IN_SCAN_CODES_MAX: usize = 1_024;

/// The dossiers transferred to a unit, as one scan sees them.
enum TransfersIn {
    /// Every code, read once.
    Codes(std::collections::HashSet<String>),
    /// More than [`TRANSFERS_IN_SCAN_CODES_MAX`]: the index, asked per dossier.
    Index(TransferIndex),
}

impl TransfersIn {
    /// Reads the codes transferred to `unit`, or keeps the index if there are more than
    /// `codes_max`.
    fn read(tx: &ReadTransaction, unit: &str, codes_max: usize) -> Result<TransfersIn, StoreError> {
        let idx = tx.open_table(IDX_TRANSFER).map_err(read_err)?;
        Ok(
            match crate::store::transferred_to(&idx, unit, codes_max).map_err(read_err)? {
                Some(codes) => TransfersIn::Codes(codes.into_iter().collect()),
                None => TransfersIn::Index(idx),
            },
        )
    }

    fn contains(&self, unit: &str, code: &str) -> Result<bool, StoreError> {
        match self {
            TransfersIn::Codes(codes) => Ok(codes.contains(code)),
            TransfersIn::Index(idx) => Ok(idx.get((unit, code)).map_err(read_err)?.is_some()),
        }
    }
}

type TransferIndex = redb::ReadOnlyTable<(&'static str, &'static str), ()>;

impl ChangeStore for Snapshot {
    fn store_id(&self) -> [u8; 16] {
        self.store_id
    }

    fn feed_head(&self) -> u64 {
        self.tx
            .open_table(FEED)
            .ok()
            .and_then(|t| t.last().ok().flatten().map(|(k, _)| k.value()))
            .unwrap_or(0)
    }

    fn feed_after(
        &self,
        after: u64,
        scope: &Scope,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<(Vec<FeedEntry>, u64), StoreError> {
        let feed = self.tx.open_table(FEED).map_err(read_err)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut last = after;
        let mut transfers = None;
        for (scanned, row) in feed.range(after + 1..).map_err(read_err)?.enumerate() {
            if scanned >= FEED_SCAN_ENTRIES_MAX {
                break;
            }
            let (k, v) = row.map_err(read_err)?;
            let (hash, size, doc_id) = v.value();
            if self.admits(scope, doc_id, &mut transfers)? {
                let size_usize = size as usize;
                if !out.is_empty() && (out.len() >= count_max || bytes + size_usize > bytes_max) {
                    break;
                }
                bytes += size_usize;
                out.push(FeedEntry {
                    pos: k.value(),
                    hash: *hash,
                    size_bytes: size,
                });
            }
            last = k.value();
            if out.len() >= count_max {
                break;
            }
        }
        Ok((out, last))
    }

    fn has_short(&self, short: &[u8; 8]) -> Result<bool, StoreError> {
        let changes = self.tx.open_table(CHANGES).map_err(read_err)?;
        let mut lower = [0u8; 32];
        lower[..8].copy_from_slice(short);
        let mut upper = [0xffu8; 32];
        upper[..8].copy_from_slice(short);
        Ok(changes
            .range::<&[u8; 32]>(&lower..=&upper)
            .map_err(read_err)?
            .next()
            .is_some())
    }

    fn envelope(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let changes = self.tx.open_table(CHANGES).map_err(read_err)?;
        Ok(changes
            .get(hash)
            .map_err(read_err)?
            .map(|v| v.value().to_vec()))
    }

    /// Scans the feed up to `upto`: one sequential pass over entries of about 60 bytes, so a
    /// province holding a million changes visits them in well under a second, and only when a
    /// repair or an anti-entropy round runs.
    fn for_each_hash(
        &self,
        scope: &Scope,
        upto: u64,
        f: &mut dyn FnMut(&[u8; 32]),
    ) -> Result<(), StoreError> {
        let feed = self.tx.open_table(FEED).map_err(read_err)?;
        let mut transfers = None;
        for row in feed.range(1..=upto).map_err(read_err)? {
            let (_, v) = row.map_err(read_err)?;
            let (hash, _, doc_id) = v.value();
            if self.admits(scope, doc_id, &mut transfers)? {
                f(hash);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose feed holds dossiers of units `A` and `B`, two of `A`'s transferred to `B`.
    fn store() -> Store {
        let store = Store::open_in_memory([7; 16]).unwrap();
        let tx = store.db().begin_write().unwrap();
        {
            let mut feed = tx.open_table(FEED).unwrap();
            let docs = [
                "dossier/A-250101-0001",
                "dossier/B-250101-0001",
                "dossier/A-250101-0002",
                "catalog",
                "dossier/A-250101-0003",
                "dossier/A-250101-0004",
            ];
            for (i, doc) in docs.iter().enumerate() {
                feed.insert(i as u64 + 1, (&[i as u8; 32], 100u32, *doc))
                    .unwrap();
            }
            let mut idx = tx.open_table(IDX_TRANSFER).unwrap();
            idx.insert(("B", "A-250101-0002"), ()).unwrap();
            idx.insert(("B", "A-250101-0004"), ()).unwrap();
            idx.insert(("C", "A-250101-0003"), ()).unwrap();
        }
        tx.commit().unwrap();
        store
    }

    #[test]
    fn a_commune_scan_admits_its_own_records_and_the_dossiers_transferred_to_it() {
        // Why: the scan reads the unit's transfers once instead of asking the index about every
        // foreign dossier; it must admit exactly what the per-dossier question admitted, both
        // from the list it keeps and past its bound, when it asks the index again.
        let store = store();
        let snap = Snapshot::new(&store).unwrap();
        let scope = Scope::Unit { unit: "B".into() };
        let (entries, last) = snap.feed_after(0, &scope, 100, 1 << 20).unwrap();
        let positions: Vec<u64> = entries.iter().map(|e| e.pos).collect();
        assert_eq!(positions, vec![2, 3, 4, 6]);
        assert_eq!(last, 6);
        for codes_max in [0, 1, 2, 3] {
            let transfers = TransfersIn::read(&snap.tx, "B", codes_max).unwrap();
            assert_eq!(
                matches!(transfers, TransfersIn::Index(_)),
                codes_max < 2,
                "kept as a list only when it fits ({codes_max})"
            );
            for (code, transferred) in [
                ("A-250101-0002", true),
                ("A-250101-0004", true),
                ("A-250101-0003", false),
                ("A-250101-0001", false),
            ] {
                assert_eq!(
                    transfers.contains("B", code).unwrap(),
                    transferred,
                    "{code}"
                );
            }
        }
    }
}
