//! Invariant 1: an acknowledged write (HTTP 2xx) survives kill -9.
//!
//! Many clients receive dossiers concurrently; once some have been acknowledged the node is
//! killed with SIGKILL at a varying moment (often in the middle of a group commit), restarted,
//! and every acknowledged dossier must be there, with the store opening cleanly each time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use motcua_tests::{TestNode, new_dossier};

/// Kill-and-restart rounds in one test run.
const ROUNDS_COUNT: u64 = 20;
/// Concurrent clients during each burst.
const CLIENTS_COUNT: u64 = 12;
/// Acknowledgements to see in a round before the kill may happen.
const ACKS_BEFORE_KILL_COUNT_MIN: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_intake_survives_sigkill_twenty_times() {
    // Why: officials hand the citizen a slip as soon as the node answers 201; that dossier must
    // never disappear, whatever happens to the power or the process afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(super::motcua(), tmp.path(), "000.01.01.H99", "commune").unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..ROUNDS_COUNT {
        node.start()
            .unwrap_or_else(|e| panic!("round {round}: store did not open cleanly: {e:#}"));
        let client = node.client("tiepnhan").await.unwrap();
        // Everything acknowledged in earlier rounds is still there.
        for code in &acknowledged {
            let (status, _) = client
                .get(&format!("/api/v1/dossiers/{code}"))
                .await
                .unwrap();
            assert_eq!(
                status, 200,
                "round {round}: acknowledged dossier {code} lost"
            );
        }
        let acks: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS_COUNT {
            let (client, acks) = (client.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = round * 1_000_000 + c * 10_000 + i;
                    match client
                        .post("/api/v1/dossiers", &new_dossier("1.004873", "direct", n))
                        .await
                    {
                        Ok((201, body)) => {
                            let code = body["summary"]["code"]
                                .as_str()
                                .expect("code in answer")
                                .to_owned();
                            acks.lock().unwrap().push(code);
                        }
                        Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                        // The node was killed: stop this client.
                        Err(_) => return,
                    }
                }
            }));
        }
        // Wait for a few acknowledgements, then kill after a varying extra delay so that the
        // kill lands at different points of the writer's batches.
        let mut waited_ms = 0;
        while acks.lock().unwrap().len() < ACKS_BEFORE_KILL_COUNT_MIN {
            tokio::time::sleep(Duration::from_millis(5)).await;
            waited_ms += 5;
            assert!(waited_ms < 120_000, "round {round}: no acknowledgements");
        }
        tokio::time::sleep(Duration::from_millis((round * 37) % 150)).await;
        node.kill();
        for t in tasks {
            t.await.unwrap();
        }
        let acks = acks.lock().unwrap().clone();
        assert!(acks.len() >= ACKS_BEFORE_KILL_COUNT_MIN);
        acknowledged.extend(acks);
    }
    // A final start: everything from the last round too, and the counts agree.
    node.start().unwrap();
    let client = node.client("tiepnhan").await.unwrap();
    for code in &acknowledged {
        let (status, _) = client
            .get(&format!("/api/v1/dossiers/{code}"))
            .await
            .unwrap();
        assert_eq!(
            status, 200,
            "acknowledged dossier {code} lost after the last kill"
        );
    }
    let (_, status) = client.get("/api/v1/status").await.unwrap();
    let held = status["counts"]["dossiers"].as_u64().unwrap();
    // Requests in flight at a kill may have been written without being acknowledged, never
    // the other way round.
    assert!(
        held >= acknowledged.len() as u64,
        "held {held} < acknowledged {}",
        acknowledged.len()
    );
    let mut unique = acknowledged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        acknowledged.len(),
        "a dossier code was allocated twice"
    );
}
