//! The binary encoding of every protocol message: versioned, bounded, and safe on untrusted bytes.
//!
//! Why its own module: the same bytes travel over iroh connections, sit in bundle files on USB
//! sticks, and come from peers that may be broken or hostile, so the encoding is specified here
//! once, every size has a named bound, and decoding never panics (fuzzed under `sync/fuzz/`).
//!
//! **Layout.** Every message is `u8 protocol version ‖ u8 tag ‖ body`. Integers are unsigned
//! LEB128 varints (canonical: the shortest form, at most 10 bytes) unless a width is given;
//! `[N]` is N raw bytes.
//!
//! ```text
//! tag  message        body
//!   1  Hello          [16] store id, feed head, resume from, [16] peer store id seen
//!   2  Resume         from
//!   3  Announce       after, upto, head, n, n × ([8] short id, size bytes)
//!   4  Need           upto, n, ceil(n/8) bytes of bitmap (bit i = entry i, LSB first)
//!   5  Changes        upto, n, frame length, frame
//!   6  SketchRequest  start, count
//!   7  Sketch         head, start, n, n × ([32] id sum, [8] checksum LE, zigzag count)
//!   8  Reconciled     head, wanted count, n, n × [8] short id offered
//!   9  Want           n, n × [8] short id
//!  10  Supply         answered, n, frame length, frame
//!  11  Ping           nonce
//!  12  Pong           nonce
//! 255  Error          u16 BE code, message length, UTF-8 message
//! ```
//!
//! A **frame** is the raw-deflate compression of `n × (length, envelope bytes)`; compressing the
//! whole batch at once is what lets the signer key, the 40-byte actor and the document id, which
//! repeat from one change to the next, cost almost nothing after their first appearance.
//!
//! **Versions.** A message whose version byte differs from [`PROTOCOL_VERSION`] is refused with
//! [`WireError::Version`], except `Error`: its layout is frozen for every version, so a peer
//! speaking another version can still read why it was refused.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use motcua_schema::signed::ENVELOPE_SIZE_BYTES_MAX;

use crate::reconcile::CodedSymbol;

/// The protocol version this code speaks: the first byte of every message.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest encoded message, in bytes.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 1024 * 1024;
/// Most changes announced, requested or carried by one batch.
pub const BATCH_CHANGES_COUNT_MAX: usize = 256;
/// Most envelope bytes in one batch (before compression). At least twice the largest envelope,
/// so any single change fits in a batch.
pub const BATCH_SIZE_BYTES_MAX: usize = 512 * 1024;
/// Largest uncompressed frame: a full batch plus one length prefix per change.
pub const FRAME_RAW_SIZE_BYTES_MAX: usize =
    BATCH_SIZE_BYTES_MAX + BATCH_CHANGES_COUNT_MAX * VARINT_SIZE_BYTES_MAX;
/// Most coded symbols in one `Sketch` message (about 45 bytes each).
pub const SKETCH_SYMBOLS_COUNT_MAX: usize = 4096;
/// Most short ids in one `Want` message.
pub const WANT_SHORTS_COUNT_MAX: usize = BATCH_CHANGES_COUNT_MAX;
/// Most differences one reconciliation may resolve, and so most short ids in one `Reconciled`.
pub const RECONCILE_DIFFERENCES_COUNT_MAX: usize = 65_536;
/// Largest text of an `Error` message, in bytes.
pub const ERROR_MESSAGE_SIZE_BYTES_MAX: usize = 1024;
/// Longest varint, in bytes.
pub const VARINT_SIZE_BYTES_MAX: usize = 10;

const TAG_HELLO: u8 = 1;
const TAG_RESUME: u8 = 2;
const TAG_ANNOUNCE: u8 = 3;
const TAG_NEED: u8 = 4;
const TAG_CHANGES: u8 = 5;
const TAG_SKETCH_REQUEST: u8 = 6;
const TAG_SKETCH: u8 = 7;
const TAG_RECONCILED: u8 = 8;
const TAG_WANT: u8 = 9;
const TAG_SUPPLY: u8 = 10;
const TAG_PING: u8 = 11;
const TAG_PONG: u8 = 12;
const TAG_ERROR: u8 = 255;

