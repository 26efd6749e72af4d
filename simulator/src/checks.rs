//! The checks made after every run: the invariants of DESIGN.md, judged against the ground truth
//! and across the nodes' stores.
//!
//! Why after the run as well as during it: some properties only hold once the network has
//! healed (everyone holds what they should), and some are cheapest to judge on the final stores
//! (identical derived tables). Each check yields a name, a verdict and a detail line that says
//! what differed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::ReadDoc;
use motcua_node::store::Store;
use motcua_node::store::tables::{
    CHANGES, COUNTERS, DOC_ROWS, FORKS, IDX_DUE, IDX_RATING_UNIT, IDX_STATUS, IDX_TRANSFER,
    IDX_UNIT, PENDING, RATINGS, REJECTS, doc_summary_key, is_doc_change_key,
};
use motcua_schema::report::Period;
use redb::{ReadableDatabase, ReadableMultimapTable, ReadableTable};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::byz::Crafted;
use crate::node::Kind;
use crate::sim::Sim;

/// Most differences listed in one check's detail.
pub const DETAIL_ITEMS_COUNT_MAX: usize = 5;

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was compared, or what differed.
    pub detail: String,
}

fn check(name: &'static str, failures: Vec<String>, ok: String) -> Check {
    if failures.is_empty() {
        Check {
            name,
            passed: true,
            detail: ok,
        }
    } else {
        let n = failures.len();
        let mut detail: Vec<String> = failures.into_iter().take(DETAIL_ITEMS_COUNT_MAX).collect();
        if n > DETAIL_ITEMS_COUNT_MAX {
            detail.push(format!("and {} more", n - DETAIL_ITEMS_COUNT_MAX));
        }
        Check {
            name,
            passed: false,
            detail: detail.join("; "),
        }
    }
}

/// A derived table's rows as strings, for comparison.
fn rows(store: &Store, table: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(tx) = store.db().begin_read() else {
        return out;
    };
    macro_rules! dump {
        ($def:expr) => {
            if let Ok(t) = tx.open_table($def) {
                if let Ok(iter) = t.iter() {
                    for row in iter.flatten() {
                        out.insert(
                            format!("{:?}", row.0.value()),
                            format!("{:?}", row.1.value()),
                        );
                    }
                }
            }
        };
    }
    match table {
        "dossiers" => {
            // The summaries: the rows of `doc-rows` at a dossier's summary key.
            if let Ok(t) = tx.open_table(DOC_ROWS)
                && let Ok(iter) = t.iter()
            {
                for (k, v) in iter.flatten() {
                    let (doc, actor, seq) = k.value();
                    if (doc, actor, seq) == doc_summary_key(doc) {
                        out.insert(
                            format!("{doc:?}"),
                            String::from_utf8_lossy(v.value()).into_owned(),
                        );
                    }
                }
            }
        }
        "counters" => dump!(COUNTERS),
        "ratings" => dump!(RATINGS),
        "idx-status" => dump!(IDX_STATUS),
        "idx-due" => dump!(IDX_DUE),
        "idx-unit" => dump!(IDX_UNIT),
        "idx-transfer" => dump!(IDX_TRANSFER),
        "idx-rating-unit" => dump!(IDX_RATING_UNIT),
        _ => {}
    }
    out
}

/// The unit of a `counters` row key as `rows` prints it: `("UNIT", day, "metric")`.
fn counter_unit(key: &str) -> &str {
    key.strip_prefix("(\"")
        .and_then(|k| k.split('"').next())
        .unwrap_or_default()
}

/// Every document's change hashes.
fn doc_changes(store: &Store) -> BTreeMap<String, BTreeSet<[u8; 32]>> {
    let mut out: BTreeMap<String, BTreeSet<[u8; 32]>> = BTreeMap::new();
    let Ok(tx) = store.db().begin_read() else {
        return out;
    };
    let Ok(t) = tx.open_table(DOC_ROWS) else {
        return out;
    };
    let Ok(iter) = t.iter() else {
        return out;
    };
    for (k, v) in iter.flatten() {
        // A document's state and summary rows are not among its changes.
        let key = k.value();
        if !is_doc_change_key(key) {
            continue;
        }
        let doc = key.0;
        if let Ok(hash) = <[u8; 32]>::try_from(v.value()) {
            out.entry(doc.to_owned()).or_default().insert(hash);
        }
    }
    out
}

/// Pending change hashes.
fn pending(store: &Store) -> BTreeSet<[u8; 32]> {
    let mut out = BTreeSet::new();
    if let Ok(tx) = store.db().begin_read()
        && let Ok(t) = tx.open_multimap_table(PENDING)
        && let Ok(iter) = t.iter()
    {
        for row in iter.flatten() {
            for v in row.1.flatten() {
                out.insert(*v.value());
            }
        }
    }
    out
}

