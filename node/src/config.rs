//! The node's data directory: its config file, its key, and where the store lives.
//!
//! ```text
//! <data dir>/motcua.toml   config (unit, role, listen address, root key, peers later)
//! <data dir>/node.key      the node's Ed25519 secret key, hex, mode 0600
//! <data dir>/root.key      only when `init --new-root` made a root here: move it offline
//! <data dir>/motcua.redb   the store
//! <data dir>/http.addr     the address `serve` bound, written once listening
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use motcua_schema::ids::UnitCode;
use motcua_schema::trust::Role;
use serde::{Deserialize, Serialize};

/// Default HTTP listen address: loopback only, until an operator decides otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The unit this node serves.
    pub unit: UnitCode,
    /// The unit's name.
    pub unit_name: String,
    /// The node's role.
    pub role: Role,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// The province root public key, hex: the trust anchor.
    pub root_key: String,
    /// Replication settings.
    #[serde(default)]
    pub sync: SyncConfig,
    /// The address book: peers this node dials.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
}

/// Default UDP address the replication endpoint binds: every interface, a fixed port, so that a
/// province can be dialled at a known address.
pub const DEFAULT_SYNC_LISTEN: &str = "0.0.0.0:7300";

/// How this node replicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConfig {
    /// Whether replication runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// UDP address of the iroh endpoint.
    #[serde(default = "default_sync_listen")]
    pub listen: SocketAddr,
    /// A relay run by the province (`https://relay.example.gov.vn`), for nodes behind NAT that
    /// cannot be dialled directly. No public relay and no public discovery are ever used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_sync_listen() -> SocketAddr {
    DEFAULT_SYNC_LISTEN.parse().expect("valid default address")
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            enabled: true,
            listen: default_sync_listen(),
            relay_url: None,
        }
    }
}

/// One entry of the address book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// A name for people (`Trung tâm tỉnh`).
    pub name: String,
    /// The peer's node key, hex (its iroh endpoint id).
    pub node_key: String,
    /// Direct UDP addresses to dial (`203.0.113.5:7300`).
    #[serde(default)]
    pub addrs: Vec<SocketAddr>,
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Config file path.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("motcua.toml")
    }

    /// Node key path.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// Root key path (only on a node that created the root).
    pub fn root_key_path(&self) -> PathBuf {
        self.root.join("root.key")
    }

    /// Store path.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("motcua.redb")
    }

    /// Bound replication (UDP) addresses file, one per line.
    pub fn sync_addr_path(&self) -> PathBuf {
        self.root.join("sync.addr")
    }

    /// Bound HTTP address file.
    pub fn addr_path(&self) -> PathBuf {
        self.root.join("http.addr")
    }

    /// Reads the config.
    pub fn load_config(&self) -> Result<Config> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "reading config {} (run `motcua init` first?)",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    /// Writes the config.
    pub fn save_config(&self, config: &Config) -> Result<()> {
        let path = self.config_path();
        let text = toml::to_string_pretty(config).context("encoding config")?;
        fs::write(&path, text).with_context(|| format!("writing config {}", path.display()))
    }

    /// Reads the node key.
    pub fn load_key(&self) -> Result<SigningKey> {
        read_key(&self.key_path())
    }
}

/// The root public key from config text.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("a public key is 64 hex characters")?;
    VerifyingKey::from_bytes(&bytes).context("not a valid Ed25519 public key")
}

/// A fresh key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Writes a secret key as hex, readable only by its owner (mode 0600 on Unix). Refuses to
/// overwrite: losing a key is losing the node's identity.
pub fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key",
            path.display()
        );
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    file.write_all(hex::encode(key.to_bytes()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))
}

/// Reads a secret key written by [`write_key`].
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("key file {} is not 64 hex characters", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        // Why: the node key is its identity; other users must not read it and init must not lose it.
        let dir = std::env::temp_dir().join(format!("motcua-key-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let key = generate_key();
        write_key(&path, &key).unwrap();
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(write_key(&path, &generate_key()).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
