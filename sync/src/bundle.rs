//! Sneakernet bundles: the protocol's change frames written to a file for a USB stick.
//!
//! Why: some communes have no link at all for days. A bundle carries the same frames a session
//! would send (deflate-compressed batches of signed envelopes), so the receiving node applies it
//! through the same verify-and-apply pipeline. Each frame carries its own SHA-256, so a stick
//! pulled out mid-copy or a damaged sector costs only the frames it touched: the frames before
//! it are still applied, and a frame whose bytes are damaged but whose length is intact is
//! skipped without losing the frames after it.
//!
//! **Layout, version 1** (integers big-endian):
//!
//! ```text
//! header   13  "MOTCUA-BUNDLE"
//!          u8  version (= 1)
//!          16  source store id
//!          u8  0, or 1 followed by the 32-byte source node key
//!          ..  scope the bundle was cut for (`Scope::encode`)
//!          u64 after, u64 upto: the source feed range (after, upto]
//!          32  SHA-256 of the header bytes above
//! frame*   u32 length L (1..=MESSAGE_SIZE_BYTES_MAX), 32 SHA-256 of the body, body:
//!          varint envelope count, then a frame as in `wire` (raw deflate)
//! trailer  u32 0, u64 frame count, 32 SHA-256 over the frames' digests in order
//! ```
//!
//! The trailer is what tells a bundle cut exactly at a frame boundary from a complete one.
//! Nothing here is trusted for safety: every envelope is verified when applied.

use std::io::Write;

use sha2::{Digest, Sha256};

use crate::store::{ChangeStore, Scope, StoreError};
use crate::wire::{
    BATCH_CHANGES_COUNT_MAX, BATCH_SIZE_BYTES_MAX, MESSAGE_SIZE_BYTES_MAX, Reader, WireError,
    decode_frame, encode_frame, put_varint,
};

/// The first bytes of every bundle.
pub const BUNDLE_MAGIC: &[u8; 13] = b"MOTCUA-BUNDLE";
/// The bundle format version this code writes and reads.
pub const BUNDLE_FORMAT_VERSION: u8 = 1;
/// Largest frame body in a bundle, in bytes.
pub const BUNDLE_FRAME_SIZE_BYTES_MAX: usize = MESSAGE_SIZE_BYTES_MAX;

/// What a bundle says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// Store id of the node that cut it.
    pub store_id: [u8; 16],
    /// That node's public key, if given.
    pub node_key: Option<[u8; 32]>,
    /// The scope it was cut for.
    pub scope: Scope,
    /// Start of the source feed range (exclusive).
    pub after: u64,
    /// End of the source feed range (inclusive).
    pub upto: u64,
}

/// Why a bundle or one of its frames cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bytes do not start with the bundle magic.
    #[error("not a motcua bundle")]
    NotABundle,
    /// A bundle format this code does not read.
    #[error("bundle format version {0} is not supported (this node reads {BUNDLE_FORMAT_VERSION})")]
    Version(u8),
    /// The header is damaged.
    #[error("bundle header is damaged: {0}")]
    Header(&'static str),
    /// The bundle ends inside frame `frame` (0-based), or before its trailer.
    #[error("bundle truncated at frame {frame}")]
    Truncated {
        /// The frame that is cut (the frame count when the trailer is missing).
        frame: u64,
    },
    /// Frame `frame` (0-based) is damaged, or the trailer does not match the frames.
    #[error("bundle frame {frame} is damaged")]
    Corrupt {
        /// The damaged frame (the frame count for a trailer mismatch).
        frame: u64,
    },
}

