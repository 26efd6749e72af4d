//! The citizen's lookup (tra cứu) by dossier code, typed or scanned from the slip's QR code, and
//! the node's landing page.
//!
//! **Invariant:** these pages show status and dates only, never personal data (Decree 13/2023):
//! the result is drawn by [`public_result`] from a fixed list of non-personal fields of the
//! summary, so no applicant field can reach it by accident. The code is not personal data, so it
//! may travel in the URL.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use motcua_schema::dossier::Status;
use motcua_schema::summary::DossierSummary;
use serde::Deserialize;

use super::{WebError, blocking, code_from_input, date_time, layout};
use crate::api::AppState;

/// The public result for one dossier: code, procedure, status and dates. Nothing else.
pub fn public_result(s: &DossierSummary) -> Markup {
    let status = s.status.map_or("Chưa xác định", Status::label_vi);
    html! {
        section.card.lookup-result {
            p { "Mã hồ sơ" br; code.bigcode #lookup-code { (s.code.as_str()) } }
            dl {
                dt { "Thủ tục" } dd { (s.procedure_name) }
                dt { "Tình trạng" } dd #lookup-status { b { (status) } }
                @if let Some(t) = s.received_at { dt { "Ngày tiếp nhận" } dd { (date_time(t)) } }
                @if let Some(t) = s.appointment_at { dt { "Ngày hẹn trả kết quả" } dd #lookup-appointment { b { (date_time(t)) } } }
                @if let Some(t) = s.resolved_at { dt { "Ngày có kết quả" } dd { (date_time(t)) } }
            }
            @match s.status {
                Some(Status::Resolved) => p.alert.good { "Hồ sơ đã có kết quả. Mời Ông/Bà đến nhận kết quả theo giấy hẹn." }
                Some(Status::SupplementRequested) => p.alert.warn { "Hồ sơ cần bổ sung. Mời Ông/Bà liên hệ bộ phận một cửa." }
                Some(Status::PaymentRequested) => p.alert.warn { "Hồ sơ chờ nộp phí, lệ phí. Mời Ông/Bà liên hệ bộ phận một cửa." }
                _ => {}
            }
        }
    }
}

fn lookup_search(code: &str) -> Markup {
    html! {
        form.search method="get" action="/tra-cuu" {
            label.grow { "Mã hồ sơ (in trên giấy tiếp nhận và hẹn trả kết quả)"
                input name="ma" value=(code) required autocomplete="off" autofocus
                    placeholder="ví dụ 000.00.12.H12-251116-0001";
            }
            button.primary type="submit" { "Tra cứu" }
        }
    }
}

async fn lookup(state: &AppState, input: &str) -> Result<Response, WebError> {
    let code = code_from_input(input);
    let s = state.clone();
    let c = code.clone();
    let summary = if code.is_empty() {
        None
    } else {
        blocking(move || Ok(s.shared.store.summary(&c)?)).await?
    };
    let found = summary.is_some();
    let body = html! {
        h1 { "Tra cứu hồ sơ" }
        (lookup_search(&code))
        @match &summary {
            Some(s) => (public_result(s)),
            None if !code.is_empty() => p.alert.bad #lookup-missing { "Không tìm thấy hồ sơ với mã này. Vui lòng kiểm tra lại mã trên giấy hẹn." },
            None => p.muted { "Nhập hoặc quét mã QR trên giấy tiếp nhận để xem tình trạng hồ sơ và ngày hẹn trả kết quả." },
        }
    };
    let status = if found || code.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok((status, layout::public(state, "Tra cứu hồ sơ", body)).into_response())
}

#[derive(Deserialize)]
pub(super) struct LookupQuery {
    #[serde(default)]
    ma: String,
}

/// `GET /tra-cuu?ma=`.
pub async fn lookup_form(
    State(state): State<AppState>,
    Query(q): Query<LookupQuery>,
) -> Result<Response, WebError> {
    lookup(&state, &q.ma).await
}

/// `GET /tra-cuu/{code}`.
pub async fn lookup_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, WebError> {
    lookup(&state, &code).await
}

/// `GET /`: who this node is and where to go.
pub async fn home(State(state): State<AppState>) -> Markup {
    let id = &state.shared.identity;
    let body = html! {
        h1 { "motcua · một cửa" }
        p { (layout::node_role_vi(id.role)) " · mã đơn vị " code { (id.unit.as_str()) } }
        div.tiles {
            a.tile href="/tra-cuu" { b { "Tra cứu hồ sơ" } span { "Xem tình trạng và ngày hẹn trả kết quả theo mã hồ sơ" } }
            a.tile href="/dang-nhap" { b { "Cán bộ đăng nhập" } span { "Tiếp nhận, xử lý hồ sơ, báo cáo, quản trị" } }
            a.tile href="/danh-gia" { b { "Đánh giá mức độ hài lòng" } span { "Máy đánh giá tại quầy (thiết bị đã ghép)" } }
            a.tile href="/bang-tin" { b { "Bảng tin" } span { "Màn hình kết quả tại sảnh (thiết bị đã ghép)" } }
        }
        p.muted.small { "Khóa nút " code { (hex::encode(id.key.verifying_key().as_bytes())) } }
    };
    layout::public(&state, "Trang chủ", body)
}
