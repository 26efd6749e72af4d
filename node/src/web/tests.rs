//! Tests of the web pages through the real router of a real node in a temporary directory:
//! CSRF on every form, roles on every route, device tokens limited to their one job, cookie
//! flags, and the absence of personal data on public pages.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use motcua_schema::dossier::{Applicant, Channel};
use motcua_schema::ids::UnitCode;
use motcua_schema::trust::Role;
use tower::ServiceExt;

use crate::auth::{DeviceKind, StaffRole, csrf_token};
use crate::commands::NewDossier;
use crate::config::DataDir;
use crate::runtime::Node;
use crate::setup::{InitOptions, Trust, init};
use crate::writer::{Command, Reply};

const PASSWORD: &str = "mat-khau-web-123";

struct TestNode {
    node: Node,
    dir: std::path::PathBuf,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A province node (every page exists there) with one account per role and one dossier.
fn test_node(name: &str) -> (TestNode, String) {
    let dir = std::env::temp_dir().join(format!(
        "motcua-web-{name}-{}-{}",
        std::process::id(),
        crate::auth::random_secret()
    ));
    let node = init(InitOptions {
        dir: DataDir::new(&dir),
        unit: UnitCode::new("000.00.00.H99").unwrap(),
        unit_name: "Trung tâm thử nghiệm".into(),
        role: Role::Province,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        trust: Trust::NewRoot,
        admin_password: PASSWORD.into(),
        key: None,
        sync: crate::config::SyncConfig {
            enabled: false,
            ..Default::default()
        },
    })
    .unwrap();
    for (user, role) in [
        ("tiepnhan", StaffRole::Intake),
        ("xuly", StaffRole::Processing),
        ("lanhdao", StaffRole::Leader),
    ] {
        node.auth
            .add_user(node.shared.store.db(), user, PASSWORD, "Cán bộ Thử", role)
            .unwrap();
    }
    let reply = node
        .writer
        .submit_blocking(
            Command::CreateDossier {
                req: NewDossier {
                    procedure_code: "1.001193".into(),
                    channel: Channel::Direct,
                    applicant: secret_applicant(),
                    digitised: false,
                    registered_only: false,
                },
                by: "tiepnhan".into(),
            },
            None,
        )
        .unwrap();
    let Reply::Dossier(summary) = reply else {
        panic!("unexpected reply")
    };
    (TestNode { node, dir }, summary.code.to_string())
}

fn secret_applicant() -> Applicant {
    Applicant {
        name: "Lê Thị Riêng Tư".into(),
        id_number: "079123456789".into(),
        phone: "0987654321".into(),
        address: "Số 7 ngõ Kín".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

fn encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn send(app: &Router, method: &str, uri: &str, cookie: &str, form: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if !cookie.is_empty() {
        req = req.header(header::COOKIE, cookie);
    }
    if method == "POST" {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(form.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn set_cookie_value(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|r| r.to_owned()))
        .map(|r| r.split(';').next().unwrap_or("").to_owned())
}

/// Signs in through the form like a browser; returns the session cookie and its CSRF token.
async fn sign_in(app: &Router, user: &str) -> (String, String) {
    let page = send(app, "GET", "/dang-nhap", "", "").await;
    let pre = set_cookie_value(&page, crate::auth::PRELOGIN_COOKIE).unwrap();
    let cookie = format!("{}={pre}", crate::auth::PRELOGIN_COOKIE);
    let form = encode(&[
        ("csrf", &csrf_token(&pre)),
        ("username", user),
        ("password", PASSWORD),
    ]);
    let a = send(app, "POST", "/dang-nhap", &cookie, &form).await;
    assert_eq!(
        a.status,
        StatusCode::SEE_OTHER,
        "sign-in of {user}: {}",
        a.body
    );
    let token = set_cookie_value(&a, crate::auth::SESSION_COOKIE).unwrap();
    (
        format!("{}={token}", crate::auth::SESSION_COOKIE),
        csrf_token(&token),
    )
}

#[test]
fn every_form_refuses_a_post_without_a_valid_csrf_token() {
    // Why: another site open in the same browser must not be able to make a signed-in official
    // receive, refuse or rate anything; each POST route must check its token before acting.
    let (t, code) = test_node("csrf");
    let app = t.node.app();
    runtime().block_on(async {
        let (cookie, csrf) = sign_in(&app, "admin").await;
        let routes = [
            "/dang-xuat".to_owned(),
            "/quay/tim".to_owned(),
            "/quay/tiep-nhan".to_owned(),
            format!("/ho-so/{code}/buoc"),
            "/quan-tri/nguoi-dung".to_owned(),
            "/quan-tri/thiet-bi".to_owned(),
            "/quan-tri/thiet-bi/thu-hoi".to_owned(),
            "/danh-gia".to_owned(),
            "/thiet-bi/ghep".to_owned(),
            "/dang-nhap".to_owned(),
        ];
        let fields = [
            ("procedure_code", "1.001193"),
            ("name", "Giả Mạo"),
            ("id_number", "001099000001"),
            ("kind", "refused"),
            ("reason", "giả mạo"),
            ("username", "ke-gian"),
            ("full_name", "Kẻ Gian"),
            ("password", "12345678910"),
            ("role", "admin"),
            ("score", "dissatisfied"),
        ];
        for route in &routes {
            let missing = send(&app, "POST", route, &cookie, &encode(&fields)).await;
            assert_eq!(
                missing.status,
                StatusCode::FORBIDDEN,
                "{route} without token"
            );
            let mut forged = fields.to_vec();
            let wrong = csrf_token("another session");
            forged.push(("csrf", &wrong));
            let a = send(&app, "POST", route, &cookie, &encode(&forged)).await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{route} with a forged token"
            );
        }
        // A cross-site trick: the same fields as text/plain, which needs no CORS preflight.
        let req = Request::builder()
            .method("POST")
            .uri("/quay/tiep-nhan")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(encode(&fields)))
            .unwrap();
        let a = app.clone().oneshot(req).await.unwrap();
        assert_eq!(a.status(), StatusCode::FORBIDDEN, "text/plain post");
        // Nothing was written by any refused form.
        let counts = t.node.shared.store.counts().unwrap();
        assert_eq!((counts.dossiers, counts.ratings), (1, 0));
        let users = t.node.auth.users(t.node.shared.store.db()).unwrap();
        assert!(users.iter().all(|u| u.username != "ke-gian"));
        // The same form with the session's token goes through.
        let mut good = fields.to_vec();
        good.push(("csrf", &csrf));
        let a = send(
            &app,
            "POST",
            "/quan-tri/nguoi-dung",
            &cookie,
            &encode(&good),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    });
}

#[test]
fn every_route_enforces_its_role() {
    // Why: an intake officer must not open reports, the province dashboard or administration,
    // nor record a processing step; nobody signed out may see a staff page.
    let (t, code) = test_node("roles");
    let app = t.node.app();
    runtime().block_on(async {
        let anonymous = send(&app, "GET", "/quay", "", "").await;
        assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
        assert_eq!(anonymous.headers[header::LOCATION], "/dang-nhap");
        let pages = [
            "/quay".to_owned(),
            "/quay/tiep-nhan".to_owned(),
            format!("/ho-so/{code}"),
            format!("/ho-so/{code}/in/tiep-nhan"),
            "/bang-tin".to_owned(),
            "/bao-cao".to_owned(),
            "/bao-cao/xlsx".to_owned(),
            "/tinh".to_owned(),
            "/quan-tri".to_owned(),
        ];
        // The least role each page needs, by index into `pages`.
        let least = [
            StaffRole::Intake,
            StaffRole::Intake,
            StaffRole::Intake,
            StaffRole::Intake,
            StaffRole::Intake,
            StaffRole::Leader,
            StaffRole::Leader,
            StaffRole::Leader,
            StaffRole::Admin,
        ];
        for (user, role) in [
            ("tiepnhan", StaffRole::Intake),
            ("xuly", StaffRole::Processing),
            ("lanhdao", StaffRole::Leader),
            ("admin", StaffRole::Admin),
        ] {
            let (cookie, csrf) = sign_in(&app, user).await;
            for (page, need) in pages.iter().zip(least) {
                let a = send(&app, "GET", page, &cookie, "").await;
                let expected = if role >= need {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(a.status, expected, "{user} on {page}");
            }
            // Resolving needs a processor; an intake officer is refused before any write.
            let step = encode(&[("csrf", &csrf), ("kind", "resolved"), ("note", "")]);
            let a = send(&app, "POST", &format!("/ho-so/{code}/buoc"), &cookie, &step).await;
            if role == StaffRole::Intake {
                assert_eq!(a.status, StatusCode::FORBIDDEN);
                let s = t.node.shared.store.summary(&code).unwrap().unwrap();
                assert_eq!(s.events, 1, "nothing recorded");
            }
        }
        let s = t.node.shared.store.summary(&code).unwrap().unwrap();
        assert_eq!(
            s.status,
            Some(motcua_schema::dossier::Status::Resolved),
            "the processor's step went through"
        );
    });
}

#[test]
fn device_tokens_only_rate_or_show_the_board() {
    // Why: the rating tablet stands in front of citizens all day; its cookie must record ratings
    // and nothing else, a TV must only show the board, and a revoked device must stop at once.
    let (t, code) = test_node("devices");
    let app = t.node.app();
    let db = t.node.shared.store.db();
    let now = crate::writer::clock_now();
    let (kiosk, _) = t
        .node
        .auth
        .add_device(db, "may-danh-gia-1", DeviceKind::Kiosk, "admin", now)
        .unwrap();
    let (tv, _) = t
        .node
        .auth
        .add_device(db, "tv-sanh", DeviceKind::Board, "admin", now)
        .unwrap();
    let cookie = |token: &str| format!("{}={token}", crate::auth::DEVICE_COOKIE);
    runtime().block_on(async {
        let a = send(&app, "GET", "/danh-gia", &cookie(&kiosk), "").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("Hài lòng") && a.body.contains("Không hài lòng"));
        // No staff page, no staff form.
        for page in ["/quay", "/bao-cao", "/quan-tri", &format!("/ho-so/{code}")] {
            let a = send(&app, "GET", page, &cookie(&kiosk), "").await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "kiosk on {page}");
        }
        let forged = encode(&[
            ("csrf", &csrf_token(&kiosk)),
            ("procedure_code", "1.001193"),
            ("name", "Giả"),
            ("id_number", "001099000001"),
        ]);
        let a = send(&app, "POST", "/quay/tiep-nhan", &cookie(&kiosk), &forged).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        // It rates, naming the official and the dossier.
        let rating = encode(&[
            ("csrf", &csrf_token(&kiosk)),
            ("score", "satisfied"),
            ("official", "tiepnhan"),
            ("dossier", &code),
            ("criteria", "attitude"),
        ]);
        let a = send(&app, "POST", "/danh-gia", &cookie(&kiosk), &rating).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.headers[header::LOCATION], "/danh-gia/cam-on");
        assert_eq!(t.node.shared.store.counts().unwrap().ratings, 1);
        // The TV shows the board but cannot rate.
        let a = send(&app, "GET", "/bang-tin/so-lieu", &cookie(&tv), "").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("data-official=\"tiepnhan\""), "{}", a.body);
        let tv_rating = encode(&[("csrf", &csrf_token(&tv)), ("score", "dissatisfied")]);
        let a = send(&app, "POST", "/danh-gia", &cookie(&tv), &tv_rating).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        // Revoked: back to pairing, and its posts are refused.
        let id = t
            .node
            .auth
            .devices(db)
            .unwrap()
            .into_iter()
            .find(|d| d.device.name == "may-danh-gia-1")
            .unwrap()
            .id;
        t.node.auth.revoke_device(db, &id).unwrap();
        let a = send(&app, "GET", "/danh-gia", &cookie(&kiosk), "").await;
        assert_eq!(a.headers[header::LOCATION], "/thiet-bi/ghep");
        let a = send(&app, "POST", "/danh-gia", &cookie(&kiosk), &rating).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(t.node.shared.store.counts().unwrap().ratings, 1);
    });
}