/// Why writing a bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleWriteError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batch could not be encoded.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Writing the output failed.
    #[error("writing bundle: {0}")]
    Io(#[from] std::io::Error),
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleSummary {
    /// End of the feed range written.
    pub upto: u64,
    /// Frames written.
    pub frames: u64,
    /// Changes written.
    pub changes: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes every change of `store`'s feed after `after` (up to its head now) admitted by `scope`
/// as a bundle to `out`, one frame per batch, so memory stays at one batch.
pub fn write_bundle<S: ChangeStore + ?Sized, W: Write>(
    store: &S,
    scope: &Scope,
    after: u64,
    node_key: Option<[u8; 32]>,
    out: &mut W,
) -> Result<BundleSummary, BundleWriteError> {
    let upto = store.feed_head().max(after);
    let mut header = Vec::with_capacity(128);
    header.extend_from_slice(BUNDLE_MAGIC);
    header.push(BUNDLE_FORMAT_VERSION);
    header.extend_from_slice(&store.store_id());
    match node_key {
        Some(k) => {
            header.push(1);
            header.extend_from_slice(&k);
        }
        None => header.push(0),
    }
    scope.encode(&mut header);
    header.extend_from_slice(&after.to_be_bytes());
    header.extend_from_slice(&upto.to_be_bytes());
    let digest: [u8; 32] = Sha256::digest(&header).into();
    header.extend_from_slice(&digest);
    out.write_all(&header)?;
    let mut summary = BundleSummary {
        upto,
        frames: 0,
        changes: 0,
        bytes: header.len() as u64,
    };
    let mut digests = Sha256::new();
    let mut cursor = after;
    while cursor < upto {
        let (entries, scanned) =
            store.feed_after(cursor, scope, BATCH_CHANGES_COUNT_MAX, BATCH_SIZE_BYTES_MAX)?;
        if scanned <= cursor {
            break;
        }
        cursor = scanned.min(upto);
        let mut envelopes = Vec::with_capacity(entries.len());
        for e in entries.iter().filter(|e| e.pos <= upto) {
            let env = store
                .envelope(&e.hash)?
                .ok_or_else(|| StoreError::Missing {
                    hash: e.hash.iter().map(|b| format!("{b:02x}")).collect(),
                })?;
            envelopes.push(env);
        }
        if envelopes.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        put_varint(&mut body, envelopes.len() as u64);
        body.extend_from_slice(&encode_frame(&envelopes)?);
        let d: [u8; 32] = Sha256::digest(&body).into();
        digests.update(d);
        out.write_all(&(body.len() as u32).to_be_bytes())?;
        out.write_all(&d)?;
        out.write_all(&body)?;
        summary.frames += 1;
        summary.changes += envelopes.len() as u64;
        summary.bytes += 4 + 32 + body.len() as u64;
    }
    out.write_all(&0u32.to_be_bytes())?;
    out.write_all(&summary.frames.to_be_bytes())?;
    let all: [u8; 32] = digests.finalize().into();
    out.write_all(&all)?;
    summary.bytes += 4 + 8 + 32;
    Ok(summary)
}

/// [`write_bundle`] into memory.
pub fn bundle_bytes<S: ChangeStore + ?Sized>(
    store: &S,
    scope: &Scope,
    after: u64,
    node_key: Option<[u8; 32]>,
) -> Result<(Vec<u8>, BundleSummary), BundleWriteError> {
    let mut out = Vec::new();
    let summary = write_bundle(store, scope, after, node_key, &mut out)?;
    Ok((out, summary))
}

/// Reads a bundle's header; the returned reader yields its frames.
pub fn read_bundle(bytes: &[u8]) -> Result<BundleReader<'_>, BundleError> {
    if bytes.len() < BUNDLE_MAGIC.len() || &bytes[..BUNDLE_MAGIC.len()] != BUNDLE_MAGIC {
        return Err(BundleError::NotABundle);
    }
    let mut r = Reader::new(bytes);
    let truncated = |_| BundleError::Header("truncated");
    r.take(BUNDLE_MAGIC.len()).map_err(truncated)?;
    let version = r.u8().map_err(truncated)?;
    if version != BUNDLE_FORMAT_VERSION {
        return Err(BundleError::Version(version));
    }
    let store_id = r.array::<16>().map_err(truncated)?;
    let node_key = match r.u8().map_err(truncated)? {
        0 => None,
        1 => Some(r.array::<32>().map_err(truncated)?),
        _ => return Err(BundleError::Header("node key flag")),
    };
    let at = r.position();
    let (scope, used) = Scope::decode(&bytes[at..]).ok_or(BundleError::Header("scope"))?;
    r.take(used).map_err(truncated)?;
    let after = u64::from_be_bytes(r.array().map_err(truncated)?);
    let upto = u64::from_be_bytes(r.array().map_err(truncated)?);
    let header_len = r.position();
    let digest: [u8; 32] = r.array().map_err(truncated)?;
    let computed: [u8; 32] = Sha256::digest(&bytes[..header_len]).into();
    if digest != computed {
        return Err(BundleError::Header("checksum"));
    }
    if upto < after {
        return Err(BundleError::Header("feed range"));
    }
    Ok(BundleReader {
        header: BundleHeader {
            store_id,
            node_key,
            scope,
            after,
            upto,
        },
        at: r.position(),
        bytes,
        frame: 0,
        digests: Sha256::new(),
        done: false,
        complete: false,
    })
}

/// Yields a bundle's frames in order, each as its envelopes or as the reason it cannot be read.
/// After a damaged frame whose length is intact it goes on with the next; after a truncation or
/// a damaged length it stops.
pub struct BundleReader<'a> {
    header: BundleHeader,
    bytes: &'a [u8],
    at: usize,
    frame: u64,
    digests: Sha256,
    done: bool,
    complete: bool,
}

