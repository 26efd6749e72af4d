//! Benchmark: motcua's replication protocol side by side with Automerge's own per-document sync
//! protocol, on the same real signed dossier changes, in one run.
//!
//! Figures (bytes counted on the encoded messages, both directions):
//! - catch-up: an empty peer receives everything; bytes / (raw change bytes + 64-byte signatures);
//! - idle: both hold everything and have synced before (motcua: saved checkpoints; Automerge:
//!   saved per-document sync states); bytes and round trips;
//! - repair: both hold all but `DIFF` changes each side differs by, with no checkpoints (motcua:
//!   Rateless IBLT reconciliation; Automerge: a sync of every document, the only way it can find
//!   which documents differ); bytes per differing change beyond the changes themselves.
//!
//! ```text
//! cargo bench -p motcua-sync --features testing --bench replication
//! MOTCUA_BENCH_DOSSIERS=200000 cargo bench -p motcua-sync --features testing --bench replication   # 1,000,000 changes
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use motcua_schema::automerge::sync::{State, SyncDoc};
use motcua_schema::automerge::{Automerge, Change};
use motcua_sync::testing::{MemStore, Pair, change_len_of, doc_id_of, realistic_dossier_changes};
use motcua_sync::{ChangeStore, Checkpoint, Scope, SessionConfig};

/// Changes per dossier in the data set (intake plus four steps).
const EVENTS_PER_DOSSIER: usize = 5;
/// Changes that differ between the peers in the repair figure.
const DIFF_CHANGES: usize = 1_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn store(id: u8, envelopes: &[Vec<u8>]) -> MemStore {
    let mut s = MemStore::new([id; 16]);
    for e in envelopes {
        s.insert(e.clone());
    }
    s
}

/// The raw Automerge change bytes inside a v1 envelope.
fn raw_change(envelope: &[u8]) -> &[u8] {
    let len = change_len_of(envelope).expect("v1 envelope");
    &envelope[envelope.len() - len..]
}

/// Every dossier as an Automerge document, built from the same changes.
fn documents(envelopes: &[Vec<u8>]) -> BTreeMap<String, Automerge> {
    let mut docs: BTreeMap<String, Automerge> = BTreeMap::new();
    for e in envelopes {
        let doc = docs
            .entry(doc_id_of(e).expect("doc id").to_owned())
            .or_default();
        let change = Change::from_bytes(raw_change(e).to_vec()).expect("change parses");
        doc.apply_changes([change]).expect("change applies");
    }
    docs
}

/// Runs Automerge's sync protocol on one document pair until both are quiet. Returns bytes,
/// messages and rounds (one round = each side may send one message; a round trip is two).
fn automerge_sync(
    a: &mut Automerge,
    sa: &mut State,
    b: &mut Automerge,
    sb: &mut State,
) -> (u64, u64, u64) {
    let (mut bytes, mut messages, mut rounds) = (0, 0, 0);
    loop {
        let from_a = a.generate_sync_message(sa);
        let from_b = b.generate_sync_message(sb);
        if from_a.is_none() && from_b.is_none() {
            return (bytes, messages, rounds);
        }
        rounds += 1;
        if let Some(m) = from_a {
            let encoded = m.encode();
            bytes += encoded.len() as u64;
            messages += 1;
            let m = motcua_schema::automerge::sync::Message::decode(&encoded).expect("decodes");
            b.receive_sync_message(sb, m).expect("applies");
        }
        if let Some(m) = from_b {
            let encoded = m.encode();
            bytes += encoded.len() as u64;
            messages += 1;
            let m = motcua_schema::automerge::sync::Message::decode(&encoded).expect("decodes");
            a.receive_sync_message(sa, m).expect("applies");
        }
    }
}

/// Writes every dossier's header and events as JSON lines (one document each), for the
/// CouchDB-style comparison (`tests/bench-pouchdb/`), after a first line with the denominator.
fn export_json(docs: &BTreeMap<String, Automerge>, path: &str, raw: u64) {
    use std::io::Write;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(path).expect("creating the export file"));
    writeln!(
        out,
        "{}",
        serde_json::json!({ "raw_change_and_signature_bytes": raw })
    )
    .expect("write");
    for (id, doc) in docs {
        let state = motcua_schema::layout::dossier::read(doc).expect("dossier reads");
        let events: Vec<_> = state.events.iter().map(|e| &e.event).collect();
        let line = serde_json::json!({ "_id": id, "header": state.header, "events": events });
        writeln!(out, "{line}").expect("write");
    }
    println!("exported {} dossiers to {path}", docs.len());
}