#[test]
fn public_pages_show_no_personal_data() {
    // Why: Decree 13/2023: the lookup is open to anyone with a code, so it must show status and
    // dates only, never the applicant's name, ID number, phone or address.
    let (t, code) = test_node("public");
    let app = t.node.app();
    let a = secret_applicant();
    runtime().block_on(async {
        for page in [
            format!("/tra-cuu/{code}"),
            format!("/tra-cuu?ma={code}"),
            "/".to_owned(),
        ] {
            let answer = send(&app, "GET", &page, "", "").await;
            assert_eq!(answer.status, StatusCode::OK, "{page}");
            for secret in [&a.name, &a.id_number, &a.phone, &a.address] {
                assert!(
                    !answer.body.contains(secret.as_str()),
                    "{page} shows {secret}"
                );
            }
        }
        let found = send(&app, "GET", &format!("/tra-cuu/{code}"), "", "").await;
        assert!(found.body.contains("Đã tiếp nhận"), "{}", found.body);
        assert!(found.body.contains(&code));
        let missing = send(&app, "GET", "/tra-cuu/000.00.00.H99-200101-9999", "", "").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        // Staff see the applicant; the same code, signed in, shows the name.
        let (cookie, _) = sign_in(&app, "tiepnhan").await;
        let staff = send(&app, "GET", &format!("/ho-so/{code}"), &cookie, "").await;
        assert!(staff.body.contains(&a.name));
    });
}

