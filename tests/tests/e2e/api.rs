//! The HTTP API at its edges: bad input gets a clear 4xx and leaves nothing behind; steps that
//! cannot happen now get a 409; the public lookup never shows personal data.

use motcua_tests::{TestNode, new_dossier};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_writes_nothing() {
    // Why: a typo at the counter must produce a message the official can act on, and must not
    // consume a dossier number or leave half a record.
    let tmp = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(super::motcua(), tmp.path(), "000.01.01.H99", "commune").unwrap();
    node.start().unwrap();
    let c = node.client("tiepnhan").await.unwrap();

    let mut bad_id = new_dossier("1.004873", "direct", 1);
    bad_id["applicant"]["id_number"] = json!("12345");
    let (status, body) = c.post("/api/v1/dossiers", &bad_id).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("12 digits"),
        "{body}"
    );

    let (status, body) = c
        .post("/api/v1/dossiers", &new_dossier("9.999999", "direct", 2))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("9.999999"),
        "{body}"
    );

    let (status, body) = c
        .post("/api/v1/dossiers", &json!({ "procedure_code": "1.004873" }))
        .await
        .unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(!body["error"].as_str().unwrap().is_empty());

    let mut bad_channel = new_dossier("1.004873", "direct", 3);
    bad_channel["channel"] = json!("fax");
    let (status, _) = c.post("/api/v1/dossiers", &bad_channel).await.unwrap();
    assert!((400..500).contains(&status));

    let (_, st) = c.get("/api/v1/status").await.unwrap();
    assert_eq!(
        st["counts"]["dossiers"], 0,
        "a refused request left a dossier behind"
    );
    assert_eq!(
        st["counts"]["changes"], 0,
        "a refused request left a signed change behind"
    );

    // The first accepted dossier still gets number 0001 of the day.
    let (status, body) = c
        .post("/api/v1/dossiers", &new_dossier("1.004873", "direct", 4))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let code = body["summary"]["code"].as_str().unwrap().to_owned();
    assert!(code.ends_with("-0001"), "{code}");

    // A step that is not valid now: 409 with the reason; intake may not resolve at all.
    let (status, body) = c
        .post(
            &format!("/api/v1/dossiers/{code}/events"),
            &json!({ "kind": "returned", "method": "counter" }),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    let (status, _) = c
        .post(
            &format!("/api/v1/dossiers/{code}/events"),
            &json!({ "kind": "resolved" }),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, body) = c
        .get("/api/v1/dossiers/000.01.01.H99-000000-0001")
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");

    // Without a session nothing but the public lookup answers.
    let (status, _) = c.get_public("/api/v1/dossiers").await.unwrap();
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_public_lookup_without_personal_data() {
    // Why: citizens look up their dossier by the QR on the slip; Decree 13/2023 forbids showing
    // anyone's name, ID number, phone or address there.
    let tmp = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(super::motcua(), tmp.path(), "000.01.02.H99", "commune").unwrap();
    node.start().unwrap();
    let intake = node.client("tiepnhan").await.unwrap();
    let leader = node.client("lanhdao").await.unwrap();
    let (status, body) = intake
        .post("/api/v1/dossiers", &new_dossier("1.004873", "online", 77))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let code = body["summary"]["code"].as_str().unwrap().to_owned();
    assert!(
        body["summary"]["due_at"].as_i64().is_some(),
        "the node computes the due date at once"
    );
    for step in [
        json!({ "kind": "transferred", "to_unit": "000.00.00.H99", "note": "liên thông" }),
        json!({ "kind": "resolved" }),
    ] {
        let (status, body) = leader
            .post(&format!("/api/v1/dossiers/{code}/events"), &step)
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = intake
        .post(
            &format!("/api/v1/dossiers/{code}/events"),
            &json!({ "kind": "returned", "method": "postal" }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["summary"]["status"], "returned");
    // Each change is listed with its signer and signature.
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 4);
    assert!(
        changes
            .iter()
            .all(|c| c["signature"].as_str().unwrap().len() == 128)
    );

    let (status, text) = intake
        .get_public(&format!("/api/v1/public/dossiers/{code}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("returned"), "{text}");
    for personal in [
        "Nguyễn Văn Thử",
        "001000000077",
        "1000000077",
        "0912345678",
        "Thôn Thử Nghiệm",
    ] {
        assert!(
            !text.contains(personal),
            "public lookup leaks {personal}: {text}"
        );
    }
    let (status, _) = intake
        .get_public("/api/v1/public/dossiers/khong-co-ma-nay")
        .await
        .unwrap();
    assert_eq!(status, 404);

    // Search by the applicant's ID number finds it for staff.
    let (status, body) = intake
        .get("/api/v1/dossiers?id_number=001000000077")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // The report (CSV) counts it as received online and returned by post.
    #[allow(clippy::disallowed_methods)] // the test reads the same clock as the node it drives
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).unwrap())
        .date();
    let period = format!("from={today}&to={today}");
    let (status, report) = intake
        .get(&format!("/api/v1/reports?{period}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["received"]["online"]["count"], 1);
    assert_eq!(report["resolved"]["returned_postal"]["count"], 1);
    let (status, csv) = intake
        .get_text(&format!("/api/v1/reports?{period}&format=csv"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(csv.contains("Hồ sơ tiếp nhận trong kỳ,1"), "{csv}");
}
