//! The repair path: set reconciliation over change hashes with a Rateless IBLT.
//!
//! Why: the feed with checkpoints is cheap only while checkpoints are good. When one is missing or
//! void (the peer's store id changed, e.g. after a restore from backup), or as periodic
//! anti-entropy, two nodes must find which changes one holds and the other lacks at a cost that
//! grows with that difference, not with the millions of changes they share.
//!
//! This follows Yang, Gilad and Alizadeh, "Practical Rateless Set Reconciliation" (SIGCOMM 2024;
//! reference implementation `github.com/yangl1996/riblt`). Each item (a 32-byte change hash) is
//! mapped to an infinite sequence of coded-symbol indices, index `i` being hit with probability
//! about `1/(1 + i/2)`. A coded symbol holds the xor of the ids mapped to it, the xor of their
//! 64-bit keyed checksums, and their count. One side streams symbols `0, 1, 2, ...` of its set in
//! blocks; the other subtracts its own symbols for the same indices, which leaves the symbols of
//! the symmetric difference, and peels: a symbol whose count is ±1 and whose checksum matches its
//! id is one item, which is then removed from every symbol it maps to. About 1.35–1.7 symbols per
//! differing item suffice, whatever the set sizes.
//!
//! **Memory.** Neither side keeps its set in memory: a block of symbols `[start, start + count)`
//! is computed by one pass over [`ChangeStore::for_each_hash`], walking each item's index sequence
//! up to the block's end ([`encode_block`]), so memory is O(block) for the encoder and
//! O(symbols received + differences) for the [`Decoder`].

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::store::{ChangeStore, Scope, StoreError};

/// Domain separation of the checksum key derivation.
const KEY_DOMAIN: &[u8] = b"motcua/sync/riblt/v1";

/// One coded symbol: the sums of the items mapped to one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodedSymbol {
    /// Xor of the item hashes.
    pub id_sum: [u8; 32],
    /// Xor of the items' keyed checksums.
    pub checksum: u64,
    /// Number of items (for the encoder's own sets, non-negative; in a difference, signed).
    pub count: i64,
}

impl CodedSymbol {
    fn toggle(&mut self, id: &[u8; 32], checksum: u64) {
        for (a, b) in self.id_sum.iter_mut().zip(id) {
            *a ^= b;
        }
        self.checksum ^= checksum;
    }

    fn is_zero(&self) -> bool {
        self.count == 0 && self.checksum == 0 && self.id_sum == [0; 32]
    }
}