#[test]
fn receiving_validates_the_id_number_and_shows_code_and_due_date() {
    // Why: a mistyped CCCD must be caught at the counter with a Vietnamese message, and a good
    // dossier must show its code and due date at once.
    let (t, _) = test_node("receive");
    let app = t.node.app();
    runtime().block_on(async {
        let (cookie, csrf) = sign_in(&app, "tiepnhan").await;
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("procedure_code", "1.004873"),
            ("name", "Phạm Văn Nộp"),
            ("id_number", "00109900000"),
            ("channel", "online"),
        ];
        let bad = send(&app, "POST", "/quay/tiep-nhan", &cookie, &encode(&fields)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("12 chữ số"), "{}", bad.body);
        fields[3] = ("id_number", "001099000001");
        let ok = send(&app, "POST", "/quay/tiep-nhan", &cookie, &encode(&fields)).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        let location = ok.headers[header::LOCATION].to_str().unwrap().to_owned();
        assert!(location.starts_with("/ho-so/000.00.00.H99-"), "{location}");
        assert!(!location.contains("001099000001"), "no ID number in URLs");
        let page = send(&app, "GET", &location, &cookie, "").await;
        assert!(page.body.contains("id=\"new-code\""));
        assert!(page.body.contains("id=\"new-due\""));
        // Search by ID number is a POST; the answer lists the dossier.
        let search = encode(&[("csrf", &csrf), ("q", "001099000001")]);
        let found = send(&app, "POST", "/quay/tim", &cookie, &search).await;
        assert!(found.body.contains("Phạm Văn Nộp"), "{}", found.body);
    });
}

