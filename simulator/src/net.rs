//! The simulated network: one link per node that replicates with the province, each carrying at
//! most one connection, each connection a reliable ordered stream in each direction.
//!
//! Why this shape: the node replicates over QUIC (iroh), one bidirectional stream per peer, so
//! what a session sees is an ordered, reliable byte stream that can die. Packet loss, duplication
//! and reordering happen below it and reach the session only as delay (a retransmission) or as
//! the death of the connection (noticed after the QUIC idle timeout). So a message here is
//! delayed by serialisation (bandwidth), latency, jitter and, when one of its packets is lost, a
//! retransmission timeout, but never overtakes an earlier one. Duplication and reordering that
//! the application does see come from elsewhere and are simulated there: USB bundles carried
//! twice or out of order, and Byzantine replays.

use motcua_sync::Session;

use crate::rng::Rng;

/// Frame header of a message on the stream (the node's 4-byte length prefix), in bytes.
pub const FRAME_HEADER_SIZE_BYTES: u64 = 4;
/// Smallest retransmission timeout, ms.
pub const RETRANSMIT_TIMEOUT_MS_MIN: u64 = 200;

/// Which end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    /// The province's end.
    Province,
    /// The other end (a commune, the auditor, a Byzantine node).
    Remote,
}

impl End {
    /// The other end.
    pub fn other(self) -> End {
        match self {
            End::Province => End::Remote,
            End::Remote => End::Province,
        }
    }

    /// Index for per-direction arrays: traffic sent *by* this end.
    pub fn index(self) -> usize {
        match self {
            End::Province => 0,
            End::Remote => 1,
        }
    }
}

/// Who is at the remote end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// An honest node, by index.
    Honest(usize),
    /// A Byzantine node, by index.
    Byz(usize),
}

/// One open connection.
pub struct Conn {
    /// Generation of the link this connection belongs to.
    pub generation: u64,
    /// Whether messages still get through (false once lost; the ends notice later).
    pub alive: bool,
    /// The province's session.
    pub province: Option<Session>,
    /// The remote's session.
    pub remote: Option<Session>,
    /// When each direction's sender is free again (serialisation), ms.
    pub free_at: [u64; 2],
    /// Arrival of the last message each way (the stream stays in order), ms.
    pub last_arrival: [u64; 2],
    /// Timer armed for each end, ms.
    pub timer: [Option<u64>; 2],
    /// Each end's record-less bookkeeping writes, paced as the node paces them.
    pub bookkeeping: [motcua_node::replication::Bookkeeping; 2],
    /// Each end's checkpoint moved by empty batches and not yet written.
    pub unsaved: [Option<motcua_sync::Checkpoint>; 2],
    /// Each end's process start count when the connection was made: what a process kept in
    /// memory dies with it, so a later process never writes it.
    pub starts: [u64; 2],
}

impl Conn {
    /// The session at `end`.
    pub fn session(&mut self, end: End) -> &mut Option<Session> {
        match end {
            End::Province => &mut self.province,
            End::Remote => &mut self.remote,
        }
    }
}

/// Daily window in which a link is up.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Local hour it comes up.
    pub from_hour: u32,
    /// Hours it stays up.
    pub hours: u32,
}

impl Window {
    /// Whether local hour `h` (0..24) is inside the window.
    pub fn contains(&self, h: u32) -> bool {
        (h + 24 - self.from_hour) % 24 < self.hours
    }
}

/// A link between the province and one remote node.
pub struct Link {
    /// Who is at the other end.
    pub remote: Remote,
    /// Whether there is any network at all (false: bundles only).
    pub has_network: bool,
    /// Daily window, if the link is not always up.
    pub window: Option<Window>,
    /// Partitions currently covering the link.
    pub partitions: u32,
    /// Set once the network heals for good.
    pub forced_up: bool,
    /// Whether the link is up now (cached from the above).
    pub up: bool,
    /// The current connection.
    pub conn: Option<Conn>,
    /// Bumped at each new connection; events of older connections are ignored.
    pub generation: u64,
    /// Current redial backoff, ms.
    pub backoff_ms: u64,
    /// When the current connection was established, ms.
    pub established_at: u64,
    /// Whether a dial is scheduled or in progress.
    pub dialing: bool,
    /// Bytes sent by the province, and by the remote.
    pub bytes: [u64; 2],
    /// Messages sent by the province, and by the remote.
    pub messages: [u64; 2],
    /// Connections established.
    pub connections: u64,
}

impl Link {
    /// Recomputes `up` for local hour `hour`; returns whether it changed.
    pub fn refresh(&mut self, hour: u32) -> bool {
        let up = self.has_network
            && (self.forced_up
                || (self.partitions == 0 && self.window.is_none_or(|w| w.contains(hour))));
        let changed = up != self.up;
        self.up = up;
        changed
    }
}

/// Link conditions.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Extra random delay, ms.
    pub jitter_ms: u64,
    /// Bandwidth, kbit/s (= bits per ms).
    pub bandwidth_kbps: u64,
    /// Per-message retransmission probability.
    pub loss: f64,
    /// Per-message connection death probability.
    pub drop: f64,
}

/// What happens to a message put on a connection.
pub enum Fate {
    /// It arrives at this instant.
    Arrives(u64),
    /// The connection died with it.
    Dies,
}

impl Conditions {
    /// Schedules a message of `len` bytes sent by `from` at `now` on `conn`.
    pub fn send(&self, conn: &mut Conn, from: End, len: u64, now: u64, rng: &mut Rng) -> Fate {
        if rng.chance(self.drop) {
            return Fate::Dies;
        }
        let i = from.index();
        let bits = (len + FRAME_HEADER_SIZE_BYTES) * 8;
        let serialise_ms = bits.div_ceil(self.bandwidth_kbps.max(1));
        let depart = now.max(conn.free_at[i]);
        conn.free_at[i] = depart + serialise_ms;
        let mut arrival = conn.free_at[i] + self.latency_ms + rng.below(self.jitter_ms + 1);
        if rng.chance(self.loss) {
            arrival += (4 * self.latency_ms).max(RETRANSMIT_TIMEOUT_MS_MIN);
        }
        let arrival = arrival.max(conn.last_arrival[i]);
        conn.last_arrival[i] = arrival;
        Fate::Arrives(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_on_one_stream_never_overtake_each_other() {
        // Why: a QUIC stream is ordered; the session relies on it.
        let c = Conditions {
            latency_ms: 50,
            jitter_ms: 200,
            bandwidth_kbps: 64,
            loss: 0.3,
            drop: 0.0,
        };
        let mut conn = Conn {
            generation: 1,
            alive: true,
            province: None,
            remote: None,
            free_at: [0; 2],
            last_arrival: [0; 2],
            timer: [None; 2],
            bookkeeping: Default::default(),
            unsaved: [None; 2],
            starts: [0; 2],
        };
        let mut rng = Rng::new(3);
        let mut last = 0;
        for i in 0..1000 {
            match c.send(&mut conn, End::Remote, 100 + i % 700, i * 3, &mut rng) {
                Fate::Arrives(at) => {
                    assert!(at >= last);
                    assert!(at >= i * 3 + 50);
                    last = at;
                }
                Fate::Dies => unreachable!("drop is zero"),
            }
        }
    }

    #[test]
    fn daily_windows_wrap_around_midnight() {
        // Why: rural links are often up in the evening and overnight.
        let w = Window {
            from_hour: 20,
            hours: 8,
        };
        assert!(w.contains(20) && w.contains(23) && w.contains(0) && w.contains(3));
        assert!(!w.contains(4) && !w.contains(19) && !w.contains(12));
    }
}