/// The key of the items' checksums for one reconciliation: derived from both store ids, so both
/// sides compute the same checksums and neither can be fed crafted collisions by a third party.
pub fn checksum_key(responder_store_id: &[u8; 16], requester_store_id: &[u8; 16]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(KEY_DOMAIN);
    h.update(responder_store_id);
    h.update(requester_store_id);
    let d: [u8; 32] = h.finalize().into();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The 64-bit keyed checksum of an item (SipHash-2-4).
pub fn checksum(key: &[u8; 16], id: &[u8; 32]) -> u64 {
    siphash24(key, id)
}

/// SipHash-2-4 (Aumasson and Bernstein), written out here because the standard library's is
/// deprecated and unspecified across releases, while both peers must compute the same value.
fn siphash24(key: &[u8; 16], m: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let chunks = m.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        let mi = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        v[3] ^= mi;
        round(&mut v);
        round(&mut v);
        v[0] ^= mi;
    }
    let mut last = (m.len() as u64) << 56;
    for (i, b) in rest.iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The index sequence of one item, seeded by its checksum (the reference implementation's
/// `randomMapping`): the first index is 0, and each next index skips ahead by a random gap that
/// makes index `i` present with probability about `1/(1 + i/2)`.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    prng: u64,
    index: u64,
}

impl Mapping {
    fn new(checksum: u64) -> Mapping {
        Mapping {
            prng: checksum,
            index: 0,
        }
    }

    fn advance(&mut self) {
        let r = self.prng.wrapping_mul(0xda94_2042_e4dd_58b5);
        self.prng = r;
        // gap = (i + 1.5)((1 - u)^(-1/2) - 1) with u = r / 2^64, i.e. 2^32 / sqrt(r) - 1. IEEE
        // 754 makes these operations exact-rounded, so every platform computes the same gap.
        let gap = ((self.index as f64 + 1.5)
            * ((1u64 << 32) as f64 / (r as f64 + 1.0).sqrt() - 1.0))
            .ceil();
        // `as` saturates; a zero gap (r near 2^64) would repeat an index, so step at least one.
        self.index = self.index.saturating_add((gap as u64).max(1));
    }
}

/// Adds every item of one set to coded symbols `[start, start + out.len())`.
fn add_items(key: &[u8; 16], id: &[u8; 32], start: u64, out: &mut [CodedSymbol], direction: i64) {
    let end = start + out.len() as u64;
    let c = checksum(key, id);
    let mut m = Mapping::new(c);
    while m.index < end {
        if m.index >= start {
            let s = &mut out[(m.index - start) as usize];
            s.toggle(id, c);
            s.count = s.count.wrapping_add(direction);
        }
        m.advance();
    }
}

/// Coded symbols `[start, start + count)` of the hashes that `store` holds in `scope` at feed
/// positions `<= upto`, computed in one pass over the store with O(count) memory.
pub fn encode_block<S: ChangeStore + ?Sized>(
    store: &S,
    scope: &Scope,
    upto: u64,
    key: &[u8; 16],
    start: u64,
    count: usize,
) -> Result<Vec<CodedSymbol>, StoreError> {
    let mut out = vec![CodedSymbol::default(); count];
    store.for_each_hash(scope, upto, &mut |h| add_items(key, h, start, &mut out, 1))?;
    Ok(out)
}

/// Coded symbols `[start, start + count)` of an in-memory set (for tests and small sets).
pub fn encode_block_of<'a>(
    items: impl IntoIterator<Item = &'a [u8; 32]>,
    key: &[u8; 16],
    start: u64,
    count: usize,
) -> Vec<CodedSymbol> {
    let mut out = vec![CodedSymbol::default(); count];
    for h in items {
        add_items(key, h, start, &mut out, 1);
    }
    out
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A block does not start where the previous one ended, or its halves differ in length.
    #[error("block [{start}, +{len}) does not follow symbol {expected}")]
    Block {
        /// The block's first index.
        start: u64,
        /// Its length.
        len: usize,
        /// The index expected.
        expected: u64,
    },
    /// An item was peeled twice: the symbols are inconsistent (a set changed while it was being
    /// encoded, or a peer sent garbage).
    #[error("inconsistent symbols")]
    Inconsistent,
}

/// One item recovered from the difference, with its index sequence advanced past the symbols
/// received so far (so later blocks can be cleaned of it without a store pass).
#[derive(Debug, Clone)]
struct Peeled {
    id: [u8; 32],
    checksum: u64,
    mapping: Mapping,
    /// +1: the remote side holds it; -1: the local side holds it.
    direction: i64,
}

/// The receiving side of a reconciliation: holds the difference symbols (remote minus local)
/// and the items recovered from them.
#[derive(Debug, Clone)]
pub struct Decoder {
    key: [u8; 16],
    cells: Vec<CodedSymbol>,
    peeled: Vec<Peeled>,
    seen: HashSet<[u8; 32]>,
}

