//! One dossier for staff: its facts, its timeline (each event with who did it, when, and which
//! node signed it), conflicts with a "resolve" action, the slips to print, and a button for each
//! lifecycle step that is valid now.
//!
//! Why the steps come from `motcua_schema::dossier::transition`: the page must offer exactly
//! what the writer will accept, so it asks the same function the fold uses instead of keeping
//! its own table of statuses; what a role may record comes from `auth::role_for_event`, the same
//! rule the JSON API applies.

use std::collections::HashMap;

use automerge::ActorId;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use motcua_schema::calendar::outcome;
use motcua_schema::dossier::{EventBody, ReturnMethod, Status, transition};
use motcua_schema::ids::{DossierCode, UnitCode};
use motcua_schema::signed::actor_key;
use motcua_schema::timestamp::{Timestamp, parse_date};
use serde::Deserialize;

use super::counter::{status_badge, vnd};
use super::session::{CSRF_FIELD, INTAKE, Signed, SignedForm};
use super::{WebError, blocking, date_time, layout};
use crate::api::AppState;
use crate::auth::{StaffRole, role_for_event};
use crate::commands::EventRequest;
use crate::store::DossierView;
use crate::writer::{Command, clock_now};

/// The timeline's "signed by" cell: the unit name the registry gives the signing key, and the
/// key's first characters.
pub fn signer_label(state: &AppState, actor_hex: &str) -> String {
    let Some(key) = hex::decode(actor_hex)
        .ok()
        .and_then(|b| actor_key(&ActorId::from(b)))
    else {
        return "không xác định".to_owned();
    };
    let short = hex::encode(&key[..4]);
    let registry = state.shared.registry.read().expect("registry lock");
    match registry.standing(&key) {
        Some(s) => format!("{} (khóa {short}…)", s.unit_name),
        None => format!("nút chưa đăng ký (khóa {short}…)"),
    }
}

/// Full names of staff accounts, by account name.
pub async fn staff_names(state: &AppState) -> Result<HashMap<String, String>, WebError> {
    let s = state.clone();
    blocking(move || {
        Ok(s.auth
            .users(s.shared.store.db())?
            .into_iter()
            .map(|u| (u.username, u.full_name))
            .collect())
    })
    .await
}

/// Loads a dossier by the code in the URL; 404 when unknown or malformed.
pub async fn load(state: &AppState, code: &str) -> Result<DossierView, WebError> {
    let code = DossierCode::parse(code.trim())
        .map_err(|_| WebError::not_found("Mã hồ sơ không đúng định dạng."))?;
    let s = state.clone();
    blocking(move || Ok(s.shared.store.dossier(code.as_str())?))
        .await?
        .ok_or_else(|| WebError::not_found("Không có hồ sơ với mã này trên nút."))
}

/// The details of an event, in words, for the timeline and the control slip.
pub fn event_details(body: &EventBody) -> String {
    match body {
        EventBody::Received { due_at } => format!("Hẹn trả kết quả {}", date_time(*due_at)),
        EventBody::Transferred {
            to_unit,
            to_agency,
            note,
        } => {
            let mut s = format!("Đến đơn vị {to_unit}");
            if let Some(a) = to_agency.as_deref().filter(|a| !a.is_empty()) {
                s += &format!(", {a}");
            }
            if !note.is_empty() {
                s += &format!(". {note}");
            }
            s
        }
        EventBody::SupplementRequested { reason }
        | EventBody::Refused { reason }
        | EventBody::Withdrawn { reason }
        | EventBody::Stopped { reason } => reason.clone(),
        EventBody::Supplemented { due_at } => format!("Hạn mới {}", date_time(*due_at)),
        EventBody::PaymentRequested { amount_vnd, note } => {
            format!("{} {note}", vnd(*amount_vnd)).trim().to_owned()
        }
        EventBody::Paid { amount_vnd } => vnd(*amount_vnd),
        EventBody::Resolved { note } => note.clone(),
        EventBody::Apologized {
            reason,
            new_appointment_at,
        } => format!("{reason}. Hẹn lại {}", date_time(*new_appointment_at)),
        EventBody::Returned { method } => method.label_vi().to_owned(),
        EventBody::ConflictResolved { note, .. } => note.clone(),
        EventBody::Registered => String::new(),
    }
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    moi: Option<String>,
}

