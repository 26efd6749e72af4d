//! Replication: this node's iroh endpoint, its links to peers, and the status of each.
//!
//! The protocol itself is `motcua_sync::Session` (sans-IO); this module is its driver. It
//! owns the network (iroh, no public relay, no public discovery: peers are dialled by node key
//! and direct address from the config's address book, or reach us), the clock, and the writes:
//! every batch a session hands over is verified off the writer thread and then applied through
//! the one apply pipeline, with the peer's checkpoint in the same durable transaction.
//!
//! - `source`: the store as the protocol reads it;
//! - `link`: one connection to one peer, running one session;
//! - `bundle`: the same changes written to and read from a file, for USB transfer.
//!
//! The node's iroh secret key is its signing key, so the peer identity the QUIC handshake proves
//! is the identity that signs changes; only keys enrolled and unrevoked in the trust registry
//! are served.

pub mod bundle;
mod link;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use iroh::endpoint::{QuicTransportConfig, presets};
use iroh::{Endpoint, EndpointAddr, RelayMap, RelayMode, RelayUrl, SecretKey};
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Registry, Role};
use motcua_sync::Scope;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{PeerConfig, SyncConfig, parse_public_key};
use crate::writer::{Shared, Writer};

/// The ALPN of the replication protocol; a peer speaking another gets no connection at all.
pub const ALPN: &[u8] = b"motcua/sync/1";
/// Longest wait for a dial to complete, in milliseconds.
pub const DIAL_TIMEOUT_MS: u64 = 10_000;
/// First wait before redialling a peer after a failure, in milliseconds.
pub const REDIAL_BACKOFF_MS_MIN: u64 = 500;
/// Longest wait between redials, in milliseconds.
pub const REDIAL_BACKOFF_MS_MAX: u64 = 60_000;
/// A connection that lasted at least this long resets the redial backoff. One that ends sooner
/// (a peer that refuses this node, a disk that keeps failing the import) counts as a failed
/// attempt: resetting on every connect redialled such a peer about once a second.
pub const CONNECTION_STABLE_MS: u64 = 30_000;
/// QUIC keep-alive interval, in milliseconds: a lost link shows as an idle timeout soon.
pub const KEEP_ALIVE_MS: u64 = 2_000;
/// QUIC idle timeout, in milliseconds: a link silent this long is considered lost.
pub const IDLE_TIMEOUT_MS: u64 = 8_000;
/// How often a connected session runs anti-entropy reconciliation, in milliseconds.
pub const ANTI_ENTROPY_INTERVAL_MS: u64 = 30 * 60 * 1000;

/// Shortest interval between durable writes of bookkeeping that carries no records (a
/// checkpoint moved over feed positions with nothing new for this node, the time of a
/// catch-up), in milliseconds. Losing such a write in a crash costs a re-announce of empty
/// positions or a slightly older "last synchronised" time, never a record.
pub const BOOKKEEPING_WRITE_INTERVAL_MS: u64 = 30 * 60 * 1000;

/// When a link writes its record-less bookkeeping durably: at most once per
/// [`BOOKKEEPING_WRITE_INTERVAL_MS`] each. The node's driver and the simulator's use the same
/// rule, so the simulator measures the node's write load.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bookkeeping {
    last_checkpoint_ms: Option<u64>,
    last_caught_up_ms: Option<u64>,
}

impl Bookkeeping {
    /// Whether an empty batch's checkpoint should be written now (records always are).
    pub fn checkpoint_due(&mut self, now_ms: u64) -> bool {
        Self::due(&mut self.last_checkpoint_ms, now_ms)
    }

    /// Whether a catch-up time should be written now.
    pub fn caught_up_due(&mut self, now_ms: u64) -> bool {
        Self::due(&mut self.last_caught_up_ms, now_ms)
    }

    fn due(last: &mut Option<u64>, now_ms: u64) -> bool {
        let due = last.is_none_or(|t| now_ms.saturating_sub(t) >= BOOKKEEPING_WRITE_INTERVAL_MS);
        if due {
            *last = Some(now_ms);
        }
        due
    }
}

/// How long a session may hear nothing before it pings its peer, in milliseconds. QUIC's
/// keep-alive ([`KEEP_ALIVE_MS`]) and idle timeout ([`IDLE_TIMEOUT_MS`]) already notice a lost
/// link within seconds; the session's own ping only guards against a peer whose connection
/// stays open while its process stops answering, so a few minutes is enough. (At 15 s it was
/// the bulk of a province's messages: one ping and pong per commune every 15 s.)
pub const SESSION_PING_INTERVAL_MS: u64 = 5 * 60 * 1000;

