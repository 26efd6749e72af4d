//! What a run reports: a summary a tester reads, the same as JSON for CI and for comparing runs,
//! and SVG plots (staleness per commune over time, traffic over time, convergence after heals).
//!
//! Why one [`Outcome`] for all three: the text, the JSON and the plots must say the same thing,
//! so they are all rendered from one value computed once from the finished run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::checks::{Check, rejects_by_reason};
use crate::node::Kind;
use crate::sim::Sim;
use crate::workload::HOUR_MS;

/// Traffic of one link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkTraffic {
    /// The remote node.
    pub node: String,
    /// Bytes the province sent it.
    pub bytes_down: u64,
    /// Bytes it sent the province.
    pub bytes_up: u64,
    /// Messages both ways.
    pub messages: u64,
    /// Connections established.
    pub connections: u64,
}

/// What the nodes of one role wrote to their disks. Deterministic, unlike the wall time, so a
/// change to the store's layout can be compared between runs by the bytes each commit writes;
/// on a real node those bytes are disk wear and fsync time.
#[derive(Debug, Clone, Serialize)]
pub struct DiskUse {
    /// `province`, `communes` or `auditor`.
    pub role: &'static str,
    /// Nodes of the role.
    pub nodes: usize,
    /// Bytes the stores wrote (since each disk was last replaced by a restore).
    pub bytes_written: u64,
    /// Syncs, one per durable commit.
    pub syncs: u64,
    /// Bytes written per sync.
    pub bytes_per_sync: u64,
    /// Size of the images at the end, summed over the role's nodes.
    pub image_bytes: u64,
}

/// A distribution's summary, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Distribution {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_s: f64,
    /// 90th percentile.
    pub p90_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
    /// Largest.
    pub max_s: f64,
}

impl Distribution {
    fn of(mut ms: Vec<u64>) -> Distribution {
        if ms.is_empty() {
            return Distribution::default();
        }
        ms.sort_unstable();
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Distribution {
            count: ms.len(),
            p50_s: at(0.5),
            p90_s: at(0.9),
            p99_s: at(0.99),
            max_s: *ms.last().expect("not empty") as f64 / 1000.0,
        }
    }
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// SHA-256 over everything the run did, hex: equal for equal runs.
    pub trace_hash: String,
    /// Whether every check passed.
    pub passed: bool,
    /// The checks.
    pub checks: Vec<Check>,
    /// Simulated time, s.
    pub simulated_s: f64,
    /// Wall time of the run, s (reported only; never part of the trace).
    pub wall_s: f64,
    /// Nodes: province, communes, auditor, Byzantine.
    pub nodes: usize,
    /// Events processed.
    pub events: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Connections established.
    pub connections: u64,
    /// Changes in the network at the end.
    pub changes: u64,
    /// Acknowledged writes by kind.
    pub acknowledged: BTreeMap<String, u64>,
    /// Refused or abandoned requests by reason.
    pub refused: BTreeMap<String, u64>,
    /// Faults injected by kind.
    pub faults: BTreeMap<String, u64>,
    /// Rejects and failures by reason (verification, apply, sessions, connections, bundles).
    pub rejects: BTreeMap<String, u64>,
    /// Reconciliations decoded, and fallen back to the feed.
    pub reconciliations: [u64; 2],
    /// Write transactions committed, by purpose.
    pub commits: BTreeMap<String, u64>,
    /// Disk writes by role.
    pub disks: Vec<DiskUse>,
    /// Seconds from the last heal to convergence.
    pub convergence_after_last_heal_s: Option<f64>,
    /// Convergence after each heal.
    pub convergence_after_heals: Distribution,
    /// Heals after which a link broke again before convergence.
    pub heals_not_converged: usize,
    /// Staleness of the province's view of each commune, over all samples.
    pub staleness: Distribution,
    /// Worst staleness per commune, s.
    pub staleness_max_by_commune_s: BTreeMap<String, f64>,
    /// Bytes per link.
    pub links: Vec<LinkTraffic>,
    /// Bytes on the network.
    pub bytes_total: u64,
    /// Bytes per simulated hour.
    pub traffic_by_hour: Vec<u64>,
}

impl Outcome {
    /// The names of the checks that failed.
    pub fn failed_checks(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }
}

