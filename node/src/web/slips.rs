//! The slips staff print on A5 paper (Circular 01/2018/TT-VPCP): the receipt and appointment
//! slip with the dossier code as a QR code, the supplement request, the apology with a new
//! appointment date, and the process control slip with one row per hand-over.
//!
//! Why HTML with print CSS rather than PDF: any browser on any office PC prints it, the node
//! needs no font files or PDF library, and the QR code is an inline SVG drawn by `qrcode`.

use axum::extract::{Path, State};
use maud::{Markup, PreEscaped, html};
use motcua_schema::dossier::{DossierState, EventBody};
use qrcode::QrCode;
use qrcode::render::svg;

use super::dossier::{event_details, load, staff_names, step_timeliness};
use super::session::{INTAKE, Signed};
use super::{WebError, date_time, date_vn, layout};
use crate::api::AppState;

/// The dossier code as an inline SVG QR code (what a scanner at the kiosk or the lookup reads).
pub fn qr_svg(text: &str) -> Result<String, WebError> {
    let code = QrCode::new(text.as_bytes()).map_err(WebError::internal)?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(132, 132)
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the SVG is embedded in HTML.
    let start = image.find("<svg").unwrap_or(0);
    Ok(image[start..].to_owned())
}

fn header(unit_name: &str, code: &str) -> Markup {
    html! {
        div.slip-head {
            div {
                b { (unit_name.to_uppercase()) }
                br; small { "BỘ PHẬN TIẾP NHẬN VÀ TRẢ KẾT QUẢ" }
            }
            div.right {
                b { "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" }
                br; u { "Độc lập - Tự do - Hạnh phúc" }
            }
        }
        p.slip-code { "Mã hồ sơ: " b { (code) } }
    }
}

fn signatures(left: &str, right: &str, right_name: &str) -> Markup {
    html! {
        div.signs {
            div { b { (left) } br; small { "(Ký, ghi rõ họ tên)" } }
            div { b { (right) } br; small { "(Ký, ghi rõ họ tên)" } br; br; br; (right_name) }
        }
    }
}

fn print_bar(code: &str) -> Markup {
    html! {
        div.no-print.print-bar {
            button.primary type="button" data-print { "In phiếu (khổ A5)" }
            " "
            a.button href={"/ho-so/" (code)} { "← Về hồ sơ" }
        }
    }
}

fn receiver(st: &DossierState) -> &str {
    st.events
        .iter()
        .find(|e| matches!(e.event.body, EventBody::Received { .. }) && e.conflict.is_none())
        .map_or("", |e| e.event.by.as_str())
}

