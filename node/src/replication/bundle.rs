//! Sneakernet: the replication protocol's change frames written to a file for a USB stick, and
//! read back through the same verification and apply pipeline as the network path.
//!
//! Export cuts what one peer lacks, by the peer's enrolment scope, after the position of this
//! node's feed the peer last acknowledged (or everything in its scope with `--all`, or when
//! nothing is known). Import applies every frame that is intact, in order; a truncated or
//! damaged frame stops the import there with a message naming the frame, and everything before
//! it stays applied. Importing the same bundle twice stores nothing the second time.

use std::path::Path;

use anyhow::{Context, Result, bail};
use motcua_schema::signed::SignedChange;
use motcua_sync::Scope;
use motcua_sync::bundle::{BundleError, BundleHeader, read_bundle, write_bundle};
use serde::Serialize;

use super::scope_of;
use super::source::Snapshot;
use crate::config::parse_public_key;
use crate::runtime::Node;
use crate::store::peers::FeedMark;
use crate::store::{Store, StoreError};
use crate::writer::{Command, ImportReport, Reply};

/// Largest bundle file read into memory, in bytes (a province's year is a few hundred MB).
pub const BUNDLE_FILE_SIZE_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Changes written.
    pub changes: u64,
    /// Frames written.
    pub frames: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Feed range `(after, upto]`.
    pub after: u64,
    /// End of the range.
    pub upto: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleImportReport {
    /// Frames applied.
    pub frames: u64,
    /// Counts over all frames.
    pub changes: ImportReport,
    /// Why the import stopped early, if it did (the frames before it are applied).
    pub stopped: Option<String>,
    /// `(held, after)` when the bundle starts after position `after` of its source's feed but
    /// this node holds that feed only up to `held`: changes in between may be missing (the
    /// source cut it from an acknowledgement this node no longer matches, e.g. after a restore).
    /// Its changes are applied; the checkpoint does not move, so the next network session
    /// fetches the gap, and a bundle cut with `--all` fills it without one.
    pub gap: Option<(u64, u64)>,
}

/// Writes a bundle for peer `peer_key` (hex) to `path`.
pub fn export(node: &Node, peer_key: &str, all: bool, path: &Path) -> Result<ExportReport> {
    let peer = *parse_public_key(peer_key)
        .context("--for must be the peer's node key")?
        .as_bytes();
    let scope = {
        let registry = node.shared.registry.read().expect("registry lock");
        let standing = registry
            .standing(&peer)
            .with_context(|| format!("{peer_key} is not enrolled in this node's trust registry"))?;
        scope_of(standing.role, standing.unit.as_str())
    };
    let store_id = node.shared.store.store_id()?;
    let after = if all {
        0
    } else {
        start_after(&node.shared.store, &peer, &scope, store_id)?
    };
    let snapshot = Snapshot::new(&node.shared.store).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension("partial");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let key = *node.shared.identity.key.verifying_key().as_bytes();
    let summary = write_bundle(&snapshot, &scope, after, Some(key), &mut file)
        .with_context(|| format!("writing bundle {}", tmp.display()))?;
    let file = file
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing bundle")?;
    file.sync_all().context("syncing bundle")?;
    // Renamed only when complete, so a half-written file never looks like a bundle.
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(ExportReport {
        changes: summary.changes,
        frames: summary.frames,
        bytes: summary.bytes,
        after,
        upto: summary.upto,
    })
}