/// The settings of every replication session this node (or the simulator) runs;
/// `anti_entropy_interval_ms` is [`ANTI_ENTROPY_INTERVAL_MS`] in the node.
pub fn session_config(anti_entropy_interval_ms: Option<u64>) -> motcua_sync::SessionConfig {
    motcua_sync::SessionConfig {
        ping_interval_ms: SESSION_PING_INTERVAL_MS,
        anti_entropy_interval_ms,
        ..motcua_sync::SessionConfig::default()
    }
}

/// Where this node's store stands as a session opens: its store id and the feed head it
/// announces (the simulator's head is what its tracker has seen committed).
#[derive(Debug, Clone, Copy)]
pub struct FeedStart {
    /// The store id.
    pub store_id: [u8; 16],
    /// The feed head.
    pub feed_head: u64,
}

/// Opens a session with `peer` as every driver (the node's link, the simulator) must: from the
/// checkpoint this store keeps of the peer's feed, and reconciling at once when the store holds
/// changes pending their dependencies, which may lie behind that checkpoint (the history of a
/// dossier transferred here after the feed passed it).
pub fn start_session(
    store: &crate::store::Store,
    peer: &[u8; 32],
    start: FeedStart,
    own_scope: Scope,
    peer_scope: Scope,
    config: motcua_sync::SessionConfig,
    now_ms: u64,
) -> Result<motcua_sync::Session, crate::store::StoreError> {
    let saved = store.peer_state(peer)?;
    let local = motcua_sync::Local {
        store_id: start.store_id,
        feed_head: start.feed_head,
        checkpoint: saved.checkpoint.map(Into::into),
        scope: own_scope,
    };
    let mut session = motcua_sync::Session::new(config, local, peer_scope, now_ms);
    if store.has_pending()? {
        session.want_reconcile();
    }
    Ok(session)
}

/// Decodes and verifies a batch of envelopes received from `checkpoint`'s peer (or a bundle) as
/// every driver must before the writer sees it (parse, hash, signature, actor binding), and
/// makes the import command of the ones that verify. Returns it with the reason each other
/// envelope was refused. Verifying costs a curve operation per change: the node's link runs this
/// on the blocking pool.
pub fn import_command(
    envelopes: &[Vec<u8>],
    origin: String,
    checkpoint: Option<([u8; 32], motcua_sync::Checkpoint)>,
) -> (crate::writer::Command, Vec<&'static str>) {
    let mut changes = Vec::with_capacity(envelopes.len());
    let mut refused = Vec::new();
    for bytes in envelopes {
        match motcua_schema::signed::SignedChange::decode(bytes) {
            Ok(c) => changes.push(c),
            Err(e) => refused.push(e.reason()),
        }
    }
    let command = crate::writer::Command::Import {
        changes,
        invalid: refused.len() as u64,
        origin,
        checkpoint: checkpoint.map(|(peer, c)| (peer, c.into())),
    };
    (command, refused)
}

/// What the status pages and the API show about one peer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStatus {
    /// Node key, hex.
    pub node_key: String,
    /// Name from the address book, or the unit name from the registry.
    pub name: String,
    /// The peer's unit code, from its enrolment.
    pub unit: Option<String>,
    /// The peer's role, from its enrolment.
    pub role: Option<Role>,
    /// Addresses this node dials it at (empty: it dials us).
    pub addrs: Vec<SocketAddr>,
    /// Whether a session is running now.
    pub connected: bool,
    /// Whether the link is enabled (an operator or the demo may cut it).
    pub link_enabled: bool,
    /// When a connection was last established (this node's clock).
    pub last_connected_at: Option<Timestamp>,
    /// When the two last caught up with each other: the freshness of what this node holds
    /// of the peer's records.
    pub last_caught_up_at: Option<Timestamp>,
    /// Changes sent to it (all sessions since start-up).
    pub changes_sent: u64,
    /// Envelope bytes sent to it.
    pub bytes_sent: u64,
    /// Changes received from it.
    pub changes_received: u64,
    /// Envelope bytes received from it.
    pub bytes_received: u64,
    /// Received changes refused by verification or authorisation.
    pub rejects: u64,
    /// How many positions of its feed this node has not yet durably applied, as last known.
    pub behind: u64,
    /// How far the peer holds this node's feed, as it said in its last hello and this node
    /// wrote durably: a `bundle export` for it starts after this position. `None`: unknown, or
    /// the peer holds no valid position of this store.
    pub acknowledged_upto: Option<u64>,
    /// The last error, for people.
    pub last_error: Option<String>,
}

