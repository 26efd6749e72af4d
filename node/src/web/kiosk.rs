//! The rating tablet (kiosk) at the counter, and pairing a device with the node.
//!
//! Why a device token and not a staff session: the tablet sits in front of citizens all day. Its
//! cookie lets it show the rating screen and record ratings, nothing else, and the administrator
//! can revoke it alone. The screen is full-width with three large buttons (Hài lòng / Bình
//! thường / Không hài lòng); the official and the dossier code (typed or scanned from the slip's
//! QR) and the national criteria are optional. After a rating a thanks screen returns to the
//! start by itself (a meta refresh, so it works with scripts off). It needs only the local node.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use motcua_schema::rating::{Criterion, Score};

use super::session::{CSRF_FIELD, DeviceForm, Paired, PreloginForm, prelogin_secret, set_cookie};
use super::{WebError, blocking, code_from_input, layout};
use crate::api::AppState;
use crate::auth::{DEVICE_COOKIE, DEVICE_LIFETIME_MS, DeviceKind, csrf_token};
use crate::commands::NewRating;
use crate::writer::{Command, Reply, clock_now};

/// Seconds the thanks screen stays before the kiosk returns to the start.
pub const THANKS_SCREEN_SECS: u32 = 5;

/// The nine national criteria, in the order of the evaluation form.
pub const CRITERIA: [Criterion; 9] = [
    Criterion::TotalTime,
    Criterion::TimePerAgency,
    Criterion::Contacts,
    Criterion::Agencies,
    Criterion::OneStop,
    Criterion::Publicity,
    Criterion::Attitude,
    Criterion::Feedback,
    Criterion::OnlineQuality,
];

fn criterion_name(c: Criterion) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn score_name(s: Score) -> &'static str {
    match s {
        Score::Satisfied => "satisfied",
        Score::Neutral => "neutral",
        Score::Dissatisfied => "dissatisfied",
    }
}

