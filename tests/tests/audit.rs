//! Audit archives end to end: a real `motcua` node takes dossiers and ratings over its API, is
//! killed, exports its records, and two verifiers that share no code (motcua's and the Python
//! one in `tests/audit_py/verify.py`, written from `docs/audit-format.md`) agree on the archive,
//! on a tampered copy, and on the format's test vectors.
//!
//! Python 3 with the `cryptography` package is required: `.ci/run` installs it with
//! `python3 -m pip install --user cryptography==48.0.0`. These tests fail, never skip, without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use motcua_tests::{TestNode, new_dossier};
use serde_json::{Value, json};

fn motcua() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_motcua-under-test"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn verifier() -> PathBuf {
    repo().join("tests/audit_py/verify.py")
}

fn run(cmd: &mut Command) -> Output {
    cmd.env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Fails (never skips) when the independent verifier cannot run here.
fn require_python() {
    let out = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 lacks the cryptography package ({}): python3 -m pip install --user cryptography==48.0.0",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("python3 is required for the independent audit verifier: {e}"),
    }
}

fn python_verify(archive: &Path) -> (bool, Value) {
    let out = run(Command::new("python3")
        .arg(verifier())
        .arg(archive)
        .arg("--json"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python verifier output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn motcua_verify(archive: &Path) -> (bool, Value) {
    let out = run(Command::new(motcua())
        .args(["audit", "verify", "--json"])
        .arg(archive));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "motcua audit verify output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn signature_failures(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = report["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|f| f["reason"] == "signature")
        .map(|f| f["hash"].as_str().expect("hash").to_owned())
        .collect();
    v.sort();
    v
}

/// A commune node with three dossiers at various steps and two ratings, killed with SIGKILL.
async fn populated_node(dir: &Path) -> (TestNode, Vec<String>) {
    let mut node = TestNode::init(motcua(), dir, "X1", "commune").expect("init");
    node.start().expect("start");
    let staff = node.client("lanhdao").await.expect("sign in");
    let mut codes = Vec::new();
    for n in 0..3 {
        let (status, body) = staff
            .post("/api/v1/dossiers", &new_dossier("1.004873", "direct", n))
            .await
            .expect("post");
        assert_eq!(status, 201, "{body}");
        codes.push(body["summary"]["code"].as_str().expect("code").to_owned());
    }
    for step in [
        json!({"kind": "supplement_requested", "reason": "thiếu bản sao"}),
        json!({"kind": "supplemented"}),
        json!({"kind": "resolved"}),
        json!({"kind": "returned", "method": "counter"}),
    ] {
        let (status, body) = staff
            .post(&format!("/api/v1/dossiers/{}/events", codes[0]), &step)
            .await
            .expect("post");
        assert_eq!(status, 201, "{body}");
    }
    for score in ["satisfied", "neutral"] {
        let (status, body) = staff
            .post("/api/v1/ratings", &json!({"score": score}))
            .await
            .expect("post");
        assert_eq!(status, 201, "{body}");
    }
    node.kill();
    (node, codes)
}

#[tokio::test]
async fn an_exported_archive_verifies_with_two_independent_verifiers() {
    // Why: the inspector must be able to check a node's records with tools that share nothing
    // with motcua; if the two verifiers ever disagree, the spec and the code have drifted.
    require_python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (node, codes) = populated_node(&tmp.path().join("x1")).await;
    let archive = tmp.path().join("x1.audit");
    let data_dir = node.dir().to_str().expect("utf-8").to_owned();
    let out = run(Command::new(motcua())
        .args(["audit", "export", "--data-dir", &data_dir, "--out"])
        .arg(&archive));
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (rust_ok, rust) = motcua_verify(&archive);
    let (py_ok, py) = python_verify(&archive);
    assert!(rust_ok && rust["ok"] == true, "motcua: {rust:#}");
    assert!(py_ok && py["ok"] == true, "python: {py:#}");
    // 3 dossiers, 4 more steps of the first, 2 ratings in one day's document.
    assert_eq!(rust["checks"]["changes"], 9);
    for field in [
        "changes",
        "signatures_valid",
        "registry_records",
        "checkpoints",
        "witnessed_checkpoints",
        "fork_proofs",
        "rejects",
    ] {
        assert_eq!(rust["checks"][field], py["checks"][field], "checks.{field}");
    }
    for field in ["changes", "documents"] {
        assert_eq!(
            rust["units"]["X1"][field], py["units"]["X1"][field],
            "units.X1.{field}"
        );
    }
    assert_eq!(rust["anomalies_by_reason"], py["anomalies_by_reason"]);

    // The history of the first dossier, from the archive alone, with its signer.
    let out = run(Command::new(motcua())
        .args(["audit", "show", &codes[0]])
        .arg(&archive));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "Tiếp nhận",
        "Yêu cầu bổ sung",
        "returned",
        "signed by",
        "commune X1",
    ] {
        assert!(text.contains(label), "show lacks {label:?}:\n{text}");
    }
    assert!(
        !text.contains("Nguyễn Văn Thử"),
        "show prints no personal data"
    );

    // A filtered export (ratings only) verifies too, proving its changes with a range proof.
    let ratings = tmp.path().join("ratings.audit");
    let out = run(Command::new(motcua())
        .args([
            "audit",
            "export",
            "--data-dir",
            &data_dir,
            "--kind",
            "ratings",
            "--out",
        ])
        .arg(&ratings));
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rust_ok, rust) = motcua_verify(&ratings);
    let (py_ok, py) = python_verify(&ratings);
    assert!(rust_ok && py_ok, "{rust:#} {py:#}");
    assert_eq!(rust["checks"]["changes"], 2);
    assert_eq!(py["checks"]["changes"], 2);

    // Another unit, or a period without activity, selects nothing, and still verifies.
    for filter in [["--unit", "X2"], ["--to", "2000-01-01"]] {
        let empty = tmp.path().join("empty.audit");
        let out = run(Command::new(motcua())
            .args(["audit", "export", "--data-dir", &data_dir])
            .args(filter)
            .arg("--out")
            .arg(&empty));
        assert!(
            out.status.success(),
            "export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (rust_ok, rust) = motcua_verify(&empty);
        let (py_ok, py) = python_verify(&empty);
        assert!(rust_ok && py_ok, "{filter:?}: {rust:#} {py:#}");
        assert_eq!(rust["checks"]["changes"], 0, "{filter:?}");
    }
}

#[tokio::test]
async fn both_verifiers_name_the_same_forged_change() {
    // Why: a verifier that only says "invalid" is no help to an inspector; both must name the
    // exact record, and the same one.
    require_python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (node, _) = populated_node(&tmp.path().join("x1")).await;
    let archive = tmp.path().join("x1.audit");
    let data_dir = node.dir().to_str().expect("utf-8").to_owned();
    let out = run(Command::new(motcua())
        .args(["audit", "export", "--data-dir", &data_dir, "--out"])
        .arg(&archive));
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&archive).expect("archive");
    let parsed = motcua_schema::audit::archive::parse(&bytes);
    let target = parsed.changes[4];
    let env = motcua_schema::audit::change::parse_envelope(target.envelope).expect("envelope");
    let header = motcua_schema::audit::change::parse_change(env.change).expect("change");
    let mut forged = bytes.clone();
    // A bit of S inside the signature (after version, doc id, signer key and R).
    forged[target.offset + 2 + env.doc_id.len() + 32 + 32 + 3] ^= 0x20;
    let forged_path = tmp.path().join("forged.audit");
    std::fs::write(&forged_path, &forged).expect("write");
    let (rust_ok, rust) = motcua_verify(&forged_path);
    let (py_ok, py) = python_verify(&forged_path);
    assert!(
        !rust_ok && !py_ok,
        "a forged archive must fail both verifiers"
    );
    let expected = vec![hex(&header.hash)];
    assert_eq!(signature_failures(&rust), expected, "{rust:#}");
    assert_eq!(signature_failures(&py), expected, "{py:#}");
    let reasons = |r: &Value| {
        r["failures_by_reason"]
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(reasons(&rust), reasons(&py));

    // A truncated archive fails both too.
    let truncated = tmp.path().join("truncated.audit");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
    assert!(!motcua_verify(&truncated).0 && !python_verify(&truncated).0);
}

#[test]
fn the_python_verifier_passes_the_format_test_vectors() {
    // Why: the vectors pin the edge cases (strict Ed25519, LEB128, range proofs) that archives
    // from honest nodes never exercise; the independent verifier must get every one right.
    require_python();
    for pure in [false, true] {
        let mut cmd = Command::new("python3");
        cmd.arg(verifier())
            .arg("--vectors")
            .arg(repo().join("docs/audit-vectors.json"));
        if pure {
            cmd.arg("--pure");
        }
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
