//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs, and the range
//! proof an archive uses to prove that its changes sit at their positions in a node's log.
//!
//! A node's audit log is the list of every change it stored, in the order it stored them (its
//! feed). The tree over that list is Certificate Transparency's:
//!
//! ```text
//! MTH({})      = SHA-256()
//! MTH({d0})    = SHA-256(0x00 ‖ d0)                       leaf hash
//! MTH(D[n])    = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))  k = largest power of two < n
//! ```
//!
//! Every range the recursion visits starts at a multiple of the next power of two at or above
//! its size, so any `MTH(D[lo:hi])` it needs is a right fold of *perfect aligned subtrees*
//! (`2^level` leaves starting at `index · 2^level`). A store keeps those subtree hashes; the
//! functions here read them through [`Subtrees`], so the same code proves from redb (the node)
//! and from memory (tests, the verifier).
//!
//! The **range proof** generalises an inclusion proof to a set of leaves: walking the same
//! recursion, every maximal range containing no exported leaf contributes one entry
//! `(start, end, MTH(D[start:end]))`. A verifier holding the exported leaves and the entries
//! recomputes the root; a leaf that is neither exported nor covered by an entry is named.

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Prefix of a leaf hash input (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash input (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;
/// Most levels a tree can have: sizes are `u64`.
pub const TREE_LEVELS_COUNT_MAX: u32 = 64;

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Where the hashes of perfect aligned subtrees come from.
pub trait Subtrees {
    /// Why a hash could not be read.
    type Error;
    /// The hash of the `2^level` leaves starting at leaf `index << level` (level 0: a leaf hash).
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// `MTH(D[lo:hi])` for a range that starts at a multiple of the next power of two at or above
/// its size (every range RFC 6962's recursion visits): the right fold of the perfect subtrees
/// its size decomposes into.
pub fn range_hash<S: Subtrees>(s: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    if lo == hi {
        return Ok(empty_root());
    }
    let mut parts = Vec::new();
    let mut start = lo;
    let size = hi - lo;
    for level in (0..TREE_LEVELS_COUNT_MAX).rev() {
        if size & (1u64 << level) != 0 {
            parts.push(s.subtree(level, start >> level)?);
            start += 1u64 << level;
        }
    }
    let mut acc = parts
        .pop()
        .expect("a non-empty range has at least one part");
    while let Some(left) = parts.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The root of the first `size` leaves.
pub fn root<S: Subtrees>(s: &S, size: u64) -> Result<Hash, S::Error> {
    range_hash(s, 0, size)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index or sizes are impossible (index past the end, old size above new size).
    #[error("proof for impossible sizes: {0}")]
    Sizes(String),
    /// The proof has the wrong number of hashes for its sizes.
    #[error("proof has the wrong length")]
    Length,
    /// The recomputed root differs from the expected one.
    #[error("recomputed root differs")]
    Mismatch,
}

/// RFC 9162 §2.1.3.1 `PATH(index, D[size])`: the inclusion proof of one leaf.
pub fn inclusion_proof<S: Subtrees>(s: &S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    path(s, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<S: Subtrees>(s: &S, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(s, m, lo, lo + k, out)?;
        out.push(range_hash(s, lo + k, hi)?);
    } else {
        path(s, m - k, lo + k, hi, out)?;
        out.push(range_hash(s, lo, lo + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is leaf `index` of the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Sizes(format!(
            "leaf {index} of a tree of {size}"
        )));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// RFC 9162 §2.1.4.1 `PROOF(old, D[new])`: proves the tree of `old` leaves is a prefix of the
/// tree of `new` leaves. Empty when `old` is 0 or equal to `new`.
pub fn consistency_proof<S: Subtrees>(s: &S, old: u64, new: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(s, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<S: Subtrees>(
    s: &S,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_hash(s, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(s, m, lo, lo + k, whole, out)?;
        out.push(range_hash(s, lo + k, hi)?);
    } else {
        subproof(s, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(s, lo, lo + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree (`old`, `old_root`) is a prefix of the tree
/// (`new`, `new_root`). A tree of size 0 is a prefix of every tree; equal sizes need equal roots
/// and an empty proof.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Sizes(format!(
            "old size {old} above new size {new}"
        )));
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Length)
        };
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::Length);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::Length);
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::Length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length);
    }
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// One entry of a range proof: the hash of leaves `start..end`, none of them exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofEntry {
    /// First leaf covered.
    pub start: u64,
    /// One past the last leaf covered.
    pub end: u64,
    /// `MTH(D[start:end])`.
    pub hash: Hash,
}

/// The range proof of the exported leaves `exported` (sorted, distinct, each `< size`) in the
/// tree of `size` leaves: one entry per maximal range of RFC 6962's recursion that holds no
/// exported leaf, left to right.
pub fn range_proof<S: Subtrees>(
    s: &S,
    size: u64,
    exported: &[u64],
) -> Result<Vec<ProofEntry>, S::Error> {
    let mut out = Vec::new();
    if size > 0 {
        range_proof_in(s, 0, size, exported, &mut out)?;
    }
    Ok(out)
}

fn range_proof_in<S: Subtrees>(
    s: &S,
    lo: u64,
    hi: u64,
    exported: &[u64],
    out: &mut Vec<ProofEntry>,
) -> Result<(), S::Error> {
    let from = exported.partition_point(|&i| i < lo);
    let to = exported.partition_point(|&i| i < hi);
    if from == to {
        out.push(ProofEntry {
            start: lo,
            end: hi,
            hash: range_hash(s, lo, hi)?,
        });
        return Ok(());
    }
    if hi - lo == 1 {
        return Ok(());
    }
    let k = split_point(hi - lo);
    range_proof_in(s, lo, lo + k, &exported[from..to], out)?;
    range_proof_in(s, lo + k, hi, &exported[from..to], out)
}

/// What replaying a range proof found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeOutcome {
    /// The recomputed root (meaningless when `missing` or `overlapping` is non-empty).
    pub root: Hash,
    /// Leaves that are neither exported nor covered by an entry, as `start..end` ranges.
    pub missing: Vec<(u64, u64)>,
    /// Entries that cover an exported leaf or do not fall on the recursion's ranges (in order).
    pub unused_entries: Vec<ProofEntry>,
    /// Exported leaves at or past `size`.
    pub out_of_range: Vec<u64>,
}

impl RangeOutcome {
    /// Whether the proof is well-formed (the root still has to be compared).
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.unused_entries.is_empty() && self.out_of_range.is_empty()
    }
}

/// Replays a range proof: recomputes the root of the tree of `size` leaves from the exported
/// `leaves` (sorted by index, distinct) and the `entries`, naming every leaf that neither covers.
pub fn verify_range_proof(
    size: u64,
    leaves: &[(u64, Hash)],
    entries: &[ProofEntry],
) -> RangeOutcome {
    let mut outcome = RangeOutcome {
        root: empty_root(),
        missing: Vec::new(),
        unused_entries: Vec::new(),
        out_of_range: leaves
            .iter()
            .map(|(i, _)| *i)
            .filter(|&i| i >= size)
            .collect(),
    };
    let mut next = 0usize;
    if size > 0 {
        let in_range = &leaves[..leaves.partition_point(|(i, _)| *i < size)];
        outcome.root = replay(0, size, in_range, entries, &mut next, &mut outcome);
    }
    outcome
        .unused_entries
        .extend_from_slice(&entries[next.min(entries.len())..]);
    outcome
}

fn replay(
    lo: u64,
    hi: u64,
    leaves: &[(u64, Hash)],
    entries: &[ProofEntry],
    next: &mut usize,
    outcome: &mut RangeOutcome,
) -> Hash {
    // Skip entries that end before this range: they fell on no range of the recursion.
    while let Some(e) = entries.get(*next) {
        if e.end <= lo && !(e.start == lo && e.end == hi) {
            outcome.unused_entries.push(*e);
            *next += 1;
        } else {
            break;
        }
    }
    let from = leaves.partition_point(|(i, _)| *i < lo);
    let to = leaves.partition_point(|(i, _)| *i < hi);
    if let Some(e) = entries.get(*next)
        && e.start == lo
        && e.end == hi
    {
        *next += 1;
        if from != to {
            // The entry claims leaves that are exported: it cannot stand for them.
            outcome.unused_entries.push(*e);
        } else {
            return e.hash;
        }
    }
    // Nothing exported here and no entry starting inside: the whole range is missing. Saying so
    // at once, rather than leaf by leaf, keeps a forged size of 2^60 from taking forever.
    let entry_inside = entries
        .get(*next)
        .is_some_and(|e| e.start >= lo && e.start < hi);
    if from == to && !entry_inside {
        match outcome.missing.last_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => outcome.missing.push((lo, hi)),
        }
        return [0u8; 32];
    }
    if hi - lo == 1 {
        return match leaves.get(from) {
            Some((i, h)) if from != to && *i == lo => *h,
            _ => {
                match outcome.missing.last_mut() {
                    Some(last) if last.1 == lo => last.1 = hi,
                    _ => outcome.missing.push((lo, hi)),
                }
                [0u8; 32]
            }
        };
    }
    let k = split_point(hi - lo);
    let left = replay(lo, lo + k, &leaves[from..to], entries, next, outcome);
    let right = replay(lo + k, hi, &leaves[from..to], entries, next, outcome);
    node_hash(&left, &right)
}

/// A whole tree in memory, level by level: for tests, fixtures and small logs.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Appends a leaf hash, completing every perfect subtree it closes.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let h = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(h);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

/// A subtree that a [`MemoryTree`] does not hold (asked past its end).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no subtree at level {level} index {index}")]
pub struct NoSubtree {
    /// Level asked for.
    pub level: u32,
    /// Index asked for.
    pub index: u64,
}

impl Subtrees for MemoryTree {
    type Error = NoSubtree;
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, NoSubtree> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(NoSubtree { level, index })
    }
}

