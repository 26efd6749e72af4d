//! Reading a signed change the way an auditor's verifier does: the envelope and the Automerge
//! change chunk header, from the bytes alone, with no Automerge implementation.
//!
//! The node reads changes with the `automerge` crate (`crate::signed`). An independent verifier
//! needs only what `docs/audit-format.md` specifies, and this module is that specification in
//! Rust, tested against `automerge` so the two cannot drift apart:
//!
//! ```text
//! change chunk = magic (85 6f 4a 83) ‖ checksum (4) ‖ chunk type (1, = 0x01) ‖ uLEB128 body length ‖ body
//! change hash  = SHA-256(chunk[8..])          (the type byte, the length and the body)
//! checksum     = change hash[0..4]
//! body         = uLEB128 n ‖ n × dependency hash (32)
//!              ‖ uLEB128 len ‖ actor (len bytes)
//!              ‖ uLEB128 seq ‖ uLEB128 start op (≥ 1) ‖ sLEB128 time (seconds)
//!              ‖ uLEB128 len ‖ message (UTF-8)
//!              ‖ uLEB128 m ‖ m × (uLEB128 len ‖ actor)     other actors
//!              ‖ operation columns (not read here)
//! ```
//! LEB128 values must be minimal (no redundant trailing groups) and fit in 64 bits, as
//! `automerge` requires.

use sha2::{Digest, Sha256};

use super::merkle::Hash;
use crate::limits::{CHANGE_SIZE_BYTES_MAX, DOC_ID_SIZE_BYTES_MAX};
use crate::signed::{ACTOR_SIZE_BYTES, ENVELOPE_FORMAT_VERSION};

/// The four bytes that start every Automerge chunk.
pub const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// The chunk type of a change.
pub const CHUNK_TYPE_CHANGE: u8 = 0x01;

/// Why an envelope or change could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Fewer bytes than the fields say.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// Bytes after the last field.
    #[error("trailing bytes after byte {0}")]
    Trailing(usize),
    /// Unknown envelope version.
    #[error("envelope version {0} is not 1")]
    Version(u8),
    /// The document id is not UTF-8 or too long.
    #[error("document id is not valid")]
    DocId,
    /// Change larger than the bound.
    #[error("change of {0} bytes is larger than {CHANGE_SIZE_BYTES_MAX}")]
    TooLarge(usize),
    /// Not an Automerge chunk.
    #[error("change does not start with the Automerge magic number")]
    Magic,
    /// An Automerge chunk of another type.
    #[error("chunk type {0} is not a change (1)")]
    ChunkType(u8),
    /// A LEB128 number is overlong or too large.
    #[error("bad LEB128 number at byte {0}")]
    Leb128(usize),
    /// The message is not UTF-8.
    #[error("change message is not UTF-8")]
    Utf8,
    /// The start op is zero.
    #[error("change start op is zero")]
    StartOp,
}

impl ChangeError {
    /// A short stable reason name.
    pub fn reason(&self) -> &'static str {
        match self {
            ChangeError::Truncated(_)
            | ChangeError::Trailing(_)
            | ChangeError::Version(_)
            | ChangeError::DocId
            | ChangeError::TooLarge(_) => "envelope_format",
            _ => "change_format",
        }
    }
}

/// The fields of a v1 envelope (`crate::signed`), borrowed, not verified.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Document id as signed.
    pub doc_id: &'a str,
    /// Signer key bytes.
    pub signer: &'a [u8; 32],
    /// Signature bytes.
    pub signature: &'a [u8; 64],
    /// The raw change chunk.
    pub change: &'a [u8],
}

/// Splits a v1 envelope into its fields.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, ChangeError> {
    let mut r = Cursor { bytes, at: 0 };
    let version = r.u8()?;
    if version != ENVELOPE_FORMAT_VERSION {
        return Err(ChangeError::Version(version));
    }
    let doc_len = usize::from(r.u8()?);
    if doc_len > DOC_ID_SIZE_BYTES_MAX {
        return Err(ChangeError::DocId);
    }
    let doc_id = std::str::from_utf8(r.take(doc_len)?).map_err(|_| ChangeError::DocId)?;
    let signer = r.take(32)?.try_into().expect("32 bytes");
    let signature = r.take(64)?.try_into().expect("64 bytes");
    let len = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
    if len > CHANGE_SIZE_BYTES_MAX {
        return Err(ChangeError::TooLarge(len));
    }
    let change = r.take(len)?;
    if r.at != bytes.len() {
        return Err(ChangeError::Trailing(r.at));
    }
    Ok(Envelope {
        doc_id,
        signer,
        signature,
        change,
    })
}