#[test]
fn cookies_are_http_only_strict_and_secure_over_https() {
    // Why: a session cookie readable by scripts or sent cross-site would undo the CSRF defence.
    let (t, _) = test_node("cookies");
    let app = t.node.app();
    runtime().block_on(async {
        let plain = send(&app, "GET", "/dang-nhap", "", "").await;
        let c = plain.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(!c.contains("Secure"), "plain http on the LAN: {c}");
        let req = Request::builder()
            .uri("/dang-nhap")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let c = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(c.contains("; Secure"), "{c}");
        assert_eq!(resp.headers()[header::REFERRER_POLICY], "no-referrer");
    });
}

#[test]
fn exported_workbook_reads_back_with_the_report_figures() {
    // Why: officials exchange these figures as Excel files; the file must open in a reader and
    // hold the same numbers as the page.
    use calamine::{Data, Reader, Xlsx};
    let (t, _) = test_node("xlsx");
    let app = t.node.app();
    runtime().block_on(async {
        let (cookie, _) = sign_in(&app, "lanhdao").await;
        let req = Request::builder()
            .uri("/bao-cao/xlsx")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut wb = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        let range = wb.worksheet_range("Tổng hợp").unwrap();
        let received = range
            .rows()
            .find(|r| matches!(&r[0], Data::String(s) if s == "Hồ sơ tiếp nhận trong kỳ"))
            .map(|r| r[1].clone());
        assert_eq!(received, Some(Data::Float(1.0)));
    });
}

