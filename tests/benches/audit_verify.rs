//! Benchmark: verification throughput of an audit archive of a province's million changes.
//!
//! Builds (once, cached under the target directory) an archive exported by a province node
//! holding the records of 100 communes: real Automerge dossier changes (one intake and three
//! steps per dossier), each signed by its commune's enrolled key, in a Merkle log with a signed
//! checkpoint every 10,000 changes. Then it verifies the archive the way `motcua audit verify`
//! does (same code: the pure verifier and the CLI's signature checking spread over the cores)
//! and prints changes per second. Also measures strict one-at-a-time signature checking on a
//! sample, for comparison. Target (DESIGN.md): at least 50,000 changes/s.
//!
//! `cargo bench -p motcua-tests --bench audit_verify` (`MOTCUA_BENCH_AUDIT_CHANGES` sets the size).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use indicatif::ProgressBar;
use motcua_node::audit::cli::check_parallel;
use motcua_schema::audit::archive::{
    ArchiveWriter, Exporter, LogSection, Manifest, ManifestLog, RegistrySection, WitnessSection,
    b64,
};
use motcua_schema::audit::fixture::{Writer, make_checkpoint};
use motcua_schema::audit::merkle::{self, MemoryTree, empty_root, leaf_hash};
use motcua_schema::audit::sig::{KeyCache, Mode};
use motcua_schema::audit::verify::{Options, check_signatures, verify};
use motcua_schema::dossier::EventBody;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{RecordBody, Role, SignedRecord};

/// Communes whose records the province holds.
const COMMUNES_COUNT: u8 = 100;
/// Changes per dossier: intake and three steps.
const CHANGES_PER_DOSSIER: u64 = 4;
/// Changes between two checkpoints of the province's log.
const CHECKPOINT_EVERY_CHANGES: u64 = 10_000;
/// Signatures checked one at a time for the strict comparison.
const STRICT_SAMPLE_COUNT: usize = 20_000;
/// First change time: 2025-06-16 08:00 in Vietnam.
const START_MS: i64 = 1_750_035_600_000;

/// The envelopes of one commune's dossiers, concatenated, with their lengths.
struct Batch {
    bytes: Vec<u8>,
    lens: Vec<u32>,
    last_ms: i64,
}

