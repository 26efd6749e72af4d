//! One replication link: a QUIC connection to one peer running one `motcua_sync::Session`.
//!
//! The dialer opens one bidirectional stream and speaks first (its `Hello`). Messages are framed
//! as a 4-byte big-endian length and the encoded message, at most `MESSAGE_SIZE_BYTES_MAX`.
//! A reader task turns the stream into frames on a bounded channel, so that the driver loop can
//! wait on frames, timers, the local feed and the link switch at once without ever cancelling a
//! half-read frame.
//!
//! Each `Apply` batch is verified on the blocking pool (signatures cost a curve operation each)
//! and then written through the writer with the peer's checkpoint, in one durable transaction;
//! only then is the session told, so a crash at any byte loses nothing that was acknowledged.
//! The batches go to the link's applier task, which hands them to the writer in the order the
//! session emitted them without waiting for each to be written, and answers them in that order,
//! while the loop goes on serving the peer: the writer may hold imports back for a while to share
//! a commit (`writer::IMPORT_LINGER_MS`), and neither the peer's requests nor the link's next
//! batches must wait for that one after another (`writer::WriteOrder`).

use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream};
use motcua_sync::session::BATCHES_IN_FLIGHT_COUNT_MAX;
use motcua_sync::wire::MESSAGE_SIZE_BYTES_MAX;
use motcua_sync::{ApplyReport, Checkpoint, Event, Scope, Session};
use tokio::sync::mpsc;

use super::source::LazySnapshot;
use super::{ANTI_ENTROPY_INTERVAL_MS, Replication};
use crate::commands::CommandError;
use crate::store::peers::FeedMark;
use crate::writer::{Command, Pending, Reply, WriteOrder};

/// Frames read ahead of the driver loop, in frames.
pub const READ_AHEAD_FRAMES_MAX: usize = 8;

/// `Apply` batches handed to the applier and not yet answered, in batches: the session has at
/// most [`BATCHES_IN_FLIGHT_COUNT_MAX`] of them, and one more as a repair ends. Twice that, so
/// that handing one over never waits.
pub const APPLIES_QUEUED_COUNT_MAX: usize = 2 * BATCHES_IN_FLIGHT_COUNT_MAX;

/// Why a link ends when its applier is gone (it stops after a failed write, which it reports).
const APPLIER_STOPPED: &str = "bộ ghi dữ liệu nhận được đã dừng";

/// One batch for the applier. `write` is false when it only moves the checkpoint over positions
/// with nothing new: it is not written now, only remembered (and still answered in its turn).
struct ToApply {
    batch: u64,
    envelopes: Vec<Vec<u8>>,
    checkpoint: Option<Checkpoint>,
    write: bool,
}

