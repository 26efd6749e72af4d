//! motcua-simulator: the deterministic network simulator of a province's nodes.
//!
//! Why it exists: testers must be able to answer "with this many communes, these links and this
//! workload, does everything converge, how fast, at what traffic, and are the province's figures
//! right?" without a province to try it on, and a failure must be reproducible from its seed.
//! It runs the real node core (the store on a simulated disk, the apply pipeline, the commands,
//! the sync state machine) over a simulated network on simulated time: no threads, no wall
//! clock, no OS randomness. One seed and one commit give one run, byte for byte.
//!
//! Map of the crate:
//! - [`scenario`]: the TOML scenario files;
//! - [`rng`]: the one seeded random source;
//! - [`disk`]: the simulated disk under each store (crash, failing writes, backups);
//! - [`node`]: an honest node: store, pipeline and commands on simulated time;
//! - [`byz`]: Byzantine nodes and their crafted changes;
//! - [`net`]: links, connections, latency, bandwidth, loss;
//! - [`workload`]: calibrated arrivals and each dossier's life;
//! - [`truth`]: the ground truth of what was acknowledged;
//! - [`track`]: who holds which change, for convergence;
//! - [`sim`]: the event loop;
//! - [`checks`]: the invariants checked after every run;
//! - [`report`]: the summary, JSON and plots.

pub mod byz;
pub mod checks;
pub mod disk;
pub mod net;
pub mod node;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod track;
pub mod truth;
pub mod workload;

use report::Outcome;
use scenario::Scenario;
use sim::Sim;

/// Runs `scenario` with `seed` to the end and checks it. `progress` is told (simulated ms, end
/// ms) as the run goes; `wall_s` measures the run's own duration for the report (it never enters
/// the run).
pub fn run(
    scenario: &Scenario,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64),
    wall_s: &dyn Fn() -> f64,
) -> (Outcome, Sim) {
    let mut sim = Sim::new(scenario, seed);
    sim.run(progress);
    let checks = checks::run_all(&mut sim);
    let o = report::outcome(&mut sim, checks, wall_s());
    (o, sim)
}

/// The one-line command that replays a run.
pub fn replay_command(scenario_path: &str, seed: u64) -> String {
    format!("cargo run --release -p motcua-simulator -- run {scenario_path} --seed {seed}")
}