impl BundleReader<'_> {
    /// The bundle's header.
    pub fn header(&self) -> &BundleHeader {
        &self.header
    }

    /// Whether the trailer was reached and matched every frame: only then did the bundle
    /// arrive whole (and may its feed range be recorded as received).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn next_frame(&mut self) -> Result<Option<Vec<Vec<u8>>>, BundleError> {
        let frame = self.frame;
        let truncated = BundleError::Truncated { frame };
        let len_bytes: [u8; 4] = self
            .take(4)
            .ok_or(truncated.clone())?
            .try_into()
            .expect("4 bytes");
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len == 0 {
            self.done = true;
            let count_bytes: [u8; 8] = self
                .take(8)
                .ok_or(truncated.clone())?
                .try_into()
                .expect("8 bytes");
            let digest: [u8; 32] = self
                .take(32)
                .ok_or(truncated)?
                .try_into()
                .expect("32 bytes");
            let computed: [u8; 32] = std::mem::take(&mut self.digests).finalize().into();
            if u64::from_be_bytes(count_bytes) != frame
                || digest != computed
                || self.at != self.bytes.len()
            {
                return Err(BundleError::Corrupt { frame });
            }
            self.complete = true;
            return Ok(None);
        }
        if len > BUNDLE_FRAME_SIZE_BYTES_MAX {
            // The length itself is damaged: there is no telling where the next frame starts.
            self.done = true;
            return Err(BundleError::Corrupt { frame });
        }
        let digest: [u8; 32] = self
            .take(32)
            .ok_or(truncated.clone())?
            .try_into()
            .expect("32 bytes");
        let body = self.take(len).ok_or(truncated)?;
        let computed: [u8; 32] = Sha256::digest(body).into();
        let parsed = (|| {
            let mut r = Reader::new(body);
            let n = r.count("batch", BATCH_CHANGES_COUNT_MAX)?;
            let at = r.position();
            decode_frame(&body[at..], n)
        })();
        self.digests.update(digest);
        self.frame += 1;
        if digest != computed {
            return Err(BundleError::Corrupt { frame });
        }
        parsed.map(Some).map_err(|_| BundleError::Corrupt { frame })
    }
}

