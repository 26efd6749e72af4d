//! The writer's cache of parsed Automerge documents, and the append-only way documents are
//! stored.
//!
//! Every change the apply pipeline takes in used to load its document from the stored bytes and
//! save it back in full: a parse and a compaction per change, most of a lifecycle step's cost.
//! Two things remove both:
//!
//! - **Append, compact now and then.** Automerge loads any concatenation of chunks (a document
//!   chunk or change chunks, in any order their dependencies allow), so storing a document after
//!   a change is appending that change's chunk to the stored bytes. Once a document's bytes hold
//!   [`APPENDED_CHUNKS_MAX`] chunks, the next save compacts them into one document chunk.
//! - **Cache keyed by the bytes.** The cache maps a document id to the bytes stored last and the
//!   document parsed from them. An entry is used only when the bytes in the store *now* (read in
//!   the caller's transaction) equal the entry's bytes, so it can never serve a state the store
//!   does not hold: a rolled-back transaction, a restore or any other writer simply makes the
//!   entry miss. That is why entries may be put before the transaction commits.
//!
//! Taking an entry removes it (the caller changes the document); the pipeline puts the new state
//! back when it stores it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use automerge::Automerge;

/// Most documents one node keeps parsed. A parsed dossier takes about 25 KB of memory (the
/// simulator's peak memory fell by that much per entry when the caches were cut); the apply
/// pipeline keeps only open dossiers here (a closed one expects no more steps). A commune's open
/// dossiers fit; a province's (the benchmark's workload brings it 1,450 new ones a working day)
/// do not all fit, and the others are parsed from the store when their next step comes.
pub const CACHE_DOCS_MAX: usize = 2048;

/// Most chunks a stored document holds before a save compacts them into one.
pub const APPENDED_CHUNKS_MAX: usize = 8;

/// Automerge's chunk magic bytes.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

struct Entry {
    bytes: Vec<u8>,
    doc: Automerge,
    /// Matches the entry's place in `order`; older places are stale.
    stamp: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Ids in the order they were put, with the stamp of that put, for eviction.
    order: VecDeque<(String, u64)>,
    next_stamp: u64,
}

/// Parsed documents, keyed by id and validated by their stored bytes.
#[derive(Default)]
pub struct DocCache {
    inner: Mutex<Inner>,
}

