//! Browser tests of the web interface: a real `motcua` node (province role, so every page
//! exists on it) driven by Debian's chromium through playwright-core (`tests/browser/run.mjs`).
//!
//! Why a real browser: the pages are what officials and citizens touch, and only a browser shows
//! that the forms submit, the live procedure search works, the slip draws its QR code, the
//! kiosk's thanks screen returns by itself and the TV board refreshes by itself. The script
//! writes a screenshot of every page (to `docs/screenshots/` when `MOTCUA_SCREENSHOTS=1`); this test then reads the exported
//! .xlsx back with calamine and checks its figures, and checks the CSRF refusals.
//!
//! Prerequisites, installed by `.ci/run` (the test fails, never skips, without them):
//! `apt-get install -y chromium fonts-dejavu-core` and `npm ci` in `tests/browser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use calamine::{Data, Reader, Xlsx, open_workbook};
use motcua_tests::{TEST_PASSWORD, TestNode, run_motcua};

/// Longest the whole browser scenario may take; only a hang gets near it (each step inside the
/// script waits at most two minutes for its condition).
const SCENARIO_WAIT_MS_MAX: u64 = 15 * 60 * 1000;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace")
        .to_owned()
}

fn chromium() -> PathBuf {
    std::env::var_os("MOTCUA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with the install lines when chromium, node or playwright-core is missing.
fn require_prerequisites(browser_dir: &Path) {
    let how = "install them with: apt-get install -y chromium fonts-dejavu-core nodejs npm \
               && (cd tests/browser && npm ci)";
    let chromium = chromium();
    assert!(
        chromium.exists(),
        "the browser tests need chromium at {} (or MOTCUA_CHROMIUM); {how}",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser tests need node on PATH; {how}"
    );
    let playwright = browser_dir.join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "the browser tests need {} ; {how}",
        playwright.display()
    );
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// The number in column B of the summary row labelled `label` (indentation ignored).
fn summary_figure(rows: &[Vec<Data>], label: &str) -> f64 {
    let row = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| cell_text(c) == label))
        .unwrap_or_else(|| panic!("no row {label:?} in the summary sheet"));
    match row.get(1) {
        Some(Data::Float(f)) => *f,
        Some(Data::Int(i)) => *i as f64,
        other => panic!("row {label:?} has no number: {other:?}"),
    }
}

/// Enrols two communes with the root key `init --new-root` left in the data directory, so the
/// province dashboard lists units that have never synced (and must say so, not invent figures).
fn enrol_communes(bin: &Path, dir: &Path) {
    let d = dir.to_str().expect("utf-8 dir");
    let root = dir.join("root.key");
    for (i, (unit, name)) in [
        ("000.01.01.H99", "UBND xã An Bình"),
        ("000.01.02.H99", "UBND xã Tân Phú"),
    ]
    .into_iter()
    .enumerate()
    {
        let key_file = dir.join(format!("commune-{i}.key"));
        let printed = run_motcua(
            bin,
            &["root-init", "--out", key_file.to_str().expect("utf-8")],
        )
        .expect("making a commune key");
        let public = printed
            .trim()
            .rsplit(' ')
            .next()
            .expect("public key")
            .to_owned();
        let record = dir.join(format!("commune-{i}.json"));
        run_motcua(
            bin,
            &[
                "enroll",
                "--root-key",
                root.to_str().expect("utf-8"),
                "--node-key",
                &public,
                "--unit",
                unit,
                "--unit-name",
                name,
                "--role",
                "commune",
                "--out",
                record.to_str().expect("utf-8"),
            ],
        )
        .expect("enrolling a commune");
        run_motcua(
            bin,
            &[
                "trust-import",
                "--data-dir",
                d,
                record.to_str().expect("utf-8"),
            ],
        )
        .expect("importing the enrolment");
    }
}