/// `GET /ho-so/{code}/in/{slip}` with `slip` one of `tiep-nhan`, `bo-sung`, `xin-loi`,
/// `kiem-soat`.
pub async fn slip(
    State(state): State<AppState>,
    _who: Signed<INTAKE>,
    Path((code, slip)): Path<(String, String)>,
) -> Result<Markup, WebError> {
    let view = load(&state, &code).await?;
    let names = staff_names(&state).await?;
    let name_of = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_owned());
    let st = &view.state;
    let h = &st.header;
    let code = h.code.as_str();
    let unit_name: &str = &state.unit_name;
    let a = &h.applicant;
    let applicant = html! {
        p { "Ông/Bà: " b { (a.name) } }
        p { "Số CCCD: " (a.id_number) " · Điện thoại: " (a.phone) }
        p { "Địa chỉ: " (a.address) }
    };
    let (title, body) = match slip.as_str() {
        "tiep-nhan" => {
            let received = st
                .received_at
                .ok_or_else(|| WebError::bad_request("Hồ sơ chưa được tiếp nhận."))?;
            let papers = state
                .shared
                .reference
                .read()
                .expect("reference lock")
                .catalog
                .get(&h.procedure_code)
                .map(|p| p.papers.clone())
                .unwrap_or_default();
            let qr = qr_svg(code)?;
            (
                "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
                html! {
                    div.slip-qr-row {
                        div {
                            p { (unit_name) " đã tiếp nhận hồ sơ của:" }
                            (applicant)
                        }
                        figure #qr.qr data-code=(code) { (PreEscaped(qr)) figcaption { (code) } }
                    }
                    p { "Nội dung yêu cầu giải quyết: " b { (h.procedure_name) } }
                    @if !papers.is_empty() {
                        p { "Thành phần hồ sơ:" }
                        ol { @for p in &papers { li { (p) } } }
                    }
                    p { "Số lượng hồ sơ: 01 bộ · Hình thức nộp: " (h.channel.label_vi()) }
                    p { "Thời gian giải quyết theo quy định: " (h.processing.label_vi()) }
                    p { "Thời gian nhận hồ sơ: " (date_time(received)) }
                    p.big { "Thời gian trả kết quả: " b { (st.appointment_at.map(date_time).unwrap_or_default()) } }
                    p { "Nơi trả kết quả: " (unit_name) }
                    p.small { "Tra cứu tình trạng hồ sơ tại trang Tra cứu của bộ phận một cửa bằng mã hồ sơ hoặc quét mã QR." }
                    (signatures("NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ", &name_of(receiver(st))))
                },
            )
        }
        "bo-sung" => {
            let asked = st
                .events
                .iter()
                .rev()
                .find(|e| matches!(e.event.body, EventBody::SupplementRequested { .. }))
                .ok_or_else(|| WebError::bad_request("Hồ sơ chưa có yêu cầu bổ sung."))?;
            (
                "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
                html! {
                    p { (unit_name) " đã tiếp nhận hồ sơ của:" }
                    (applicant)
                    p { "Nội dung yêu cầu giải quyết: " b { (h.procedure_name) } }
                    p { "Ngày tiếp nhận: " (st.received_at.map(date_vn).unwrap_or_default()) }
                    p { "Yêu cầu bổ sung, hoàn thiện hồ sơ gồm những nội dung sau:" }
                    blockquote { (event_details(&asked.event.body)) }
                    p { "Lý do: hồ sơ chưa đủ thành phần hoặc chưa đúng quy định. Thời gian chờ bổ sung không tính vào thời hạn giải quyết." }
                    p { "Ngày yêu cầu: " (date_time(asked.event.at)) }
                    (signatures("NGƯỜI NỘP HỒ SƠ", "NGƯỜI HƯỚNG DẪN", &name_of(&asked.event.by)))
                },
            )
        }
        "xin-loi" => {
            let apology = st
                .events
                .iter()
                .rev()
                .find(|e| {
                    matches!(e.event.body, EventBody::Apologized { .. }) && e.conflict.is_none()
                })
                .ok_or_else(|| WebError::bad_request("Hồ sơ chưa có phiếu xin lỗi."))?;
            let EventBody::Apologized {
                reason,
                new_appointment_at,
            } = &apology.event.body
            else {
                return Err(WebError::internal("apology event changed shape"));
            };
            (
                "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
                html! {
                    p { "Ngày " (st.received_at.map(date_vn).unwrap_or_default()) ", " (unit_name)
                        " tiếp nhận hồ sơ đề nghị giải quyết thủ tục " b { (h.procedure_name) } " của:" }
                    (applicant)
                    p { "Thời gian hẹn trả kết quả giải quyết hồ sơ: " (st.due_at.map(date_time).unwrap_or_default()) "." }
                    p { "Tuy nhiên đến nay, " (unit_name) " chưa trả kết quả giải quyết hồ sơ cho Ông/Bà. Lý do:" }
                    blockquote { (reason) }
                    p { "Sự chậm trễ này đã gây phiền hà cho Ông/Bà. " (unit_name) " xin lỗi Ông/Bà và sẽ trả kết quả giải quyết hồ sơ cho Ông/Bà vào:" }
                    p.big { b { (date_time(*new_appointment_at)) } }
                    p { "Rất mong nhận được sự thông cảm của Ông/Bà." }
                    (signatures("", "THỦ TRƯỞNG CƠ QUAN", &name_of(&apology.event.by)))
                },
            )
        }
        "kiem-soat" => (
            "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
            html! {
                p { "Thủ tục: " b { (h.procedure_name) } }
                p { "Người nộp: " (a.name) " · Tiếp nhận: " (st.received_at.map(date_time).unwrap_or_default())
                    " · Hẹn trả: " (st.appointment_at.map(date_time).unwrap_or_default()) }
                table.control {
                    thead { tr {
                        th { "Bước" } th { "Bên giao" } th { "Bên nhận" } th { "Thời gian giao, nhận" }
                        th { "Kết quả (trước/đúng/quá hạn)" } th { "Ghi chú" }
                    } }
                    tbody {
                        @for (i, e) in st.events.iter().enumerate() {
                            @let giver = if i == 0 { "Công dân".to_owned() } else { name_of(&st.events[i - 1].event.by) };
                            @let taker = match &e.event.body {
                                EventBody::Transferred { to_unit, to_agency, .. } =>
                                    format!("{}{}", to_unit, to_agency.as_deref().map(|a| format!(" – {a}")).unwrap_or_default()),
                                EventBody::Returned { .. } => "Công dân".to_owned(),
                                _ => name_of(&e.event.by),
                            };
                            tr {
                                td { (e.event.body.label_vi()) }
                                td { (giver) }
                                td { (taker) }
                                td { (date_time(e.event.at)) }
                                td { (step_timeliness(e.event.at, st.due_at)) }
                                td { (event_details(&e.event.body))
                                     @if e.conflict.is_some() { " (xung đột)" } }
                            }
                        }
                    }
                }
            },
        ),
        _ => return Err(WebError::not_found("Không có loại phiếu này.")),
    };
    Ok(layout::bare(
        &format!("{title} – {code}"),
        "slip",
        html! {
            (print_bar(code))
            article.a5 {
                (header(unit_name, code))
                h1 { (title) }
                (body)
                p.printed { "In lúc " (date_time(crate::writer::clock_now())) }
            }
        },
    ))
}