/// The header fields of a change chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeHeader<'a> {
    /// SHA-256 of the chunk after its magic and checksum: the change's id.
    pub hash: Hash,
    /// Whether the chunk's checksum is the first four bytes of the hash.
    pub checksum_ok: bool,
    /// The dependencies' hashes, as `32 × n` bytes.
    pub deps: &'a [u8],
    /// The actor.
    pub actor: &'a [u8],
    /// Sequence number of the change for its actor in its document.
    pub seq: u64,
    /// Counter of the change's first operation.
    pub start_op: u64,
    /// The change's time, seconds since the Unix epoch, by the author's clock.
    pub time: i64,
    /// The change message.
    pub message: &'a str,
}

impl ChangeHeader<'_> {
    /// The dependencies' hashes.
    pub fn deps(&self) -> impl Iterator<Item = Hash> + '_ {
        self.deps
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
    }

    /// The first 32 bytes of the actor: the key it is bound to when the actor has the bound
    /// shape (`key ‖ 8-byte epoch`).
    pub fn bound_key(&self) -> Option<&[u8]> {
        (self.actor.len() == ACTOR_SIZE_BYTES).then(|| &self.actor[..32])
    }
}

/// Reads a change chunk's header and hashes it.
pub fn parse_change(raw: &[u8]) -> Result<ChangeHeader<'_>, ChangeError> {
    let mut r = Cursor { bytes: raw, at: 0 };
    if r.take(4)? != CHUNK_MAGIC {
        return Err(ChangeError::Magic);
    }
    let checksum: [u8; 4] = r.take(4)?.try_into().expect("4 bytes");
    let chunk_type = r.u8()?;
    if chunk_type != CHUNK_TYPE_CHANGE {
        return Err(ChangeError::ChunkType(chunk_type));
    }
    let body_len = usize::try_from(r.uleb()?).map_err(|_| ChangeError::TooLarge(usize::MAX))?;
    let body_start = r.at;
    if raw.len() - body_start != body_len {
        return Err(if raw.len() - body_start < body_len {
            ChangeError::Truncated(raw.len())
        } else {
            ChangeError::Trailing(body_start + body_len)
        });
    }
    let hash: Hash = Sha256::digest(&raw[8..]).into();
    let n_deps = r.uleb()?;
    let deps_len = usize::try_from(n_deps)
        .ok()
        .and_then(|n| n.checked_mul(32))
        .ok_or(ChangeError::Truncated(raw.len()))?;
    let deps = r.take(deps_len)?;
    let actor_len = r.uleb_len()?;
    let actor = r.take(actor_len)?;
    let seq = r.uleb()?;
    let start_op = r.uleb()?;
    if start_op == 0 {
        return Err(ChangeError::StartOp);
    }
    let time = r.sleb()?;
    let message_len = r.uleb_len()?;
    let message = std::str::from_utf8(r.take(message_len)?).map_err(|_| ChangeError::Utf8)?;
    let others = r.uleb()?;
    for _ in 0..others {
        let len = r.uleb_len()?;
        r.take(len)?;
    }
    Ok(ChangeHeader {
        hash,
        checksum_ok: checksum == hash[..4],
        deps,
        actor,
        seq,
        start_op,
        time,
        message,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChangeError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(ChangeError::Truncated(self.at))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(ChangeError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ChangeError> {
        Ok(self.take(1)?[0])
    }

    /// Unsigned LEB128, minimal, at most 64 bits (automerge's rules).
    fn uleb(&mut self) -> Result<u64, ChangeError> {
        let start = self.at;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                return Err(ChangeError::Leb128(start));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if shift > 0 && byte == 0 {
                    return Err(ChangeError::Leb128(start));
                }
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(ChangeError::Leb128(start));
            }
        }
    }

    /// A LEB128 length that must fit in the remaining bytes.
    fn uleb_len(&mut self) -> Result<usize, ChangeError> {
        let v = self.uleb()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or(ChangeError::Truncated(self.at))
    }

    /// Signed LEB128, minimal, at most 64 bits (automerge's rules).
    fn sleb(&mut self) -> Result<i64, ChangeError> {
        let start = self.at;
        let mut value: i64 = 0;
        let mut shift = 0u32;
        let mut prev = 0u8;
        loop {
            let byte = self.u8()?;
            if shift == 63 && byte != 0 && byte != 0x7f {
                return Err(ChangeError::Leb128(start));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                let overlong = shift > 7
                    && ((byte == 0 && prev & 0x40 == 0) || (byte == 0x7f && prev & 0x40 != 0));
                if overlong {
                    return Err(ChangeError::Leb128(start));
                }
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
            if shift > 63 {
                return Err(ChangeError::Leb128(start));
            }
            prev = byte;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DocId;
    use crate::signed::{SignedChange, actor_for};
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{Automerge, ROOT};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn change(
        seed: u8,
        time: i64,
        message: Option<String>,
        n_changes: usize,
    ) -> Vec<automerge::Change> {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut doc = Automerge::new().with_actor(actor_for(&key.verifying_key(), [seed; 8]));
        let mut out = Vec::new();
        for i in 0..n_changes {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i as i64).unwrap();
            let mut opts = CommitOptions::default().with_time(time + i as i64);
            if let Some(m) = &message {
                opts = opts.with_message(m.clone());
            }
            tx.commit_with(opts);
            out.push(doc.get_last_local_change().unwrap());
        }
        out
    }

    proptest! {
        #[test]
        fn header_reader_agrees_with_automerge(
            seed in 1u8..200,
            time in any::<i64>(),
            message in proptest::option::of("[a-zà-ỹ ]{0,40}"),
            n in 1usize..4,
        ) {
            // Why: the spec's header layout is what an auditor implements; it must give exactly
            // automerge's hash, actor, seq, time and dependencies.
            for c in change(seed, time.clamp(i64::MIN / 2, i64::MAX / 2), message.clone(), n) {
                let h = parse_change(c.raw_bytes()).unwrap();
                prop_assert_eq!(h.hash, c.hash().0);
                prop_assert!(h.checksum_ok);
                prop_assert_eq!(h.actor, c.actor_id().to_bytes());
                prop_assert_eq!(h.seq, c.seq());
                prop_assert_eq!(h.start_op, c.start_op().get());
                prop_assert_eq!(h.time, c.timestamp());
                prop_assert_eq!(h.message, c.message().unwrap_or(""));
                let deps: Vec<Hash> = h.deps().collect();
                let expected: Vec<Hash> = c.deps().iter().map(|d| d.0).collect();
                prop_assert_eq!(deps, expected);
            }
        }
    }

    #[test]
    fn envelope_fields_are_where_the_spec_says() {
        // Why: the envelope layout is shared with `signed`; reading it two ways must agree.
        let key = SigningKey::from_bytes(&[5; 32]);
        let c = change(5, 1_700_000_000, None, 1).remove(0);
        let doc = DocId::parse("dossier/X1-250101-0001").unwrap();
        let signed = SignedChange::sign(&doc, c, &key).unwrap();
        let bytes = signed.encode();
        let env = parse_envelope(&bytes).unwrap();
        assert_eq!(env.doc_id, "dossier/X1-250101-0001");
        assert_eq!(env.signer, key.verifying_key().as_bytes());
        assert_eq!(env.signature, &signed.signature().to_bytes());
        assert_eq!(env.change, signed.raw_change());
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            parse_envelope(&long).unwrap_err(),
            ChangeError::Trailing(bytes.len())
        );
    }

    #[test]
    fn overlong_leb128_is_refused() {
        // Why: automerge refuses overlong numbers; a verifier that accepted them would read a
        // chunk that no node could have stored.
        let mut c = Cursor {
            bytes: &[0x80, 0x00],
            at: 0,
        };
        assert!(c.uleb().is_err());
        let mut c = Cursor {
            bytes: &[0xff, 0x7f],
            at: 0,
        };
        assert!(c.sleb().is_err());
        let mut c = Cursor {
            bytes: &[0x7f],
            at: 0,
        };
        assert_eq!(c.sleb().unwrap(), -1);
        let mut c = Cursor {
            bytes: &[0x80, 0x01],
            at: 0,
        };
        assert_eq!(c.uleb().unwrap(), 128);
    }
}
