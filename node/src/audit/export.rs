//! `motcua audit export`: writes a node's records as an audit archive (format in
//! `docs/audit-format.md`, code in `motcua_schema::audit::archive`).
//!
//! The export first seals the log (signs a checkpoint covering every stored change, as the
//! serving node does every hour), then reads one consistent snapshot: the changes the filters
//! select, exactly as stored and signed, with the range proof that places them in the log; every
//! checkpoint of this node's log; the peers' checkpoints it witnessed; the registry; its fork
//! proofs and rejects. It streams the archive to `<out>.partial` and renames it when complete.
//!
//! Filters select whole documents: a document is exported with all its changes when it passes
//! the unit and kind filters and, with a period, when one of its changes was made in it (so a
//! dossier's history is never cut in half). Province-wide documents (catalog, calendar,
//! registry) pass a unit filter only when no unit is named.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use motcua_schema::audit::archive::{
    ArchiveWriter, Exporter, Filter, LogSection, Manifest, ManifestLog, ProofEntryJson,
    RegistrySection, WitnessSection, WriteError, b64,
};
use motcua_schema::audit::change::{parse_change, parse_envelope};
use motcua_schema::audit::merkle::empty_root;
use motcua_schema::audit::note::Checkpoint;
use motcua_schema::ids::DocId;
use motcua_schema::timestamp::Timestamp;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use time::Date;

use crate::commands::CommandError;
use crate::runtime::Node;
use crate::store::tables::{CHANGES, FEED, FORKS, IDX_TRANSFER, REJECTS};
use crate::store::{StoreError, corrupt};
use crate::writer::{Command, clock_now};

/// A kind of document, as the `--kind` filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `dossier/<code>`.
    Dossier,
    /// `ratings/<unit>/<day>`.
    Ratings,
    /// `catalog`.
    Catalog,
    /// `calendar`.
    Calendar,
    /// `registry`.
    Registry,
    /// `log/<unit>/<day>`: published checkpoints.
    Log,
}