/// The replication side of a running node.
#[derive(Clone)]
pub struct Replication {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared,
    writer: Writer,
    endpoint: Endpoint,
    statuses: Mutex<BTreeMap<[u8; 32], PeerStatus>>,
    /// The session running with each peer (one per peer).
    active: Mutex<HashMap<[u8; 32], Active>>,
    /// Numbers the sessions, so that one ending removes only its own entry.
    sessions_started: AtomicU64,
    /// Per-peer link switches; `false` cuts the link (the session ends, no redial, incoming
    /// connections from the peer are refused) until switched back on.
    links: Mutex<BTreeMap<[u8; 32], watch::Sender<bool>>>,
    started: std::time::Instant,
}

/// The session running with a peer, as others see it.
struct Active {
    id: u64,
    /// Whether this node dialled it.
    dialer: bool,
    /// Tells the session to end: a newer connection from the same peer replaces it.
    superseded: Arc<tokio::sync::Notify>,
    /// Closed when the session has ended.
    ended: watch::Receiver<()>,
}

/// A session's hold on its entry in `Inner::active`. Dropping it removes the entry, then tells
/// a connection waiting to replace the session that it ended.
struct Claim {
    repl: Replication,
    key: [u8; 32],
    id: u64,
    superseded: Arc<tokio::sync::Notify>,
    _done: watch::Sender<()>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut active = self.repl.inner.active.lock().expect("active lock");
        if active.get(&self.key).is_some_and(|a| a.id == self.id) {
            active.remove(&self.key);
        }
    }
}

/// The driver's time base: this process's monotonic clock (the driver, not the protocol, reads
/// clocks).
#[allow(clippy::disallowed_methods)]
fn monotonic_start() -> std::time::Instant {
    std::time::Instant::now()
}

/// The receive scope of a node with this role and unit.
pub fn scope_of(role: Role, unit: &str) -> Scope {
    match role {
        Role::Province | Role::Auditor => Scope::All,
        Role::Commune => Scope::Unit {
            unit: unit.to_owned(),
        },
    }
}

fn key_bytes(hex_key: &str) -> Result<[u8; 32]> {
    Ok(*parse_public_key(hex_key)?.as_bytes())
}

impl Replication {
    /// Binds the endpoint, starts accepting, and starts dialling every peer of the address book.
    pub async fn start(
        shared: Shared,
        writer: Writer,
        config: &SyncConfig,
        peers: &[PeerConfig],
    ) -> Result<Replication> {
        let secret = SecretKey::from_bytes(&shared.identity.key.to_bytes());
        let transport = QuicTransportConfig::builder()
            .keep_alive_interval(Duration::from_millis(KEEP_ALIVE_MS))
            .max_idle_timeout(Some(
                Duration::from_millis(IDLE_TIMEOUT_MS)
                    .try_into()
                    .context("idle timeout")?,
            ))
            .build();
        let relay = match &config.relay_url {
            Some(url) => {
                let url: RelayUrl = url.parse().with_context(|| format!("relay url {url}"))?;
                RelayMode::Custom(RelayMap::from(url))
            }
            None => RelayMode::Disabled,
        };
        // `Minimal`: no public relays, no public address lookup; only what is configured here.
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(secret)
            .alpns(vec![ALPN.to_vec()])
            .relay_mode(relay)
            .transport_config(transport)
            .clear_ip_transports()
            .bind_addr(config.listen)
            .with_context(|| format!("sync address {}", config.listen))?
            .bind()
            .await
            .with_context(|| format!("binding the replication endpoint on {}", config.listen))?;
        let inner = Arc::new(Inner {
            shared,
            writer,
            endpoint,
            statuses: Mutex::new(BTreeMap::new()),
            active: Mutex::new(HashMap::new()),
            sessions_started: AtomicU64::new(0),
            links: Mutex::new(BTreeMap::new()),
            started: monotonic_start(),
        });
        let repl = Replication { inner };
        for (key, state) in repl
            .inner
            .shared
            .store
            .peer_states()
            .context("reading peer states")?
        {
            let mut statuses = repl.inner.statuses.lock().expect("status lock");
            let s = statuses.entry(key).or_default();
            s.node_key = hex::encode(key);
            s.link_enabled = true;
            s.last_caught_up_at = state.last_caught_up_at;
            s.last_connected_at = state.last_connected_at;
            s.acknowledged_upto = state.acked.map(|m| m.upto);
        }
        for peer in peers {
            let key = key_bytes(&peer.node_key)
                .with_context(|| format!("peer {} node_key", peer.name))?;
            repl.update(key, |s| {
                s.name = peer.name.clone();
                s.addrs = peer.addrs.clone();
            });
            if !peer.addrs.is_empty() {
                let r = repl.clone();
                let addr = EndpointAddr::from_parts(
                    iroh::PublicKey::from_bytes(&key).context("peer key")?,
                    peer.addrs.iter().map(|a| iroh::TransportAddr::Ip(*a)),
                );
                tokio::spawn(async move { r.dial_loop(key, addr).await });
            }
        }
        let r = repl.clone();
        tokio::spawn(async move { r.accept_loop().await });
        Ok(repl)
    }