/// Why bytes are not a valid message or frame, or a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The peer speaks another protocol version.
    #[error("protocol version {found} is not supported (this node speaks {expected})")]
    Version {
        /// The version byte received.
        found: u8,
        /// The version this code speaks.
        expected: u8,
    },
    /// A size or count is over its bound.
    #[error("{what} of {size} exceeds {max}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size or count.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes end before the message does.
    #[error("message truncated")]
    Truncated,
    /// Bytes follow the message.
    #[error("trailing bytes after message")]
    Trailing,
    /// The tag names no message.
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    /// A varint is overlong or overflows 64 bits.
    #[error("malformed varint")]
    Varint,
    /// The error text is not UTF-8.
    #[error("error text is not UTF-8")]
    Utf8,
    /// A frame does not decompress, or its content does not match its count.
    #[error("corrupt frame: {0}")]
    Frame(&'static str),
    /// A field has a value the protocol forbids.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Why a peer ended a session: the code of an `Error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The peer speaks another protocol version.
    Version,
    /// The peer sent something the protocol forbids.
    Protocol,
    /// A request was not answered in time.
    Timeout,
    /// The sender's store failed.
    Store,
    /// The sender is shutting the session down.
    Shutdown,
    /// A code this version does not know.
    Other(u16),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Version => 1,
            ErrorCode::Protocol => 2,
            ErrorCode::Timeout => 3,
            ErrorCode::Store => 4,
            ErrorCode::Shutdown => 5,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number on the wire.
    pub fn from_u16(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::Version,
            2 => ErrorCode::Protocol,
            3 => ErrorCode::Timeout,
            4 => ErrorCode::Store,
            5 => ErrorCode::Shutdown,
            n => ErrorCode::Other(n),
        }
    }
}

/// One announced change: its short id and envelope size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceEntry {
    /// First 8 bytes of the change hash.
    pub short: [u8; 8],
    /// Size of the signed envelope in bytes.
    pub size_bytes: u32,
}

/// Every protocol message. See the module docs for the layout and `session` for the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// First message each way: who I am, how far my feed goes, and where I want yours from.
    Hello {
        /// This store's random id.
        store_id: [u8; 16],
        /// The sender's feed head.
        feed_head: u64,
        /// The position in the receiver's feed after which the sender wants changes (its
        /// checkpoint), valid only if `peer_store_id_seen` is the receiver's store id.
        resume_from: u64,
        /// The receiver's store id the checkpoint refers to (zeros when there is none).
        peer_store_id_seen: [u8; 16],
    },
    /// "Announce your feed to me from after this position" (after a reconciliation, or when
    /// the checkpoint in `Hello` was void).
    Resume {
        /// The position after which to announce.
        from: u64,
    },
    /// The changes in the receiver's scope that the sender stored at positions `(after, upto]`.
    Announce {
        /// Start of the range (exclusive).
        after: u64,
        /// End of the range (inclusive); may be past the last entry (out-of-scope positions).
        upto: u64,
        /// The sender's feed head now.
        head: u64,
        /// The changes, in feed order.
        entries: Vec<AnnounceEntry>,
    },
    /// Which entries of the announce ending at `upto` the sender lacks.
    Need {
        /// The announce being answered.
        upto: u64,
        /// One flag per announced entry.
        wanted: Vec<bool>,
    },
    /// The envelopes asked for by the `Need` for `upto`, in announce order.
    Changes {
        /// The announce being answered.
        upto: u64,
        /// The signed envelopes (opaque here; the driver verifies them).
        envelopes: Vec<Vec<u8>>,
    },
    /// Ask for coded symbols `[start, start + count)` of the receiver's set; `start == 0` begins
    /// a reconciliation and freezes the receiver's set at its feed head.
    SketchRequest {
        /// First symbol index.
        start: u64,
        /// Number of symbols.
        count: u64,
    },
    /// Coded symbols of the sender's frozen set.
    Sketch {
        /// The feed head at which the sender froze its set.
        head: u64,
        /// Index of the first symbol.
        start: u64,
        /// The symbols.
        symbols: Vec<CodedSymbol>,
    },
    /// The reconciliation decoded: the sender will `Want` `wanted_count` changes, and offers
    /// the receiver the changes it holds that the receiver lacks.
    Reconciled {
        /// The feed head at which the sender froze its own set.
        head: u64,
        /// How many of the receiver's changes the sender lacks.
        wanted_count: u64,
        /// Short ids of changes the sender has and the receiver lacks.
        offer: Vec<[u8; 8]>,
    },
    /// "Send me the changes with these short ids" (found by reconciliation).
    Want {
        /// Short ids, at most [`WANT_SHORTS_COUNT_MAX`].
        shorts: Vec<[u8; 8]>,
    },
    /// Answer to the oldest `Want`: envelopes for its first `answered` short ids.
    Supply {
        /// How many short ids of the `Want`, from its start, this answers.
        answered: u64,
        /// The envelopes found for them.
        envelopes: Vec<Vec<u8>>,
    },
    /// Liveness probe.
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The sender ends the session.
    Error {
        /// Why.
        code: ErrorCode,
        /// A sentence for people (at most [`ERROR_MESSAGE_SIZE_BYTES_MAX`] bytes).
        message: String,
    },
}