async fn start_page(
    state: &AppState,
    paired: &Paired,
    error: Option<&str>,
) -> Result<Markup, WebError> {
    let s = state.clone();
    let officials = blocking(move || Ok(s.auth.users(s.shared.store.db())?)).await?;
    Ok(layout::bare(
        "Đánh giá mức độ hài lòng",
        "kiosk",
        html! {
            form.kiosk-form method="post" action="/danh-gia" {
                input type="hidden" name=(CSRF_FIELD) value=(paired.csrf);
                h1 { "Ông/Bà hài lòng với việc giải quyết thủ tục hành chính?" }
                p.kiosk-unit { (state.unit_name) }
                @if let Some(e) = error { p.alert.bad role="alert" { (e) } }
                div.kiosk-buttons {
                    button.score.good type="submit" name="score" value=(score_name(Score::Satisfied)) {
                        span.face { "☺" } (Score::Satisfied.label_vi())
                    }
                    button.score.mid type="submit" name="score" value=(score_name(Score::Neutral)) {
                        span.face { "😐" } (Score::Neutral.label_vi())
                    }
                    button.score.bad type="submit" name="score" value=(score_name(Score::Dissatisfied)) {
                        span.face { "☹" } (Score::Dissatisfied.label_vi())
                    }
                }
                div.kiosk-extra {
                    label { "Cán bộ tiếp nhận (không bắt buộc)"
                        select name="official" {
                            option value="" { "— Không chọn —" }
                            @for u in officials.iter().filter(|u| !u.disabled) {
                                option value=(u.username) { (u.full_name) }
                            }
                        }
                    }
                    label { "Mã hồ sơ (gõ hoặc quét mã QR trên giấy hẹn, không bắt buộc)"
                        input name="dossier" autocomplete="off" inputmode="text";
                    }
                    details {
                        summary { "Đánh giá chi tiết theo tiêu chí (không bắt buộc)" }
                        div.criteria {
                            @for c in CRITERIA {
                                label.radio { input type="checkbox" name="criteria" value=(criterion_name(c)); " " (c.label_vi()) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /danh-gia`: the start screen.
pub async fn start(State(state): State<AppState>, paired: Paired) -> Result<Response, WebError> {
    if paired.device.kind != DeviceKind::Kiosk {
        return Ok(Redirect::to("/bang-tin").into_response());
    }
    Ok(start_page(&state, &paired, None).await?.into_response())
}

/// `POST /danh-gia`: records the rating, then the thanks screen.
pub async fn rate(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: DeviceForm,
) -> Result<Response, WebError> {
    let f = &form.fields;
    let score = match f.get("score") {
        "satisfied" => Score::Satisfied,
        "neutral" => Score::Neutral,
        "dissatisfied" => Score::Dissatisfied,
        _ => return Err(WebError::bad_request("Chọn một mức đánh giá.")),
    };
    let mut criteria = Vec::new();
    for name in f.all("criteria") {
        let c: Criterion = serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| WebError::bad_request("Tiêu chí không hợp lệ."))?;
        if !criteria.contains(&c) {
            criteria.push(c);
        }
    }
    let dossier = Some(code_from_input(f.get("dossier"))).filter(|d| !d.is_empty());
    let req = NewRating {
        score,
        official: Some(f.get("official").to_owned()).filter(|o| !o.is_empty()),
        dossier,
        criteria,
        comment: String::new(),
        device: form.device.name.clone(),
    };
    match state.writer.submit(Command::Rate(req)).await {
        Ok(Reply::Rating(_)) => Ok(Redirect::to("/danh-gia/cam-on").into_response()),
        Ok(other) => Err(WebError::internal(format!("unexpected reply {other:?}"))),
        Err(e) => {
            let e = WebError::from(e);
            if e.status().is_server_error() {
                return Err(e);
            }
            let token = super::session::cookie(&headers, DEVICE_COOKIE).unwrap_or_default();
            let paired = Paired {
                device: form.device,
                csrf: csrf_token(&token),
            };
            let page = start_page(
                &state,
                &paired,
                Some("Mã hồ sơ không đúng. Vui lòng kiểm tra lại hoặc để trống."),
            )
            .await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}

/// `GET /danh-gia/cam-on`: thanks, then back to the start by itself.
pub async fn thanks(_paired: Paired) -> Markup {
    layout::bare_refreshing(
        "Cảm ơn",
        "kiosk",
        Some((THANKS_SCREEN_SECS, "/danh-gia")),
        html! {
            div.thanks {
                p.face { "♥" }
                h1 #thanks { "Cảm ơn Ông/Bà đã đánh giá!" }
                p { "Ý kiến của Ông/Bà giúp chúng tôi phục vụ tốt hơn." }
                p { a.button href="/danh-gia" { "Quay lại" } }
            }
        },
    )
}

fn pair_form(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        section.card.narrow {
            h1 { "Ghép thiết bị" }
            p { "Dành cho máy đánh giá mức độ hài lòng tại quầy và màn hình bảng tin ở sảnh. "
                "Quản trị viên tạo mã ghép ở trang Quản trị, rồi nhập mã đó tại đây trên chính thiết bị." }
            @if let Some(e) = error { p.alert.bad role="alert" { (e) } }
            form method="post" action="/thiet-bi/ghep" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label { "Mã ghép thiết bị"
                    input name="token" required autocomplete="off" spellcheck="false"; }
                button.primary type="submit" { "Ghép thiết bị này" }
            }
            p.muted { "Cán bộ? " a href="/dang-nhap" { "Đăng nhập" } }
        }
    }
}

/// `GET /thiet-bi/ghep`.
pub async fn pair_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (secret, set) = prelogin_secret(&headers, &uri);
    let page = layout::public(
        &state,
        "Ghép thiết bị",
        pair_form(&csrf_token(&secret), None),
    );
    let mut r = page.into_response();
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// `POST /thiet-bi/ghep`: checks the token and stores it in the device's cookie.
pub async fn pair(State(state): State<AppState>, form: PreloginForm) -> Result<Response, WebError> {
    let token = form.fields.get("token").to_owned();
    let s = state.clone();
    let t = token.clone();
    let device =
        blocking(move || Ok(s.auth.device(s.shared.store.db(), &t, clock_now()).ok())).await?;
    let Some(device) = device else {
        let csrf = form.fields.get(CSRF_FIELD).to_owned();
        let page = layout::public(
            &state,
            "Ghép thiết bị",
            pair_form(
                &csrf,
                Some("Mã ghép không đúng, đã hết hạn hoặc đã bị thu hồi."),
            ),
        );
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    };
    let to = match device.kind {
        DeviceKind::Kiosk => "/danh-gia",
        DeviceKind::Board => "/bang-tin",
    };
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(DEVICE_COOKIE, &token, DEVICE_LIFETIME_MS / 1000, form.https),
    );
    Ok(r)
}
