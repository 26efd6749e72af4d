//! The counter (bộ phận một cửa): today's and overdue dossiers, search by code, name or ID
//! number, and receiving a new dossier with the procedure picked from the catalog.
//!
//! Why these shapes: an intake officer works with a queue of citizens, so the new dossier's code
//! and due date appear the moment it is saved (the answer redirects to its page with the slip
//! one click away), and the search by ID number is a POST so that the number never lands in a
//! URL, a browser history or a proxy log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use motcua_schema::catalog::Procedure;
use motcua_schema::dossier::{Applicant, Channel, DossierError, Status};
use motcua_schema::ids::DossierCode;
use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::Timestamp;
use serde::Deserialize;

use super::session::{CSRF_FIELD, INTAKE, Signed, SignedForm};
use super::{WebError, blocking, code_from_input, date_time, layout, weekday_date};
use crate::api::AppState;
use crate::commands::NewDossier;
use crate::store::ListFilter;
use crate::writer::{Command, Reply, clock_now};

/// Rows shown in each list of the counter's home.
pub const COUNTER_ROWS_COUNT_MAX: usize = 200;
/// Procedures shown for one search.
pub const PROCEDURE_MATCHES_COUNT_MAX: usize = 30;

/// A status as a coloured badge.
pub fn status_badge(status: Option<Status>) -> Markup {
    let (class, label) = match status {
        None => ("st-none", "Chưa xác định"),
        Some(s) => (
            match s {
                Status::Registered | Status::Received => "st-new",
                Status::InProcessing => "st-work",
                Status::SupplementRequested | Status::PaymentRequested => "st-wait",
                Status::Resolved => "st-ready",
                Status::Returned => "st-done",
                Status::Refused | Status::Withdrawn | Status::Stopped => "st-end",
            },
            s.label_vi(),
        ),
    };
    html! { span class={"badge " (class)} { (label) } }
}

/// A table of dossiers for staff (with the applicant's name: staff pages only).
pub fn dossier_table(rows: &[DossierSummary], now: Timestamp, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { (empty) }
        } @else {
            table.list {
                thead { tr {
                    th { "Mã hồ sơ" } th { "Thủ tục" } th { "Người nộp" }
                    th { "Tiếp nhận" } th { "Hẹn trả" } th { "Trạng thái" }
                } }
                tbody {
                    @for s in rows {
                        @let overdue = s.status.is_some_and(|st| !st.is_finished())
                            && s.due_at.is_some_and(|d| now > d);
                        tr class=[overdue.then_some("overdue")] {
                            td { a href={"/ho-so/" (s.code.as_str())} { code { (s.code.as_str()) } } }
                            td { (s.procedure_name) }
                            td { (s.applicant_name) }
                            td { (s.received_at.map(date_time).unwrap_or_default()) }
                            td {
                                (s.appointment_at.map(date_time).unwrap_or_default())
                                @if overdue { " " span.badge.st-late { "Quá hạn" } }
                            }
                            td { (status_badge(s.status)) }
                        }
                    }
                }
            }
        }
    }
}

fn search_form(csrf: &str, q: &str) -> Markup {
    html! {
        form.search method="post" action="/quay/tim" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label.grow { "Tìm hồ sơ"
                input name="q" value=(q) placeholder="Mã hồ sơ, họ tên hoặc số CCCD" required
                    autocomplete="off";
            }
            button type="submit" { "Tìm" }
        }
    }
}

/// `GET /quay`.
pub async fn home(State(state): State<AppState>, who: Signed<INTAKE>) -> Result<Markup, WebError> {
    let now = clock_now();
    let unit = state.shared.identity.unit.to_string();
    let s = state.clone();
    let (today, overdue) = blocking(move || {
        let start = Timestamp::start_of_local_day(now.local_date());
        let end = start.plus_millis(24 * 3600 * 1000);
        let today = s
            .shared
            .store
            .received_between(&unit, start, end, COUNTER_ROWS_COUNT_MAX)?;
        let overdue = s.shared.store.list(&ListFilter {
            due_before: Some(now),
            unit: Some(unit),
            limit: COUNTER_ROWS_COUNT_MAX,
            ..ListFilter::default()
        })?;
        Ok((today, overdue))
    })
    .await?;
    let body = html! {
        div.row.between {
            h1 { "Bộ phận một cửa" }
            a.button.primary href="/quay/tiep-nhan" { "+ Tiếp nhận hồ sơ mới" }
        }
        p.muted { (weekday_date(now)) }
        (search_form(&who.csrf, ""))
        section.card {
            h2 { "Hồ sơ tiếp nhận hôm nay " span.count { (today.len()) } }
            (dossier_table(&today, now, "Hôm nay chưa tiếp nhận hồ sơ nào."))
        }
        section.card {
            h2 { "Hồ sơ quá hạn " span.count.bad { (overdue.len()) } }
            (dossier_table(&overdue, now, "Không có hồ sơ quá hạn."))
        }
    };
    Ok(layout::staff(&state, &who, "Bộ phận một cửa", body))
}

