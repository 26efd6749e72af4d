//! What the protocol reads from a node's store, and what a peer may be sent.
//!
//! The session never owns storage: it reads through [`ChangeStore`] (implemented by the node over
//! redb, and by `testing::MemStore` here) and asks its driver to write by emitting events. The
//! store is also where scope is enforced first: [`ChangeStore::feed_after`] and
//! [`ChangeStore::for_each_hash`] only yield changes that the given [`Scope`] admits, so a commune
//! is never even told that another unit's records exist.

use motcua_schema::limits::UNIT_CODE_SIZE_BYTES_MAX;

/// One entry of a node's local feed: the order in which it stored changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    /// Position in the local feed (from 1, gapless).
    pub pos: u64,
    /// The change hash (the Automerge change hash for real changes).
    pub hash: [u8; 32],
    /// Size of the signed envelope in bytes.
    pub size_bytes: u32,
}

impl FeedEntry {
    /// The short id of the change announced on the wire: the first 8 bytes of its hash.
    pub fn short(&self) -> [u8; 8] {
        short_id(&self.hash)
    }
}

/// The first 8 bytes of a change hash, used to announce and request changes cheaply.
pub fn short_id(hash: &[u8; 32]) -> [u8; 8] {
    let mut s = [0u8; 8];
    s.copy_from_slice(&hash[..8]);
    s
}

/// A storage failure while the session read the store. The session fails; the driver logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be read.
    #[error("store read failed: {0}")]
    Read(String),
    /// The feed names a change whose envelope is not stored (a broken store).
    #[error("feed names change {hash} but its envelope is missing")]
    Missing {
        /// The change hash, hex.
        hash: String,
    },
}

/// Which changes a receiving peer may be sent.
///
/// Derived by the driver from the trust registry's enrolment of the peer (a commune's unit, or
/// the province and auditors who receive everything), never from what the peer says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything (the province, an auditor).
    All,
    /// One commune: its own dossiers (`dossier/<unit>-...`), its ratings (`ratings/<unit>/...`),
    /// its audit-log checkpoints (`log/<unit>/...`), dossiers transferred to it, and the
    /// province-wide `catalog`, `calendar` and `registry`.
    Unit {
        /// The unit code.
        unit: String,
    },
    /// Only the province-wide `catalog`, `calendar` and `registry`: what two different units
    /// certainly share (a conservative intersection; see [`Scope::intersect`]).
    Shared,
}

/// The documents written by the province that every node receives.
const PROVINCE_WIDE_DOCS: [&str; 3] = ["catalog", "calendar", "registry"];

impl Scope {
    /// The unit whose transfers matter to this scope: the store computes `transferred_to_unit`
    /// for [`Scope::admits`] against this unit. `None` when transfers do not matter.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Scope::Unit { unit } => Some(unit),
            Scope::All | Scope::Shared => None,
        }
    }

    /// Whether a change of document `doc_id` may be sent to a peer with this scope.
    /// `transferred_to_unit` is the store's knowledge that the dossier was transferred to
    /// [`Scope::unit`] (ignored for other documents and scopes).
    pub fn admits(&self, doc_id: &str, transferred_to_unit: bool) -> bool {
        match self {
            Scope::All => true,
            Scope::Shared => PROVINCE_WIDE_DOCS.contains(&doc_id),
            Scope::Unit { unit } => {
                if PROVINCE_WIDE_DOCS.contains(&doc_id) {
                    return true;
                }
                if let Some(code) = doc_id.strip_prefix("dossier/") {
                    // A unit code never contains '-', so `<unit>-` is an exact prefix match.
                    return transferred_to_unit
                        || code
                            .strip_prefix(unit.as_str())
                            .is_some_and(|rest| rest.starts_with('-'));
                }
                // Its ratings and its own audit-log checkpoints (`log/<unit>/<day>`).
                if let Some(rest) = doc_id
                    .strip_prefix("ratings/")
                    .or_else(|| doc_id.strip_prefix("log/"))
                {
                    return rest
                        .strip_prefix(unit.as_str())
                        .is_some_and(|rest| rest.starts_with('/'));
                }
                false
            }
        }
    }

    /// A scope admitting only what both admit, used for reconciliation, whose set must be one
    /// both peers may exchange in either direction. Two different units intersect to
    /// [`Scope::Shared`]: a dossier of one transferred to the other is in both, but neither store
    /// can tell that for the other's unit, so the intersection leaves it out (it still travels
    /// by the feed).
    pub fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::All, s) | (s, Scope::All) => s.clone(),
            (Scope::Unit { unit: a }, Scope::Unit { unit: b }) if a == b => self.clone(),
            _ => Scope::Shared,
        }
    }

    /// Encodes the scope (for bundle headers): `0` all, `1` + u8 length + unit code, `2` shared.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Scope::All => out.push(0),
            Scope::Unit { unit } => {
                out.push(1);
                // Unit codes are validated to at most UNIT_CODE_SIZE_BYTES_MAX (32) bytes.
                let len = unit.len().min(UNIT_CODE_SIZE_BYTES_MAX);
                out.push(len as u8);
                out.extend_from_slice(&unit.as_bytes()[..len]);
            }
            Scope::Shared => out.push(2),
        }
    }

    /// Decodes a scope written by [`Scope::encode`]; returns it and the bytes read.
    pub fn decode(bytes: &[u8]) -> Option<(Scope, usize)> {
        match *bytes.first()? {
            0 => Some((Scope::All, 1)),
            2 => Some((Scope::Shared, 1)),
            1 => {
                let len = usize::from(*bytes.get(1)?);
                if len == 0 || len > UNIT_CODE_SIZE_BYTES_MAX {
                    return None;
                }
                let unit = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
                Some((
                    Scope::Unit {
                        unit: unit.to_owned(),
                    },
                    2 + len,
                ))
            }
            _ => None,
        }
    }
}