#[test]
fn lookup_accepts_a_scanned_url_as_well_as_a_code() {
    // Why: a phone or scanner may read the QR as a URL ending in the code.
    assert_eq!(
        super::code_from_input(" http://10.0.0.5/tra-cuu/000.00.00.H99-251116-0001/ "),
        "000.00.00.H99-251116-0001"
    );
    assert_eq!(super::code_from_input("X1-250101-0001"), "X1-250101-0001");
}

#[test]
fn sign_in_form_is_rate_limited_and_says_so_in_vietnamese() {
    // Why: the sign-in form is reachable by anyone on the LAN; guessing passwords must stop
    // after a few failures (the limiter of `Auth::login`), with a clear message.
    let (t, _) = test_node("ratelimit");
    let app = t.node.app();
    runtime().block_on(async {
        let page = send(&app, "GET", "/dang-nhap", "", "").await;
        let pre = set_cookie_value(&page, crate::auth::PRELOGIN_COOKIE).unwrap();
        let cookie = format!("{}={pre}", crate::auth::PRELOGIN_COOKIE);
        let csrf = csrf_token(&pre);
        let wrong = encode(&[
            ("csrf", &csrf),
            ("username", "admin"),
            ("password", "sai-mat-khau"),
        ]);
        for _ in 0..crate::auth::LOGIN_FAILURES_COUNT_MAX {
            let a = send(&app, "POST", "/dang-nhap", &cookie, &wrong).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert!(a.body.contains("Sai tên đăng nhập hoặc mật khẩu"));
        }
        let right = encode(&[
            ("csrf", &csrf),
            ("username", "admin"),
            ("password", PASSWORD),
        ]);
        let a = send(&app, "POST", "/dang-nhap", &cookie, &right).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(a.body.contains("Đăng nhập sai quá nhiều lần"));
        assert!(set_cookie_value(&a, crate::auth::SESSION_COOKIE).is_none());
    });
}

#[test]
fn next_steps_follow_the_transition_table_and_the_role() {
    // Why: the dossier page must offer exactly the steps the writer will accept for this role,
    // never a button that can only fail.
    use super::dossier::next_steps;
    use motcua_schema::dossier::Status;
    let unit = UnitCode::new("X1").unwrap();
    let kinds = |status, role| -> Vec<&'static str> {
        next_steps(Some(status), role, &unit)
            .iter()
            .map(|b| b.kind())
            .collect()
    };
    assert_eq!(
        kinds(Status::Received, StaffRole::Intake),
        ["refused", "withdrawn"]
    );
    let processing = kinds(Status::Received, StaffRole::Processing);
    for k in [
        "transferred",
        "supplement_requested",
        "resolved",
        "apologized",
        "stopped",
    ] {
        assert!(processing.contains(&k), "{k} in {processing:?}");
    }
    assert!(!processing.contains(&"returned"));
    assert_eq!(kinds(Status::Resolved, StaffRole::Intake), ["returned"]);
    assert!(kinds(Status::Returned, StaffRole::Admin).is_empty());
    assert_eq!(
        kinds(Status::SupplementRequested, StaffRole::Intake),
        ["supplemented", "withdrawn"]
    );
}