/// Runs the link until it fails, the peer leaves, or the link is cut. Returns why it ended.
pub async fn run(
    repl: &Replication,
    conn: Connection,
    peer: [u8; 32],
    peer_scope: Scope,
    dialer: bool,
    superseded: &tokio::sync::Notify,
) -> Result<(), String> {
    let inner = &repl.inner;
    let (mut send, recv) = if dialer {
        conn.open_bi().await.map_err(|e| format!("mở luồng: {e}"))?
    } else {
        conn.accept_bi()
            .await
            .map_err(|e| format!("nhận luồng: {e}"))?
    };
    let shared = &inner.shared;
    let own_scope = super::scope_of(shared.identity.role, shared.identity.unit.as_str());
    let own_store_id = shared.store.store_id().map_err(|e| e.to_string())?;
    let start = super::FeedStart {
        store_id: own_store_id,
        feed_head: shared.store.feed_head().map_err(|e| e.to_string())?,
    };
    let config = super::session_config(Some(ANTI_ENTROPY_INTERVAL_MS));
    let mut session = super::start_session(
        &shared.store,
        &peer,
        start,
        own_scope,
        peer_scope,
        config,
        repl.now_ms(),
    )
    .map_err(|e| e.to_string())?;
    let (frames_tx, mut frames) = mpsc::channel(READ_AHEAD_FRAMES_MAX);
    let reader = tokio::spawn(read_frames(recv, frames_tx));
    let mut feed = shared.feed.subscribe();
    let mut switch = repl.link_switch(peer).subscribe();
    let mut epoch = shared.store_epoch.subscribe();
    let origin = format!("peer:{}", hex::encode(&peer[..8]));
    let mut base = session.stats();
    let mut bookkeeping = super::Bookkeeping::default();
    let (to_apply, applies) = mpsc::channel(APPLIES_QUEUED_COUNT_MAX);
    let (applied_tx, mut applied) = mpsc::channel(APPLIES_QUEUED_COUNT_MAX);
    let applier = tokio::spawn(run_applier(
        repl.clone(),
        peer,
        origin.clone(),
        applies,
        applied_tx,
    ));
    let outcome = 'link: loop {
        // Send what the session has to say, then act on what it asks.
        while let Some(msg) = session.poll_transmit() {
            tracing::trace!(peer = %hex::encode(&peer[..4]), message = msg.name(), "sending");
            let sent = match msg.encode() {
                Ok(bytes) => write_frame(&mut send, &bytes)
                    .await
                    .map_err(|e| format!("gửi: {e}")),
                Err(e) => Err(format!("mã hóa thông điệp {}: {e}", msg.name())),
            };
            if let Err(e) = sent {
                session.close();
                break 'link Err(e);
            }
        }
        let mut failed = None;
        while let Some(event) = session.poll_event() {
            match event {
                Event::Apply {
                    batch,
                    envelopes,
                    checkpoint,
                } => {
                    // A batch with no records only moves the checkpoint over positions with
                    // nothing new for this node: written at most every half hour (and when
                    // the link ends), not on every empty announce.
                    let write = !envelopes.is_empty() || bookkeeping.checkpoint_due(repl.now_ms());
                    tracing::trace!(peer = %hex::encode(&peer[..4]), batch, changes = envelopes.len(), write, "batch to apply");
                    let next = ToApply {
                        batch,
                        envelopes,
                        checkpoint,
                        write,
                    };
                    // The session holds fewer batches than the queue: this never waits.
                    if to_apply.send(next).await.is_err() {
                        failed = Some(APPLIER_STOPPED.to_owned());
                        break;
                    }
                }
                Event::CaughtUp { .. } => {
                    if bookkeeping.caught_up_due(repl.now_ms()) {
                        let command = Command::PeerSeen {
                            peer,
                            acked: None,
                            caught_up: true,
                            connected: false,
                        };
                        note_peer(repl, command, || ());
                    }
                    repl.update(peer, |s| {
                        s.last_caught_up_at = Some(crate::writer::clock_now())
                    });
                }
                Event::PeerHello {
                    checkpoint_valid,
                    acked,
                    ..
                } => {
                    tracing::debug!(peer = %hex::encode(&peer[..4]), checkpoint_valid, ?acked, "peer said hello");
                    // One write per connection: when it was made, and how far the peer holds
                    // this node's feed (what `bundle export` skips), shown once it is durable.
                    let command = Command::PeerSeen {
                        peer,
                        acked: Some(acked.map(|upto| FeedMark {
                            store_id: own_store_id,
                            upto,
                        })),
                        caught_up: false,
                        connected: true,
                    };
                    let shown = repl.clone();
                    note_peer(repl, command, move || {
                        shown.update(peer, |s| s.acknowledged_upto = acked)
                    });
                }
                Event::ReconcileDone(report) => {
                    tracing::info!(peer = %hex::encode(&peer[..4]), ?report, "reconciliation done");
                }
                Event::Failed { reason } => {
                    failed = Some(reason.to_string());
                    break;
                }
            }
        }
        publish_stats(repl, peer, &session, &mut base);
        if let Some(e) = failed {
            break Err(e);
        }
        if session.is_closed() {
            break Ok(());
        }
        // Wait for the next thing to happen.
        let deadline = session
            .poll_timeout()
            .map(|at| at.saturating_sub(repl.now_ms()));
        tokio::select! {
            done = applied.recv() => match done {
                Some((batch, Ok(report))) => {
                    tracing::trace!(peer = %hex::encode(&peer[..4]), batch, ?report, "batch applied");
                    let snap = view(repl, own_store_id);
                    tokio::task::block_in_place(|| session.applied(repl.now_ms(), batch, report, &snap));
                }
                Some((_, Err(e))) => break Err(e),
                None => break Err(APPLIER_STOPPED.to_owned()),
            },
            frame = frames.recv() => match frame {
                Some(Ok(bytes)) => {
                    tracing::trace!(peer = %hex::encode(&peer[..4]), bytes = bytes.len(), "received a frame");
                    let snap = view(repl, own_store_id);
                    tokio::task::block_in_place(|| session.handle_bytes(repl.now_ms(), &bytes, &snap));
                }
                Some(Err(e)) => break Err(e),
                None => break Err("kết nối đóng".to_owned()),
            },
            _ = sleep_for(deadline) => {
                let snap = view(repl, own_store_id);
                tokio::task::block_in_place(|| session.handle_timeout(repl.now_ms(), &snap));
            }
            changed = feed.changed() => {
                if changed.is_ok() {
                    let snap = view(repl, own_store_id);
                    tokio::task::block_in_place(|| session.local_feed_advanced(repl.now_ms(), &snap));
                }
            }
            _ = epoch.changed() => {
                session.close();
                break Err("kho dữ liệu nhận mã mới (phục hồi từ bản sao lưu): đồng bộ lại".to_owned());
            }
            () = superseded.notified() => {
                session.close();
                break Err("nút bên kia đã kết nối lại: phiên mới thay phiên này".to_owned());
            }
            changed = switch.changed() => {
                if changed.is_err() || !*switch.borrow() {
                    session.close();
                    break Err("liên kết bị ngắt theo yêu cầu".to_owned());
                }
            }
        }
    };
    // Batches handed to the applier are written before anything else of this link. Then the
    // checkpoint that batches with nothing new moved since the applier's last write, so that the
    // next session starts from it; the applier kept it in write order, so it never passes a
    // batch that was not written (after a failed write it only covers the batches before it).
    drop(to_apply);
    while applied.recv().await.is_some() {}
    if let Ok(Some(c)) = applier.await {
        let _ = apply(repl, peer, &origin, Vec::new(), Some(c)).await;
    }
    // Flush whatever the session said last (e.g. its error message) before closing.
    while let Some(msg) = session.poll_transmit() {
        if let Ok(bytes) = msg.encode() {
            let _ = write_frame(&mut send, &bytes).await;
        }
    }
    let _ = send.finish();
    reader.abort();
    conn.close(0u32.into(), b"bye");
    outcome
}