/// Builds the outcome of a finished run.
pub fn outcome(sim: &mut Sim, checks: Vec<Check>, wall_s: f64) -> Outcome {
    let mut rejects = sim.metrics.rejects.clone();
    for n in 0..sim.nodes.len() {
        if let Some(store) = sim.nodes[n].store.as_ref() {
            for (k, v) in rejects_by_reason(store) {
                *rejects.entry(k).or_default() += v;
            }
        }
    }
    let links = sim
        .links
        .iter()
        .map(|l| LinkTraffic {
            node: match l.remote {
                crate::net::Remote::Honest(n) => sim.nodes[n].name.clone(),
                crate::net::Remote::Byz(b) => sim.byz[b].name.clone(),
            },
            bytes_down: l.bytes[0],
            bytes_up: l.bytes[1],
            messages: l.messages[0] + l.messages[1],
            connections: l.connections,
        })
        .collect::<Vec<_>>();
    let mut all_staleness = Vec::new();
    let mut by_commune = BTreeMap::new();
    for (c, samples) in &sim.metrics.staleness {
        let max = samples.iter().map(|(_, s)| *s).max().unwrap_or(0);
        by_commune.insert(sim.nodes[*c].name.clone(), max as f64 / 1000.0);
        all_staleness.extend(samples.iter().map(|(_, s)| *s));
    }
    let heals: Vec<u64> = sim.metrics.heals.iter().filter_map(|h| h.2).collect();
    let healed = sim.metrics.healed_at.unwrap_or(sim.fault_end_ms);
    Outcome {
        scenario: sim.scenario.name.clone(),
        seed: sim.seed,
        trace_hash: sim.trace_hash(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        simulated_s: sim.now as f64 / 1000.0,
        wall_s,
        nodes: sim.nodes.len() + sim.byz.len(),
        events: sim.metrics.events,
        messages: sim.metrics.messages_delivered,
        connections: sim.metrics.connections,
        changes: sim.tracker.universe_count(),
        acknowledged: sim.metrics.acked.clone(),
        refused: sim.metrics.refused.clone(),
        faults: sim.metrics.faults.clone(),
        rejects,
        reconciliations: sim.metrics.reconciliations,
        commits: sim
            .metrics
            .commits
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        disks: disk_use(sim),
        convergence_after_last_heal_s: sim
            .metrics
            .converged_at
            .map(|t| (t - healed) as f64 / 1000.0),
        convergence_after_heals: Distribution::of(heals),
        heals_not_converged: sim.metrics.heals.iter().filter(|h| h.2.is_none()).count(),
        staleness: Distribution::of(all_staleness),
        staleness_max_by_commune_s: by_commune,
        bytes_total: links.iter().map(|l| l.bytes_down + l.bytes_up).sum(),
        links,
        traffic_by_hour: sim.metrics.traffic_by_hour.clone(),
    }
}

fn disk_use(sim: &Sim) -> Vec<DiskUse> {
    [
        (Kind::Province, "province"),
        (Kind::Commune, "communes"),
        (Kind::Auditor, "auditor"),
    ]
    .into_iter()
    .filter_map(|(kind, role)| {
        let stats: Vec<_> = sim
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.disk.stats())
            .collect();
        if stats.is_empty() {
            return None;
        }
        let bytes_written = stats.iter().map(|d| d.bytes_written).sum();
        let syncs = stats.iter().map(|d| d.syncs).sum();
        Some(DiskUse {
            role,
            nodes: stats.len(),
            bytes_written,
            syncs,
            bytes_per_sync: bytes_written.checked_div(syncs).unwrap_or(0),
            image_bytes: stats.iter().map(|d| d.size_bytes).sum(),
        })
    })
    .collect()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 30 => format!("{} GB", n >> 30),
        n if n >= 10 << 20 => format!("{} MB", n >> 20),
        n if n >= 10 << 10 => format!("{} KB", n >> 10),
        n => format!("{n} B"),
    }
}