impl Kind {
    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dossier => "dossier",
            Kind::Ratings => "ratings",
            Kind::Catalog => "catalog",
            Kind::Calendar => "calendar",
            Kind::Registry => "registry",
            Kind::Log => "log",
        }
    }

    fn of(doc: &DocId) -> Kind {
        match doc {
            DocId::Dossier(_) => Kind::Dossier,
            DocId::Ratings(..) => Kind::Ratings,
            DocId::Log(..) => Kind::Log,
            DocId::Catalog => Kind::Catalog,
            DocId::Calendar => Kind::Calendar,
            DocId::Registry => Kind::Registry,
        }
    }
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only these units' documents (empty: all).
    pub units: Vec<String>,
    /// First local day.
    pub from: Option<Date>,
    /// Last local day (inclusive).
    pub to: Option<Date>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<Kind>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Changes written.
    pub changes: u64,
    /// Log size they are proven against.
    pub log_size: u64,
    /// Checkpoints of this node's log.
    pub checkpoints: usize,
    /// Witnessed checkpoints.
    pub witnessed: usize,
    /// Archive size in bytes.
    pub bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing the log failed.
    #[error("sealing the audit log: {0}")]
    Seal(#[from] CommandError),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The archive writer refused (a bug).
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl From<redb::Error> for ExportError {
    fn from(e: redb::Error) -> Self {
        ExportError::Store(e.into())
    }
}

macro_rules! redb_into_export {
    ($($t:ty),*) => {$(
        impl From<$t> for ExportError {
            fn from(e: $t) -> Self { ExportError::Store(StoreError::from(redb::Error::from(e))) }
        }
    )*};
}
redb_into_export!(redb::TransactionError, redb::TableError, redb::StorageError);

/// Exports `node`'s records to `out`. The node must not be serving (its store is open here).
pub fn export(
    node: &Node,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    node.writer
        .submit_blocking(Command::AuditCheckpoint { seal: true }, None)?;
    let store = &node.shared.store;
    let tx = store.db().begin_read()?;
    let checkpoints = crate::audit::log::own_checkpoints(&tx)?;
    // A node that never stored anything has no checkpoint: its archive holds the registry and
    // nothing else, proven against the empty log.
    let (size, root) = match checkpoints.last() {
        Some(last) => {
            let cp = Checkpoint::open(&last.note).map_err(|e| corrupt("own checkpoint", e))?;
            (cp.size, cp.root)
        }
        None => (0, empty_root()),
    };
    let leaves = select(&tx, size, options)?;
    let proof = crate::audit::log::range_proof(
        &tx,
        size,
        &leaves.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
    )?;
    let witness = crate::audit::log::witnessed(&tx)?;
    let forks = json_rows(&tx, FORKS)?;
    let rejects = json_rows(&tx, REJECTS)?;
    let partial = out.with_extension("partial");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    let file = File::create(&partial).map_err(io(&partial))?;
    let mut w = ArchiveWriter::new(BufWriter::new(file))?;
    w.registry(&RegistrySection {
        root_key: node.config.root_key.clone(),
        records: store.trust_records()?,
    })?;
    w.log(&LogSection {
        key: hex::encode(node.shared.identity.key.verifying_key().as_bytes()),
        checkpoints: checkpoints.clone(),
        proof: proof.iter().map(ProofEntryJson::from_entry).collect(),
    })?;
    w.witness(&WitnessSection {
        logs: witness.clone(),
    })?;
    w.forks(&forks)?;
    w.rejects(&rejects)?;
    let bytes: u64 = leaves.iter().map(|(_, size)| u64::from(*size)).sum();
    w.begin_changes(leaves.len() as u64, bytes)?;
    {
        let feed = tx.open_table(FEED)?;
        let changes = tx.open_table(CHANGES)?;
        for (leaf, _) in &leaves {
            let entry = feed
                .get(leaf + 1)?
                .ok_or_else(|| corrupt("feed", format!("no position {}", leaf + 1)))?;
            let hash = *entry.value().0;
            let env = changes
                .get(&hash)?
                .ok_or_else(|| corrupt("feed", format!("change {} missing", hex::encode(hash))))?;
            w.change(*leaf, env.value())?;
        }
    }
    w.end_changes()?;
    let config = &node.config;
    let manifest = Manifest {
        exporter: Exporter {
            key: hex::encode(node.shared.identity.key.verifying_key().as_bytes()),
            unit: config.unit.to_string(),
            unit_name: config.unit_name.clone(),
            role: config.role.name().into(),
        },
        created_at: clock_now().0,
        filter: Filter {
            units: options.units.clone(),
            from: options.from.map(|d| d.to_string()),
            to: options.to.map(|d| d.to_string()),
            kinds: options.kinds.iter().map(|k| k.name().to_owned()).collect(),
        },
        changes: leaves.len() as u64,
        log: ManifestLog {
            size,
            root: b64(&root),
        },
        ..Manifest::default()
    };
    let file = w.finish(manifest, &node.shared.identity.key)?;
    let file = file.into_inner().map_err(|e| ExportError::Io {
        path: partial.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&partial))?;
    let archive_bytes = file.metadata().map_err(io(&partial))?.len();
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(ExportSummary {
        changes: leaves.len() as u64,
        log_size: size,
        checkpoints: checkpoints.len(),
        witnessed: witness.iter().map(|l| l.checkpoints.len()).sum(),
        bytes: archive_bytes,
    })
}

/// Every value of a table of JSON rows (fork proofs, rejects), in key order.
fn json_rows(
    tx: &ReadTransaction,
    table: redb::TableDefinition<'_, u64, &str>,
) -> Result<Vec<serde_json::Value>, ExportError> {
    let t = tx.open_table(table)?;
    let mut v = Vec::new();
    for row in t.iter()? {
        v.push(serde_json::from_str(row?.1.value()).map_err(|e| corrupt("stored record", e))?);
    }
    Ok(v)
}

/// The leaves (with envelope sizes) of the documents the options select, in log order.
fn select(
    tx: &ReadTransaction,
    size: u64,
    options: &ExportOptions,
) -> Result<Vec<(u64, u32)>, ExportError> {
    let feed = tx.open_table(FEED)?;
    let transferred: HashSet<String> = if options.units.is_empty() {
        HashSet::new()
    } else {
        let idx = tx.open_table(IDX_TRANSFER)?;
        let mut set = HashSet::new();
        for unit in &options.units {
            let codes = crate::store::transferred_to(&idx, unit, usize::MAX)?.unwrap_or_default();
            set.extend(codes.into_iter().map(|code| format!("dossier/{code}")));
        }
        set
    };
    let doc_passes = |text: &str| -> bool {
        let Ok(doc) = DocId::parse(text) else {
            return false;
        };
        let kind_ok = options.kinds.is_empty() || options.kinds.contains(&Kind::of(&doc));
        let unit_ok = options.units.is_empty()
            || doc
                .unit()
                .is_some_and(|u| options.units.iter().any(|w| w == u.as_str()))
            || transferred.contains(text);
        kind_ok && unit_ok
    };
    let period = options.from.is_some() || options.to.is_some();
    let mut in_period: HashSet<String> = HashSet::new();
    if period {
        let changes = tx.open_table(CHANGES)?;
        for row in feed.range(1..=size)? {
            let (_, v) = row?;
            let (hash, _, doc) = v.value();
            if in_period.contains(doc) || !doc_passes(doc) {
                continue;
            }
            let env = changes
                .get(hash)?
                .ok_or_else(|| corrupt("feed", "change missing"))?;
            let time = parse_envelope(env.value())
                .ok()
                .and_then(|e| parse_change(e.change).ok())
                .map(|h| Timestamp(h.time.saturating_mul(1000)).local_date());
            let inside = time.is_some_and(|d| {
                options.from.is_none_or(|f| d >= f) && options.to.is_none_or(|t| d <= t)
            });
            if inside {
                in_period.insert(doc.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for row in feed.range(1..=size)? {
        let (k, v) = row?;
        let (_, envelope_size, doc) = v.value();
        let selected = if period {
            in_period.contains(doc)
        } else {
            doc_passes(doc)
        };
        if selected {
            out.push((k.value() - 1, envelope_size));
        }
    }
    Ok(out)
}