impl Message {
    /// The message's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Resume { .. } => "resume",
            Message::Announce { .. } => "announce",
            Message::Need { .. } => "need",
            Message::Changes { .. } => "changes",
            Message::SketchRequest { .. } => "sketch_request",
            Message::Sketch { .. } => "sketch",
            Message::Reconciled { .. } => "reconciled",
            Message::Want { .. } => "want",
            Message::Supply { .. } => "supply",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Error { .. } => "error",
        }
    }

    /// Encodes the message. Fails only if a field is over its bound.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Vec::with_capacity(64);
        w.push(PROTOCOL_VERSION);
        match self {
            Message::Hello {
                store_id,
                feed_head,
                resume_from,
                peer_store_id_seen,
            } => {
                w.push(TAG_HELLO);
                w.extend_from_slice(store_id);
                put_varint(&mut w, *feed_head);
                put_varint(&mut w, *resume_from);
                w.extend_from_slice(peer_store_id_seen);
            }
            Message::Resume { from } => {
                w.push(TAG_RESUME);
                put_varint(&mut w, *from);
            }
            Message::Announce {
                after,
                upto,
                head,
                entries,
            } => {
                check_count("announce entries", entries.len(), BATCH_CHANGES_COUNT_MAX)?;
                w.push(TAG_ANNOUNCE);
                put_varint(&mut w, *after);
                put_varint(&mut w, *upto);
                put_varint(&mut w, *head);
                put_varint(&mut w, entries.len() as u64);
                for e in entries {
                    w.extend_from_slice(&e.short);
                    put_varint(&mut w, u64::from(e.size_bytes));
                }
            }
            Message::Need { upto, wanted } => {
                check_count("need entries", wanted.len(), BATCH_CHANGES_COUNT_MAX)?;
                w.push(TAG_NEED);
                put_varint(&mut w, *upto);
                put_varint(&mut w, wanted.len() as u64);
                let mut bitmap = vec![0u8; wanted.len().div_ceil(8)];
                for (i, _) in wanted.iter().enumerate().filter(|(_, w)| **w) {
                    bitmap[i / 8] |= 1 << (i % 8);
                }
                w.extend_from_slice(&bitmap);
            }
            Message::Changes { upto, envelopes } => {
                w.push(TAG_CHANGES);
                put_varint(&mut w, *upto);
                put_frame(&mut w, envelopes)?;
            }
            Message::SketchRequest { start, count } => {
                w.push(TAG_SKETCH_REQUEST);
                put_varint(&mut w, *start);
                put_varint(&mut w, *count);
            }
            Message::Sketch {
                head,
                start,
                symbols,
            } => {
                check_count("sketch symbols", symbols.len(), SKETCH_SYMBOLS_COUNT_MAX)?;
                w.push(TAG_SKETCH);
                put_varint(&mut w, *head);
                put_varint(&mut w, *start);
                put_varint(&mut w, symbols.len() as u64);
                for s in symbols {
                    w.extend_from_slice(&s.id_sum);
                    w.extend_from_slice(&s.checksum.to_le_bytes());
                    put_varint(&mut w, zigzag(s.count));
                }
            }
            Message::Reconciled {
                head,
                wanted_count,
                offer,
            } => {
                check_count("offer", offer.len(), RECONCILE_DIFFERENCES_COUNT_MAX)?;
                w.push(TAG_RECONCILED);
                put_varint(&mut w, *head);
                put_varint(&mut w, *wanted_count);
                put_shorts(&mut w, offer);
            }
            Message::Want { shorts } => {
                check_count("want", shorts.len(), WANT_SHORTS_COUNT_MAX)?;
                w.push(TAG_WANT);
                put_shorts(&mut w, shorts);
            }
            Message::Supply {
                answered,
                envelopes,
            } => {
                w.push(TAG_SUPPLY);
                put_varint(&mut w, *answered);
                put_frame(&mut w, envelopes)?;
            }
            Message::Ping { nonce } => {
                w.push(TAG_PING);
                put_varint(&mut w, *nonce);
            }
            Message::Pong { nonce } => {
                w.push(TAG_PONG);
                put_varint(&mut w, *nonce);
            }
            Message::Error { code, message } => {
                check_count("error text", message.len(), ERROR_MESSAGE_SIZE_BYTES_MAX)?;
                w.push(TAG_ERROR);
                w.extend_from_slice(&code.to_u16().to_be_bytes());
                put_varint(&mut w, message.len() as u64);
                w.extend_from_slice(message.as_bytes());
            }
        }
        check_count("message", w.len(), MESSAGE_SIZE_BYTES_MAX)?;
        Ok(w)
    }

    /// Decodes one message from untrusted bytes. Never panics; every bound is checked before
    /// anything is allocated for it.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        check_count("message", bytes.len(), MESSAGE_SIZE_BYTES_MAX)?;
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        let tag = r.u8()?;
        if version != PROTOCOL_VERSION && tag != TAG_ERROR {
            return Err(WireError::Version {
                found: version,
                expected: PROTOCOL_VERSION,
            });
        }
        let msg = match tag {
            TAG_HELLO => Message::Hello {
                store_id: r.array()?,
                feed_head: r.varint()?,
                resume_from: r.varint()?,
                peer_store_id_seen: r.array()?,
            },
            TAG_RESUME => Message::Resume { from: r.varint()? },
            TAG_ANNOUNCE => {
                let after = r.varint()?;
                let upto = r.varint()?;
                let head = r.varint()?;
                if upto < after || head < upto {
                    return Err(WireError::Invalid("announce range"));
                }
                let n = r.count("announce entries", BATCH_CHANGES_COUNT_MAX)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let short = r.array()?;
                    let size = r.varint()?;
                    if size > ENVELOPE_SIZE_BYTES_MAX as u64 {
                        return Err(WireError::TooLarge {
                            what: "announced envelope",
                            size: usize::try_from(size).unwrap_or(usize::MAX),
                            max: ENVELOPE_SIZE_BYTES_MAX,
                        });
                    }
                    entries.push(AnnounceEntry {
                        short,
                        size_bytes: size as u32,
                    });
                }
                Message::Announce {
                    after,
                    upto,
                    head,
                    entries,
                }
            }
            TAG_NEED => {
                let upto = r.varint()?;
                let n = r.count("need entries", BATCH_CHANGES_COUNT_MAX)?;
                let bitmap = r.take(n.div_ceil(8))?;
                let wanted: Vec<bool> = (0..n)
                    .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
                    .collect();
                // Padding bits must be zero so that every message has exactly one encoding.
                if n % 8 != 0 && bitmap[n / 8] >> (n % 8) != 0 {
                    return Err(WireError::Invalid("need bitmap padding"));
                }
                Message::Need { upto, wanted }
            }
            TAG_CHANGES => Message::Changes {
                upto: r.varint()?,
                envelopes: r.frame()?,
            },
            TAG_SKETCH_REQUEST => Message::SketchRequest {
                start: r.varint()?,
                count: r.varint()?,
            },
            TAG_SKETCH => {
                let head = r.varint()?;
                let start = r.varint()?;
                let n = r.count("sketch symbols", SKETCH_SYMBOLS_COUNT_MAX)?;
                let mut symbols = Vec::with_capacity(n);
                for _ in 0..n {
                    let id_sum = r.array()?;
                    let checksum = u64::from_le_bytes(r.array()?);
                    let count = unzigzag(r.varint()?);
                    symbols.push(CodedSymbol {
                        id_sum,
                        checksum,
                        count,
                    });
                }
                Message::Sketch {
                    head,
                    start,
                    symbols,
                }
            }
            TAG_RECONCILED => Message::Reconciled {
                head: r.varint()?,
                wanted_count: r.varint()?,
                offer: r.shorts("offer", RECONCILE_DIFFERENCES_COUNT_MAX)?,
            },
            TAG_WANT => Message::Want {
                shorts: r.shorts("want", WANT_SHORTS_COUNT_MAX)?,
            },
            TAG_SUPPLY => Message::Supply {
                answered: r.varint()?,
                envelopes: r.frame()?,
            },
            TAG_PING => Message::Ping { nonce: r.varint()? },
            TAG_PONG => Message::Pong { nonce: r.varint()? },
            TAG_ERROR => {
                let code = ErrorCode::from_u16(u16::from_be_bytes(r.array()?));
                let n = r.count("error text", ERROR_MESSAGE_SIZE_BYTES_MAX)?;
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| WireError::Utf8)?;
                Message::Error {
                    code,
                    message: text.to_owned(),
                }
            }
            other => return Err(WireError::UnknownTag(other)),
        };
        if !r.is_empty() {
            return Err(WireError::Trailing);
        }
        Ok(msg)
    }
}