/// The materialised state of one document, for comparing two nodes. `memo` maps the SHA-256 of
/// stored bytes to the state they load to: a hundred communes holding the same catalog bytes
/// load it once.
fn doc_state(store: &Store, doc: &str, memo: &mut HashMap<[u8; 32], String>) -> String {
    let Some(bytes) = store.doc_state_bytes(doc).ok().flatten() else {
        return "absent".into();
    };
    let key: [u8; 32] = Sha256::digest(&bytes).into();
    memo.entry(key)
        .or_insert_with(|| state_of(doc, &bytes))
        .clone()
}

fn state_of(doc: &str, bytes: &[u8]) -> String {
    let Ok(d) = automerge::Automerge::load(bytes) else {
        return "unloadable".into();
    };
    let mut heads: Vec<String> = d.get_heads().iter().map(|h| hex::encode(h.0)).collect();
    heads.sort();
    let body = if doc.starts_with("dossier/") {
        motcua_schema::layout::dossier::read(&d)
            .map(|s| serde_json::to_string(&s).unwrap_or_default())
            .unwrap_or_else(|e| format!("unreadable: {e}"))
    } else if doc.starts_with("ratings/") {
        motcua_schema::layout::ratings::read(&d)
            .map(|r| serde_json::to_string(&r).unwrap_or_default())
            .unwrap_or_else(|e| format!("unreadable: {e}"))
    } else {
        String::new()
    };
    format!("{heads:?} {body}")
}

fn doc_has_change(store: &Store, doc: &str, hash: &[u8; 32]) -> bool {
    let Some(bytes) = store.doc_state_bytes(doc).ok().flatten() else {
        return false;
    };
    automerge::Automerge::load(&bytes).ok().is_some_and(|d| {
        d.get_change_by_hash(&automerge::ChangeHash(*hash))
            .is_some()
    })
}

fn has_change(store: &Store, hash: &[u8; 32]) -> bool {
    store
        .db()
        .begin_read()
        .ok()
        .and_then(|tx| tx.open_table(CHANGES).ok())
        .and_then(|t| t.get(hash).ok().flatten().map(|_| ()))
        .is_some()
}