/// Applies the bundle at `path`.
pub fn import(node: &Node, path: &Path) -> Result<BundleImportReport> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > BUNDLE_FILE_SIZE_BYTES_MAX {
        bail!(
            "{} is {size} bytes, larger than the {BUNDLE_FILE_SIZE_BYTES_MAX} bytes a bundle may be",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader =
        read_bundle(&bytes).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), describe(&e)))?;
    let header = reader.header().clone();
    let origin = format!(
        "bundle:{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut report = BundleImportReport::default();
    for frame in reader.by_ref() {
        let envelopes = match frame {
            Ok(envelopes) => envelopes,
            Err(e) => {
                report.stopped = Some(describe(&e));
                break;
            }
        };
        let mut changes = Vec::with_capacity(envelopes.len());
        let mut invalid = 0;
        for env in &envelopes {
            match SignedChange::decode(env) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    tracing::warn!(
                        origin,
                        reason = e.reason(),
                        "bundled change does not verify"
                    );
                    invalid += 1;
                }
            }
        }
        let reply = node
            .writer
            .submit_blocking(
                Command::Import {
                    changes,
                    invalid,
                    origin: origin.clone(),
                    checkpoint: None,
                },
                None,
            )
            .context("applying a bundle frame")?;
        if let Reply::Imported(r) = reply {
            let c = &mut report.changes;
            c.stored += r.stored;
            c.duplicate += r.duplicate;
            c.pending += r.pending;
            c.rejected += r.rejected;
            c.invalid += r.invalid;
        }
        report.frames += 1;
    }
    // A complete bundle cut for this node's scope, continuing from where this node already
    // holds the source's feed, advances the checkpoint: the next network session resumes after it.
    let own_scope = scope_of(
        node.shared.identity.role,
        node.shared.identity.unit.as_str(),
    );
    if reader.is_complete()
        && report.stopped.is_none()
        && header.scope == own_scope
        && let Some(source) = header.node_key
    {
        let held = node.shared.store.peer_state(&source)?.checkpoint;
        match checkpoint_after(&header, held) {
            AfterBundle::Gap { held, after } => report.gap = Some((held, after)),
            AfterBundle::Keep => {}
            AfterBundle::Advance(mark) => {
                node.writer
                    .submit_blocking(
                        Command::Import {
                            changes: Vec::new(),
                            invalid: 0,
                            origin,
                            checkpoint: Some((source, mark)),
                        },
                        None,
                    )
                    .context("storing the bundle's checkpoint")?;
            }
        }
    }
    Ok(report)
}

/// Where a bundle for `peer`, whose scope is `scope`, starts in the feed of the store
/// `store_id`: after the peer's acknowledgement of it, or at the beginning when the peer
/// acknowledged nothing of this store.
///
/// Only a peer that receives everything (the province, an auditor) gets a bundle that starts
/// after its acknowledgement. A commune's scope grows when a dossier is transferred to it, and
/// that dossier's earlier changes lie behind the acknowledgement, out of scope when the peer
/// read past them: a bundle that skipped them would leave the transferred dossier waiting for
/// them until the link returns. Shared with the simulator, which cuts bundles as `export` does.
pub fn start_after(
    store: &Store,
    peer: &[u8; 32],
    scope: &Scope,
    store_id: [u8; 16],
) -> Result<u64, StoreError> {
    if *scope != Scope::All {
        return Ok(0);
    }
    Ok(match store.peer_state(peer)?.acked {
        Some(mark) if mark.store_id == store_id => mark.upto,
        _ => 0,
    })
}

/// What a complete bundle, cut for this node's scope, does to this node's checkpoint of its
/// source (`held`). Shared with the simulator, which imports bundles as this module does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBundle {
    /// The bundle continues from what this node holds and goes further: the checkpoint moves
    /// to its end, and the next network session resumes after it.
    Advance(FeedMark),
    /// The bundle ends at or before what this node holds (a late copy): nothing moves.
    Keep,
    /// The bundle starts at `after`, past what this node holds (`held`): nothing moves.
    Gap {
        /// How far this node holds the source's feed (0: not at all, for this store id).
        held: u64,
        /// Where the bundle starts.
        after: u64,
    },
}

/// See [`AfterBundle`].
pub fn checkpoint_after(header: &BundleHeader, held: Option<FeedMark>) -> AfterBundle {
    let held = held
        .filter(|m| m.store_id == header.store_id)
        .map_or(0, |m| m.upto);
    if header.after > held {
        AfterBundle::Gap {
            held,
            after: header.after,
        }
    } else if header.upto > held {
        AfterBundle::Advance(FeedMark {
            store_id: header.store_id,
            upto: header.upto,
        })
    } else {
        AfterBundle::Keep
    }
}