/// `POST /quay/tim`: by code, by 12-digit ID number, or by text in the name or procedure.
pub async fn search(
    State(state): State<AppState>,
    form: SignedForm<INTAKE>,
) -> Result<Markup, WebError> {
    let q = form.fields.get("q").to_owned();
    let code = code_from_input(&q);
    let filter = if DossierCode::parse(&code).is_ok() {
        ListFilter {
            code: Some(code),
            ..ListFilter::default()
        }
    } else if q.len() == 12 && q.bytes().all(|b| b.is_ascii_digit()) {
        ListFilter {
            id_number: Some(q.clone()),
            ..ListFilter::default()
        }
    } else {
        ListFilter {
            text: Some(q.clone()),
            ..ListFilter::default()
        }
    };
    let filter = ListFilter {
        limit: COUNTER_ROWS_COUNT_MAX,
        ..filter
    };
    let s = state.clone();
    let rows = if q.is_empty() {
        Vec::new()
    } else {
        blocking(move || Ok(s.shared.store.list(&filter)?)).await?
    };
    let who = &form.staff;
    let body = html! {
        div.row.between {
            h1 { "Tìm hồ sơ" }
            a.button href="/quay" { "← Về bộ phận một cửa" }
        }
        (search_form(&who.csrf, &q))
        section.card {
            h2 { "Kết quả " span.count { (rows.len()) } }
            (dossier_table(&rows, clock_now(), "Không tìm thấy hồ sơ nào."))
        }
    };
    Ok(layout::staff(&state, who, "Tìm hồ sơ", body))
}

#[derive(Deserialize, Default)]
pub(super) struct ProcedureQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    ma: String,
}

fn procedure_choices(matches: &[&Procedure], selected: &str) -> Markup {
    html! {
        @if matches.is_empty() {
            p.muted { "Không có thủ tục phù hợp. Thử tên khác hoặc mã thủ tục." }
        }
        @for p in matches {
            label.choice {
                input type="radio" name="procedure_code" value=(p.code) required
                    checked[p.code == selected];
                span {
                    b { (p.name) }
                    br;
                    small.muted {
                        code { (p.code) } " · " (p.agency) " · " (p.processing.label_vi())
                        @if p.fee_vnd > 0 { " · lệ phí " (vnd(p.fee_vnd)) }
                    }
                }
            }
        }
    }
}

/// `1.234.000 đ`.
pub fn vnd(amount: u64) -> String {
    let digits = amount.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out + " đ"
}

/// The procedures matching `q` (`Catalog::search`: by code or by name, diacritics-insensitive),
/// with the one already chosen kept first so a new search never loses the choice.
fn matches<'a>(
    catalog: &'a motcua_schema::catalog::Catalog,
    q: &str,
    selected: &str,
) -> Vec<&'a Procedure> {
    let mut shown = catalog.search(q, PROCEDURE_MATCHES_COUNT_MAX);
    if let Some(p) = catalog.get(selected)
        && !shown.iter().any(|x| x.code == p.code)
    {
        shown.insert(0, p);
    }
    shown
}

/// `GET /quay/thu-tuc?q=`: the list of matching procedures, for the script's live search.
pub async fn procedures_fragment(
    State(state): State<AppState>,
    _who: Signed<INTAKE>,
    Query(q): Query<ProcedureQuery>,
) -> Markup {
    let reference = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .clone();
    procedure_choices(&matches(&reference.catalog, &q.q, &q.ma), &q.ma)
}

/// What the receive form holds, to draw it again after a refusal.
#[derive(Default)]
struct ReceiveInput {
    q: String,
    procedure_code: String,
    name: String,
    id_number: String,
    phone: String,
    address: String,
    channel: String,
    digitised: bool,
}