/// Fork proofs held: (doc, actor hex, seq).
fn forks(store: &Store) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    if let Ok(tx) = store.db().begin_read()
        && let Ok(t) = tx.open_table(FORKS)
        && let Ok(iter) = t.iter()
    {
        for row in iter.flatten() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(row.1.value()) {
                out.push((
                    v["doc"].as_str().unwrap_or_default().to_owned(),
                    v["actor"].as_str().unwrap_or_default().to_owned(),
                    v["seq"].as_u64().unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// Rejects logged by a store, by reason.
pub fn rejects_by_reason(store: &Store) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Ok(tx) = store.db().begin_read()
        && let Ok(t) = tx.open_table(REJECTS)
        && let Ok(iter) = t.iter()
    {
        for row in iter.flatten() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(row.1.value()) {
                let reason = v["reason"].as_str().unwrap_or("unknown").to_owned();
                *out.entry(format!("apply: {reason}")).or_default() += 1;
            }
        }
    }
    out
}

/// The period every report of a run covers: everything that can have happened, with room for
/// clock jumps.
pub fn run_period(sim: &Sim) -> Period {
    let start = sim.scenario.start().expect("validated");
    let days = i64::from(sim.scenario.days) + 60;
    Period::new(
        start - time::Duration::days(40),
        start + time::Duration::days(days),
    )
    .expect("a valid period")
}

/// Runs every check on a finished run.
pub fn run_all(sim: &mut Sim) -> Vec<Check> {
    let mut out = Vec::new();
    let up: Vec<usize> = (0..sim.nodes.len())
        .filter(|n| sim.nodes[*n].is_up())
        .collect();
    let province_up = sim.nodes[0].is_up();

    // Continuous checks made while running.
    out.push(check(
        "no violation while running (acknowledged state = ground truth, no committed change lost in a crash)",
        sim.metrics.violations.clone(),
        format!("{} events", sim.metrics.events),
    ));

    // 1. Every acknowledged write reached the province.
    let mut lost = Vec::new();
    let mut acked = 0u64;
    for h in sim.truth.hashes() {
        acked += 1;
        if !sim.tracker.holds(0, h) {
            lost.push(format!(
                "acknowledged change {} is not at the province",
                hex::encode(&h[..8])
            ));
        }
    }
    out.push(check(
        "no acknowledged write lost",
        lost,
        format!(
            "{acked} acknowledged writes all held by the province ({} lost to restores of older backups, expected)",
            sim.truth.lost_to_restore
        ),
    ));

    // 2. Convergence and scope.
    let mut missing = Vec::new();
    let mut breaches = Vec::new();
    for n in 0..sim.nodes.len() {
        let (m, x) = sim.tracker.differences(n);
        if !sim.tracker.converged(n) || (!m.is_empty() && sim.nodes[n].kind != Kind::Commune) {
            missing.push(format!(
                "{} lacks {} changes (e.g. {})",
                sim.nodes[n].name,
                m.len(),
                m.first().map_or(String::new(), |(_, d)| d.clone())
            ));
        }
        if !x.is_empty() {
            breaches.push(format!(
                "{} holds {} changes outside its scope (e.g. {})",
                sim.nodes[n].name,
                x.len(),
                x[0].1
            ));
        }
    }
    let healed = sim.metrics.healed_at.unwrap_or(sim.fault_end_ms);
    out.push(check(
        "every honest node holds what it should after the network heals",
        missing,
        match sim.metrics.converged_at {
            Some(t) => format!("converged {} s after the last heal", (t - healed) / 1000),
            None => "converged".into(),
        },
    ));
    out.push(check(
        "no node holds a record outside its scope",
        breaches,
        format!("{} changes in the universe", sim.tracker.universe_count()),
    ));

    // 3. Nodes holding the same changes have identical documents, indexes and reports.
    let mut diffs = Vec::new();
    let period = run_period(sim);
    if province_up {
        let p_docs = doc_changes(sim.nodes[0].store());
        // The province's side of each comparison is computed once: shared documents (the
        // catalog, the registry) are compared with every commune, and the province's counters
        // table holds every unit's rows.
        let mut p_states: BTreeMap<String, String> = BTreeMap::new();
        let mut p_counters: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in rows(sim.nodes[0].store(), "counters") {
            p_counters
                .entry(counter_unit(&k).to_owned())
                .or_default()
                .insert(k, v);
        }
        let mut memo = HashMap::new();
        let mut compared = 0u64;
        for &n in up.iter().filter(|n| **n != 0) {
            let store = sim.nodes[n].store();
            let docs = doc_changes(store);
            for (doc, set) in &docs {
                if p_docs.get(doc) == Some(set) {
                    compared += 1;
                    let a = p_states
                        .entry(doc.clone())
                        .or_insert_with(|| doc_state(sim.nodes[0].store(), doc, &mut memo));
                    let b = doc_state(store, doc, &mut memo);
                    if *a != b {
                        diffs.push(format!(
                            "{doc} differs between province and {}",
                            sim.nodes[n].name
                        ));
                    }
                }
            }
            match sim.nodes[n].kind {
                Kind::Auditor => {
                    for table in [
                        "dossiers",
                        "counters",
                        "ratings",
                        "idx-status",
                        "idx-due",
                        "idx-unit",
                        "idx-transfer",
                        "idx-rating-unit",
                    ] {
                        if rows(sim.nodes[0].store(), table) != rows(store, table) {
                            diffs.push(format!(
                                "table {table} differs between province and auditor"
                            ));
                        }
                    }
                }
                Kind::Commune if sim.tracker.converged(n) => {
                    let unit = vec![sim.nodes[n].unit.to_string()];
                    let report = |s: &Store| {
                        s.report_inputs(Some(&unit), &period)
                            .map(|(d, r)| motcua_schema::report::compute("unit", &period, &d, &r))
                    };
                    let a = report(sim.nodes[0].store()).ok();
                    let b = report(store).ok();
                    if a.is_none() || a != b {
                        diffs.push(format!(
                            "report of {} differs between the commune and the province",
                            unit[0]
                        ));
                    }
                    let own: BTreeMap<String, String> = rows(store, "counters")
                        .into_iter()
                        .filter(|(k, _)| counter_unit(k) == unit[0])
                        .collect();
                    if p_counters.get(&unit[0]).cloned().unwrap_or_default() != own {
                        diffs.push(format!(
                            "counters of {} differ between the commune and the province",
                            unit[0]
                        ));
                    }
                }
                _ => {}
            }
        }
        out.push(check(
            "nodes holding the same changes have identical documents, indexes and reports",
            diffs,
            format!("{compared} documents compared across nodes"),
        ));
    }

    // 4. The provincial report equals the ground truth's.
    if province_up {
        let mut wrong = Vec::new();
        let store = sim.nodes[0].store();
        for (code, t) in &sim.truth.dossiers {
            match store.summary(code) {
                Ok(Some(s)) if s == t.summary() => {}
                Ok(Some(_)) => {
                    wrong.push(format!("summary of {code} differs from the ground truth"))
                }
                _ => wrong.push(format!("{code} missing at the province")),
            }
        }
        let scope = "toàn tỉnh";
        let truth_report = sim.truth.report(scope, &period);
        let units: Vec<String> = sim
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Province | Kind::Commune))
            .map(|n| n.unit.to_string())
            .collect();
        match store.report_inputs(Some(&units), &period) {
            Ok((d, r)) => {
                let province_report = motcua_schema::report::compute(scope, &period, &d, &r);
                if province_report != truth_report {
                    wrong.push(format!(
                        "provincial report differs: received {} vs truth {}, resolved {} vs {}, ratings {} vs {}",
                        province_report.received.total,
                        truth_report.received.total,
                        province_report.resolved.total,
                        truth_report.resolved.total,
                        province_report.ratings.total,
                        truth_report.ratings.total
                    ));
                }
            }
            Err(e) => wrong.push(format!("province report inputs: {e}")),
        }
        out.push(check(
            "the provincial report equals the report of the ground truth",
            wrong,
            format!(
                "{} dossiers, {} received, {} resolved, {} ratings in the period",
                sim.truth.dossiers.len(),
                truth_report.received.total,
                truth_report.resolved.total,
                truth_report.ratings.total
            ),
        ));
    }

    // 5. Byzantine changes.
    if !sim.byz.is_empty() {
        let mut bad = Vec::new();
        let mut fork_bad = Vec::new();
        let mut counted = BTreeMap::<&'static str, u64>::new();
        let all_forks: Vec<(String, String, u64)> = up
            .iter()
            .flat_map(|n| forks(sim.nodes[*n].store()))
            .collect();
        for b in &sim.byz {
            for c in &b.crafted {
                let kind = match c.kind {
                    Crafted::Valid => "valid",
                    Crafted::Forged => "forged",
                    Crafted::OutOfScope => "out of scope",
                    Crafted::OutOfScopePending => "out of scope, pending",
                    Crafted::Equivocation { .. } => "equivocation",
                };
                *counted.entry(kind).or_default() += 1;
                for &n in &up {
                    let store = sim.nodes[n].store();
                    let name = &sim.nodes[n].name;
                    match &c.kind {
                        Crafted::Forged if has_change(store, &c.hash) => {
                            bad.push(format!("{name} stored a forged change of {}", c.doc));
                        }
                        Crafted::OutOfScope | Crafted::OutOfScopePending
                            if doc_has_change(store, &c.doc, &c.hash) =>
                        {
                            bad.push(format!(
                                "{name} applied an out-of-scope change to {}",
                                c.doc
                            ));
                        }
                        Crafted::OutOfScope if has_change(store, &c.hash) => {
                            bad.push(format!("{name} stored an out-of-scope change to {}", c.doc));
                        }
                        Crafted::OutOfScopePending
                            if has_change(store, &c.hash) && !pending(store).contains(&c.hash) =>
                        {
                            bad.push(format!(
                                "{name} holds an out-of-scope change that is not pending"
                            ));
                        }
                        _ => {}
                    }
                }
                match &c.kind {
                    Crafted::Valid if b.enrolled && !sim.tracker.holds(0, &c.hash) => {
                        bad.push(format!("the province dropped a valid change of {}", b.name));
                    }
                    Crafted::Equivocation { actor, seq, doc }
                        if b.enrolled
                            && !all_forks
                                .iter()
                                .any(|(d, a, s)| d == doc && a == actor && s == seq) =>
                    {
                        fork_bad.push(format!("no fork proof for {doc} seq {seq} of {}", b.name));
                    }
                    _ => {}
                }
            }
        }
        out.push(check(
            "nothing from a Byzantine node that fails verification or scope is applied anywhere; its valid changes are kept",
            bad,
            format!("{counted:?}"),
        ));
        out.push(check(
            "each equivocation yields a fork proof",
            fork_bad,
            format!("{} fork proofs held", all_forks.len()),
        ));
    }

    // 6. Identifiers.
    out.push(check(
        "dossier codes and rating ids are never handed out twice",
        sim.truth.reused_ids.clone(),
        format!(
            "{} dossiers, {} ratings",
            sim.truth.dossiers.len(),
            sim.truth.ratings.len()
        ),
    ));

    // 7. Liveness.
    let live = match sim.metrics.converged_at {
        Some(_) => Vec::new(),
        None => vec![format!(
            "not converged {} h after the last heal",
            sim.scenario.heal_hours
        )],
    };
    out.push(check(
        "liveness: the network converges after the last heal",
        live,
        String::new(),
    ));
    out
}