    /// The UDP addresses the endpoint is bound to.
    pub fn bound_addrs(&self) -> Vec<SocketAddr> {
        self.inner.endpoint.bound_sockets()
    }

    /// Every known peer's status, with unit and role from the registry.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        let registry = self.inner.shared.registry.read().expect("registry lock");
        let statuses = self.inner.statuses.lock().expect("status lock");
        statuses
            .iter()
            .map(|(key, s)| {
                let mut s = s.clone();
                if let Some(standing) = registry.standing(key) {
                    s.unit = Some(standing.unit.to_string());
                    s.role = Some(standing.role);
                    if s.name.is_empty() {
                        s.name = standing.unit_name.clone();
                    }
                }
                s
            })
            .collect()
    }

    /// Cuts (`false`) or restores (`true`) the link to a peer.
    pub fn set_link(&self, key: [u8; 32], enabled: bool) {
        self.link_switch(key).send_replace(enabled);
        self.update(key, |s| s.link_enabled = enabled);
    }

    fn link_switch(&self, key: [u8; 32]) -> watch::Sender<bool> {
        let mut links = self.inner.links.lock().expect("links lock");
        links
            .entry(key)
            .or_insert_with(|| watch::channel(true).0)
            .clone()
    }

    fn update(&self, key: [u8; 32], f: impl FnOnce(&mut PeerStatus)) {
        let mut statuses = self.inner.statuses.lock().expect("status lock");
        let s = statuses.entry(key).or_insert_with(|| PeerStatus {
            node_key: hex::encode(key),
            link_enabled: true,
            ..PeerStatus::default()
        });
        f(s);
    }

    /// Milliseconds on this process's monotonic clock: the sessions' time base.
    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// The receive scope of `key` if it may replicate now, from its enrolment.
    fn admitted(&self, key: &[u8; 32]) -> Result<Scope, String> {
        let registry: std::sync::RwLockReadGuard<'_, Registry> =
            self.inner.shared.registry.read().expect("registry lock");
        let standing = registry
            .check_key(key, crate::writer::clock_now())
            .map_err(|e| e.to_string())?;
        Ok(scope_of(standing.role, standing.unit.as_str()))
    }

    async fn dial_loop(self, key: [u8; 32], addr: EndpointAddr) {
        let mut switch = self.link_switch(key).subscribe();
        let mut backoff_ms = REDIAL_BACKOFF_MS_MIN;
        loop {
            if !*switch.borrow_and_update() {
                if switch.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let attempt = tokio::time::timeout(
                Duration::from_millis(DIAL_TIMEOUT_MS),
                self.inner.endpoint.connect(addr.clone(), ALPN),
            )
            .await;
            match attempt {
                Ok(Ok(conn)) => {
                    let started = self.now_ms();
                    self.run(conn, key, true).await;
                    if self.now_ms().saturating_sub(started) >= CONNECTION_STABLE_MS {
                        backoff_ms = REDIAL_BACKOFF_MS_MIN;
                    }
                }
                Ok(Err(e)) => {
                    tracing::info!(peer = %hex::encode(&key[..4]), error = %e, "dial failed");
                    self.update(key, |s| {
                        s.last_error = Some(format!("không kết nối được: {e}"))
                    })
                }
                Err(_) => {
                    tracing::info!(peer = %hex::encode(&key[..4]), DIAL_TIMEOUT_MS, "dial timed out");
                    self.update(key, |s| {
                        s.last_error =
                            Some(format!("không kết nối được trong {DIAL_TIMEOUT_MS} ms"))
                    })
                }
            }
            // Exponential backoff with jitter, so that a hundred communes whose province comes
            // back do not all redial in the same instant.
            let mut jitter = [0u8; 2];
            rand::fill(&mut jitter);
            let wait =
                backoff_ms / 2 + u64::from(u16::from_le_bytes(jitter)) % (backoff_ms / 2 + 1);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = switch.changed() => {}
            }
            backoff_ms = (backoff_ms * 2).min(REDIAL_BACKOFF_MS_MAX);
        }
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let r = self.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "incoming replication connection failed");
                        return;
                    }
                };
                let key = *conn.remote_id().as_bytes();
                if !*r.link_switch(key).borrow() {
                    conn.close(1u32.into(), b"link cut");
                    return;
                }
                r.run(conn, key, false).await;
            });
        }
    }

    /// Makes this connection the one session with `key`, or says it is a duplicate (`None`).
    ///
    /// A peer that dials this node again while the session it dialled before still runs here
    /// has lost that session (it crashed and restarted, or its side timed out first): the new
    /// connection replaces the old one at once, instead of being refused until this side's
    /// idle timeout notices. A session this node dialled is kept: when both ends dial each
    /// other at once, each keeps the session it dialled and refuses the other's, and both
    /// redial after a random wait.
    async fn claim(&self, key: [u8; 32], dialer: bool) -> Option<Claim> {
        let id = self.inner.sessions_started.fetch_add(1, Ordering::Relaxed);
        loop {
            let mut ended = {
                let mut active = self.inner.active.lock().expect("active lock");
                match active.get(&key) {
                    None => {
                        let (done, ended) = watch::channel(());
                        let superseded = Arc::new(tokio::sync::Notify::new());
                        active.insert(
                            key,
                            Active {
                                id,
                                dialer,
                                superseded: superseded.clone(),
                                ended,
                            },
                        );
                        return Some(Claim {
                            repl: self.clone(),
                            key,
                            id,
                            superseded,
                            _done: done,
                        });
                    }
                    Some(old) if !dialer && !old.dialer => {
                        old.superseded.notify_one();
                        old.ended.clone()
                    }
                    Some(_) => return None,
                }
            };
            // The old session writes what it was handed, then ends (its `Claim` drops).
            tracing::info!(peer = %hex::encode(&key[..4]), "the peer dialled again: replacing its old session");
            while ended.changed().await.is_ok() {}
        }
    }

    async fn run(&self, conn: iroh::endpoint::Connection, key: [u8; 32], dialer: bool) {
        let scope = match self.admitted(&key) {
            Ok(scope) => scope,
            Err(reason) => {
                tracing::warn!(peer = %hex::encode(key), %reason, "refusing replication peer");
                self.update(key, |s| s.last_error = Some(format!("từ chối: {reason}")));
                conn.close(2u32.into(), b"not enrolled");
                return;
            }
        };
        let Some(me) = self.claim(key, dialer).await else {
            // One session per peer: the other connection is already replicating.
            conn.close(3u32.into(), b"duplicate");
            return;
        };
        tracing::info!(peer = %hex::encode(&key[..4]), dialer, "replication link up");
        self.update(key, |s| {
            s.connected = true;
            s.last_error = None;
        });
        let result = link::run(self, conn, key, scope, dialer, &me.superseded).await;
        self.update(key, |s| {
            s.connected = false;
            if let Err(e) = &result {
                s.last_error = Some(e.clone());
            }
        });
        // Only now may a connection replacing this session start: its status comes after.
        drop(me);
        if let Err(e) = result {
            tracing::info!(peer = %hex::encode(&key[..4]), error = %e, "replication link ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use motcua_schema::trust::Role;

    use super::*;
    use crate::test_nodes::{node, temp};

    #[test]
    fn a_peer_that_dials_again_replaces_the_session_it_dialled_before() {
        // Why: a commune office that loses power and restarts dials the province at once, while
        // the province still runs the session of its old connection until the idle timeout.
        // Refused as a duplicate until then, and its redial backoff growing with each refusal,
        // it waited far longer than the crash deserved.
        let dir = temp("claim");
        let node = node(
            &dir.0,
            "000.01.01.H99",
            Role::Commune,
            crate::setup::Trust::NewRoot,
            None,
        );
        let config = SyncConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..SyncConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let repl = Replication::start(node.shared.clone(), node.writer.clone(), &config, &[])
                .await
                .unwrap();
            let peer = [7; 32];
            let old = repl.claim(peer, false).await.unwrap();
            assert!(
                repl.claim(peer, true).await.is_none(),
                "one session per peer"
            );
            let r = repl.clone();
            let newer = tokio::spawn(async move { r.claim(peer, false).await });
            // The old session is told to end, and the new one waits until it has.
            old.superseded.notified().await;
            assert!(!newer.is_finished());
            drop(old);
            let newer = newer.await.unwrap().expect("the new connection takes over");
            drop(newer);
            // A session this node dialled is kept: both ends dialling each other at once must
            // not each end the session the other keeps.
            let dialled = repl.claim(peer, true).await.unwrap();
            assert!(repl.claim(peer, false).await.is_none());
            drop(dialled);
            assert!(repl.claim(peer, false).await.is_some());
        });
    }
}