/// Computes the root of a list of leaf hashes fed one by one, keeping only one hash per level
/// (a compact range): how a verifier hashes a million leaves without holding the tree.
#[derive(Debug, Clone, Default)]
pub struct RootBuilder {
    /// `stack[i]` is the hash of a perfect subtree; sizes strictly decrease up the stack.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl RootBuilder {
    /// An empty builder.
    pub fn new() -> RootBuilder {
        RootBuilder::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut cur = (0u32, leaf);
        while let Some(&(level, left)) = self.stack.last() {
            if level != cur.0 {
                break;
            }
            self.stack.pop();
            cur = (level + 1, node_hash(&left, &cur.1));
        }
        self.stack.push(cur);
        self.size += 1;
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(text: &str) -> Hash {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    /// The leaves of RFC 6962's reference test vectors (certificate-transparency merkle tests).
    fn ct_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|t| hex::decode(t).unwrap())
        .collect()
    }

    fn tree_of(leaves: &[Vec<u8>]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.push(leaf_hash(l));
        }
        t
    }

    #[test]
    fn roots_match_certificate_transparency_vectors() {
        // Why: a verifier in another language is written from RFC 6962, so the roots must be
        // exactly the RFC's, checked against the published reference vectors.
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = ct_leaves();
        let tree = tree_of(&leaves);
        assert_eq!(
            root(&tree, 0).unwrap(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let mut builder = RootBuilder::new();
        for (n, expected) in roots.iter().enumerate() {
            builder.push(leaf_hash(&leaves[n]));
            assert_eq!(
                root(&tree, n as u64 + 1).unwrap(),
                h(expected),
                "size {}",
                n + 1
            );
            assert_eq!(builder.root(), h(expected), "builder size {}", n + 1);
        }
    }

    #[test]
    fn proofs_match_certificate_transparency_vectors() {
        // Why: proofs are part of the archive format; their exact hashes must be the RFC's.
        let tree = tree_of(&ct_leaves());
        let inclusion = inclusion_proof(&tree, 0, 8).unwrap();
        assert_eq!(
            inclusion,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        assert_eq!(
            consistency_proof(&tree, 6, 8).unwrap(),
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert_eq!(
            consistency_proof(&tree, 2, 5).unwrap(),
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        );
    }

    fn arb_tree() -> impl Strategy<Value = MemoryTree> {
        (1u64..200).prop_map(|n| {
            let mut t = MemoryTree::new();
            for i in 0..n {
                t.push(leaf_hash(&i.to_be_bytes()));
            }
            t
        })
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_verifies_and_no_other(tree in arb_tree(), pick in any::<u64>()) {
            // Why: an archive's proofs are only useful if genuine ones always verify and a wrong
            // leaf or position never does.
            let n = tree.size();
            let i = pick % n;
            let r = root(&tree, n).unwrap();
            let proof = inclusion_proof(&tree, i, n).unwrap();
            let leaf = tree.subtree(0, i).unwrap();
            prop_assert_eq!(verify_inclusion(i, n, &leaf, &proof, &r), Ok(()));
            prop_assert!(verify_inclusion(i, n, &leaf_hash(b"other"), &proof, &r).is_err());
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(verify_inclusion(j, n, &leaf, &proof, &r).is_err());
            }
        }

        #[test]
        fn consistency_holds_for_prefixes_only(tree in arb_tree(), a in any::<u64>(), b in any::<u64>()) {
            // Why: witnesses accept a node's new checkpoint only with a consistency proof; a
            // rewritten log must never produce one.
            let n = tree.size();
            let (old, new) = { let x = a % (n + 1); let y = b % (n + 1); (x.min(y), x.max(y)) };
            let old_root = root(&tree, old).unwrap();
            let new_root = root(&tree, new).unwrap();
            let proof = consistency_proof(&tree, old, new).unwrap();
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));
            if old > 0 && old < new {
                // The same sizes with the first leaves rewritten in another order.
                let mut other = MemoryTree::new();
                for i in 0..new {
                    let k = if i < old { old - 1 - i } else { i };
                    other.push(leaf_hash(&k.to_be_bytes()));
                }
                if old > 1 {
                    let other_root = root(&other, new).unwrap();
                    prop_assert!(verify_consistency(old, new, &old_root, &other_root, &proof).is_err());
                }
                prop_assert!(verify_consistency(old, new, &leaf_hash(b"x"), &new_root, &proof).is_err());
            }
        }

        #[test]
        fn range_proofs_reproduce_the_root_and_name_missing_leaves(
            tree in arb_tree(),
            mask in proptest::collection::vec(any::<bool>(), 200),
            drop in any::<u64>(),
        ) {
            // Why: an archive proves its changes' positions with a range proof; a removed change
            // must be named by its leaf, never pass silently.
            let n = tree.size();
            let exported: Vec<u64> = (0..n).filter(|&i| mask[i as usize]).collect();
            let proof = range_proof(&tree, n, &exported).unwrap();
            let leaves: Vec<(u64, Hash)> =
                exported.iter().map(|&i| (i, tree.subtree(0, i).unwrap())).collect();
            let outcome = verify_range_proof(n, &leaves, &proof);
            prop_assert!(outcome.complete(), "{:?}", outcome);
            prop_assert_eq!(outcome.root, root(&tree, n).unwrap());
            if let Some(&(gone, _)) = leaves.get((drop % (leaves.len().max(1) as u64)) as usize) {
                let fewer: Vec<(u64, Hash)> = leaves.iter().copied().filter(|(i, _)| *i != gone).collect();
                let outcome = verify_range_proof(n, &fewer, &proof);
                prop_assert_eq!(outcome.missing, vec![(gone, gone + 1)]);
            }
        }
    }

    #[test]
    fn a_forged_huge_size_is_answered_at_once() {
        // Why: an archive's sizes are attacker-controlled; replaying a proof must cost in
        // proportion to what the archive holds, not to the size it claims.
        let leaves = [(5u64, leaf_hash(b"five"))];
        let outcome = verify_range_proof(1 << 60, &leaves, &[]);
        assert_eq!(outcome.missing.len(), 2);
        assert_eq!(outcome.missing[0], (0, 5));
        assert_eq!(outcome.missing[1], (6, 1 << 60));
    }

    #[test]
    fn one_leaf_range_proof_is_the_inclusion_proof() {
        // Why: the spec presents the range proof as a generalised RFC 9162 inclusion proof; for
        // one leaf it must carry exactly the same hashes (left to right instead of bottom up).
        let tree = tree_of(&ct_leaves());
        for size in 1..=8 {
            for i in 0..size {
                let entries = range_proof(&tree, size, &[i]).unwrap();
                let mut hashes: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
                let mut path = inclusion_proof(&tree, i, size).unwrap();
                hashes.sort();
                path.sort();
                assert_eq!(hashes, path, "leaf {i} of {size}");
            }
        }
    }
}