fn check_count(what: &'static str, size: usize, max: usize) -> Result<(), WireError> {
    if size > max {
        Err(WireError::TooLarge { what, size, max })
    } else {
        Ok(())
    }
}

/// Appends `v` as a canonical LEB128 varint.
pub fn put_varint(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_shorts(w: &mut Vec<u8>, shorts: &[[u8; 8]]) {
    put_varint(w, shorts.len() as u64);
    for s in shorts {
        w.extend_from_slice(s);
    }
}

fn put_frame(w: &mut Vec<u8>, envelopes: &[Vec<u8>]) -> Result<(), WireError> {
    let frame = encode_frame(envelopes)?;
    put_varint(w, envelopes.len() as u64);
    put_varint(w, frame.len() as u64);
    w.extend_from_slice(&frame);
    Ok(())
}

/// Compresses a batch of envelopes into a frame (see the module docs). Fails if the batch is
/// over [`BATCH_CHANGES_COUNT_MAX`] or [`BATCH_SIZE_BYTES_MAX`], or an envelope is over
/// `ENVELOPE_SIZE_BYTES_MAX`.
pub fn encode_frame(envelopes: &[Vec<u8>]) -> Result<Vec<u8>, WireError> {
    check_count("batch", envelopes.len(), BATCH_CHANGES_COUNT_MAX)?;
    let mut total = 0usize;
    let mut raw = Vec::new();
    for e in envelopes {
        check_count("envelope", e.len(), ENVELOPE_SIZE_BYTES_MAX)?;
        total += e.len();
        put_varint(&mut raw, e.len() as u64);
        raw.extend_from_slice(e);
    }
    check_count("batch bytes", total, BATCH_SIZE_BYTES_MAX)?;
    deflate(&raw)
}

thread_local! {
    /// One compressor per thread, reset for each frame: setting up a best-compression deflate
    /// state (about a quarter of a megabyte of zeroed tables) cost more than compressing the
    /// typical one-change frame. A reset state produces exactly the bytes a new one does.
    static COMPRESSOR: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::best(), false));
    /// One decompressor per thread, reset for each frame, for the same reason: a new one
    /// allocates and clears its window for every frame, most of which hold one change.
    static DECOMPRESSOR: std::cell::RefCell<Decompress> =
        std::cell::RefCell::new(Decompress::new(false));
}

