//! `motcua-sim`: runs the deterministic network simulator (see the crate docs).
//!
//! `motcua-sim run SCENARIO.toml [--seed N] [--out DIR] [--json]` runs one seed (the scenario's
//! first when none is given) and prints the summary (or JSON), writing the plots into `--out`;
//! `motcua-sim sweep SCENARIO.toml --seeds N [--from S] [--json]` runs N seeds one after the
//! other and lists the failures, each with the command that replays it. The exit code is 0 when
//! every check passed, 1 when one failed, 2 on a usage or file error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use motcua_simulator::scenario::Scenario;
use motcua_simulator::{replay_command, report, run};

/// The simulator allocates and frees small buffers for every message, page and document it
/// handles; mimalloc made the benchmark run 7% faster than the system allocator (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the sixteenth entry of `mi_option_e` in mimalloc 3's
/// `mimalloc.h`; libmimalloc-sys names no constant for it). A test checks it still reads the
/// option's documented default.
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

/// Tells mimalloc never to hand freed memory back to the operating system. By default it returns
/// pages that stay free for a second, and the run, which frees and reuses memory all the time,
/// then pays the kernel to zero them again when it touches them next: without the setting the
/// 3-day run took four to nineteen times as many page faults and two to nearly four times the
/// system time, and the 30-day run about a second more of it, at the same peak memory
/// (BENCHMARKS.md (i)).
/// A run is one process that ends, so holding its peak is no loss. `MIMALLOC_PURGE_DELAY` in the
/// environment still wins, for experiments.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide option of the allocator this binary links; mimalloc stores
    // options atomically and accepts any value, -1 meaning "never purge".
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

#[derive(Parser)]
#[command(
    name = "motcua-sim",
    about = "Deterministic network simulator of a motcua province"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one seed of a scenario.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed (default: the scenario's first).
        #[arg(long)]
        seed: Option<u64>,
        /// Directory for the plots and the JSON outcome.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the outcome as JSON instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Runs many seeds of a scenario.
    Sweep {
        /// The scenario file.
        scenario: PathBuf,
        /// How many seeds.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &PathBuf) -> Result<Scenario> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
}

// The simulator's only clock reading: its own run time, for the report. It never enters a run.
#[allow(clippy::disallowed_methods)]
fn stopwatch() -> impl Fn() -> f64 {
    let start = std::time::Instant::now();
    move || start.elapsed().as_secs_f64()
}

fn bar(len: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

fn main() -> ExitCode {
    keep_freed_memory();
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("motcua-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run {
            scenario,
            seed,
            out,
            json,
        } => {
            let s = load(&scenario)?;
            let seed = seed.or(s.seeds.first().copied()).unwrap_or(1);
            let pb = bar(0, json);
            pb.set_message(format!("{} seed {seed}: simulated hours", s.name));
            let mut progress = |now: u64, end: u64| {
                pb.set_length(end / 3_600_000);
                pb.set_position(now / 3_600_000);
            };
            let watch = stopwatch();
            let (outcome, sim) = run(&s, seed, &mut progress, &watch);
            pb.finish_and_clear();
            let replay = replay_command(&scenario.display().to_string(), seed);
            if let Some(dir) = &out {
                report::plots(&sim, &outcome, dir).map_err(anyhow::Error::msg)?;
                let path = dir.join("outcome.json");
                std::fs::write(&path, serde_json::to_string_pretty(&outcome)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else {
                print!("{}", report::text(&outcome, &replay));
            }
            if !outcome.passed {
                eprintln!("motcua-sim: seed {seed} FAILED; replay with: {replay}");
            }
            Ok(outcome.passed)
        }
        Cmd::Sweep {
            scenario,
            seeds,
            from,
            json,
        } => {
            let s = load(&scenario)?;
            let pb = bar(seeds, json);
            pb.set_message(format!("{}: seeds", s.name));
            let watch = stopwatch();
            let mut failures = Vec::new();
            let mut convergence = Vec::new();
            let mut simulated = 0.0;
            for seed in from..from + seeds {
                let (o, _) = run(&s, seed, &mut |_, _| {}, &|| 0.0);
                simulated += o.simulated_s;
                if let Some(c) = o.convergence_after_last_heal_s {
                    convergence.push(c);
                }
                if !o.passed {
                    let failed = o.failed_checks();
                    let line = format!(
                        "seed {seed} FAILED ({}); replay with: {}",
                        failed.join(", "),
                        replay_command(&scenario.display().to_string(), seed)
                    );
                    pb.suspend(|| eprintln!("{line}"));
                    failures.push((seed, failed.join("; ")));
                }
                pb.inc(1);
            }
            pb.finish_and_clear();
            convergence.sort_by(f64::total_cmp);
            let pct = |q: f64| {
                convergence
                    .get(((convergence.len().max(1) - 1) as f64 * q) as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            let wall = watch();
            if json {
                let v = serde_json::json!({
                    "scenario": s.name, "from": from, "seeds": seeds,
                    "failed": failures.iter().map(|(s, why)| serde_json::json!({"seed": s, "checks": why})).collect::<Vec<_>>(),
                    "convergence_after_last_heal_s": {"p50": pct(0.5), "p90": pct(0.9), "max": pct(1.0)},
                    "wall_s": wall, "simulated_s": simulated,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "motcua-sim sweep: scenario {} seeds {from}..{}: {} passed, {} failed in {wall:.0} s ({:.0} simulated hours)",
                    s.name,
                    from + seeds - 1,
                    seeds - failures.len() as u64,
                    failures.len(),
                    simulated / 3600.0
                );
                println!(
                    "  convergence after the last heal: p50 {:.0} s, p90 {:.0} s, max {:.0} s",
                    pct(0.5),
                    pct(0.9),
                    pct(1.0)
                );
            }
            Ok(failures.is_empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_at_start_up_is_the_purge_delay() {
        // Why: the option's number is written by hand; if mimalloc renumbered its options, the
        // start-up call would silently change some other setting. The purge delay's default in
        // mimalloc 3 is 1000 ms, which no neighbouring option has.
        #[allow(unsafe_code)]
        // SAFETY: reads and sets a process-wide allocator option (see `keep_freed_memory`).
        let (before, after) = unsafe {
            let before = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
            keep_freed_memory();
            (
                before,
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Err(_) => assert_eq!((before, after), (1000, -1)),
            Ok(_) => assert_eq!(before, after, "the environment's setting wins"),
        }
    }
}