impl DocCache {
    /// Takes the document `id` out of the cache if it was parsed from exactly `stored`.
    pub fn take(&self, id: &str, stored: &[u8]) -> Option<Automerge> {
        let mut inner = self.inner.lock().expect("document cache lock");
        match inner.map.get(id) {
            Some(e) if e.bytes == stored => inner.map.remove(id).map(|e| e.doc),
            Some(_) => {
                inner.map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Keeps `doc`, the document stored as `bytes`, evicting the oldest entries beyond
    /// [`CACHE_DOCS_MAX`].
    pub fn put(&self, id: &str, bytes: Vec<u8>, doc: Automerge) {
        let mut inner = self.inner.lock().expect("document cache lock");
        let stamp = inner.next_stamp;
        inner.next_stamp += 1;
        inner.map.insert(id.to_owned(), Entry { bytes, doc, stamp });
        inner.order.push_back((id.to_owned(), stamp));
        // The order queue also holds stale places of documents put again; it is trimmed too.
        while inner.map.len() > CACHE_DOCS_MAX || inner.order.len() > 2 * CACHE_DOCS_MAX {
            let Some((old, old_stamp)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|e| e.stamp == old_stamp) {
                inner.map.remove(&old);
            }
        }
    }
}

/// How many Automerge chunks `bytes` holds, read from the chunk headers only; `None` if the
/// bytes are not a sequence of whole chunks.
pub fn chunk_count(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let mut count = 0;
    while !rest.is_empty() {
        if rest.len() < 9 || rest[..4] != CHUNK_MAGIC {
            return None;
        }
        let mut len: u64 = 0;
        let mut at = 9;
        let mut shift = 0;
        loop {
            let b = *rest.get(at)?;
            at += 1;
            len |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        rest = rest.get(end..)?;
        count += 1;
    }
    Some(count)
}

/// The bytes to store for a document whose stored bytes were `old` and which has since taken in
/// the change chunks `appended` to become `doc`: `old` followed by the chunks, or the document
/// saved in full when that would exceed [`APPENDED_CHUNKS_MAX`] chunks (or `old` is not
/// well-formed chunks).
pub fn stored_bytes(old: Option<&[u8]>, appended: &[impl AsRef<[u8]>], doc: &Automerge) -> Vec<u8> {
    let old = old.unwrap_or_default();
    match chunk_count(old) {
        Some(n) if n + appended.len() <= APPENDED_CHUNKS_MAX => {
            let extra: usize = appended.iter().map(|c| c.as_ref().len()).sum();
            let mut out = Vec::with_capacity(old.len() + extra);
            out.extend_from_slice(old);
            for c in appended {
                out.extend_from_slice(c.as_ref());
            }
            out
        }
        _ => doc.save(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};

    fn change(doc: &mut Automerge, key: &str, value: i64) -> Vec<u8> {
        let mut tx = doc.transaction();
        tx.put(ROOT, key, value).unwrap();
        tx.commit();
        doc.get_last_local_change().unwrap().raw_bytes().to_vec()
    }

    #[test]
    fn appended_chunks_load_to_the_same_document_and_compact_after_the_limit() {
        // Why: documents are stored as appended change chunks; every reader loads them with
        // Automerge::load, so the appended form must load to the same state, and must not grow
        // without bound.
        let mut doc = Automerge::new();
        let mut stored: Option<Vec<u8>> = None;
        for i in 0..(3 * APPENDED_CHUNKS_MAX as i64) {
            let c = change(&mut doc, &format!("k{}", i % 5), i);
            let next = stored_bytes(stored.as_deref(), &[&c], &doc);
            let n = chunk_count(&next).expect("whole chunks");
            assert!((1..=APPENDED_CHUNKS_MAX).contains(&n), "{n} chunks");
            let loaded = Automerge::load(&next).unwrap();
            assert_eq!(loaded.get_heads(), doc.get_heads());
            assert_eq!(
                loaded.get(ROOT, "k1").unwrap().map(|(v, _)| v.to_string()),
                doc.get(ROOT, "k1").unwrap().map(|(v, _)| v.to_string())
            );
            stored = Some(next);
        }
        assert_eq!(chunk_count(&doc.save()), Some(1));
        assert_eq!(chunk_count(b"not automerge"), None);
        assert_eq!(chunk_count(&[]), Some(0));
    }

    #[test]
    fn an_entry_serves_only_the_bytes_it_was_parsed_from() {
        // Why: the cache is only sound if a state the store no longer holds (a rolled-back
        // transaction, a restore) can never be served.
        let cache = DocCache::default();
        let mut doc = Automerge::new();
        let c = change(&mut doc, "a", 1);
        cache.put("d", c.clone(), doc.clone());
        assert!(cache.take("d", b"other bytes").is_none());
        assert!(
            cache.take("d", &c).is_none(),
            "a miss drops the stale entry"
        );
        cache.put("d", c.clone(), doc.clone());
        let got = cache.take("d", &c).expect("same bytes hit");
        assert_eq!(got.get_heads(), doc.get_heads());
        assert!(cache.take("d", &c).is_none(), "taking removes");
    }

    #[test]
    fn the_cache_keeps_at_most_its_bound_evicting_the_oldest() {
        let cache = DocCache::default();
        let doc = Automerge::new();
        for i in 0..(CACHE_DOCS_MAX + 10) {
            cache.put(&format!("d{i}"), vec![i as u8], doc.clone());
        }
        assert_eq!(cache.inner.lock().unwrap().map.len(), CACHE_DOCS_MAX);
        assert!(cache.take("d0", &[0]).is_none());
        let last = CACHE_DOCS_MAX + 9;
        assert!(cache.take(&format!("d{last}"), &[last as u8]).is_some());
    }
}
