//! Replication between real processes on loopback: a province and its communes over iroh.
//!
//! Each test builds a small province with one root key (`Network`), lets the communes dial the
//! province, and checks what the officials rely on: intake goes on while the province is down
//! and everything arrives when it is back; the province's figures equal the communes'; a
//! commune restored from an old backup gets its newer records back without forking its actor;
//! keys that are not enrolled, or are revoked, are refused; a USB bundle carries a commune's
//! work with no link at all.

use motcua_tests::{Client, Network, TestNode, new_dossier, wait_until};
use serde_json::{Value, json};

/// Longest wait for replication to converge; only a hang takes this long.
const CONVERGE_WAIT_MS: u64 = 120_000;
const C1: &str = "000.01.01.H99";
const C2: &str = "000.01.02.H99";

async fn counts(c: &Client) -> (u64, u64) {
    match c.get("/api/v1/status").await {
        Ok((200, s)) => (
            s["counts"]["dossiers"].as_u64().unwrap_or(0),
            s["counts"]["ratings"].as_u64().unwrap_or(0),
        ),
        _ => (0, 0),
    }
}

/// Receives `n` dossiers at a commune, resolves every other one, and rates a few.
async fn work(c: &Client, n: u64, seed: u64) -> Vec<String> {
    let mut codes = Vec::new();
    for i in 0..n {
        let channel = ["online", "direct", "postal"][(i % 3) as usize];
        let (status, body) = c
            .post(
                "/api/v1/dossiers",
                &new_dossier("1.004873", channel, seed * 1000 + i),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let code = body["summary"]["code"].as_str().unwrap().to_owned();
        if i % 2 == 0 {
            let (status, body) = c
                .post(
                    &format!("/api/v1/dossiers/{code}/events"),
                    &json!({ "kind": "resolved" }),
                )
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
        }
        if i % 3 == 0 {
            let rating = json!({ "score": "satisfied", "official": "tiepnhan", "dossier": code });
            let (status, body) = c.post("/api/v1/ratings", &rating).await.unwrap();
            assert_eq!(status, 201, "{body}");
        }
        codes.push(code);
    }
    codes
}

#[allow(clippy::disallowed_methods)] // the test reads the same clock as the nodes it drives
fn today() -> String {
    time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).unwrap())
        .date()
        .to_string()
}