#[test]
fn browser_scenario_counter_slip_kiosk_board_lookup_export_csrf() {
    // Why: this is the working day of an office, end to end, in the browser people use; every
    // claim of the web interface that only a browser can show is checked here.
    let browser_dir = repo_root().join("tests/browser");
    require_prerequisites(&browser_dir);
    let tmp = tempfile::tempdir().expect("temp dir");
    let bin = Path::new(env!("CARGO_BIN_EXE_motcua-under-test"));
    let mut node = TestNode::init(bin, &tmp.path().join("node"), "000.00.00.H99", "province")
        .expect("motcua init");
    enrol_communes(bin, node.dir());
    node.start().expect("motcua serve");

    let downloads = tmp.path().join("downloads");
    // The committed screenshots are refreshed only on request (MOTCUA_SCREENSHOTS=1), so that
    // running the tests leaves the working tree as it was.
    let screenshots = if std::env::var_os("MOTCUA_SCREENSHOTS").is_some() {
        repo_root().join("docs/screenshots")
    } else {
        tmp.path().join("screenshots")
    };
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let mut child = Command::new("node")
        .arg(browser_dir.join("run.mjs"))
        .current_dir(&browser_dir)
        .env("MOTCUA_BASE", &node.base)
        .env("MOTCUA_PASSWORD", TEST_PASSWORD)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("DOWNLOAD_DIR", &downloads)
        .env("CHROMIUM", chromium())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting node tests/browser/run.mjs");
    // Counted in sleeps rather than read from a clock (the workspace keeps clocks out of tests).
    let mut waited_ms = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the browser script") {
            break status;
        }
        if waited_ms > SCENARIO_WAIT_MS_MAX {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser scenario hung for {SCENARIO_WAIT_MS_MAX} ms");
        }
        std::thread::sleep(Duration::from_millis(200));
        waited_ms += 200;
    };
    assert!(status.success(), "the browser scenario failed: {status}");

    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(downloads.join("result.json")).expect("result.json"),
    )
    .expect("result.json is JSON");
    assert_eq!(result["ok"], true);
    assert_eq!(result["csrf_missing"], 403, "POST without CSRF token");
    assert_eq!(result["csrf_wrong"], 403, "POST with a forged CSRF token");
    assert_eq!(
        result["kiosk_csrf_missing"], 403,
        "kiosk POST without CSRF token"
    );

    // The exported workbook opens and says what happened today: one dossier received in
    // person, one rating, satisfied.
    let mut workbook: Xlsx<_> =
        open_workbook(result["xlsx"].as_str().expect("xlsx path")).expect("xlsx opens");
    let sheet = workbook.worksheet_range("Tổng hợp").expect("summary sheet");
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(summary_figure(&rows, "Hồ sơ tiếp nhận trong kỳ"), 1.0);
    assert_eq!(summary_figure(&rows, "Trực tiếp"), 1.0);
    assert_eq!(summary_figure(&rows, "Lượt đánh giá"), 1.0);
    assert_eq!(summary_figure(&rows, "Hài lòng"), 1.0);
    assert!(
        workbook.sheet_names().iter().any(|s| s == "Theo thủ tục"),
        "per-procedure sheet"
    );
    let csv = std::fs::read_to_string(result["csv"].as_str().expect("csv path")).expect("csv");
    assert!(csv.contains("Hồ sơ tiếp nhận trong kỳ,1,"), "{csv}");

    // Without any cookie, forms are refused too (no session, no CSRF secret).
    let statuses = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let http = reqwest::Client::new();
            let mut out = Vec::new();
            for path in ["/quay/tiep-nhan", "/dang-nhap"] {
                let r = http
                    .post(format!("{}{path}", node.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("username=admin&password={TEST_PASSWORD}"))
                    .send()
                    .await
                    .expect("POST");
                out.push(r.status().as_u16());
            }
            out
        });
    assert_eq!(statuses, [403, 403], "cookie-less form posts are refused");
    for name in [
        "01-trang-chu",
        "02-dang-nhap",
        "03-quay-mot-cua",
        "04-tiep-nhan-ho-so",
        "05-ho-so",
        "06-giay-tiep-nhan-a5",
        "07-phieu-kiem-soat",
        "08-may-danh-gia",
        "09-cam-on",
        "10-bang-tin",
        "11-tra-cuu",
        "12-quan-tri",
        "13-bao-cao",
        "14-toan-tinh",
    ] {
        let path = screenshots.join(format!("{name}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
    }
    node.kill();
}
