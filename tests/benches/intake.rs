//! Benchmark: durable intake through the HTTP API with concurrent clients.
//!
//! Starts a real `motcua serve` (release build), signs in, and has `CLIENTS` concurrent clients
//! each receive dossiers back to back until `TOTAL` have been acknowledged. Every 201 means the
//! dossier's signed change, document, indexes and counters were committed with fsync. Prints
//! throughput and latency percentiles. Run with:
//!
//! ```text
//! cargo bench -p motcua-tests --bench intake            # defaults: 64 clients, 20,000 dossiers
//! MOTCUA_BENCH_CLIENTS=16 MOTCUA_BENCH_TOTAL=5000 cargo bench -p motcua-tests --bench intake
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use motcua_tests::{TestNode, new_dossier};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clients = env_or("MOTCUA_BENCH_CLIENTS", 64);
    let total = env_or("MOTCUA_BENCH_TOTAL", 20_000);
    let tmp = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_motcua-under-test"));
    let mut node = TestNode::init(bin, tmp.path(), "000.01.01.H99", "commune").unwrap();
    node.start().unwrap();
    let client = node.client("tiepnhan").await.unwrap();
    // Warm up: first requests open tables and fill caches.
    for i in 0..50 {
        let (status, body) = client
            .post("/api/v1/dossiers", &new_dossier("1.004873", "online", i))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return latencies;
                }
                let t = Instant::now();
                let (status, body) = client
                    .post(
                        "/api/v1/dossiers",
                        &new_dossier("1.004873", "online", 1_000 + n),
                    )
                    .await
                    .unwrap();
                assert_eq!(status, 201, "{body}");
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!("durable intake over HTTP: {total} dossiers, {clients} concurrent clients");
    println!(
        "  throughput {:.0} dossiers/s over {:.2} s",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all[all.len() - 1].as_secs_f64() * 1e3
    );
    node.kill();
}