/// Sample bodies of every step staff can ask for, to test against `transition`.
fn step_candidates(unit: &UnitCode) -> Vec<EventBody> {
    vec![
        EventBody::Received {
            due_at: Timestamp(0),
        },
        EventBody::Transferred {
            to_unit: unit.clone(),
            to_agency: None,
            note: String::new(),
        },
        EventBody::SupplementRequested {
            reason: String::new(),
        },
        EventBody::Supplemented {
            due_at: Timestamp(0),
        },
        EventBody::PaymentRequested {
            amount_vnd: 0,
            note: String::new(),
        },
        EventBody::Paid { amount_vnd: 0 },
        EventBody::Resolved {
            note: String::new(),
        },
        EventBody::Returned {
            method: ReturnMethod::Counter,
        },
        EventBody::Apologized {
            reason: String::new(),
            new_appointment_at: Timestamp(0),
        },
        EventBody::Refused {
            reason: String::new(),
        },
        EventBody::Withdrawn {
            reason: String::new(),
        },
        EventBody::Stopped {
            reason: String::new(),
        },
    ]
}

/// The steps valid from `status` that `role` may record, as event kinds.
pub fn next_steps(status: Option<Status>, role: StaffRole, unit: &UnitCode) -> Vec<EventBody> {
    step_candidates(unit)
        .into_iter()
        .filter(|b| transition(status, b).is_some() && role_for_event(b.kind()) <= role)
        .collect()
}

fn step_form(code: &str, csrf: &str, body: &EventBody, own_unit: &str, now: Timestamp) -> Markup {
    let kind = body.kind();
    let danger = matches!(
        body,
        EventBody::Refused { .. } | EventBody::Stopped { .. } | EventBody::Withdrawn { .. }
    );
    let fields = html! {
        @match body {
            EventBody::Transferred { .. } => {
                label { "Mã đơn vị nhận *" input name="to_unit" value=(own_unit) required; }
                label { "Cơ quan, bộ phận" input name="to_agency"; }
                label { "Ghi chú" input name="note"; }
            }
            EventBody::SupplementRequested { .. } => {
                label { "Nội dung cần bổ sung *" textarea name="reason" required rows="3" {} }
            }
            EventBody::Refused { .. } | EventBody::Stopped { .. } => {
                label { "Lý do *" textarea name="reason" required rows="2" {} }
            }
            EventBody::Withdrawn { .. } => {
                label { "Lý do" textarea name="reason" rows="2" {} }
            }
            EventBody::PaymentRequested { .. } => {
                label { "Số tiền (đồng) *" input name="amount_vnd" type="number" min="0" required; }
                label { "Nội dung" input name="note"; }
            }
            EventBody::Paid { .. } => {
                label { "Số tiền đã nộp (đồng) *" input name="amount_vnd" type="number" min="0" required; }
            }
            EventBody::Resolved { .. } => {
                label { "Ghi chú kết quả" input name="note"; }
            }
            EventBody::Apologized { .. } => {
                @let tomorrow = motcua_schema::timestamp::format_date(
                    now.plus_millis(24 * 3600 * 1000).local_date());
                label { "Lý do chậm trễ *" textarea name="reason" required rows="2" {} }
                div.grid2 {
                    label { "Ngày hẹn lại *" input name="new_date" type="date" value=(tomorrow) required; }
                    label { "Giờ" input name="new_time" type="time" value="16:00"; }
                }
            }
            EventBody::Returned { .. } => {
                label { "Hình thức trả kết quả"
                    select name="method" {
                        option value="counter" { (ReturnMethod::Counter.label_vi()) }
                        option value="postal" { (ReturnMethod::Postal.label_vi()) }
                        option value="online" { (ReturnMethod::Online.label_vi()) }
                    }
                }
            }
            _ => {}
        }
    };
    html! {
        details.step {
            summary class={"button" @if danger {" danger"}} { (body.label_vi()) }
            form method="post" action={"/ho-so/" (code) "/buoc"} {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="kind" value=(kind);
                (fields)
                button.primary type="submit" { "Xác nhận: " (body.label_vi()) }
            }
        }
    }
}

