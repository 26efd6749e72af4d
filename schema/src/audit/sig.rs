//! Strict Ed25519 verification of many signatures, with batch verification where it gives the
//! same answer as `verify_strict`.
//!
//! `ed25519_dalek::VerifyingKey::verify_strict` accepts a signature `(R, S)` by key `A` on `M`
//! when: `S < ℓ`; `A` and `R` decompress (a `y ≥ p` is reduced modulo `p`, `x = 0` with the sign
//! bit set is read as `x = 0`); neither `A` nor `R` has small order; and the canonical encoding of
//! `[S]B − [k]A` equals the 32 bytes of `R`, where `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes
//! as given.
//!
//! `ed25519_dalek::verify_batch` checks `Σ zᵢ(Rᵢ + kᵢAᵢ − SᵢB) = 0` for pseudo-random `zᵢ`. It
//! agrees with `verify_strict` on every signature once these are true, which this module checks
//! first (cheaply) and which any signature a node accepted satisfies:
//! - `S < ℓ`, `R` decodes to a point with `y < p` that is not of small order;
//! - `A` is not of small order and is torsion-free (checked once per key: a node has one key).
//!
//! With a torsion-free `A`, every strictly valid signature passes a batch, and a batch can only
//! accept a strictly invalid signature whose `R` carries a torsion component and is otherwise
//! exact: one only the holder of `A`'s secret key can make, which `verify_strict` refuses and a
//! batch accepts when the torsion parts cancel (about one time in eight). [`Mode::Batch`] is
//! therefore sound against forgery but not bit-for-bit `verify_strict`; [`Mode::Strict`] is
//! `verify_strict` one signature at a time (see `docs/audit-format.md`, "Batch verification").
//! A failing batch is re-checked one signature at a time, so every failure is named.

use std::collections::HashMap;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use ed25519_dalek::{Signature, VerifyingKey};

/// Most signatures in one batch: past a few hundred, a larger batch is no faster here
/// (measured, see BENCHMARKS.md) and a failing batch costs more to re-check.
pub const BATCH_SIGNATURES_COUNT_MAX: usize = 256;

/// The order ℓ of the prime subgroup, little-endian.
pub const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// Whether a little-endian 32-byte integer is below ℓ (a canonical scalar).
pub fn scalar_is_canonical(s: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if s[i] != ELL[i] {
            return s[i] < ELL[i];
        }
    }
    false
}

/// Whether the y coordinate of an encoded point (its low 255 bits) is below p = 2²⁵⁵ − 19.
pub fn y_is_canonical(p: &[u8; 32]) -> bool {
    // y ≥ p exactly when the low 255 bits are 2²⁵⁵ − 19 … 2²⁵⁵ − 1: byte 0 ≥ 0xed, bytes 1..31
    // all 0xff, and the low 7 bits of byte 31 all set.
    !(p[0] >= 0xed && p[1..31].iter().all(|&b| b == 0xff) && p[31] & 0x7f == 0x7f)
}

/// One signature to check: `signature` by `key` on `message`.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The signer key bytes.
    pub key: &'a [u8; 32],
    /// The signed message.
    pub message: &'a [u8],
    /// The signature bytes.
    pub signature: &'a [u8; 64],
}

/// What is known about a key, computed once.
#[derive(Debug, Clone)]
enum KeyInfo {
    /// Does not decompress or has small order: no signature by it verifies.
    Unusable,
    /// Usable; `batchable` when torsion-free.
    Usable { key: VerifyingKey, batchable: bool },
}

/// Keys seen so far, so each key's point checks run once.
#[derive(Debug, Default, Clone)]
pub struct KeyCache {
    keys: HashMap<[u8; 32], KeyInfo>,
}

impl KeyCache {
    /// An empty cache.
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    fn info(&mut self, key: &[u8; 32]) -> &KeyInfo {
        self.keys
            .entry(*key)
            .or_insert_with(|| match VerifyingKey::from_bytes(key) {
                Ok(vk) if !vk.is_weak() => {
                    let batchable = CompressedEdwardsY(*key)
                        .decompress()
                        .is_some_and(|p: EdwardsPoint| p.is_torsion_free());
                    KeyInfo::Usable { key: vk, batchable }
                }
                _ => KeyInfo::Unusable,
            })
    }
}

/// Single strict verification, exactly `verify_strict`.
pub fn verify_one(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|vk| {
        vk.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    })
}