/// The summary a tester reads.
pub fn text(o: &Outcome, replay: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "motcua-sim: scenario {} seed {}: {}",
        o.scenario,
        o.seed,
        if o.passed { "PASSED" } else { "FAILED" }
    );
    let _ = writeln!(
        s,
        "  {} nodes, {:.1} simulated hours in {:.1} s (x{:.0}), {} events, {} messages, {} connections",
        o.nodes,
        o.simulated_s / 3600.0,
        o.wall_s,
        if o.wall_s > 0.0 {
            o.simulated_s / o.wall_s
        } else {
            0.0
        },
        o.events,
        o.messages,
        o.connections
    );
    let _ = writeln!(s, "  trace {}", o.trace_hash);
    let _ = writeln!(s, "  acknowledged: {:?}", o.acknowledged);
    if !o.refused.is_empty() {
        let _ = writeln!(s, "  refused or abandoned: {:?}", o.refused);
    }
    let _ = writeln!(s, "  faults injected: {:?}", o.faults);
    let _ = writeln!(s, "  rejects by reason: {:?}", o.rejects);
    let _ = writeln!(s, "  write transactions: {:?}", o.commits);
    for d in &o.disks {
        let _ = writeln!(
            s,
            "  disk writes, {} ({} node{}): {} in {} syncs ({} a sync), images {}",
            d.role,
            d.nodes,
            if d.nodes == 1 { "" } else { "s" },
            bytes(d.bytes_written),
            d.syncs,
            bytes(d.bytes_per_sync),
            bytes(d.image_bytes)
        );
    }
    let _ = writeln!(
        s,
        "  reconciliations: {} decoded, {} fell back to the feed",
        o.reconciliations[0], o.reconciliations[1]
    );
    let d = &o.convergence_after_heals;
    let _ = writeln!(
        s,
        "  convergence after each heal ({} heals, {} broke again first): p50 {:.0} s, p90 {:.0} s, p99 {:.0} s, max {:.0} s",
        d.count, o.heals_not_converged, d.p50_s, d.p90_s, d.p99_s, d.max_s
    );
    let _ = writeln!(
        s,
        "  convergence after the last heal: {}",
        o.convergence_after_last_heal_s
            .map_or("never".to_owned(), |t| format!("{t:.0} s"))
    );
    let d = &o.staleness;
    let _ = writeln!(
        s,
        "  staleness of the province's view of communes: p50 {:.0} s, p90 {:.0} s, p99 {:.0} s, max {:.0} s",
        d.p50_s, d.p90_s, d.p99_s, d.max_s
    );
    let _ = writeln!(
        s,
        "  traffic: {} in total, {} changes in the network",
        bytes(o.bytes_total),
        o.changes
    );
    for l in o.links.iter().take(12) {
        let _ = writeln!(
            s,
            "    {:<14} down {:>8}  up {:>8}  {:>7} messages  {:>4} connections",
            l.node,
            bytes(l.bytes_down),
            bytes(l.bytes_up),
            l.messages,
            l.connections
        );
    }
    if o.links.len() > 12 {
        let _ = writeln!(s, "    ... {} more links (see --json)", o.links.len() - 12);
    }
    let _ = writeln!(s, "  checks:");
    for c in &o.checks {
        let _ = writeln!(
            s,
            "    [{}] {}: {}",
            if c.passed { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if !o.passed {
        let _ = writeln!(s, "  replay: {replay}");
    }
    s
}

/// Writes the three plots into `dir`.
pub fn plots(sim: &Sim, o: &Outcome, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    staleness_plot(sim, &dir.join("staleness.svg")).map_err(|e| e.to_string())?;
    traffic_plot(o, &dir.join("traffic.svg")).map_err(|e| e.to_string())?;
    heals_plot(sim, &dir.join("convergence.svg")).map_err(|e| e.to_string())?;
    Ok(())
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn staleness_plot(sim: &Sim, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let hours = sim.now as f64 / HOUR_MS as f64;
    let max = sim
        .metrics
        .staleness
        .values()
        .flat_map(|v| v.iter().map(|(_, s)| *s as f64 / HOUR_MS as f64))
        .fold(0.1f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Staleness of the province's view of each commune",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..hours.max(1.0), 0f64..max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("simulated hours")
        .y_desc("staleness, hours")
        .draw()?;
    for (i, (c, samples)) in sim.metrics.staleness.iter().enumerate() {
        let color = Palette99::pick(i).stroke_width(1);
        let series = samples
            .iter()
            .map(|(t, s)| (*t as f64 / HOUR_MS as f64, *s as f64 / HOUR_MS as f64));
        let drawn = chart.draw_series(LineSeries::new(series, color))?;
        if sim.metrics.staleness.len() <= 10 {
            let name = sim.nodes[*c].name.clone();
            drawn
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], Palette99::pick(i)));
        }
    }
    if sim.metrics.staleness.len() <= 10 && sim.nodes.iter().any(|n| n.kind == Kind::Commune) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn traffic_plot(o: &Outcome, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = o.traffic_by_hour.iter().copied().max().unwrap_or(1).max(1) as f64 / 1024.0;
    let n = o.traffic_by_hour.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Traffic on the network per simulated hour",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n, 0f64..max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("simulated hours")
        .y_desc("KB")
        .draw()?;
    chart.draw_series(o.traffic_by_hour.iter().enumerate().map(|(h, b)| {
        Rectangle::new(
            [(h as f64, 0.0), (h as f64 + 0.9, *b as f64 / 1024.0)],
            BLUE.filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

fn heals_plot(sim: &Sim, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let points: Vec<(f64, f64)> = sim
        .metrics
        .heals
        .iter()
        .filter_map(|(at, _, d)| d.map(|d| (*at as f64 / HOUR_MS as f64, d as f64 / 1000.0)))
        .collect();
    let max = points.iter().map(|p| p.1).fold(1.0f64, f64::max);
    let hours = (sim.now as f64 / HOUR_MS as f64).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("Convergence after each heal", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..hours, 0f64..max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("simulated hour of the heal")
        .y_desc("seconds to converge")
        .draw()?;
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, RED.filled())))?;
    root.present()?;
    Ok(())
}
