//! Setting a node up: `motcua init`, the province root key, enrolment and revocation records.
//!
//! The root key signs records offline; a node receives the records it needs (its own enrolment
//! and the province's) as a JSON file and imports them. `init --new-root` does all of it on one
//! machine for a first province node or a test, and leaves `root.key` to be moved offline.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use motcua_schema::ids::UnitCode;
use motcua_schema::sample;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{RecordBody, Role, SignedRecord};

use crate::auth::StaffRole;
use crate::config::{Config, DataDir, SyncConfig, generate_key, parse_public_key, write_key};
use crate::runtime::Node;
use crate::writer::{Command, clock_now};

/// How far back an enrolment made by `init` is valid, in milliseconds: tolerates a node clock
/// that runs a few days behind the operator's.
pub const ENROLMENT_BACKDATE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where a new node's trust comes from.
// Made once per `init`; boxing the key would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum Trust {
    /// Create a new province root here and enrol this node with it.
    NewRoot,
    /// Use an existing root's public key and the records given.
    Existing {
        /// The root public key.
        root: VerifyingKey,
        /// Records to import (at least this node's enrolment).
        records: Vec<SignedRecord>,
    },
}

/// What `init` needs.
pub struct InitOptions {
    /// The data directory.
    pub dir: DataDir,
    /// The unit.
    pub unit: UnitCode,
    /// The unit's name.
    pub unit_name: String,
    /// The role.
    pub role: Role,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Trust source.
    pub trust: Trust,
    /// The `admin` account's password.
    pub admin_password: String,
    /// The node key to use (a fresh one when `None`).
    pub key: Option<SigningKey>,
    /// Replication settings.
    pub sync: SyncConfig,
}

/// An enrolment record for `node`, signed by `root`.
pub fn enrolment(
    root: &SigningKey,
    node: &VerifyingKey,
    unit: &UnitCode,
    unit_name: &str,
    role: Role,
    valid_from: Timestamp,
    now: Timestamp,
) -> SignedRecord {
    SignedRecord::sign(
        &RecordBody::Enrolment {
            node_key: hex::encode(node.as_bytes()),
            unit: unit.clone(),
            unit_name: unit_name.to_owned(),
            role,
            valid_from,
            valid_until: None,
            issued_at: now,
        },
        root,
    )
}

/// A revocation record, signed by `root`.
pub fn revocation(
    root: &SigningKey,
    node: &VerifyingKey,
    revoked_at: Timestamp,
    reason: &str,
    now: Timestamp,
) -> SignedRecord {
    SignedRecord::sign(
        &RecordBody::Revocation {
            node_key: hex::encode(node.as_bytes()),
            revoked_at,
            reason: reason.to_owned(),
            issued_at: now,
        },
        root,
    )
}

/// Reads a JSON file of records (an array, or one record).
pub fn read_records(path: &Path) -> Result<Vec<SignedRecord>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading records {}", path.display()))?;
    if let Ok(list) = serde_json::from_str::<Vec<SignedRecord>>(&text) {
        return Ok(list);
    }
    let one: SignedRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a registry record file", path.display()))?;
    Ok(vec![one])
}

/// Creates a node's data directory and returns the node, open.
pub fn init(opts: InitOptions) -> Result<Node> {
    let dir = &opts.dir;
    if dir.config_path().exists() {
        bail!("{} is already initialised", dir.root().display());
    }
    std::fs::create_dir_all(dir.root())
        .with_context(|| format!("creating {}", dir.root().display()))?;
    let key = opts.key.unwrap_or_else(generate_key);
    write_key(&dir.key_path(), &key)?;
    let now = clock_now();
    let (root_pub, records) = match opts.trust {
        Trust::NewRoot => {
            let root = generate_key();
            write_key(&dir.root_key_path(), &root)?;
            let me = enrolment(
                &root,
                &key.verifying_key(),
                &opts.unit,
                &opts.unit_name,
                opts.role,
                now.plus_millis(-ENROLMENT_BACKDATE_MS),
                now,
            );
            (root.verifying_key(), vec![me])
        }
        Trust::Existing { root, records } => (root, records),
    };
    dir.save_config(&Config {
        unit: opts.unit.clone(),
        unit_name: opts.unit_name.clone(),
        role: opts.role,
        listen: opts.listen,
        root_key: hex::encode(root_pub.as_bytes()),
        sync: opts.sync.clone(),
        peers: Vec::new(),
    })?;
    let node = Node::open(dir)?;
    import_records(&node, records)?;
    node.auth
        .add_user(
            node.shared.store.db(),
            "admin",
            &opts.admin_password,
            "Quản trị hệ thống",
            StaffRole::Admin,
        )
        .context("creating the admin account")?;
    Ok(node)
}

/// Imports root-signed records (and publishes them in the registry document on the province).
pub fn import_records(node: &Node, records: Vec<SignedRecord>) -> Result<()> {
    let root = parse_public_key(&node.config.root_key)?;
    for r in &records {
        r.verify(&root)
            .context("a record is not signed by this province's root key")?;
    }
    node.writer
        .submit_blocking(Command::AddRecords(records), None)
        .context("storing registry records")?;
    // A province publishes the sample catalog and calendar as its first versions as soon as it
    // can sign (its own enrolment may arrive with `init` or later with `trust-import`).
    let enrolled = {
        let registry = node.shared.registry.read().expect("registry lock");
        registry
            .check_key(
                node.shared.identity.key.verifying_key().as_bytes(),
                clock_now(),
            )
            .is_ok()
    };
    if node.config.role == Role::Province
        && enrolled
        && node
            .shared
            .store
            .load_doc(&motcua_schema::ids::DocId::Catalog)?
            .is_none()
    {
        publish_sample_reference(node)?;
    }
    Ok(())
}

/// Writes the embedded sample catalog and calendar as the province's first versions.
pub fn publish_sample_reference(node: &Node) -> Result<()> {
    let catalog = sample::sample_catalog();
    let calendar = sample::sample_calendar();
    node.writer
        .submit_blocking(
            Command::PutReference {
                kind: "catalog",
                version: catalog.version,
                json: serde_json::to_string(&catalog)?,
            },
            None,
        )
        .context("publishing the sample catalog")?;
    let version = calendar
        .versions
        .iter()
        .map(|v| v.version)
        .max()
        .unwrap_or(1);
    node.writer
        .submit_blocking(
            Command::PutReference {
                kind: "calendar",
                version,
                json: serde_json::to_string(&calendar)?,
            },
            None,
        )
        .context("publishing the sample calendar")?;
    Ok(())
}