/// What the session reads from a node's store. Every method is a read; writes happen in the
/// driver, in response to [`crate::session::Event::Apply`].
pub trait ChangeStore {
    /// This store's random id, chosen by the node when the store is created and changed when it
    /// is restored from a backup (so peers learn that their checkpoints of it are void).
    fn store_id(&self) -> [u8; 16];

    /// The last position of the local feed (0 when empty).
    fn feed_head(&self) -> u64;

    /// Feed entries at positions in `(after, ...]` admitted by `scope`, in order, at most
    /// `count_max` entries and at most `bytes_max` envelope bytes (an entry larger than
    /// `bytes_max` alone is still returned when it is first). Also returns the last position
    /// scanned: entries outside scope are skipped but still advance it, and the store may stop
    /// scanning early to bound its own work. Returns `after` when nothing follows it.
    fn feed_after(
        &self,
        after: u64,
        scope: &Scope,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<(Vec<FeedEntry>, u64), StoreError>;

    /// Whether a change whose hash starts with `short` is stored (any scope).
    fn has_short(&self, short: &[u8; 8]) -> Result<bool, StoreError>;

    /// The signed envelope of a stored change.
    fn envelope(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the hash of every change admitted by `scope` stored at a feed position `<= upto`,
    /// in any order (for reconciliation, which freezes each side's set at its feed head so that
    /// changes arriving meanwhile do not alter it between blocks).
    fn for_each_hash(
        &self,
        scope: &Scope,
        upto: u64,
        f: &mut dyn FnMut(&[u8; 32]),
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_scope_admits_its_own_records_and_province_wide_documents() {
        // Why: a commune must receive exactly its unit's records plus the province-wide documents.
        let s = Scope::Unit { unit: "X1".into() };
        for ok in [
            "dossier/X1-250101-0001",
            "ratings/X1/20250101",
            "log/X1/20250101",
            "catalog",
            "calendar",
            "registry",
        ] {
            assert!(s.admits(ok, false), "{ok}");
        }
        for no in [
            "dossier/X10-250101-0001",
            "dossier/Y1-250101-0001",
            "ratings/X10/20250101",
            "ratings/Y1/20250101",
            "log/Y1/20250101",
            "log/X10/20250101",
            "other",
        ] {
            assert!(!s.admits(no, false), "{no}");
        }
        assert!(s.admits("dossier/Y1-250101-0001", true));
        assert!(!s.admits("ratings/Y1/20250101", true));
    }

    #[test]
    fn intersection_never_admits_more_than_either_side() {
        // Why: reconciliation sends in both directions over the intersection; it must be a subset.
        let a = Scope::Unit { unit: "A".into() };
        let b = Scope::Unit { unit: "B".into() };
        assert_eq!(Scope::All.intersect(&a), a);
        assert_eq!(a.intersect(&Scope::All), a);
        assert_eq!(a.intersect(&a), a);
        assert_eq!(a.intersect(&b), Scope::Shared);
        let i = a.intersect(&b);
        for doc in ["dossier/A-250101-0001", "dossier/B-250101-0001", "catalog"] {
            for t in [false, true] {
                if i.admits(doc, t) {
                    assert!(a.admits(doc, t) && b.admits(doc, t), "{doc}");
                }
            }
        }
    }

    #[test]
    fn scope_encoding_round_trips() {
        // Why: a bundle names the scope it was cut for; the reader must get the same scope back.
        for s in [
            Scope::All,
            Scope::Shared,
            Scope::Unit {
                unit: "000.00.12.H12".into(),
            },
        ] {
            let mut out = Vec::new();
            s.encode(&mut out);
            assert_eq!(Scope::decode(&out), Some((s, out.len())));
        }
        assert_eq!(Scope::decode(&[1, 0]), None);
        assert_eq!(Scope::decode(&[9]), None);
    }
}