fn commune_changes(w: &Writer, dossiers: u64) -> Batch {
    let mut b = Batch {
        bytes: Vec::new(),
        lens: Vec::new(),
        last_ms: START_MS,
    };
    let per_day = 40u64;
    for d in 0..dossiers {
        let day = (d / per_day) as i64;
        let at = Timestamp(START_MS + day * 86_400_000 + (d % per_day) as i64 * 600_000);
        let (mut doc, id, first) = w.new_dossier(&w.unit, (d % per_day) as u32 + 1, at);
        let mut push = |env: Vec<u8>| {
            b.lens.push(env.len() as u32);
            b.bytes.extend_from_slice(&env);
        };
        push(first.encode());
        let steps = [
            EventBody::SupplementRequested {
                reason: "thiếu bản sao".into(),
            },
            EventBody::Supplemented {
                due_at: at.plus_millis(5 * 86_400_000),
            },
            EventBody::Resolved {
                note: String::new(),
            },
        ];
        for (i, body) in steps.into_iter().enumerate() {
            push(
                w.event(&mut doc, &id, body, at.plus_millis((i as i64 + 1) * 60_000))
                    .encode(),
            );
        }
        b.last_ms = b.last_ms.max(at.0 + 3 * 60_000);
    }
    b
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
fn build(path: &PathBuf, changes: u64) {
    let started = Instant::now();
    let root = SigningKey::from_bytes(&[250; 32]);
    let province = Writer::new(200, "000.00.00.H99");
    let communes: Vec<Writer> = (1..=COMMUNES_COUNT)
        .map(|i| Writer::new(i, &format!("000.00.{i:02}.H99")))
        .collect();
    let enrol = |w: &Writer, role: Role| {
        SignedRecord::sign(
            &RecordBody::Enrolment {
                node_key: hex::encode(w.public()),
                unit: w.unit.clone(),
                unit_name: format!("UBND xã {}", w.unit),
                role,
                valid_from: Timestamp(0),
                valid_until: None,
                issued_at: Timestamp(0),
            },
            &root,
        )
    };
    let mut records = vec![enrol(&province, Role::Province)];
    records.extend(communes.iter().map(|w| enrol(w, Role::Commune)));
    let dossiers_each = changes / CHANGES_PER_DOSSIER / u64::from(COMMUNES_COUNT);
    // Two threads make the changes (signing and Automerge dominate); the log takes them in
    // commune order.
    let batches: Vec<Batch> = std::thread::scope(|s| {
        let halves: Vec<_> = communes
            .chunks(communes.len().div_ceil(2))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|w| commune_changes(w, dossiers_each))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("generator thread"))
            .collect()
    });
    let mut tree = MemoryTree::new();
    let mut checkpoints = Vec::new();
    let mut prev = (0, empty_root());
    let mut latest_ms = START_MS;
    for b in &batches {
        let mut at = 0usize;
        latest_ms = latest_ms.max(b.last_ms);
        for &len in &b.lens {
            tree.push(leaf_hash(&b.bytes[at..at + len as usize]));
            at += len as usize;
            if tree.size().is_multiple_of(CHECKPOINT_EVERY_CHANGES) {
                checkpoints.push(make_checkpoint(
                    &province.key,
                    &tree,
                    prev,
                    Timestamp(latest_ms + 60_000),
                ));
                prev = (
                    tree.size(),
                    merkle::root(&tree, tree.size()).expect("in memory"),
                );
            }
        }
    }
    if prev.0 != tree.size() {
        checkpoints.push(make_checkpoint(
            &province.key,
            &tree,
            prev,
            Timestamp(latest_ms + 60_000),
        ));
        prev = (
            tree.size(),
            merkle::root(&tree, tree.size()).expect("in memory"),
        );
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("bench dir");
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial).expect("create archive");
    let mut w = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, file)).expect("write");
    w.registry(&RegistrySection {
        root_key: hex::encode(root.verifying_key().as_bytes()),
        records,
    })
    .expect("write");
    w.log(&LogSection {
        key: hex::encode(province.public()),
        checkpoints,
        proof: Vec::new(),
    })
    .expect("write");
    w.witness(&WitnessSection::default()).expect("write");
    w.forks(&[]).expect("write");
    w.rejects(&[]).expect("write");
    let total: u64 = batches.iter().map(|b| b.bytes.len() as u64).sum();
    w.begin_changes(tree.size(), total).expect("write");
    let mut leaf = 0u64;
    for b in &batches {
        let mut at = 0usize;
        for &len in &b.lens {
            w.change(leaf, &b.bytes[at..at + len as usize])
                .expect("write");
            at += len as usize;
            leaf += 1;
        }
    }
    w.end_changes().expect("write");
    let manifest = Manifest {
        exporter: Exporter {
            key: hex::encode(province.public()),
            unit: province.unit.to_string(),
            unit_name: "Trung tâm Phục vụ hành chính công tỉnh".into(),
            role: "province".into(),
        },
        created_at: latest_ms + 120_000,
        changes: tree.size(),
        log: ManifestLog {
            size: prev.0,
            root: b64(&prev.1),
        },
        ..Manifest::default()
    };
    let mut out = w.finish(manifest, &province.key).expect("write");
    out.flush().expect("flush");
    drop(out);
    std::fs::rename(&partial, path).expect("rename");
    println!(
        "built {} changes in {:.1} s",
        tree.size(),
        started.elapsed().as_secs_f64()
    );
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
fn main() {
    let changes: u64 = std::env::var("MOTCUA_BENCH_AUDIT_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-bench-{changes}.archive"));
    if !path.exists() {
        build(&path, changes);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let bytes = std::fs::read(&path).expect("read archive");
    let read_s = started.elapsed().as_secs_f64();
    let bar = ProgressBar::hidden();
    let report = verify(&bytes, &Options::default(), &mut |inputs| {
        check_parallel(inputs, threads, Mode::Batch, &bar)
    });
    let total_s = started.elapsed().as_secs_f64();
    assert!(report.ok, "{}", report.to_text());
    let n = report.checks.changes;
    println!(
        "audit verify: {n} changes, {} bytes, {threads} threads: {total_s:.2} s ({read_s:.2} s reading) = {:.0} changes/s",
        bytes.len(),
        n as f64 / total_s
    );
    // Everything but the signatures, on one thread: what parallelism cannot shrink.
    let t = Instant::now();
    let rest = verify(&bytes, &Options::default(), &mut |inputs| {
        vec![true; inputs.len()]
    });
    assert!(rest.ok);
    println!(
        "  of which everything but signatures: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // Strict one-at-a-time signatures on a sample, for comparison (one thread).
    let a = motcua_schema::audit::archive::parse(&bytes);
    let sample: Vec<_> = a.changes.iter().take(STRICT_SAMPLE_COUNT).collect();
    let envs: Vec<_> = sample
        .iter()
        .map(|c| motcua_schema::audit::change::parse_envelope(c.envelope).expect("envelope"))
        .collect();
    let hashes: Vec<_> = envs
        .iter()
        .map(|e| {
            motcua_schema::audit::change::parse_change(e.change)
                .expect("change")
                .hash
        })
        .collect();
    let inputs: Vec<_> = envs
        .iter()
        .zip(&hashes)
        .map(|(e, h)| motcua_schema::audit::verify::SigInput {
            key: e.signer,
            signature: e.signature,
            doc_id: e.doc_id,
            hash: *h,
        })
        .collect();
    for mode in [Mode::Batch, Mode::Strict] {
        let t = Instant::now();
        let ok = check_signatures(&inputs, &mut KeyCache::new(), mode);
        let s = t.elapsed().as_secs_f64();
        assert!(ok.iter().all(|v| *v));
        println!(
            "signatures, one thread, {mode:?}: {:.0} /s",
            inputs.len() as f64 / s
        );
    }
}