fn describe(e: &BundleError) -> String {
    match e {
        BundleError::NotABundle => {
            "tệp không phải gói dữ liệu motcua (not a motcua bundle)".to_owned()
        }
        BundleError::Version(v) => format!("gói dữ liệu phiên bản {v} không được hỗ trợ ({e})"),
        BundleError::Header(what) => format!("phần đầu gói dữ liệu bị hỏng: {what} ({e})"),
        BundleError::Truncated { frame } => {
            format!("gói dữ liệu bị cắt cụt ở khung {frame}; các khung trước đó đã được nhập ({e})")
        }
        BundleError::Corrupt { frame } => format!(
            "khung {frame} của gói dữ liệu bị hỏng hoặc bị sửa; các khung trước đó đã được nhập ({e})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use motcua_schema::trust::Role;

    use super::*;
    use crate::config::{generate_key, read_key};
    use crate::setup::{Trust, import_records};
    use crate::test_nodes::{commune, node, receive, temp};

    #[test]
    fn a_bundle_that_skips_what_this_node_lacks_says_so_and_leaves_the_checkpoint() {
        // Why: a bundle starts after the receiver's last acknowledgement; a receiver that lost
        // changes since (restored from a backup while offline) must be told that the bundle
        // leaves a gap, and must not record a checkpoint over it.
        let (pdir, xdir) = (temp("bundle-p"), temp("bundle-x"));
        let province = node(&pdir.0, "P", Role::Province, Trust::NewRoot, None);
        let root = read_key(&pdir.0.join("root.key")).unwrap();
        let records = province.shared.store.trust_records().unwrap();
        let (x1, enrol) = commune(&xdir.0, &root, &generate_key(), records);
        import_records(&province, vec![enrol]).unwrap();
        let province_key = province.shared.identity.key.verifying_key();
        for n in 0..3 {
            receive(&x1, n);
        }
        let whole = xdir.0.join("whole.motcua");
        let first = export(&x1, &hex::encode(province_key.as_bytes()), false, &whole).unwrap();
        assert_eq!(first.after, 0, "nothing acknowledged yet");
        // The province said, in a hello, that it holds X1's feed this far; it did not, or it
        // lost it since.
        x1.writer
            .submit_blocking(
                Command::PeerSeen {
                    peer: *province_key.as_bytes(),
                    acked: Some(Some(FeedMark {
                        store_id: x1.shared.store.store_id().unwrap(),
                        upto: first.upto,
                    })),
                    caught_up: false,
                    connected: true,
                },
                None,
            )
            .unwrap();
        receive(&x1, 3);
        let newer = xdir.0.join("newer.motcua");
        let second = export(&x1, &hex::encode(province_key.as_bytes()), false, &newer).unwrap();
        assert_eq!(
            second.after, first.upto,
            "the bundle starts after the acknowledgement"
        );

        let source = *x1.shared.identity.key.verifying_key().as_bytes();
        let checkpoint = || {
            province
                .shared
                .store
                .peer_state(&source)
                .unwrap()
                .checkpoint
        };
        let r = import(&province, &newer).unwrap();
        assert_eq!(r.gap, Some((0, first.upto)));
        assert_eq!(checkpoint(), None, "no checkpoint over the gap");
        // The whole bundle fills the gap; then the newer one continues from it.
        assert_eq!(import(&province, &whole).unwrap().gap, None);
        assert_eq!(checkpoint().map(|m| m.upto), Some(first.upto));
        assert_eq!(import(&province, &newer).unwrap().gap, None);
        assert_eq!(checkpoint().map(|m| m.upto), Some(second.upto));
        // A late copy of the older bundle does not move the checkpoint back.
        assert_eq!(import(&province, &whole).unwrap().gap, None);
        assert_eq!(checkpoint().map(|m| m.upto), Some(second.upto));

        // A bundle for a commune starts from the beginning whatever it acknowledged: its scope
        // grows with every dossier transferred to it, whose earlier changes lie behind the
        // acknowledgement.
        let x1_key = x1.shared.identity.key.verifying_key();
        province
            .writer
            .submit_blocking(
                Command::PeerSeen {
                    peer: *x1_key.as_bytes(),
                    acked: Some(Some(FeedMark {
                        store_id: province.shared.store.store_id().unwrap(),
                        upto: 2,
                    })),
                    caught_up: false,
                    connected: true,
                },
                None,
            )
            .unwrap();
        let for_x1 = pdir.0.join("for-x1.motcua");
        let to_commune =
            export(&province, &hex::encode(x1_key.as_bytes()), false, &for_x1).unwrap();
        assert_eq!(to_commune.after, 0);
    }
}