async fn report(c: &Client, unit: Option<&str>) -> Value {
    let d = today();
    let unit = unit.map(|u| format!("&unit={u}")).unwrap_or_default();
    let (status, r) = c
        .get(&format!("/api/v1/reports?from={d}&to={d}{unit}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{r}");
    r
}

/// The figures of a report without its scope line (which names who computed it).
fn figures(mut r: Value) -> Value {
    r.as_object_mut().unwrap().remove("scope");
    r
}

async fn leader(node: &TestNode) -> Client {
    node.client("lanhdao").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_goes_on_while_the_province_is_down_and_everything_converges() {
    // Why: a commune's internet (or the province's server) fails for hours; the counter must
    // keep working and the province must end up with every record and the same figures.
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Network::create(super::motcua(), tmp.path(), &[C1, C2]).unwrap();
    net.start().unwrap();
    let p = leader(&net.province).await;
    let c1 = net.communes[0].client("lanhdao").await.unwrap();
    let c2 = net.communes[1].client("lanhdao").await.unwrap();
    work(&c1, 6, 1).await;
    work(&c2, 4, 2).await;
    wait_until(
        "province receives the first dossiers",
        CONVERGE_WAIT_MS,
        || async { Ok(counts(&p).await.0 == 10) },
    )
    .await
    .unwrap();

    net.province.kill();
    work(&c1, 7, 3).await;
    work(&c2, 5, 4).await;
    net.province.start().unwrap();
    let p = leader(&net.province).await;
    let expected = (
        counts(&c1).await.0 + counts(&c2).await.0,
        counts(&c1).await.1 + counts(&c2).await.1,
    );
    assert_eq!(expected.0, 22);
    wait_until(
        "province converges after its restart",
        CONVERGE_WAIT_MS,
        || async { Ok(counts(&p).await == expected) },
    )
    .await
    .unwrap();

    // The province's report of each unit equals that unit's own report, and the province
    // total is the union.
    for (c, unit) in [(&c1, C1), (&c2, C2)] {
        let own = figures(report(c, None).await);
        let at_province = figures(report(&p, Some(unit)).await);
        assert_eq!(
            at_province, own,
            "province's view of {unit} differs from the commune's"
        );
    }
    let all = report(&p, None).await;
    let (r1, r2) = (report(&c1, None).await, report(&c2, None).await);
    for path in [
        ["received", "total"],
        ["resolved", "total"],
        ["ratings", "total"],
        ["in_progress", "total"],
    ] {
        let sum = r1[path[0]][path[1]].as_u64().unwrap() + r2[path[0]][path[1]].as_u64().unwrap();
        assert_eq!(all[path[0]][path[1]].as_u64().unwrap(), sum, "{path:?}");
    }
    let rows: Vec<Value> = all["by_unit"].as_array().unwrap().clone();
    assert_eq!(rows, [r1["by_unit"][0].clone(), r2["by_unit"][0].clone()]);

    // Per-peer status at the province: both communes connected and caught up.
    let (_, peers) = p.get("/api/v1/peers").await.unwrap();
    let items = peers["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|i| i["connected"] == true).count(),
        2,
        "{peers}"
    );
    assert!(
        items
            .iter()
            .all(|i| i["changes_received"].as_u64().unwrap() > 0
                || i["last_caught_up_at"].is_number()),
        "{peers}"
    );

    // A bundle cut for the province starts after what the province acknowledged when it
    // reconnected (its checkpoint of this commune's feed), not from the beginning; `--all`
    // still writes everything. Why: a commune whose link fails for days carries only those
    // days on the USB stick. The commune writes that acknowledgement with its replication
    // bookkeeping, which may wait for the writer's linger: its status shows it once durable.
    wait_until(
        "the commune records the province's acknowledgement",
        CONVERGE_WAIT_MS,
        || async {
            let (_, peers) = c1.get("/api/v1/peers").await?;
            Ok(peers["items"][0]["acknowledged_upto"].as_u64() > Some(0))
        },
    )
    .await
    .unwrap();
    net.communes[0].kill();
    let province_key = net.province.key().unwrap();
    let export = |all: bool| {
        let file = tmp.path().join(format!("c1-{all}.motcua"));
        let mut args = vec!["bundle", "export", "--for", &province_key];
        if all {
            args.push("--all");
        }
        args.push(file.to_str().unwrap());
        let out = net.communes[0].motcua(&args).unwrap();
        let range = out
            .split("vị trí ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or_else(|| panic!("no feed range in {out:?}"));
        let (after, upto) = range.split_once("..").unwrap();
        (after.parse::<u64>().unwrap(), upto.parse::<u64>().unwrap())
    };
    let (after, upto) = export(false);
    assert!(
        after > 0 && after < upto,
        "incremental bundle covers {after}..{upto}"
    );
    assert_eq!(export(true), (0, upto));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commune_restored_from_an_old_backup_recovers_its_newer_records_without_forking() {
    // Why: rural offices lose disks; restoring last week's backup must not lose what the
    // province already holds, nor make the restored node sign two different changes with the
    // same actor and sequence number (which every node would flag as equivocation).
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Network::create(super::motcua(), tmp.path(), &[C1]).unwrap();
    net.start().unwrap();
    let p = leader(&net.province).await;
    let c = net.communes[0].client("lanhdao").await.unwrap();
    let old = work(&c, 4, 1).await;
    wait_until("first sync", CONVERGE_WAIT_MS, || async {
        Ok(counts(&p).await.0 == 4)
    })
    .await
    .unwrap();

    // Back up the stopped commune, then keep working.
    net.communes[0].kill();
    let backup = tmp.path().join("backup.redb");
    std::fs::copy(net.communes[0].dir().join("motcua.redb"), &backup).unwrap();
    net.communes[0].start().unwrap();
    let c = net.communes[0].client("lanhdao").await.unwrap();
    let newer = work(&c, 5, 2).await;
    wait_until(
        "newer records reach the province",
        CONVERGE_WAIT_MS,
        || async { Ok(counts(&p).await.0 == 9) },
    )
    .await
    .unwrap();

    // The disk dies; the old backup comes back, and the commune works offline for a while
    // before its link returns: it writes more changes than it lost, so its feed reuses the
    // positions the province's checkpoint already covers.
    net.communes[0].kill();
    std::fs::copy(&backup, net.communes[0].dir().join("motcua.redb")).unwrap();
    net.communes[0]
        .motcua(&["peer", "remove", "--node-key", &net.province_key])
        .unwrap();
    net.communes[0].start().unwrap();
    let c = net.communes[0].client("lanhdao").await.unwrap();
    // Offline: the dossiers the backup holds are taken to their end, and rated (more changes
    // than were lost). New dossiers are not received here: a restored node cannot know which
    // numbers of the day it had already given out (a collision would be kept and flagged).
    let mut offline_steps = 0;
    for (i, code) in old.iter().enumerate() {
        let mut steps = vec![json!({ "kind": "returned", "method": "counter" })];
        if i % 2 == 1 {
            steps.insert(0, json!({ "kind": "resolved" }));
        }
        for step in steps {
            let (status, body) = c
                .post(&format!("/api/v1/dossiers/{code}/events"), &step)
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
            offline_steps += 1;
        }
        for _ in 0..2 {
            let (status, body) = c
                .post(
                    "/api/v1/ratings",
                    &json!({ "score": "satisfied", "dossier": code }),
                )
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
            offline_steps += 1;
        }
    }
    assert!(offline_steps > 10, "more changes offline than were lost");
    net.communes[0].kill();
    net.communes[0]
        .motcua(&[
            "peer",
            "add",
            "--name",
            "Trung tâm tỉnh",
            "--node-key",
            &net.province_key,
            "--addr",
            &net.province_sync,
        ])
        .unwrap();
    net.communes[0].start().unwrap();
    let c = net.communes[0].client("lanhdao").await.unwrap();
    wait_until(
        "the restored commune recovers its newer records",
        CONVERGE_WAIT_MS,
        || async { Ok(counts(&c).await.0 == 9) },
    )
    .await
    .unwrap();
    let returned = |client: Client| async move {
        let (_, body) = client.get("/api/v1/dossiers?status=returned").await?;
        Ok::<usize, anyhow::Error>(body["items"].as_array().map_or(0, Vec::len))
    };
    wait_until(
        "the province receives the offline work",
        CONVERGE_WAIT_MS,
        || async { Ok(returned(p.clone()).await? == 4 && counts(&p).await == counts(&c).await) },
    )
    .await
    .unwrap();
    for code in &newer {
        let (status, _) = c.get(&format!("/api/v1/dossiers/{code}")).await.unwrap();
        assert_eq!(status, 200, "{code} not recovered");
    }
    // New work after the restore: a fresh number, a fresh actor, no fork anywhere.
    let latest = work(&c, 1, 3).await;
    assert!(
        !newer.contains(&latest[0]),
        "a code was allocated twice: {}",
        latest[0]
    );
    wait_until(
        "the new record reaches the province",
        CONVERGE_WAIT_MS,
        || async { Ok(counts(&p).await.0 == 10) },
    )
    .await
    .unwrap();
    for node in [&c, &p] {
        let (_, s) = node.get("/api/v1/status").await.unwrap();
        assert_eq!(s["counts"]["forks"], 0, "fork proof recorded: {s}");
        assert_eq!(s["counts"]["rejects"], 0, "rejects recorded: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_not_enrolled_or_revoked_are_refused() {
    // Why: only machines the province enrolled may feed records into its network; a stolen
    // laptop's key, once revoked, must be shut out.
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Network::create(super::motcua(), tmp.path(), &[C1, C2]).unwrap();
    // A rogue node with its own root, pointing at the province.
    let province_key = net.province.key().unwrap();
    let province_sync = std::fs::read_to_string(net.communes[0].dir().join("motcua.toml")).unwrap();
    let addr = province_sync
        .lines()
        .find(|l| l.contains("127.0.0.1:") && l.contains("addrs"))
        .map(|l| l.split('"').nth(1).unwrap().to_owned());
    let addr = addr.expect("province address in the commune's address book");
    let mut rogue = TestNode::init(
        super::motcua(),
        &tmp.path().join("rogue"),
        "000.01.09.H99",
        "commune",
    )
    .unwrap();
    rogue
        .motcua(&[
            "peer",
            "add",
            "--name",
            "tỉnh",
            "--node-key",
            &province_key,
            "--addr",
            &addr,
        ])
        .unwrap();

    // Revoke commune 2 at the province before it starts.
    let c2_key = net.communes[1].key().unwrap();
    let revocation = tmp.path().join("revoke.json");
    motcua_tests::run_motcua(
        super::motcua(),
        &[
            "revoke",
            "--root-key",
            net.root_key.to_str().unwrap(),
            "--node-key",
            &c2_key,
            "--reason",
            "mất máy",
            "--out",
            revocation.to_str().unwrap(),
        ],
    )
    .unwrap();
    net.province
        .motcua(&["trust-import", revocation.to_str().unwrap()])
        .unwrap();

    net.start().unwrap();
    rogue.start().unwrap();
    let p = leader(&net.province).await;
    let c1 = net.communes[0].client("lanhdao").await.unwrap();
    let r = rogue.client("lanhdao").await.unwrap();
    work(&r, 2, 9).await;
    // Commune 2 still writes locally (only the province has the revocation so far), but the
    // province refuses its link.
    let c2 = net.communes[1].client("lanhdao").await.unwrap();
    work(&c2, 2, 8).await;
    work(&c1, 2, 7).await;
    wait_until("the enrolled commune syncs", CONVERGE_WAIT_MS, || async {
        Ok(counts(&p).await.0 == 2)
    })
    .await
    .unwrap();
    let rogue_key = rogue.key().unwrap();
    wait_until(
        "the province refuses both others",
        CONVERGE_WAIT_MS,
        || async {
            let (_, peers) = p.get("/api/v1/peers").await?;
            let refused = |key: &str| {
                peers["items"].as_array().unwrap().iter().any(|i| {
                    i["node_key"] == key
                        && i["last_error"]
                            .as_str()
                            .is_some_and(|e| e.contains("từ chối"))
                })
            };
            Ok(refused(&rogue_key) && refused(&c2_key))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        counts(&p).await.0,
        2,
        "nothing from the rogue or the revoked commune was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_carries_a_communes_work_with_no_link() {
    // Why: some communes have no usable link for days; an official carries a USB stick to the
    // province, and importing it must be safe to repeat and must refuse damaged files clearly.
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Network::create(super::motcua(), tmp.path(), &[C1]).unwrap();
    // No link: the commune's address book is emptied.
    let province_key = net.province.key().unwrap();
    net.communes[0]
        .motcua(&["peer", "remove", "--node-key", &province_key])
        .unwrap();
    net.communes[0].start().unwrap();
    let c = net.communes[0].client("lanhdao").await.unwrap();
    work(&c, 12, 1).await;
    let own = figures(report(&c, None).await);
    net.communes[0].kill();

    let bundle = tmp.path().join("tuan-nay.motcua");
    net.communes[0]
        .motcua(&[
            "bundle",
            "export",
            "--for",
            &province_key,
            bundle.to_str().unwrap(),
        ])
        .unwrap();
    let bytes = std::fs::read(&bundle).unwrap();

    // A truncated copy and a tampered copy are refused with a message; nothing breaks.
    let cut = tmp.path().join("cut.motcua");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let err = net
        .province
        .motcua(&["bundle", "import", cut.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("cắt cụt") || err.contains("hỏng"), "{err}");
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    let bad = tmp.path().join("bad.motcua");
    std::fs::write(&bad, &tampered).unwrap();
    let err = net
        .province
        .motcua(&["bundle", "import", bad.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("hỏng") || err.contains("sửa"), "{err}");

    let first = net
        .province
        .motcua(&["bundle", "import", bundle.to_str().unwrap()])
        .unwrap();
    assert!(first.contains("không hợp lệ"), "{first}");
    let again = net
        .province
        .motcua(&["bundle", "import", bundle.to_str().unwrap()])
        .unwrap();
    assert!(
        again.contains(" 0 thay đổi mới"),
        "importing twice stores nothing new: {again}"
    );

    net.province.start().unwrap();
    let p = leader(&net.province).await;
    assert_eq!(counts(&p).await.0, 12);
    assert_eq!(figures(report(&p, Some(C1)).await), own);
}