/// Every 32-byte string with `y < p` that decodes to a point of small order: the eight
/// canonical encodings of the 8-torsion points, and `(0, ±1)` written with the sign bit set
/// (which decoding reads as `x = 0`). Matching against them avoids decompressing `R` twice
/// (`verify_batch` decompresses it too), which would cost as much as the batch itself.
fn small_order_encodings() -> &'static [[u8; 32]; 10] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 10]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut out = [[0u8; 32]; 10];
        for (i, t) in curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .enumerate()
        {
            out[i] = t.compress().to_bytes();
        }
        out[8][0] = 1; // y = 1
        out[8][31] = 0x80;
        out[9] = [0xff; 32]; // y = p − 1 = 2^255 − 20
        out[9][0] = 0xec;
        out
    })
}

/// Whether `R` and `S` pass the checks that make a batch agree with `verify_strict` (an `R`
/// that does not decode fails the batch, which is then re-checked one signature at a time).
fn batch_prechecks(signature: &[u8; 64]) -> bool {
    let r: [u8; 32] = signature[..32].try_into().expect("32 bytes");
    let s: [u8; 32] = signature[32..].try_into().expect("32 bytes");
    scalar_is_canonical(&s) && y_is_canonical(&r) && !small_order_encodings().contains(&r)
}

/// How signatures are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Batches after the pre-checks (fast; see the module documentation for its one divergence).
    #[default]
    Batch,
    /// `verify_strict`, one signature at a time.
    Strict,
}

