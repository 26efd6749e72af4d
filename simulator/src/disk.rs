//! The simulated disk under each node's redb store: a byte image that can lose what was not
//! synced, fail writes for a while, and be copied as a backup.
//!
//! Why a backend of our own rather than redb's in-memory one: the faults the simulator injects
//! are disk faults. A crash must lose exactly what redb had not yet made durable (everything
//! written since the last `sync_data`), a failing disk must make a commit fail the way a real
//! I/O error does, and a backup is a copy of the durable image taken at some instant. redb sees
//! an ordinary [`redb::StorageBackend`].
//!
//! The image keeps an undo log of the bytes overwritten since the last sync, so a crash costs
//! the size of what was written since then, not the size of the image.

use std::io;
use std::sync::{Arc, Mutex};

/// Why a simulated write failed; shown in redb's error chain.
pub const DISK_FAILURE_MESSAGE: &str = "simulated disk failure: write refused";

#[derive(Debug)]
enum Undo {
    /// Bytes at `offset` before a write (or before a shrink cut them off).
    Bytes { offset: u64, old: Vec<u8> },
    /// The length before a `set_len`.
    Len(u64),
}

/// Size of one piece of an image. The image grows by whole pieces, so growing it never moves
/// what it already holds: a single growing buffer was copied and zeroed again at every doubling,
/// which cost the benchmark several percent of its time in page faults.
const IMAGE_CHUNK_BYTES: usize = 1 << 20;

/// A byte image in fixed-size pieces; bytes past `len` within the last piece are always zero,
/// so growing the image shows zeros, as a file does. A piece nothing was written to yet is
/// `None` and reads as zeros: redb sets a new store's length well ahead of what it writes, and
/// allocating that as zeroed memory cost a hundred stores' worth of page faults.
#[derive(Debug, Default)]
struct Image {
    chunks: Vec<Option<Box<[u8]>>>,
    len: usize,
}

