//! Signed checkpoints of a node's audit log, as C2SP signed notes.
//!
//! A checkpoint says "my log had `size` leaves with root `root` at `time`, and it extends my
//! previous checkpoint (`prev`)". Its text follows C2SP `tlog-checkpoint`, with two extension
//! lines:
//!
//! ```text
//! motcua/log/v1/<node key, 64 hex>          origin: the log's identity
//! <size, decimal>
//! <root, base64 with padding>
//! time <unix milliseconds, decimal>
//! prev <size, decimal> <root, base64 with padding>
//! ```
//!
//! and it is signed as a C2SP signed note: the text, an empty line, then one line
//! `— <origin> <base64(key id ‖ signature)>` where the key id is the first four bytes of
//! `SHA-256(origin ‖ "\n" ‖ 0x01 ‖ public key)` and the signature is Ed25519 (strict) over the
//! text exactly. The origin names the key, so a note is verified with the key it names; whether
//! that key was enrolled is the registry's question.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;
use crate::timestamp::Timestamp;

/// Prefix of every log origin; the node key in hex follows.
pub const ORIGIN_PREFIX: &str = "motcua/log/v1/";
/// The signature algorithm byte of an Ed25519 key id (C2SP signed-note).
pub const ED25519_ALGORITHM: u8 = 0x01;
/// Largest signed note accepted, in bytes.
pub const NOTE_SIZE_BYTES_MAX: usize = 1024;
/// The em dash and space that start a signature line.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// One checkpoint of a node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The node key whose log this is (and which signs the note).
    pub key: [u8; 32],
    /// Number of leaves.
    pub size: u64,
    /// Root of those leaves.
    pub root: Hash,
    /// When it was made, by the node's clock.
    pub time: Timestamp,
    /// The previous checkpoint this one extends: size 0 and the empty root for the first.
    pub prev_size: u64,
    /// Root of the previous checkpoint.
    pub prev_root: Hash,
}

/// Why a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Larger than the bound.
    #[error("note larger than {NOTE_SIZE_BYTES_MAX} bytes")]
    TooLarge,
    /// The text or signature block does not have the shape above.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The origin's key is not a valid Ed25519 key.
    #[error("note names an invalid key")]
    Key,
    /// The signature line names another key, or does not verify.
    #[error("bad note signature")]
    Signature,
}

impl NoteError {
    /// A short stable reason name.
    pub fn reason(&self) -> &'static str {
        match self {
            NoteError::TooLarge => "note_too_large",
            NoteError::Malformed(_) => "note_malformed",
            NoteError::Key => "note_key",
            NoteError::Signature => "note_signature",
        }
    }
}

/// The origin line of `key`'s log.
pub fn origin(key: &[u8; 32]) -> String {
    format!("{ORIGIN_PREFIX}{}", hex::encode(key))
}

/// The C2SP key id of an Ed25519 key named `name`.
pub fn key_id(name: &str, key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALGORITHM]);
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    /// The note text (what is signed).
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\nprev {} {}\n",
            origin(&self.key),
            self.size,
            B64.encode(self.root),
            self.time.0,
            self.prev_size,
            B64.encode(self.prev_root)
        )
    }

    /// Signs the checkpoint with `key` (which must be `self.key`'s secret) as a signed note.
    pub fn sign(&self, key: &SigningKey) -> String {
        debug_assert_eq!(key.verifying_key().as_bytes(), &self.key);
        let text = self.text();
        let name = origin(&self.key);
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&key_id(&name, &self.key));
        sig.extend_from_slice(&key.sign(text.as_bytes()).to_bytes());
        format!(
            "{text}\n{SIGNATURE_LINE_PREFIX}{name} {}\n",
            B64.encode(sig)
        )
    }

    /// Parses a signed note and verifies its signature against the key its origin names.
    pub fn open(note: &str) -> Result<Checkpoint, NoteError> {
        if note.len() > NOTE_SIZE_BYTES_MAX {
            return Err(NoteError::TooLarge);
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no signature block"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        let checkpoint = parse_text(text)?;
        let name = origin(&checkpoint.key);
        let line = sigs
            .strip_suffix('\n')
            .filter(|l| !l.contains('\n'))
            .ok_or(NoteError::Malformed("expected exactly one signature line"))?;
        let rest = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .and_then(|r| r.strip_prefix(name.as_str()))
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(NoteError::Signature)?;
        let raw = B64.decode(rest).map_err(|_| NoteError::Signature)?;
        if raw.len() != 68 || raw[..4] != key_id(&name, &checkpoint.key) {
            return Err(NoteError::Signature);
        }
        let vk = VerifyingKey::from_bytes(&checkpoint.key).map_err(|_| NoteError::Key)?;
        let sig = Signature::from_bytes(&raw[4..].try_into().expect("64 bytes"));
        vk.verify_strict(text.as_bytes(), &sig)
            .map_err(|_| NoteError::Signature)?;
        Ok(checkpoint)
    }
}

fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .ok_or(NoteError::Malformed("text must end in a newline"))?
        .split('\n')
        .collect();
    let [origin_line, size, root, time, prev] = lines[..] else {
        return Err(NoteError::Malformed("expected five lines"));
    };
    let key_hex = origin_line
        .strip_prefix(ORIGIN_PREFIX)
        .ok_or(NoteError::Malformed("origin"))?;
    let key: [u8; 32] = decode_hex_lower(key_hex).ok_or(NoteError::Malformed("origin key"))?;
    let size = decimal(size).ok_or(NoteError::Malformed("size"))?;
    let root = hash_b64(root).ok_or(NoteError::Malformed("root"))?;
    let time = time
        .strip_prefix("time ")
        .and_then(signed_decimal)
        .ok_or(NoteError::Malformed("time"))?;
    let (prev_size, prev_root) = prev
        .strip_prefix("prev ")
        .and_then(|p| p.split_once(' '))
        .ok_or(NoteError::Malformed("prev"))?;
    let prev_size = decimal(prev_size).ok_or(NoteError::Malformed("prev size"))?;
    let prev_root = hash_b64(prev_root).ok_or(NoteError::Malformed("prev root"))?;
    if prev_size > size {
        return Err(NoteError::Malformed("prev size above size"));
    }
    Ok(Checkpoint {
        key,
        size,
        root,
        time: Timestamp(time),
        prev_size,
        prev_root,
    })
}

/// Lowercase hex of exactly 32 bytes (the only form `origin` writes).
fn decode_hex_lower(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

/// A decimal without sign or leading zeros (`0` itself allowed).
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn signed_decimal(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(rest) if rest != "0" => decimal(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        Some(_) => None,
        None => decimal(text).and_then(|v| i64::try_from(v).ok()),
    }
}

fn hash_b64(text: &str) -> Option<Hash> {
    let bytes = B64.decode(text).ok()?;
    // Only the canonical encoding: re-encoding must give the same text.
    (B64.encode(&bytes) == text).then_some(())?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(key: &SigningKey) -> Checkpoint {
        Checkpoint {
            key: *key.verifying_key().as_bytes(),
            size: 42,
            root: [7; 32],
            time: Timestamp(1_750_000_000_000),
            prev_size: 40,
            prev_root: [6; 32],
        }
    }

    #[test]
    fn signed_note_round_trips() {
        // Why: witnesses store the note text and verify it again later, byte for byte.
        let key = SigningKey::from_bytes(&[3; 32]);
        let cp = checkpoint(&key);
        let note = cp.sign(&key);
        assert_eq!(Checkpoint::open(&note).unwrap(), cp);
        assert!(note.contains("\n\n\u{2014} motcua/log/v1/"));
    }

    #[test]
    fn every_bit_of_a_note_matters() {
        // Why: a checkpoint is evidence; changing any bit of it must make it fail, never turn it
        // into another valid checkpoint.
        let key = SigningKey::from_bytes(&[3; 32]);
        let note = checkpoint(&key).sign(&key).into_bytes();
        for i in 0..note.len() * 8 {
            let mut bad = note.clone();
            bad[i / 8] ^= 1 << (i % 8);
            if let Ok(text) = String::from_utf8(bad) {
                assert!(
                    Checkpoint::open(&text).is_err(),
                    "bit {i} flipped still opens"
                );
            }
        }
    }

    #[test]
    fn a_note_signed_by_another_key_fails() {
        // Why: the origin names the key; a note signed by anyone else is a forgery.
        let key = SigningKey::from_bytes(&[3; 32]);
        let other = SigningKey::from_bytes(&[4; 32]);
        let cp = checkpoint(&key);
        let text = cp.text();
        let name = origin(&cp.key);
        let mut sig = key_id(&name, &cp.key).to_vec();
        sig.extend_from_slice(&other.sign(text.as_bytes()).to_bytes());
        let forged = format!("{text}\n\u{2014} {name} {}\n", B64.encode(sig));
        assert_eq!(Checkpoint::open(&forged), Err(NoteError::Signature));
    }
}