impl Decoder {
    /// A decoder for checksums under `key`.
    pub fn new(key: [u8; 16]) -> Decoder {
        Decoder {
            key,
            cells: Vec::new(),
            peeled: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Number of symbols received so far.
    pub fn symbols(&self) -> u64 {
        self.cells.len() as u64
    }

    /// Adds the next block: the remote side's symbols and the local side's symbols for the same
    /// indices; then peels what it can.
    pub fn add_block(
        &mut self,
        start: u64,
        remote: &[CodedSymbol],
        local: &[CodedSymbol],
    ) -> Result<(), DecodeError> {
        if start != self.symbols() || remote.len() != local.len() {
            return Err(DecodeError::Block {
                start,
                len: remote.len(),
                expected: self.symbols(),
            });
        }
        let first_new = self.cells.len();
        for (r, l) in remote.iter().zip(local) {
            let mut c = *r;
            c.toggle(&l.id_sum, l.checksum);
            c.count = c.count.wrapping_sub(l.count);
            self.cells.push(c);
        }
        // Items already recovered are removed from the new symbols too.
        let end = self.symbols();
        for p in &mut self.peeled {
            while p.mapping.index < end {
                let cell = &mut self.cells[p.mapping.index as usize];
                cell.toggle(&p.id, p.checksum);
                cell.count = cell.count.wrapping_sub(p.direction);
                p.mapping.advance();
            }
        }
        self.peel((first_new..self.cells.len()).collect())
    }

    fn peel(&mut self, mut candidates: Vec<usize>) -> Result<(), DecodeError> {
        let end = self.symbols();
        while let Some(i) = candidates.pop() {
            let c = self.cells[i];
            if c.count != 1 && c.count != -1 {
                continue;
            }
            if checksum(&self.key, &c.id_sum) != c.checksum {
                continue;
            }
            if !self.seen.insert(c.id_sum) {
                return Err(DecodeError::Inconsistent);
            }
            let direction = c.count;
            let mut mapping = Mapping::new(c.checksum);
            while mapping.index < end {
                let j = mapping.index as usize;
                let cell = &mut self.cells[j];
                cell.toggle(&c.id_sum, c.checksum);
                cell.count = cell.count.wrapping_sub(direction);
                if cell.count == 1 || cell.count == -1 {
                    candidates.push(j);
                }
                mapping.advance();
            }
            self.peeled.push(Peeled {
                id: c.id_sum,
                checksum: c.checksum,
                mapping,
                direction,
            });
        }
        Ok(())
    }

    /// Whether the whole difference is recovered: every symbol received is empty once the
    /// recovered items are removed. Symbol 0 holds every item, so an unrecovered item would
    /// leave it non-empty (up to a 2^-64 checksum coincidence).
    pub fn is_decoded(&self) -> bool {
        !self.cells.is_empty() && self.cells.iter().all(CodedSymbol::is_zero)
    }

    /// Items the remote side holds and the local side lacks.
    pub fn remote_only(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.peeled
            .iter()
            .filter(|p| p.direction == 1)
            .map(|p| &p.id)
    }

    /// Items the local side holds and the remote side lacks.
    pub fn local_only(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.peeled
            .iter()
            .filter(|p| p.direction == -1)
            .map(|p| &p.id)
    }

    /// Number of items recovered so far.
    pub fn recovered(&self) -> usize {
        self.peeled.len()
    }
}

/// How many symbols to ask for next, given how many were received and how many items were
/// recovered from them: a small first block (so that equal sets cost a few hundred bytes),
/// doubling while nothing peels (the difference is still far larger than the symbols, so few
/// round trips are spent getting near it), then growing by a third each round, which keeps the
/// expected overshoot past the symbols actually needed near 15%.
pub fn next_block_count(received: u64, recovered: usize) -> u64 {
    const FIRST_BLOCK_SYMBOLS_COUNT: u64 = 4;
    const BLOCK_SYMBOLS_COUNT_MIN: u64 = 8;
    let n = if received == 0 {
        FIRST_BLOCK_SYMBOLS_COUNT
    } else if recovered == 0 {
        received
    } else {
        (received / 3).max(BLOCK_SYMBOLS_COUNT_MIN)
    };
    n.min(crate::wire::SKETCH_SYMBOLS_COUNT_MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small seeded generator (SplitMix64), so tests are reproducible without a dependency.
    pub(crate) struct SplitMix(pub u64);

    impl SplitMix {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn hash(&mut self) -> [u8; 32] {
            let mut h = [0u8; 32];
            for c in h.chunks_mut(8) {
                c.copy_from_slice(&self.next().to_le_bytes());
            }
            h
        }
    }

    /// Runs a whole reconciliation between two in-memory sets; returns the decoder and the
    /// number of symbols used.
    fn reconcile(remote: &[[u8; 32]], local: &[[u8; 32]], key: [u8; 16]) -> (Decoder, u64) {
        let mut d = Decoder::new(key);
        while !d.is_decoded() {
            let start = d.symbols();
            let n = next_block_count(start, d.recovered()) as usize;
            let r = encode_block_of(remote, &key, start, n);
            let l = encode_block_of(local, &key, start, n);
            d.add_block(start, &r, &l).unwrap();
            assert!(d.symbols() < 100_000, "does not converge");
        }
        let n = d.symbols();
        (d, n)
    }

    #[test]
    fn siphash_matches_the_reference_test_vector() {
        // Why: both peers must compute identical checksums; this is the SipHash paper's vector.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn index_zero_holds_every_item_and_density_falls_off() {
        // Why: decoding relies on symbol 0 covering every item and on the 1/(1+i/2) density.
        let mut rng = SplitMix(5);
        let items: Vec<[u8; 32]> = (0..4000).map(|_| rng.hash()).collect();
        let s = encode_block_of(&items, &[1; 16], 0, 64);
        assert_eq!(s[0].count, 4000);
        for (i, sym) in s.iter().enumerate().skip(1) {
            let expected = 4000.0 / (1.0 + i as f64 / 2.0);
            let got = sym.count as f64;
            assert!(
                (got - expected).abs() < expected * 0.25 + 30.0,
                "index {i}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn random_sets_reconcile_exactly() {
        // Why: the decoder must recover exactly the symmetric difference, in both directions.
        for (seed, shared, only_r, only_l) in [
            (1u64, 0usize, 0usize, 0usize),
            (2, 1000, 0, 0),
            (3, 1000, 1, 0),
            (4, 1000, 0, 1),
            (5, 500, 37, 59),
            (6, 0, 200, 0),
            (7, 3000, 300, 300),
        ] {
            let mut rng = SplitMix(seed);
            let shared: Vec<[u8; 32]> = (0..shared).map(|_| rng.hash()).collect();
            let ro: Vec<[u8; 32]> = (0..only_r).map(|_| rng.hash()).collect();
            let lo: Vec<[u8; 32]> = (0..only_l).map(|_| rng.hash()).collect();
            let remote: Vec<[u8; 32]> = shared.iter().chain(&ro).copied().collect();
            let local: Vec<[u8; 32]> = shared.iter().chain(&lo).copied().collect();
            let (d, _) = reconcile(&remote, &local, [seed as u8; 16]);
            let mut got_r: Vec<_> = d.remote_only().copied().collect();
            let mut got_l: Vec<_> = d.local_only().copied().collect();
            let (mut want_r, mut want_l) = (ro.clone(), lo.clone());
            got_r.sort();
            got_l.sort();
            want_r.sort();
            want_l.sort();
            assert_eq!(got_r, want_r, "seed {seed}");
            assert_eq!(got_l, want_l, "seed {seed}");
        }
    }

    #[test]
    fn symbols_grow_with_the_difference_not_the_set() {
        // Why: the repair path's cost must be proportional to the difference (DESIGN.md).
        let mut rng = SplitMix(11);
        let diff: Vec<[u8; 32]> = (0..100).map(|_| rng.hash()).collect();
        let mut used = Vec::new();
        for shared_count in [1_000usize, 20_000] {
            let shared: Vec<[u8; 32]> = (0..shared_count).map(|_| rng.hash()).collect();
            let remote: Vec<[u8; 32]> = shared.iter().chain(&diff).copied().collect();
            let (_, n) = reconcile(&remote, &shared, [3; 16]);
            used.push(n);
        }
        println!("symbols for 100 differences: {used:?} (sets of 1,000 and 20,000)");
        assert!(used.iter().all(|n| *n <= 250), "{used:?}");
    }

    #[test]
    fn blocks_out_of_order_are_refused() {
        // Why: a peer that skips or repeats symbols must be caught, not silently mis-decoded.
        let mut d = Decoder::new([0; 16]);
        let s = vec![CodedSymbol::default(); 4];
        assert!(matches!(
            d.add_block(4, &s, &s),
            Err(DecodeError::Block { .. })
        ));
        assert!(d.add_block(0, &s, &s[..3]).is_err());
    }
}