fn receive_form<const R: u8>(
    state: &AppState,
    who: &Signed<R>,
    input: &ReceiveInput,
    error: Option<&str>,
) -> Markup {
    let reference = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .clone();
    let shown = matches(&reference.catalog, &input.q, &input.procedure_code);
    let channel = if input.channel.is_empty() {
        "direct"
    } else {
        input.channel.as_str()
    };
    html! {
        h1 { "Tiếp nhận hồ sơ" }
        @if let Some(e) = error { p.alert.bad role="alert" { (e) } }
        section.card {
            h2 { "1. Chọn thủ tục" }
            form.search method="get" action="/quay/tiep-nhan" {
                label.grow { "Tìm theo tên hoặc mã thủ tục (gõ có dấu hay không dấu đều được)"
                    input #procedure-search name="q" value=(input.q) placeholder="ví dụ: khai sinh, 1.001193"
                        autocomplete="off" data-target="procedure-list" data-source="/quay/thu-tuc";
                }
                button type="submit" { "Tìm thủ tục" }
            }
        }
        form.card method="post" action="/quay/tiep-nhan" {
            input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
            input type="hidden" name="q" value=(input.q);
            div #procedure-list .choices { (procedure_choices(&shown, &input.procedure_code)) }
            h2 { "2. Người nộp hồ sơ" }
            div.grid2 {
                label { "Họ và tên *"
                    input name="name" value=(input.name) required maxlength="200" autocomplete="off"; }
                label { "Số CCCD (12 chữ số) *"
                    input name="id_number" value=(input.id_number) required inputmode="numeric"
                        pattern="[0-9]{12}" maxlength="12" autocomplete="off"
                        title="Số căn cước công dân gồm đúng 12 chữ số"; }
                label { "Số điện thoại"
                    input name="phone" value=(input.phone) inputmode="tel" maxlength="20" autocomplete="off"; }
                label { "Địa chỉ"
                    input name="address" value=(input.address) maxlength="300" autocomplete="off"; }
            }
            h2 { "3. Hình thức nộp" }
            div.row {
                @for c in [Channel::Direct, Channel::Online, Channel::Postal] {
                    @let name = channel_name(c);
                    label.radio { input type="radio" name="channel" value=(name) checked[name == channel];
                        " " (c.label_vi()) }
                }
                label.radio { input type="checkbox" name="digitised" value="1" checked[input.digitised];
                    " Đã số hóa thành phần hồ sơ" }
            }
            div.row.end { button.primary.big type="submit" { "Tiếp nhận và cấp mã hồ sơ" } }
        }
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Direct => "direct",
        Channel::Online => "online",
        Channel::Postal => "postal",
    }
}

/// `GET /quay/tiep-nhan?q=&ma=`.
pub async fn receive_page(
    State(state): State<AppState>,
    who: Signed<INTAKE>,
    Query(q): Query<ProcedureQuery>,
) -> Markup {
    let input = ReceiveInput {
        q: q.q,
        procedure_code: q.ma,
        ..ReceiveInput::default()
    };
    let body = receive_form(&state, &who, &input, None);
    layout::staff(&state, &who, "Tiếp nhận hồ sơ", body)
}

/// The Vietnamese message for an applicant refused by `Applicant::validate`.
pub fn applicant_error_vi(e: &DossierError) -> String {
    match e {
        DossierError::Missing(_) => "Nhập họ và tên người nộp hồ sơ.".to_owned(),
        DossierError::IdNumber => "Số CCCD phải gồm đúng 12 chữ số.".to_owned(),
        DossierError::TooLong(field) => format!(
            "Trường «{}» quá dài.",
            match *field {
                "applicant.name" => "Họ và tên",
                "applicant.phone" => "Số điện thoại",
                "applicant.address" => "Địa chỉ",
                other => other,
            }
        ),
        other => other.to_string(),
    }
}

/// `POST /quay/tiep-nhan`: receives the dossier, then shows its page with code and due date.
pub async fn receive(
    State(state): State<AppState>,
    form: SignedForm<INTAKE>,
) -> Result<Response, WebError> {
    let f = &form.fields;
    let input = ReceiveInput {
        q: f.get("q").to_owned(),
        procedure_code: f.get("procedure_code").to_owned(),
        name: f.get("name").to_owned(),
        id_number: f.get("id_number").to_owned(),
        phone: f.get("phone").to_owned(),
        address: f.get("address").to_owned(),
        channel: f.get("channel").to_owned(),
        digitised: f.checked("digitised"),
    };
    let refuse = |message: String| -> Result<Response, WebError> {
        let body = receive_form(&state, &form.staff, &input, Some(&message));
        Ok((
            StatusCode::BAD_REQUEST,
            layout::staff(&state, &form.staff, "Tiếp nhận hồ sơ", body),
        )
            .into_response())
    };
    let channel = match input.channel.as_str() {
        "direct" | "" => Channel::Direct,
        "online" => Channel::Online,
        "postal" => Channel::Postal,
        _ => return refuse("Hình thức nộp không hợp lệ.".to_owned()),
    };
    let known = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .catalog
        .get(&input.procedure_code)
        .is_some();
    if !known {
        return refuse("Chọn một thủ tục trong danh mục.".to_owned());
    }
    let applicant = Applicant {
        name: input.name.clone(),
        id_number: input.id_number.clone(),
        phone: input.phone.clone(),
        address: input.address.clone(),
    };
    if let Err(e) = applicant.validate() {
        return refuse(applicant_error_vi(&e));
    }
    let req = NewDossier {
        procedure_code: input.procedure_code.clone(),
        channel,
        applicant,
        digitised: input.digitised,
        registered_only: false,
    };
    let reply = state
        .writer
        .submit(Command::CreateDossier {
            req,
            by: form.staff.user.username.clone(),
        })
        .await;
    match reply {
        Ok(Reply::Dossier(summary)) => {
            Ok(Redirect::to(&format!("/ho-so/{}?moi=1", summary.code)).into_response())
        }
        Ok(other) => Err(WebError::internal(format!("unexpected reply {other:?}"))),
        Err(e) => {
            let e = WebError::from(e);
            if e.status().is_server_error() {
                return Err(e);
            }
            refuse(e.message().to_owned())
        }
    }
}
