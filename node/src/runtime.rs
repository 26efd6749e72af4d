//! A running node: opening its data directory and serving HTTP.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use motcua_schema::signed::actor_for;
use motcua_schema::trust::Registry;

use crate::api::{AppState, router};
use crate::auth::Auth;
use crate::commands::Identity;
use crate::config::{Config, DataDir, parse_public_key};
use crate::reference::Reference;
use crate::replication::Replication;
use crate::store::Store;
use crate::writer::{Shared, Writer};

/// An open node: its store, registry, reference data and writer.
pub struct Node {
    /// Where it lives.
    pub dir: DataDir,
    /// Its config.
    pub config: Config,
    /// Shared state.
    pub shared: Shared,
    /// The writer.
    pub writer: Writer,
    /// Accounts and sessions.
    pub auth: Arc<Auth>,
    /// Replication, once started by `serve`.
    pub replication: Option<Replication>,
}

impl Node {
    /// Opens the node in `dir`. Reads only the config, the key, the registry records and the
    /// reference documents: start-up never loads dossier documents.
    pub fn open(dir: &DataDir) -> Result<Node> {
        let config = dir.load_config()?;
        let key = dir.load_key()?;
        let root = parse_public_key(&config.root_key).context("root_key in config")?;
        let store_path = dir.store_path();
        let store = Arc::new(
            Store::open(&store_path)
                .with_context(|| format!("opening store at {}", store_path.display()))?,
        );
        let mut registry = Registry::new(root);
        for record in store.trust_records().context("reading trust records")? {
            if let Err(e) = registry.insert(record) {
                tracing::warn!(error = %e, "stored registry record no longer verifies");
            }
        }
        let reference = Reference::load(&store).context("loading catalog and calendar")?;
        let feed_head = store.feed_head().context("reading the feed head")?;
        // A fresh epoch per process: a node restored from a backup can never reuse an
        // (actor, seq) pair, because it never writes under an old actor again.
        let mut epoch = [0u8; 8];
        rand::fill(&mut epoch);
        let identity = Identity {
            actor: actor_for(&key.verifying_key(), epoch),
            key,
            unit: config.unit.clone(),
            role: config.role,
        };
        let shared = Shared {
            store,
            registry: Arc::new(RwLock::new(registry)),
            reference: Arc::new(RwLock::new(reference)),
            identity: Arc::new(identity),
            feed: Arc::new(tokio::sync::watch::channel(feed_head).0),
            store_epoch: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let writer = Writer::start(shared.clone());
        Ok(Node {
            dir: dir.clone(),
            config,
            shared,
            writer,
            auth: Arc::new(Auth::new()),
            replication: None,
        })
    }

    /// Starts replication if the config enables it, and writes the bound UDP address to
    /// `sync.addr` (useful when the config asks for port 0, as tests do).
    pub async fn start_replication(&mut self) -> Result<()> {
        if !self.config.sync.enabled || self.replication.is_some() {
            return Ok(());
        }
        let repl = Replication::start(
            self.shared.clone(),
            self.writer.clone(),
            &self.config.sync,
            &self.config.peers,
        )
        .await?;
        let addrs: Vec<String> = repl.bound_addrs().iter().map(|a| a.to_string()).collect();
        let path = self.dir.sync_addr_path();
        std::fs::write(&path, addrs.join("\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(addrs = ?addrs, "replication endpoint bound");
        self.replication = Some(repl);
        Ok(())
    }

    /// The HTTP application of this node.
    pub fn app(&self) -> axum::Router {
        let state = AppState {
            shared: self.shared.clone(),
            writer: self.writer.clone(),
            auth: self.auth.clone(),
            unit_name: self.config.unit_name.clone().into(),
            replication: self.replication.clone(),
        };
        router().merge(crate::web::routes()).with_state(state)
    }

    /// Binds `listen` (or the configured address) and serves until the process is stopped.
    /// Prints `motcua: listening on http://ADDR` once bound and writes it to `http.addr`.
    pub async fn serve(mut self, listen: Option<SocketAddr>) -> Result<()> {
        self.start_replication().await?;
        tokio::spawn(crate::audit::log::checkpoint_loop(self.writer.clone()));
        let listen = listen.unwrap_or(self.config.listen);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("reading bound address")?;
        let addr_path = self.dir.addr_path();
        std::fs::write(&addr_path, addr.to_string())
            .with_context(|| format!("writing {}", addr_path.display()))?;
        println!("motcua: listening on http://{addr}");
        tracing::info!(%addr, unit = %self.config.unit, role = self.config.role.name(), "serving");
        axum::serve(listener, self.app())
            .with_graceful_shutdown(shutdown())
            .await
            .context("serving HTTP")
    }
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
}