/// Checks every job; `result[i]` says whether job `i` verifies (see [`Mode`]).
pub fn verify_all(jobs: &[Job<'_>], cache: &mut KeyCache, mode: Mode) -> Vec<bool> {
    let mut result = vec![false; jobs.len()];
    if mode == Mode::Strict {
        for (i, job) in jobs.iter().enumerate() {
            result[i] = !matches!(cache.info(job.key), KeyInfo::Unusable)
                && verify_one(job.key, job.message, job.signature);
        }
        return result;
    }
    let mut batch: Vec<usize> = Vec::with_capacity(BATCH_SIGNATURES_COUNT_MAX);
    let mut batch_keys: Vec<VerifyingKey> = Vec::with_capacity(BATCH_SIGNATURES_COUNT_MAX);
    for (i, job) in jobs.iter().enumerate() {
        let (vk, batchable) = match cache.info(job.key) {
            KeyInfo::Unusable => continue,
            KeyInfo::Usable { key, batchable } => (*key, *batchable),
        };
        if !batchable {
            result[i] = verify_one(job.key, job.message, job.signature);
            continue;
        }
        if !batch_prechecks(job.signature) {
            // Such a signature never passes `verify_strict` with a torsion-free key; checking it
            // alone costs one verification and keeps the answer exactly `verify_strict`'s.
            result[i] = verify_one(job.key, job.message, job.signature);
            continue;
        }
        batch.push(i);
        batch_keys.push(vk);
        if batch.len() == BATCH_SIGNATURES_COUNT_MAX {
            run_batch(jobs, &batch, &batch_keys, &mut result);
            batch.clear();
            batch_keys.clear();
        }
    }
    if !batch.is_empty() {
        run_batch(jobs, &batch, &batch_keys, &mut result);
    }
    result
}

fn run_batch(jobs: &[Job<'_>], batch: &[usize], keys: &[VerifyingKey], result: &mut [bool]) {
    let messages: Vec<&[u8]> = batch.iter().map(|&i| jobs[i].message).collect();
    let signatures: Vec<Signature> = batch
        .iter()
        .map(|&i| Signature::from_bytes(jobs[i].signature))
        .collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, keys).is_ok() {
        for &i in batch {
            result[i] = true;
        }
    } else {
        for &i in batch {
            result[i] = verify_one(jobs[i].key, jobs[i].message, jobs[i].signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signer, SigningKey};
    use sha2::{Digest, Sha512};

    fn jobs_of(keys: &[[u8; 32]], msgs: &[Vec<u8>], sigs: &[[u8; 64]], mode: Mode) -> Vec<bool> {
        let jobs: Vec<Job<'_>> = (0..msgs.len())
            .map(|i| Job {
                key: &keys[i],
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        verify_all(&jobs, &mut KeyCache::new(), mode)
    }

    #[test]
    fn batch_and_strict_agree_on_valid_and_tampered_signatures() {
        // Why: the verifier reports per-signature results; a batch must never change them.
        let signers: Vec<SigningKey> = (1..=3u8)
            .map(|s| SigningKey::from_bytes(&[s; 32]))
            .collect();
        let n = BATCH_SIGNATURES_COUNT_MAX + 37;
        let mut keys = Vec::new();
        let mut msgs = Vec::new();
        let mut sigs = Vec::new();
        for i in 0..n {
            let k = &signers[i % 3];
            let m = format!("message {i}").into_bytes();
            sigs.push(k.sign(&m).to_bytes());
            keys.push(*k.verifying_key().as_bytes());
            msgs.push(m);
        }
        sigs[5][10] ^= 1;
        msgs[280].push(b'!');
        sigs[17][63] |= 0x80; // S ≥ ℓ
        let result = jobs_of(&keys, &msgs, &sigs, Mode::Batch);
        assert_eq!(result, jobs_of(&keys, &msgs, &sigs, Mode::Strict));
        for i in 0..n {
            let expected = verify_one(&keys[i], &msgs[i], &sigs[i]);
            assert_eq!(result[i], expected, "job {i}");
            assert_eq!(expected, ![5, 280, 17].contains(&i), "job {i}");
        }
    }

    #[test]
    fn small_order_points_are_refused_and_mixed_order_needs_the_secret_key() {
        // Why: strict validation rejects small-order R and A in both modes; the one signature
        // on which a batch may differ from `verify_strict` (an exact signature whose R carries a
        // torsion component) can only be built with the secret key, and strict mode refuses it.
        let signer = SigningKey::from_bytes(&[7; 32]);
        let a = *signer.verifying_key().as_bytes();
        let m = b"motcua".to_vec();
        // R = [r]B + T (T of order 8), S = r + k·a: exact apart from the torsion component.
        let r = Scalar::from(12345u64);
        let big_r = EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1];
        let r_bytes = big_r.compress().to_bytes();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(a)
                .chain_update(&m),
        );
        let s = r + k * signer.to_scalar();
        let mut mixed = [0u8; 64];
        mixed[..32].copy_from_slice(&r_bytes);
        mixed[32..].copy_from_slice(s.as_bytes());
        assert!(!verify_one(&a, &m, &mixed));
        assert_eq!(
            jobs_of(&[a], std::slice::from_ref(&m), &[mixed], Mode::Strict),
            vec![false]
        );
        // Small-order R (the identity) with an otherwise ordinary signature.
        let good = signer.sign(&m).to_bytes();
        let mut small = good;
        small[..32].copy_from_slice(&EdwardsPoint::default().compress().to_bytes());
        let keys = vec![a; 2 * 64];
        let msgs = vec![m.clone(); 2 * 64];
        let sigs: Vec<[u8; 64]> = (0..64).flat_map(|_| [good, small]).collect();
        for mode in [Mode::Batch, Mode::Strict] {
            let result = jobs_of(&keys, &msgs, &sigs, mode);
            for (i, ok) in result.iter().enumerate() {
                assert_eq!(*ok, i % 2 == 0, "{mode:?} job {i}");
            }
        }
        // A small-order key verifies nothing, in either mode.
        let weak = EIGHT_TORSION[2].compress().to_bytes();
        for mode in [Mode::Batch, Mode::Strict] {
            assert!(!jobs_of(&[weak], std::slice::from_ref(&m), &[good], mode)[0]);
        }
    }

    #[test]
    fn the_small_order_encodings_are_exactly_those_that_decode_to_small_order() {
        // Why: the batch pre-check matches R against a list instead of decompressing it; the list
        // must hold every canonical-y encoding of a small-order point and nothing else.
        let listed = small_order_encodings();
        for t in EIGHT_TORSION {
            for sign in [0u8, 0x80] {
                let mut b = t.compress().to_bytes();
                b[31] = (b[31] & 0x7f) | sign;
                let small = CompressedEdwardsY(b)
                    .decompress()
                    .is_some_and(|p| p.is_small_order());
                assert_eq!(listed.contains(&b), small, "{}", hex::encode(b));
            }
        }
        for b in listed {
            assert!(y_is_canonical(b));
            assert!(
                CompressedEdwardsY(*b)
                    .decompress()
                    .is_some_and(|p| p.is_small_order())
            );
        }
    }

    #[test]
    fn canonical_scalar_and_coordinate_bounds() {
        // Why: the bounds are written out by hand; an off-by-one would accept malleable input.
        let mut below = ELL;
        below[0] -= 1;
        assert!(scalar_is_canonical(&below));
        assert!(!scalar_is_canonical(&ELL));
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!y_is_canonical(&p));
        p[0] = 0xec;
        assert!(y_is_canonical(&p));
    }
}