impl Image {
    fn from_vec(bytes: Vec<u8>) -> Image {
        let mut image = Image::default();
        image.set_len(bytes.len());
        image.write(0, &bytes);
        image
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len];
        self.read(0, &mut out);
        out
    }

    /// Copies `out.len()` bytes from `offset`; the caller checked the range.
    fn read(&self, offset: usize, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let at = offset + done;
            let (chunk, within) = (at / IMAGE_CHUNK_BYTES, at % IMAGE_CHUNK_BYTES);
            let n = (IMAGE_CHUNK_BYTES - within).min(out.len() - done);
            match &self.chunks[chunk] {
                Some(piece) => out[done..done + n].copy_from_slice(&piece[within..within + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Copies `data` to `offset`; the caller made the image long enough.
    fn write(&mut self, offset: usize, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done;
            let (chunk, within) = (at / IMAGE_CHUNK_BYTES, at % IMAGE_CHUNK_BYTES);
            let n = (IMAGE_CHUNK_BYTES - within).min(data.len() - done);
            let piece = self.chunks[chunk]
                .get_or_insert_with(|| vec![0; IMAGE_CHUNK_BYTES].into_boxed_slice());
            piece[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    fn set_len(&mut self, len: usize) {
        if len < self.len {
            // Zero what is cut off, so that growing again shows zeros.
            let keep = len.div_ceil(IMAGE_CHUNK_BYTES);
            self.chunks.truncate(keep);
            if let Some(Some(last)) = self.chunks.last_mut() {
                let within = len - (keep - 1) * IMAGE_CHUNK_BYTES;
                last[within..].fill(0);
            }
        } else {
            while self.chunks.len() * IMAGE_CHUNK_BYTES < len {
                self.chunks.push(None);
            }
        }
        self.len = len;
    }
}

#[derive(Debug, Default)]
struct State {
    data: Image,
    undo: Vec<Undo>,
    /// Writes and syncs fail while set.
    failing: bool,
    /// Backends of older generations (a crashed process's) no longer reach the image.
    generation: u64,
    /// Whether overwritten bytes are kept until the next sync (needed only to crash).
    journal: bool,
    bytes_written: u64,
    syncs: u64,
}

impl State {
    fn durable(&self) -> Vec<u8> {
        let mut data = self.data.to_vec();
        for u in self.undo.iter().rev() {
            match u {
                Undo::Bytes { offset, old } => {
                    let at = *offset as usize;
                    if data.len() < at + old.len() {
                        data.resize(at + old.len(), 0);
                    }
                    data[at..at + old.len()].copy_from_slice(old);
                }
                Undo::Len(len) => data.resize(*len as usize, 0),
            }
        }
        data
    }

    /// A copy of `len` bytes at `offset`, for the undo log.
    fn copy(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut old = vec![0; len];
        self.data.read(offset, &mut old);
        old
    }
}

/// One node's disk. Cloning shares the image.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    state: Arc<Mutex<State>>,
}

/// What a disk did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Bytes written through the backend.
    pub bytes_written: u64,
    /// Syncs that succeeded.
    pub syncs: u64,
    /// Current image size in bytes.
    pub size_bytes: u64,
}

impl Disk {
    /// An empty disk that can crash.
    pub fn new() -> Disk {
        Disk::with_journal(true)
    }

    /// An empty disk; without a journal it cannot crash (no undo log is kept), which saves a
    /// copy of every overwritten byte in runs that inject no disk or power fault.
    pub fn with_journal(journal: bool) -> Disk {
        let disk = Disk::default();
        disk.state.lock().expect("disk lock").journal = journal;
        disk
    }

    /// A disk holding `image` as durable content (a restored backup).
    pub fn from_image(image: Vec<u8>) -> Disk {
        let disk = Disk::new();
        disk.state.lock().expect("disk lock").data = Image::from_vec(image);
        disk
    }

    /// A backend for a process opening this disk now.
    pub fn backend(&self) -> Backend {
        let generation = self.state.lock().expect("disk lock").generation;
        Backend {
            state: Arc::clone(&self.state),
            generation,
        }
    }

    /// The power is cut: everything written since the last sync is lost, and the process that
    /// had the disk open can no longer reach it.
    pub fn crash(&self) {
        let mut s = self.state.lock().expect("disk lock");
        assert!(s.journal, "a disk without a journal cannot crash");
        s.data = Image::from_vec(s.durable());
        s.undo.clear();
        s.generation += 1;
    }

    /// A copy of the durable content now (what a backup taken now would hold).
    pub fn image(&self) -> Vec<u8> {
        self.state.lock().expect("disk lock").durable()
    }

    /// Makes writes and syncs fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().expect("disk lock").failing = failing;
    }

    /// Whether writes fail now.
    pub fn is_failing(&self) -> bool {
        self.state.lock().expect("disk lock").failing
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        let s = self.state.lock().expect("disk lock");
        DiskStats {
            bytes_written: s.bytes_written,
            syncs: s.syncs,
            size_bytes: s.data.len as u64,
        }
    }
}

/// The [`redb::StorageBackend`] a store opens: a handle on a [`Disk`] for one process.
#[derive(Debug)]
pub struct Backend {
    state: Arc<Mutex<State>>,
    generation: u64,
}

fn failure() -> io::Error {
    io::Error::other(DISK_FAILURE_MESSAGE)
}

fn gone() -> io::Error {
    io::Error::other("simulated disk: the process that opened it has crashed")
}

impl Backend {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, io::Error> {
        let s = self.state.lock().expect("disk lock");
        if s.generation != self.generation {
            return Err(gone());
        }
        Ok(s)
    }
}

impl redb::StorageBackend for Backend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.lock()?.data.len as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let s = self.lock()?;
        let at = offset as usize;
        if at + out.len() > s.data.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        s.data.read(at, out);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.failing {
            return Err(failure());
        }
        let old_len = s.data.len as u64;
        if s.journal {
            if len < old_len {
                let old = s.copy(len as usize, (old_len - len) as usize);
                s.undo.push(Undo::Bytes { offset: len, old });
            }
            s.undo.push(Undo::Len(old_len));
        }
        s.data.set_len(len as usize);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.failing {
            return Err(failure());
        }
        s.undo.clear();
        s.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = self.lock()?;
        if s.failing {
            return Err(failure());
        }
        let at = offset as usize;
        let end = at + data.len();
        if s.data.len < end {
            let old_len = s.data.len as u64;
            if s.journal {
                s.undo.push(Undo::Len(old_len));
            }
            s.data.set_len(end);
        }
        if s.journal {
            let old = s.copy(at, data.len());
            s.undo.push(Undo::Bytes { offset, old });
        }
        s.data.write(at, data);
        s.bytes_written += data.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn a_crash_loses_exactly_what_was_not_synced() {
        // Why: "an acknowledged write survives a power cut" is only tested if the simulated
        // disk loses everything after the last sync and nothing before it.
        let disk = Disk::new();
        let b = disk.backend();
        b.set_len(8).unwrap();
        b.write(0, &[1, 2, 3, 4]).unwrap();
        b.sync_data().unwrap();
        b.write(2, &[9, 9]).unwrap();
        b.set_len(16).unwrap();
        b.write(12, &[7; 4]).unwrap();
        assert_eq!(disk.image(), vec![1, 2, 3, 4, 0, 0, 0, 0]);
        disk.crash();
        assert!(
            b.write(0, &[5]).is_err(),
            "the crashed process no longer reaches the disk"
        );
        let b2 = disk.backend();
        let mut out = [0u8; 8];
        b2.read(0, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(b2.len().unwrap(), 8);
    }

    #[test]
    fn an_image_in_pieces_reads_back_what_was_written_and_zeros_past_a_shrink() {
        // Why: the image is kept in fixed-size pieces, allocated when first written; a read of
        // a piece never written, a write or read that crosses a piece, and a file cut short
        // then grown again, must behave as one flat file does.
        let disk = Disk::new();
        let b = disk.backend();
        let n = IMAGE_CHUNK_BYTES;
        b.set_len(2 * n as u64 + 10).unwrap();
        let mut out = vec![1u8; 64];
        b.read(2 * n as u64 - 60, &mut out).unwrap();
        assert!(
            out.iter().all(|&x| x == 0),
            "never-written pieces read as zero"
        );
        let data: Vec<u8> = (0..100u8).collect();
        b.write(n as u64 - 50, &data).unwrap();
        let mut out = vec![0u8; 100];
        b.read(n as u64 - 50, &mut out).unwrap();
        assert_eq!(out, data);
        b.set_len(n as u64 - 20).unwrap();
        b.set_len(2 * n as u64).unwrap();
        let mut out = vec![1u8; 100];
        b.read(n as u64 - 50, &mut out).unwrap();
        assert_eq!(&out[..30], &data[..30]);
        assert!(
            out[30..].iter().all(|&x| x == 0),
            "grown bytes read as zero"
        );
        assert!(b.read(2 * n as u64 - 1, &mut [0u8; 2]).is_err());
        assert!(disk.image().is_empty(), "nothing was synced yet");
        b.sync_data().unwrap();
        assert_eq!(disk.image().len(), 2 * n);
    }

    #[test]
    fn a_failing_disk_refuses_writes_and_syncs_until_it_recovers() {
        // Why: the disk-failure fault must make commits fail the way an I/O error does.
        let disk = Disk::new();
        let b = disk.backend();
        b.set_len(4).unwrap();
        disk.set_failing(true);
        assert!(b.write(0, &[1]).is_err());
        assert!(b.sync_data().is_err());
        disk.set_failing(false);
        b.write(0, &[1]).unwrap();
        b.sync_data().unwrap();
        assert_eq!(disk.image(), vec![1, 0, 0, 0]);
    }
}