/// Raw deflate of `raw` at the best compression level.
fn deflate(raw: &[u8]) -> Result<Vec<u8>, WireError> {
    COMPRESSOR.with_borrow_mut(|c| {
        c.reset();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        loop {
            let consumed = c.total_in() as usize;
            match c.compress_vec(&raw[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
                Err(_) => return Err(WireError::Frame("compression")),
            }
        }
    })
}

/// Inflates one raw deflate stream that must span all of `frame`, into at most
/// [`FRAME_RAW_SIZE_BYTES_MAX`] bytes.
fn inflate(frame: &[u8]) -> Result<Vec<u8>, WireError> {
    DECOMPRESSOR.with_borrow_mut(|d| {
        d.reset(false);
        let limit = FRAME_RAW_SIZE_BYTES_MAX + 1;
        let mut raw = Vec::with_capacity(frame.len().saturating_mul(4).clamp(64, limit));
        loop {
            let before = (d.total_in(), d.total_out());
            let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            let rest = frame.get(consumed..).unwrap_or_default();
            let status = d
                .decompress_vec(rest, &mut raw, FlushDecompress::Finish)
                .map_err(|_| WireError::Frame("does not decompress"))?;
            check_count("frame", raw.len(), FRAME_RAW_SIZE_BYTES_MAX)?;
            if status == Status::StreamEnd {
                break;
            }
            if raw.len() == raw.capacity() {
                // Room is what ran out: grow, never past one byte over the bound.
                raw.reserve_exact(raw.capacity().min(limit - raw.len()));
            } else if (d.total_in(), d.total_out()) == before {
                // Input is what ran out before the stream's end: a truncated frame.
                return Err(WireError::Frame("does not decompress"));
            }
        }
        // One frame, one encoding: bytes after the end of the deflate stream are refused.
        if d.total_in() != frame.len() as u64 {
            return Err(WireError::Frame("bytes after the compressed data"));
        }
        Ok(raw)
    })
}

/// Decompresses a frame of `count` envelopes from untrusted bytes, refusing to inflate past
/// [`FRAME_RAW_SIZE_BYTES_MAX`] (so a small frame cannot expand into a memory exhaustion).
pub fn decode_frame(frame: &[u8], count: usize) -> Result<Vec<Vec<u8>>, WireError> {
    check_count("batch", count, BATCH_CHANGES_COUNT_MAX)?;
    let raw = inflate(frame)?;
    let mut r = Reader::new(&raw);
    let mut out = Vec::with_capacity(count);
    let mut total = 0usize;
    for _ in 0..count {
        let n = r.count("envelope", ENVELOPE_SIZE_BYTES_MAX)?;
        total += n;
        check_count("batch bytes", total, BATCH_SIZE_BYTES_MAX)?;
        out.push(
            r.take(n)
                .map_err(|_| WireError::Frame("fewer envelopes than counted"))?
                .to_vec(),
        );
    }
    if !r.is_empty() {
        return Err(WireError::Frame("more bytes than counted"));
    }
    Ok(out)
}

/// A cursor over untrusted bytes whose every read is checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub(crate) fn position(&self) -> usize {
        self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..VARINT_SIZE_BYTES_MAX {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(WireError::Varint);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                // A zero last byte after the first means an overlong encoding.
                if i > 0 && b == 0 {
                    return Err(WireError::Varint);
                }
                return Ok(v);
            }
        }
        Err(WireError::Varint)
    }

    /// A varint count checked against its bound before anything is allocated for it.
    pub(crate) fn count(&mut self, what: &'static str, max: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        check_count(what, n, max)?;
        Ok(n)
    }

    fn shorts(&mut self, what: &'static str, max: usize) -> Result<Vec<[u8; 8]>, WireError> {
        let n = self.count(what, max)?;
        // Refuse a count the remaining bytes cannot hold before allocating for it.
        if n.saturating_mul(8) > self.bytes.len() - self.at {
            return Err(WireError::Truncated);
        }
        (0..n).map(|_| self.array()).collect()
    }

    fn frame(&mut self) -> Result<Vec<Vec<u8>>, WireError> {
        let n = self.count("batch", BATCH_CHANGES_COUNT_MAX)?;
        let len = self.count("frame", MESSAGE_SIZE_BYTES_MAX)?;
        decode_frame(self.take(len)?, n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::DeflateEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn arb_envelopes() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8)
    }

    fn arb_shorts(max: usize) -> impl Strategy<Value = Vec<[u8; 8]>> {
        prop::collection::vec(any::<[u8; 8]>(), 0..max)
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<[u8; 16]>(),
                any::<u64>(),
                any::<u64>(),
                any::<[u8; 16]>()
            )
                .prop_map(|(store_id, feed_head, resume_from, peer_store_id_seen)| {
                    Message::Hello {
                        store_id,
                        feed_head,
                        resume_from,
                        peer_store_id_seen,
                    }
                }),
            any::<u64>().prop_map(|from| Message::Resume { from }),
            (
                0u64..1 << 40,
                0u64..1000,
                0u64..1000,
                prop::collection::vec(
                    (any::<[u8; 8]>(), 0u32..=ENVELOPE_SIZE_BYTES_MAX as u32),
                    0..40
                )
            )
                .prop_map(|(after, len, extra, e)| Message::Announce {
                    after,
                    upto: after + len,
                    head: after + len + extra,
                    entries: e
                        .into_iter()
                        .map(|(short, size_bytes)| AnnounceEntry { short, size_bytes })
                        .collect(),
                }),
            (
                any::<u64>(),
                prop::collection::vec(any::<bool>(), 0..BATCH_CHANGES_COUNT_MAX)
            )
                .prop_map(|(upto, wanted)| Message::Need { upto, wanted }),
            (any::<u64>(), arb_envelopes())
                .prop_map(|(upto, envelopes)| Message::Changes { upto, envelopes }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(start, count)| Message::SketchRequest { start, count }),
            (
                any::<u64>(),
                any::<u64>(),
                prop::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<i64>()), 0..20)
            )
                .prop_map(|(head, start, s)| Message::Sketch {
                    head,
                    start,
                    symbols: s
                        .into_iter()
                        .map(|(id_sum, checksum, count)| CodedSymbol {
                            id_sum,
                            checksum,
                            count
                        })
                        .collect(),
                }),
            (any::<u64>(), any::<u64>(), arb_shorts(50)).prop_map(|(head, wanted_count, offer)| {
                Message::Reconciled {
                    head,
                    wanted_count,
                    offer,
                }
            }),
            arb_shorts(WANT_SHORTS_COUNT_MAX).prop_map(|shorts| Message::Want { shorts }),
            (any::<u64>(), arb_envelopes()).prop_map(|(answered, envelopes)| Message::Supply {
                answered,
                envelopes
            }),
            any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
            any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
            (any::<u16>(), "[a-z ]{0,80}").prop_map(|(code, message)| Message::Error {
                code: ErrorCode::from_u16(code),
                message
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in arb_message()) {
            // Why: what one node encodes, every other node must decode to the same message.
            let bytes = msg.encode().unwrap();
            prop_assert!(bytes.len() <= MESSAGE_SIZE_BYTES_MAX);
            prop_assert_eq!(bytes[0], PROTOCOL_VERSION);
            prop_assert_eq!(Message::decode(&bytes).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            // Why: peers are untrusted; decoding garbage must be an error, never a crash.
            let _ = Message::decode(&bytes);
            let _ = decode_frame(&bytes, 3);
        }

        #[test]
        fn mutated_messages_never_panic(msg in arb_message(), at in any::<usize>(), byte in any::<u8>()) {
            // Why: near-valid input reaches deeper decoding paths than random bytes do.
            let mut bytes = msg.encode().unwrap();
            let at = at % bytes.len();
            bytes[at] = byte;
            if let Ok(m) = Message::decode(&bytes) {
                // Anything that decodes re-encodes to a message that decodes the same.
                let again = m.encode().unwrap();
                prop_assert_eq!(Message::decode(&again).unwrap(), m);
            }
        }

        #[test]
        fn varints_round_trip(v in any::<u64>()) {
            // Why: every count and position on the wire is a varint.
            let mut w = Vec::new();
            put_varint(&mut w, v);
            let mut r = Reader::new(&w);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert!(r.is_empty());
        }
    }

    #[test]
    fn another_version_is_a_typed_error_but_its_error_message_is_readable() {
        // Why: a peer on another version must learn why it was refused, and we must say so clearly.
        let mut hello = Message::Ping { nonce: 1 }.encode().unwrap();
        hello[0] = 2;
        assert_eq!(
            Message::decode(&hello),
            Err(WireError::Version {
                found: 2,
                expected: PROTOCOL_VERSION
            })
        );
        let mut err = Message::Error {
            code: ErrorCode::Version,
            message: "speak 1".into(),
        }
        .encode()
        .unwrap();
        err[0] = 7;
        assert!(matches!(
            Message::decode(&err),
            Ok(Message::Error {
                code: ErrorCode::Version,
                ..
            })
        ));
    }

    #[test]
    fn bounds_are_typed_errors() {
        // Why: invariant 5: going over a bound is a typed error, on both encode and decode.
        let too_many = Message::Want {
            shorts: vec![[0; 8]; WANT_SHORTS_COUNT_MAX + 1],
        };
        assert!(matches!(too_many.encode(), Err(WireError::TooLarge { .. })));
        let mut bytes = vec![PROTOCOL_VERSION, TAG_WANT];
        put_varint(&mut bytes, (WANT_SHORTS_COUNT_MAX + 1) as u64);
        assert!(matches!(
            Message::decode(&bytes),
            Err(WireError::TooLarge { .. })
        ));
        let huge = vec![0u8; MESSAGE_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            Message::decode(&huge),
            Err(WireError::TooLarge { .. })
        ));
        let big = vec![vec![7u8; ENVELOPE_SIZE_BYTES_MAX]; 3];
        assert!(matches!(
            encode_frame(&big),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_reused_compressor_writes_the_bytes_a_new_one_does() {
        // Why: frames are compressed by one compressor per thread, reset between frames; a
        // state left over from an earlier frame (or a larger one) must not change the bytes.
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"mot cua".to_vec(),
            (0..200_000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
            vec![9u8; 70_000],
            b"mot cua".repeat(3),
        ];
        for raw in &inputs {
            let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
            enc.write_all(raw).unwrap();
            assert_eq!(deflate(raw).unwrap(), enc.finish().unwrap());
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // Why: a tiny frame that inflates to gigabytes must not exhaust a node's memory.
        let raw = vec![0u8; FRAME_RAW_SIZE_BYTES_MAX + 10];
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&raw).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 4096);
        assert!(matches!(
            decode_frame(&bomb, 1),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn bytes_after_a_frame_are_refused() {
        // Why: a frame has exactly one encoding, so nothing can ride along unnoticed after it.
        let mut frame = encode_frame(&[vec![1, 2, 3]]).unwrap();
        assert_eq!(decode_frame(&frame, 1).unwrap(), vec![vec![1, 2, 3]]);
        frame.push(0);
        assert_eq!(
            decode_frame(&frame, 1),
            Err(WireError::Frame("bytes after the compressed data"))
        );
    }

    #[test]
    fn a_truncated_frame_is_refused_and_the_next_one_decodes() {
        // Why: the decompressor is kept per thread and reset for each frame; a frame cut short
        // must be refused, and must not leave state behind that spoils the next frame.
        let envelopes = vec![vec![7u8; 300], b"mot cua".repeat(40)];
        let frame = encode_frame(&envelopes).unwrap();
        for cut in [1, frame.len() / 2, frame.len() - 1] {
            assert_eq!(
                decode_frame(&frame[..cut], 2),
                Err(WireError::Frame("does not decompress")),
                "cut at {cut}"
            );
            assert_eq!(decode_frame(&frame, 2).unwrap(), envelopes);
        }
        assert!(decode_frame(&[], 2).is_err());
    }

    #[test]
    fn overlong_varints_are_refused() {
        // Why: one value, one encoding: an overlong form would let two byte strings mean the same.
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(WireError::Varint));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(WireError::Varint));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).varint(),
            Err(WireError::Varint)
        );
    }
}