#[allow(clippy::disallowed_methods)] // a benchmark measures its own wall time
fn main() {
    let dossiers = env_or("MOTCUA_BENCH_DOSSIERS", 20_000);
    let started = Instant::now();
    let envelopes = realistic_dossier_changes("000.00.12.H12", dossiers, EVENTS_PER_DOSSIER, 7);
    let n = envelopes.len();
    let raw: u64 = envelopes
        .iter()
        .map(|e| change_len_of(e).expect("v1") as u64 + 64)
        .sum();
    println!(
        "data set: {dossiers} dossiers, {n} signed changes, {raw} bytes of raw changes + signatures (built in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // motcua: catch-up of an empty commune-scoped peer, then idle, then repair.
    let t = Instant::now();
    let mut pair = Pair::new(
        store(1, &envelopes),
        Scope::All,
        MemStore::new([2; 16]),
        Scope::Unit {
            unit: "000.00.12.H12".into(),
        },
    );
    pair.run();
    assert!(pair.failures().is_empty(), "{:?}", pair.failures());
    let catch_up = pair.total_bytes();
    println!(
        "motcua   catch-up: {catch_up} bytes on the wire, ratio {:.3} ({:.1} s)",
        catch_up as f64 / raw as f64,
        t.elapsed().as_secs_f64()
    );
    // The first reconnection still settles the tail of the receiver's own feed (what it stored
    // during the catch-up, which the sender then learns it need not pull back); the second is
    // the steady idle state.
    let messages = |p: &Pair| p.messages_sent[0] + p.messages_sent[1];
    for label in ["first reconnection", "idle"] {
        let before = pair.total_bytes();
        let messages_before = messages(&pair);
        pair.cut_and_reconnect();
        pair.run();
        println!(
            "motcua   {label}: {} bytes in {} messages",
            pair.total_bytes() - before,
            messages(&pair) - messages_before
        );
    }
    let t = Instant::now();
    let half = DIFF_CHANGES / 2;
    // Peer b was restored from a backup: a's checkpoint of b is void, so a repairs by
    // reconciliation; each side lacks `DIFF_CHANGES / 2` changes the other holds.
    let a = store(3, &envelopes[..n - half]);
    let mut b = store(4, &envelopes[..n - DIFF_CHANGES]);
    for e in &envelopes[n - half..] {
        b.insert(e.clone());
    }
    let b = b.restored_from([5; 16]);
    let a_checkpoint = Some(Checkpoint {
        peer_store_id: [4; 16],
        upto: b.feed_head(),
    });
    let b_checkpoint = Some(Checkpoint {
        peer_store_id: [3; 16],
        upto: a.feed_head(),
    });
    let mut repair = Pair::with(
        a,
        Scope::All,
        a_checkpoint,
        b,
        Scope::All,
        b_checkpoint,
        SessionConfig::default(),
    );
    repair.run();
    assert!(repair.failures().is_empty(), "{:?}", repair.failures());
    assert_eq!(repair.a.store.hash_set(), repair.b.store.hash_set());
    let reconciliation: u64 = ["sketch_request", "sketch", "reconciled", "want"]
        .iter()
        .map(|k| repair.bytes_by_message.get(k).copied().unwrap_or(0))
        .sum();
    println!(
        "motcua   repair: {} bytes total, {reconciliation} bytes of reconciliation for {DIFF_CHANGES} differing changes = {:.1} bytes per differing change ({:.1} s)",
        repair.total_bytes(),
        reconciliation as f64 / DIFF_CHANGES as f64,
        t.elapsed().as_secs_f64()
    );

    // Automerge's per-document sync on the same documents.
    let t = Instant::now();
    let full = documents(&envelopes);
    if let Ok(path) = std::env::var("MOTCUA_BENCH_EXPORT") {
        export_json(&full, &path, raw);
    }
    // One document at a time (catch-up, then an idle reconnection with the saved sync
    // states), so that a million changes fit in memory.
    let mut catch = (0u64, 0u64, 0u64);
    let mut idle = (0u64, 0u64, 0u64);
    for doc in full.values() {
        let (mut a, mut b) = (doc.clone(), Automerge::new());
        let (mut sa, mut sb) = (State::new(), State::new());
        let (bytes, messages, rounds) = automerge_sync(&mut a, &mut sa, &mut b, &mut sb);
        catch.0 += bytes;
        catch.1 += messages;
        catch.2 = catch.2.max(rounds);
        let mut sa2 = State::decode(&sa.encode()).expect("state decodes");
        let mut sb2 = State::decode(&sb.encode()).expect("state decodes");
        let (bytes, messages, rounds) = automerge_sync(&mut a, &mut sa2, &mut b, &mut sb2);
        idle.0 += bytes;
        idle.1 += messages;
        idle.2 = idle.2.max(rounds);
    }
    drop(full);
    println!(
        "automerge catch-up: {} bytes in {} messages, ratio {:.3}, {} rounds per document ({:.1} s)",
        catch.0,
        catch.1,
        catch.0 as f64 / raw as f64,
        catch.2,
        t.elapsed().as_secs_f64()
    );
    println!(
        "automerge idle: {} bytes in {} messages, {} rounds per document",
        idle.0, idle.1, idle.2
    );
    let t = Instant::now();
    let docs_a = documents(&envelopes[..n - half]);
    let mut docs_b = documents(&envelopes[..n - DIFF_CHANGES]);
    for e in &envelopes[n - half..] {
        let doc = docs_b
            .entry(doc_id_of(e).expect("doc id").to_owned())
            .or_default();
        doc.apply_changes([Change::from_bytes(raw_change(e).to_vec()).expect("parses")])
            .expect("applies");
    }
    let mut rep = (0u64, 0u64);
    let changes_bytes: u64 = envelopes[n - DIFF_CHANGES..]
        .iter()
        .map(|e| raw_change(e).len() as u64)
        .sum();
    for (id, a) in docs_a {
        let mut a = a;
        let mut b = docs_b.remove(&id).unwrap_or_default();
        let (bytes, messages, _) =
            automerge_sync(&mut a, &mut State::new(), &mut b, &mut State::new());
        rep.0 += bytes;
        rep.1 += messages;
    }
    println!(
        "automerge repair: {} bytes in {} messages; beyond the {changes_bytes} bytes of the differing changes themselves: {:.1} bytes per differing change ({:.1} s)",
        rep.0,
        rep.1,
        (rep.0.saturating_sub(changes_bytes)) as f64 / DIFF_CHANGES as f64,
        t.elapsed().as_secs_f64()
    );
}
