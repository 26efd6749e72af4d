//! The `motcua audit` subcommands: export a node's records, verify an archive, show a
//! dossier's history from an archive.
//!
//! Verification is the one heavy step (a curve operation per signature), so the signature
//! checks are split into work units over the machine's cores, with a progress bar on standard
//! error; everything else is the pure verifier of `motcua_schema::audit::verify`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use motcua_schema::audit::archive;
use motcua_schema::audit::sig::{KeyCache, Mode};
use motcua_schema::audit::verify::{Options, SigInput, check_signatures, verify};
use motcua_schema::timestamp::parse_date;

use super::export::{ExportOptions, Kind, export};
use crate::config::{DataDir, parse_public_key};
use crate::runtime::Node;

/// Signatures in one work unit handed to a thread, in signatures: large enough to fill a few
/// batches, small enough that both cores finish together and the bar moves.
pub const SIGNATURE_WORK_UNIT_COUNT_MAX: usize = 4096;
/// Most threads verification uses.
pub const VERIFY_THREADS_COUNT_MAX: usize = 64;
/// Largest archive read into memory, in bytes (a province's million changes are about 470 MB).
pub const ARCHIVE_FILE_SIZE_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// `motcua audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Write an audit archive of this node's records, verifiable without motcua. Run it on a
    /// stopped node, like `motcua report`: the store opens in one process at a time.
    Export {
        /// The node's data directory.
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// The archive to write.
        #[arg(long)]
        out: PathBuf,
        /// Only this unit's documents (repeatable).
        #[arg(long)]
        unit: Vec<String>,
        /// Only documents with a change made on or after this local day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Only documents with a change made on or before this local day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        /// Only these kinds of documents (repeatable).
        #[arg(long, value_enum)]
        kind: Vec<Kind>,
    },
    /// Verify an archive: every signature, hash, enrolment, scope, the Merkle log and its
    /// checkpoints, witnessed checkpoints and clocks. Exits non-zero on any failure.
    Verify {
        /// The archive.
        archive: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check each signature alone with strict Ed25519 instead of in batches (slower).
        #[arg(long)]
        strict: bool,
        /// The province root public key (hex) to trust; without it the archive's own is used
        /// and printed for you to compare with the one the province publishes.
        #[arg(long)]
        root_key: Option<String>,
        /// Another archive whose checkpoints (its own log and those it witnessed) this one's
        /// logs must agree with (repeatable).
        #[arg(long)]
        witness: Vec<PathBuf>,
        /// Threads for signature checks (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print a dossier's history reproduced from an archive alone: each event, who signed it and when.
    Show {
        /// The dossier code, e.g. 000.00.12.H12-251116-0001.
        code: String,
        /// The archive.
        archive: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an audit subcommand.
pub fn run(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Export {
            data_dir,
            out,
            unit,
            from,
            to,
            kind,
        } => {
            let date = |d: Option<String>, flag: &str| {
                d.map(|d| parse_date(&d).with_context(|| format!("{flag} must be YYYY-MM-DD")))
                    .transpose()
            };
            let options = ExportOptions {
                units: unit,
                from: date(from, "--from")?,
                to: date(to, "--to")?,
                kinds: kind,
            };
            let node = Node::open(&DataDir::new(&data_dir)).with_context(|| {
                format!(
                    "opening the node at {} (is it still serving?)",
                    data_dir.display()
                )
            })?;
            let summary = export(&node, &out, &options)
                .with_context(|| format!("exporting to {}", out.display()))?;
            println!(
                "wrote {}: {} changes proven against log size {}, {} checkpoints, {} witnessed checkpoints, {} bytes",
                out.display(),
                summary.changes,
                summary.log_size,
                summary.checkpoints,
                summary.witnessed,
                summary.bytes
            );
            Ok(())
        }
        AuditCmd::Verify {
            archive,
            json,
            strict,
            root_key,
            witness,
            threads,
        } => {
            let root_key = root_key
                .map(|k| {
                    parse_public_key(&k)
                        .map(|k| *k.as_bytes())
                        .context("--root-key")
                })
                .transpose()?;
            let mut witnesses = Vec::new();
            for path in &witness {
                let bytes = read(path)?;
                let other = archive::parse(&bytes);
                witnesses.extend(other.witness.logs.clone());
                witnesses.push(archive::WitnessedLog {
                    key: other.log.key.clone(),
                    checkpoints: other.log.checkpoints.clone(),
                });
            }
            let bytes = read(&archive)?;
            let mode = if strict { Mode::Strict } else { Mode::Batch };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
                .clamp(1, VERIFY_THREADS_COUNT_MAX);
            let options = Options {
                root_key,
                witnesses,
            };
            let bar = if json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} signatures ({per_sec}, {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message("kiểm tra chữ ký / checking signatures");
            let report = verify(&bytes, &options, &mut |inputs| {
                check_parallel(inputs, threads, mode, &bar)
            });
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            if !report.ok {
                let n: u64 = report.failures_by_reason.values().sum();
                bail!("{} failed verification: {n} failures", archive.display());
            }
            Ok(())
        }
        AuditCmd::Show {
            code,
            archive,
            json,
        } => {
            let bytes = read(&archive)?;
            let history = motcua_schema::audit::show::dossier_history(&bytes, &code)
                .with_context(|| format!("dossier {code} in {}", archive.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                print!("{}", history.to_text());
            }
            Ok(())
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > ARCHIVE_FILE_SIZE_BYTES_MAX {
        bail!(
            "{} is {size} bytes, more than the {ARCHIVE_FILE_SIZE_BYTES_MAX} bytes an archive may be",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Checks signatures on `threads` threads, work unit by work unit, advancing `bar`.
pub fn check_parallel(
    inputs: &[SigInput<'_>],
    threads: usize,
    mode: Mode,
    bar: &ProgressBar,
) -> Vec<bool> {
    bar.set_length(inputs.len() as u64);
    let units: Vec<&[SigInput<'_>]> = inputs.chunks(SIGNATURE_WORK_UNIT_COUNT_MAX).collect();
    let next = AtomicUsize::new(0);
    let mut results: Vec<Vec<bool>> = vec![Vec::new(); units.len()];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(units.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut cache = KeyCache::new();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(unit) = units.get(i) else {
                            return done;
                        };
                        done.push((i, check_signatures(unit, &mut cache, mode)));
                        bar.inc(unit.len() as u64);
                    }
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().expect("a verification thread panicked") {
                results[i] = r;
            }
        }
    });
    results.into_iter().flatten().collect()
}