/// `GET /ho-so/{code}`.
pub async fn page(
    State(state): State<AppState>,
    who: Signed<INTAKE>,
    Path(code): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Markup, WebError> {
    let view = load(&state, &code).await?;
    let names = staff_names(&state).await?;
    let now = clock_now();
    let st = &view.state;
    let h = &st.header;
    let code = h.code.as_str();
    let own_unit = state.shared.identity.unit.clone();
    let steps = next_steps(st.status, who.user.role, &own_unit);
    let name_of = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_owned());
    let overdue = st.is_overdue_at(now);
    let asked_supplement = st
        .events
        .iter()
        .any(|e| matches!(e.event.body, EventBody::SupplementRequested { .. }));
    let body = html! {
        @if q.moi.is_some() {
            section.card.created role="status" {
                p { "Đã tiếp nhận hồ sơ. Mã hồ sơ:" }
                p.bigcode { code #new-code { (code) } }
                @if let Some(a) = st.appointment_at {
                    p.due { "Hẹn trả kết quả: " b #new-due { (date_time(a)) } }
                }
                a.button.primary.big href={"/ho-so/" (code) "/in/tiep-nhan"} target="_blank" {
                    "In giấy tiếp nhận và hẹn trả kết quả"
                }
            }
        }
        div.row.between {
            h1 { "Hồ sơ " code { (code) } }
            div { (status_badge(st.status)) @if overdue { " " span.badge.st-late { "Quá hạn" } } }
        }
        div.grid2 {
            section.card {
                h2 { "Thông tin hồ sơ" }
                dl {
                    dt { "Thủ tục" } dd { (h.procedure_name) " " small.muted { "(" (h.procedure_code) ")" } }
                    dt { "Cơ quan giải quyết" } dd { (h.agency) }
                    dt { "Thời hạn giải quyết" } dd { (h.processing.label_vi()) }
                    dt { "Hình thức nộp" } dd { (h.channel.label_vi()) }
                    dt { "Số hóa" } dd { @if h.digitised { "Đã số hóa" } @else { "Chưa số hóa" } }
                    dt { "Tiếp nhận lúc" } dd { (st.received_at.map(date_time).unwrap_or_default()) }
                    dt { "Hạn giải quyết" } dd { (st.due_at.map(date_time).unwrap_or_default()) }
                    dt { "Hẹn trả kết quả" } dd { b { (st.appointment_at.map(date_time).unwrap_or_default()) } }
                    @if let Some(o) = st.outcome { dt { "Kết quả xử lý" } dd { (o.label_vi()) } }
                    dt { "Đơn vị đang giữ" } dd { (st.holder.as_str()) }
                }
            }
            section.card {
                h2 { "Người nộp hồ sơ" }
                dl {
                    dt { "Họ và tên" } dd { (h.applicant.name) }
                    dt { "Số CCCD" } dd { (h.applicant.id_number) }
                    dt { "Điện thoại" } dd { (h.applicant.phone) }
                    dt { "Địa chỉ" } dd { (h.applicant.address) }
                }
                h3 { "In phiếu" }
                div.row.wrap {
                    @if st.received_at.is_some() {
                        a.button href={"/ho-so/" (code) "/in/tiep-nhan"} target="_blank" { "Giấy tiếp nhận, hẹn trả" }
                    }
                    @if asked_supplement {
                        a.button href={"/ho-so/" (code) "/in/bo-sung"} target="_blank" { "Phiếu yêu cầu bổ sung" }
                    }
                    @if st.apologized {
                        a.button href={"/ho-so/" (code) "/in/xin-loi"} target="_blank" { "Phiếu xin lỗi, hẹn lại" }
                    }
                    a.button href={"/ho-so/" (code) "/in/kiem-soat"} target="_blank" { "Phiếu kiểm soát quá trình" }
                }
            }
        }
        section.card {
            h2 { "Bước tiếp theo" }
            @if steps.is_empty() {
                p.muted { "Không còn bước nào mà vai trò «" (who.user.role.label_vi()) "» thực hiện được ở trạng thái này." }
            }
            div.steps {
                @for b in &steps { (step_form(code, &who.csrf, b, own_unit.as_str(), now)) }
            }
        }
        section.card {
            h2 { "Quá trình xử lý" }
            @if st.open_conflicts > 0 {
                p.alert.bad { "Có " (st.open_conflicts) " bước xung đột cần lãnh đạo xem xét và giải quyết." }
            }
            table.list.timeline {
                thead { tr { th { "#" } th { "Thời điểm" } th { "Bước" } th { "Người thực hiện" } th { "Đơn vị" } th { "Nút ký" } th { "" } } }
                tbody {
                    @for (i, e) in st.events.iter().enumerate() {
                        tr class=[e.conflict.is_some().then_some(if e.resolved_by.is_some() {"resolved"} else {"conflict"})] {
                            td { (i + 1) }
                            td { (date_time(e.event.at)) }
                            td { b { (e.event.body.label_vi()) } br; small { (event_details(&e.event.body)) } }
                            td { (name_of(&e.event.by)) br; small.muted { (e.event.by) } }
                            td { (e.event.unit.as_str()) }
                            td { small { (signer_label(&state, &e.actor)) } }
                            td {
                                @if let Some(c) = &e.conflict {
                                    @if e.resolved_by.is_some() {
                                        span.badge.st-done { "Đã giải quyết" }
                                    } @else {
                                        span.badge.st-late title=(c) { "Xung đột" }
                                        @if who.user.role >= StaffRole::Leader {
                                            details.step {
                                                summary.button { "Giải quyết" }
                                                form method="post" action={"/ho-so/" (code) "/buoc"} {
                                                    input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
                                                    input type="hidden" name="kind" value="conflict_resolved";
                                                    input type="hidden" name="event_id" value=(e.id);
                                                    label { "Quyết định *" textarea name="note" required rows="2" {} }
                                                    button.primary type="submit" { "Ghi nhận quyết định" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { "Các thay đổi đã ký (" (view.changes.len()) ")" }
                table.list.mono {
                    thead { tr { th { "Băm" } th { "Khóa ký" } th { "Số thứ tự" } } }
                    tbody { @for c in &view.changes {
                        tr { td { (c.hash[..16]) "…" } td { (c.signer[..16]) "…" } td { (c.seq) } }
                    } }
                }
            }
        }
    };
    Ok(layout::staff(&state, &who, &format!("Hồ sơ {code}"), body))
}

fn request_from(kind: &str, f: &super::session::Fields) -> Result<EventRequest, WebError> {
    let amount = |name: &str| {
        f.get(name)
            .replace(['.', ',', ' '], "")
            .parse::<u64>()
            .map_err(|_| WebError::bad_request("Số tiền phải là số đồng, không âm."))
    };
    Ok(match kind {
        "received" => EventRequest::Received,
        "transferred" => EventRequest::Transferred {
            to_unit: UnitCode::new(f.get("to_unit"))
                .map_err(|_| WebError::bad_request("Mã đơn vị nhận không hợp lệ."))?,
            to_agency: Some(f.get("to_agency").to_owned()).filter(|a| !a.is_empty()),
            note: f.get("note").to_owned(),
        },
        "supplement_requested" => EventRequest::SupplementRequested {
            reason: f.get("reason").to_owned(),
        },
        "supplemented" => EventRequest::Supplemented,
        "payment_requested" => EventRequest::PaymentRequested {
            amount_vnd: amount("amount_vnd")?,
            note: f.get("note").to_owned(),
        },
        "paid" => EventRequest::Paid {
            amount_vnd: amount("amount_vnd")?,
        },
        "refused" => EventRequest::Refused {
            reason: f.get("reason").to_owned(),
        },
        "withdrawn" => EventRequest::Withdrawn {
            reason: f.get("reason").to_owned(),
        },
        "stopped" => EventRequest::Stopped {
            reason: f.get("reason").to_owned(),
        },
        "resolved" => EventRequest::Resolved {
            note: f.get("note").to_owned(),
        },
        "apologized" => {
            let date = parse_date(f.get("new_date"))
                .ok_or_else(|| WebError::bad_request("Ngày hẹn lại không hợp lệ."))?;
            let time = match f.get("new_time") {
                "" => time::Time::from_hms(16, 0, 0).expect("valid time"),
                t => motcua_schema::calendar::parse_hhmm(t)
                    .ok_or_else(|| WebError::bad_request("Giờ hẹn lại không hợp lệ."))?,
            };
            EventRequest::Apologized {
                reason: f.get("reason").to_owned(),
                new_appointment_at: Timestamp::from_local(date, time).to_rfc3339(),
            }
        }
        "returned" => EventRequest::Returned {
            method: match f.get("method") {
                "postal" => ReturnMethod::Postal,
                "online" => ReturnMethod::Online,
                _ => ReturnMethod::Counter,
            },
        },
        "conflict_resolved" => EventRequest::ConflictResolved {
            event_id: f.get("event_id").to_owned(),
            note: f.get("note").to_owned(),
        },
        _ => return Err(WebError::bad_request("Bước xử lý không xác định.")),
    })
}

/// `POST /ho-so/{code}/buoc`: records one lifecycle step, then shows the dossier again.
pub async fn step(
    State(state): State<AppState>,
    Path(code): Path<String>,
    form: SignedForm<INTAKE>,
) -> Result<Response, WebError> {
    let code = DossierCode::parse(code.trim())
        .map_err(|_| WebError::not_found("Mã hồ sơ không đúng định dạng."))?;
    let req = request_from(form.fields.get("kind"), &form.fields)?;
    let needed = role_for_event(req.kind());
    if form.staff.user.role < needed {
        return Err(WebError::forbidden(format!(
            "Bước này cần vai trò «{}» trở lên.",
            needed.label_vi()
        )));
    }
    state
        .writer
        .submit(Command::AddEvent {
            code: code.to_string(),
            req,
            by: form.staff.user.username.clone(),
        })
        .await?;
    Ok(Redirect::to(&format!("/ho-so/{code}")).into_response())
}

/// Early / on time / late of a hand-over at `at` against the due instant, for the control slip.
pub fn step_timeliness(at: Timestamp, due: Option<Timestamp>) -> &'static str {
    due.map_or("", |d| outcome(at, d).label_vi())
}