/// The store as one call into the session reads it: the feed head the writer last published,
/// and a read transaction only if the call reads more than that (an idle link's pings do not).
fn view(repl: &Replication, store_id: [u8; 16]) -> LazySnapshot<'_> {
    let shared = &repl.inner.shared;
    LazySnapshot::new(&shared.store, store_id, *shared.feed.borrow())
}

async fn sleep_for(ms: Option<u64>) {
    match ms {
        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

/// Hands what the link notes about its peer to the writer without waiting for it: the writer
/// holds such notes back with imports (`Writer::submit_replicated`), and the link must go on
/// serving.
/// A note lost to a failed write is written again at the next connection or catch-up.
/// `written` runs once the note is durable.
fn note_peer(repl: &Replication, command: Command, written: impl FnOnce() + Send + 'static) {
    let writer = repl.inner.writer.clone();
    tokio::spawn(async move {
        match writer.submit_replicated(command).await {
            Ok(_) => written(),
            Err(e) => tracing::warn!(error = %e, "noting a peer's state"),
        }
    });
}

/// The link's applier: hands the session's batches to the writer in the order they were
/// emitted, without waiting for each to be written (so that a trickle of small batches lingers
/// once, together, not once per batch: see `writer::WriteOrder`), and answers each in that
/// order once it is durable. Ends when the link drops its queue, or after the first failed
/// write (the link then ends; the writer refuses the link's later writes). Returns the
/// checkpoint that batches with nothing new moved past its last write, for the link to write
/// as it ends.
async fn run_applier(
    repl: Replication,
    peer: [u8; 32],
    origin: String,
    mut batches: mpsc::Receiver<ToApply>,
    answers: mpsc::Sender<(u64, Result<ApplyReport, String>)>,
) -> Option<Checkpoint> {
    let order = WriteOrder::default();
    let (handed_tx, mut handed) = mpsc::channel::<Handed>(APPLIES_QUEUED_COUNT_MAX);
    let hand_over = async move {
        while let Some(next) = batches.recv().await {
            let state = if next.write {
                match submit(
                    &repl,
                    peer,
                    &origin,
                    next.envelopes,
                    next.checkpoint,
                    &order,
                )
                .await
                {
                    Ok(pending) => Written::Pending(pending),
                    Err(e) => Written::Failed(e),
                }
            } else {
                Written::Remembered
            };
            let handed = Handed {
                batch: next.batch,
                checkpoint: next.checkpoint,
                state,
            };
            if handed_tx.send(handed).await.is_err() {
                return;
            }
        }
    };
    let answer = async move {
        let mut unsaved: Option<Checkpoint> = None;
        while let Some(Handed {
            batch,
            checkpoint,
            state,
        }) = handed.recv().await
        {
            let (result, wrote_checkpoint) = match state {
                Written::Pending(pending) => {
                    (report_of(pending.wait().await), checkpoint.is_some())
                }
                Written::Failed(e) => (Err(e), false),
                Written::Remembered => {
                    unsaved = checkpoint.or(unsaved);
                    (Ok(ApplyReport::default()), false)
                }
            };
            if result.is_ok() && wrote_checkpoint {
                unsaved = None;
            }
            let failed = result.is_err();
            if answers.send((batch, result)).await.is_err() || failed {
                break;
            }
        }
        unsaved
    };
    tokio::join!(hand_over, answer).1
}

/// Verifies a batch and writes it with its checkpoint, waiting until it is durable: the
/// checkpoint a link writes as it ends, after its applier.
async fn apply(
    repl: &Replication,
    peer: [u8; 32],
    origin: &str,
    envelopes: Vec<Vec<u8>>,
    checkpoint: Option<Checkpoint>,
) -> Result<ApplyReport, String> {
    let order = WriteOrder::default();
    let pending = submit(repl, peer, origin, envelopes, checkpoint, &order).await?;
    report_of(pending.wait().await)
}

fn report_of(reply: Result<Reply, CommandError>) -> Result<ApplyReport, String> {
    match reply {
        Ok(Reply::Imported(r)) => Ok(r.into()),
        Ok(_) => Err("unexpected writer reply".to_owned()),
        Err(e) => Err(format!("ghi dữ liệu nhận được: {e}")),
    }
}

/// A batch handed over to the writer, in the link's order.
struct Handed {
    batch: u64,
    checkpoint: Option<Checkpoint>,
    state: Written,
}

enum Written {
    /// Handed to the writer, which answers when it is durable.
    Pending(Pending),
    /// Refused before it reached the writer.
    Failed(String),
    /// Not written: it only moves the checkpoint over positions with nothing new.
    Remembered,
}

/// Verifies a batch off the async threads, then hands it with its checkpoint to the writer in
/// the link's `order`, without waiting for it to be written.
async fn submit(
    repl: &Replication,
    peer: [u8; 32],
    origin: &str,
    envelopes: Vec<Vec<u8>>,
    checkpoint: Option<Checkpoint>,
    order: &WriteOrder,
) -> Result<Pending, String> {
    let owned = origin.to_owned();
    let (command, refused) = tokio::task::spawn_blocking(move || {
        super::import_command(&envelopes, owned, checkpoint.map(|c| (peer, c)))
    })
    .await
    .map_err(|e| e.to_string())?;
    for reason in refused {
        tracing::warn!(origin, reason, "received change does not verify");
    }
    repl.inner
        .writer
        .enqueue_replicated(command, order)
        .await
        .map_err(|e| format!("ghi dữ liệu nhận được: {e}"))
}

fn publish_stats(
    repl: &Replication,
    peer: [u8; 32],
    session: &Session,
    base: &mut motcua_sync::session::Stats,
) {
    let now = session.stats();
    let delta = |a: u64, b: u64| a.saturating_sub(b);
    repl.update(peer, |s| {
        s.changes_sent += delta(now.changes_sent, base.changes_sent);
        s.bytes_sent += delta(now.envelope_bytes_sent, base.envelope_bytes_sent);
        s.changes_received += delta(now.changes_received, base.changes_received);
        s.bytes_received += delta(now.envelope_bytes_received, base.envelope_bytes_received);
        s.rejects += delta(now.rejects_reported, base.rejects_reported);
        s.behind = now.behind();
    });
    *base = now;
}

async fn write_frame(send: &mut SendStream, bytes: &[u8]) -> Result<(), String> {
    let len = u32::try_from(bytes.len()).map_err(|_| "frame too large".to_owned())?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())
}

async fn read_frames(mut recv: RecvStream, out: mpsc::Sender<Result<Vec<u8>, String>>) {
    loop {
        let mut len = [0u8; 4];
        if let Err(e) = recv.read_exact(&mut len).await {
            let _ = out.send(Err(format!("nhận: {e}"))).await;
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MESSAGE_SIZE_BYTES_MAX {
            let _ = out
                .send(Err(format!(
                    "thông điệp {len} byte vượt giới hạn {MESSAGE_SIZE_BYTES_MAX}"
                )))
                .await;
            return;
        }
        let mut buf = vec![0u8; len];
        if let Err(e) = recv.read_exact(&mut buf).await {
            let _ = out.send(Err(format!("nhận: {e}"))).await;
            return;
        }
        if out.send(Ok(buf)).await.is_err() {
            return;
        }
    }
}