impl Iterator for BundleReader<'_> {
    type Item = Result<Vec<Vec<u8>>, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_frame() {
            Ok(Some(envelopes)) => Some(Ok(envelopes)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                if matches!(e, BundleError::Truncated { .. })
                    || self.complete
                    || self.at >= self.bytes.len()
                {
                    self.done = true;
                }
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemStore, synthetic_envelope};
    use proptest::prelude::*;

    fn store_with(n: usize) -> MemStore {
        let mut s = MemStore::new([7; 16]);
        for i in 0..n {
            let unit = if i % 3 == 0 { "B" } else { "A" };
            s.insert(synthetic_envelope(
                &format!("dossier/{unit}-250101-{i:04}"),
                i as u64,
                120,
            ));
        }
        s
    }

    fn all_frames(bytes: &[u8]) -> Vec<Result<Vec<Vec<u8>>, BundleError>> {
        read_bundle(bytes).unwrap().collect()
    }

    #[test]
    fn a_bundle_round_trips_within_its_scope() {
        // Why: a bundle must carry exactly the changes of its scope and range, and say what it is.
        let store = store_with(700);
        let scope = Scope::Unit { unit: "A".into() };
        let (bytes, summary) = bundle_bytes(&store, &scope, 0, Some([3; 32])).unwrap();
        let mut reader = read_bundle(&bytes).unwrap();
        assert_eq!(
            reader.header(),
            &BundleHeader {
                store_id: [7; 16],
                node_key: Some([3; 32]),
                scope: scope.clone(),
                after: 0,
                upto: 700
            }
        );
        let mut got = Vec::new();
        for f in reader.by_ref() {
            got.extend(f.unwrap());
        }
        assert!(reader.is_complete());
        assert_eq!(got.len() as u64, summary.changes);
        let expected: Vec<Vec<u8>> = store.envelopes_in_feed_order(&scope);
        assert_eq!(got, expected);
        assert!(summary.frames >= 2, "several frames: {summary:?}");
    }

    #[test]
    fn truncation_keeps_the_frames_before_it() {
        // Why: a USB stick pulled out mid-copy must still deliver every whole frame before the cut.
        let store = store_with(900);
        let (bytes, summary) = bundle_bytes(&store, &Scope::All, 0, None).unwrap();
        let whole = all_frames(&bytes);
        assert_eq!(whole.len() as u64, summary.frames);
        for cut in [bytes.len() - 1, bytes.len() - 44, bytes.len() / 2, 120] {
            let frames = all_frames(&bytes[..cut]);
            let ok = frames.iter().take_while(|f| f.is_ok()).count();
            assert!(
                matches!(frames.last(), Some(Err(BundleError::Truncated { .. }))),
                "cut {cut}"
            );
            for (a, b) in frames.iter().zip(&whole).take(ok) {
                assert_eq!(a, b);
            }
        }
        // Cut exactly at the trailer: every frame reads, but the bundle is not complete.
        let at_trailer = bytes.len() - 44;
        let mut r = read_bundle(&bytes[..at_trailer]).unwrap();
        let frames: Vec<_> = r.by_ref().collect();
        assert_eq!(
            frames.iter().filter(|f| f.is_ok()).count() as u64,
            summary.frames
        );
        assert!(!r.is_complete());
    }

    #[test]
    fn a_damaged_frame_is_skipped_and_the_rest_still_read() {
        // Why: one bad sector must cost one frame, not the whole bundle.
        let store = store_with(900);
        let (mut bytes, _) = bundle_bytes(&store, &Scope::All, 0, None).unwrap();
        let whole = all_frames(&bytes);
        let first_frame_at = read_bundle(&bytes).unwrap().at;
        bytes[first_frame_at + 4 + 32 + 10] ^= 0x40;
        let frames = all_frames(&bytes);
        assert_eq!(frames[0], Err(BundleError::Corrupt { frame: 0 }));
        assert_eq!(&frames[1..], &whole[1..]);
    }

    #[test]
    fn foreign_and_future_files_are_refused_clearly() {
        // Why: a user who picks the wrong file must get a clear message, not garbage applied.
        assert_eq!(
            read_bundle(b"PK\x03\x04").err(),
            Some(BundleError::NotABundle)
        );
        let store = store_with(3);
        let (mut bytes, _) = bundle_bytes(&store, &Scope::All, 0, None).unwrap();
        bytes[13] = 9;
        assert_eq!(read_bundle(&bytes).err(), Some(BundleError::Version(9)));
        let (mut bytes, _) = bundle_bytes(&store, &Scope::All, 0, None).unwrap();
        bytes[20] ^= 1;
        assert_eq!(
            read_bundle(&bytes).err(),
            Some(BundleError::Header("checksum"))
        );
    }

    proptest! {
        #[test]
        fn damaged_bundles_never_panic(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            // Why: bundle files come from untrusted sticks; reading must never crash the node.
            let store = store_with(40);
            let (mut bytes, _) = bundle_bytes(&store, &Scope::All, 0, None).unwrap();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(r) = read_bundle(&bytes) {
                for _ in r {}
            }
        }
    }
}
