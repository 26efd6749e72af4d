//! The period report page (DOMAIN.md "Reports that people actually publish") with charts, and
//! its exports to Excel (.xlsx) and CSV.
//!
//! Why it reuses `motcua_schema::report::compute` exactly as `api/reports.rs` does: the page, the
//! spreadsheet, the CSV, the JSON API and an auditor's recomputation must give the same figures.
//! The summary rows are listed once ([`summary_rows`]) and drawn both as HTML and as a sheet.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use motcua_schema::report::{Percent, Period, ROW_COLUMNS_VI, Report, Row, compute};
use motcua_schema::timestamp::{Timestamp, format_date, format_date_vn, parse_date};
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use serde::Deserialize;

use super::charts::{self, colors};
use super::session::{LEADER, Signed};
use super::{WebError, blocking, layout};
use crate::api::AppState;
use crate::writer::clock_now;

/// Longest period drawn as a daily line chart, in days (longer periods show the totals only).
pub const DAILY_CHART_DAYS_MAX: i64 = 93;

#[derive(Deserialize, Default, Clone)]
pub(super) struct ReportQuery {
    #[serde(default)]
    tu: String,
    #[serde(default)]
    den: String,
    #[serde(default)]
    don_vi: String,
}

struct Resolved {
    period: Period,
    unit: Option<String>,
    query: ReportQuery,
}

fn resolve(q: ReportQuery, now: Timestamp) -> Result<Resolved, WebError> {
    let today = now.local_date();
    let from = match q.tu.as_str() {
        "" => today.replace_day(1).unwrap_or(today),
        t => parse_date(t).ok_or_else(|| WebError::bad_request("Ngày bắt đầu không hợp lệ."))?,
    };
    let to = match q.den.as_str() {
        "" => today,
        t => parse_date(t).ok_or_else(|| WebError::bad_request("Ngày kết thúc không hợp lệ."))?,
    };
    let period = Period::new(from, to).map_err(|e| {
        WebError::bad_request(match e {
            motcua_schema::report::ReportError::Reversed => {
                "Ngày kết thúc phải sau ngày bắt đầu.".to_owned()
            }
            other => format!("Kỳ báo cáo không hợp lệ: {other}"),
        })
    })?;
    let unit = Some(q.don_vi.trim().to_owned()).filter(|u| !u.is_empty());
    let query = ReportQuery {
        tu: format_date(from),
        den: format_date(to),
        don_vi: unit.clone().unwrap_or_default(),
    };
    Ok(Resolved {
        period,
        unit,
        query,
    })
}

async fn report(state: &AppState, r: &Resolved) -> Result<Report, WebError> {
    let units = r.unit.clone().map(|u| vec![u]);
    let scope = r
        .unit
        .clone()
        .unwrap_or_else(|| state.unit_name.to_string());
    let p = r.period.clone();
    let s = state.clone();
    let (summaries, ratings) =
        blocking(move || Ok(s.shared.store.report_inputs(units.as_deref(), &p)?)).await?;
    Ok(compute(&scope, &r.period, &summaries, &ratings))
}

/// One line of the summary: label, indent level, count, percentage.
pub struct SummaryRow {
    /// The label, as in published reports.
    pub label: &'static str,
    /// 0 for a heading figure, 1 for a part of the one above.
    pub indent: u8,
    /// The count, if the line has one.
    pub count: Option<u64>,
    /// The percentage, if the line has one.
    pub percent: Option<Percent>,
}

/// The summary lines of a report, in the order published reports use.
pub fn summary_rows(r: &Report) -> Vec<SummaryRow> {
    let row = |label, indent, count: Option<u64>, percent| SummaryRow {
        label,
        indent,
        count,
        percent,
    };
    let (rc, d, p, g, i) = (
        &r.received,
        &r.resolved,
        &r.in_progress,
        &r.ratings,
        &r.index_766,
    );
    vec![
        row("Hồ sơ tiếp nhận trong kỳ", 0, Some(rc.total), None),
        row("Trực tuyến", 1, Some(rc.online.count), rc.online.percent),
        row(
            "Bưu chính công ích",
            1,
            Some(rc.postal.count),
            rc.postal.percent,
        ),
        row("Trực tiếp", 1, Some(rc.direct.count), rc.direct.percent),
        row(
            "Số hóa hồ sơ",
            1,
            Some(rc.digitised.count),
            rc.digitised.percent,
        ),
        row("Hồ sơ kỳ trước chuyển sang", 0, Some(rc.carried_over), None),
        row(
            "Tổng số hồ sơ phải giải quyết",
            0,
            Some(rc.to_process),
            None,
        ),
        row(
            "Hồ sơ đã giải quyết",
            0,
            Some(d.total),
            d.percent_of_to_process,
        ),
        row("Trước hạn", 1, Some(d.early.count), d.early.percent),
        row("Đúng hạn", 1, Some(d.on_time.count), d.on_time.percent),
        row("Quá hạn", 1, Some(d.overdue.count), d.overdue.percent),
        row("Đã trả kết quả", 0, Some(d.returned), None),
        row(
            "Qua bưu chính công ích",
            1,
            Some(d.returned_postal.count),
            d.returned_postal.percent,
        ),
        row("Từ chối tiếp nhận", 0, Some(d.refused), None),
        row("Công dân rút hồ sơ", 0, Some(d.withdrawn), None),
        row("Dừng xử lý", 0, Some(d.stopped), None),
        row("Đang giải quyết cuối kỳ", 0, Some(p.total), None),
        row("Chưa đến hạn", 1, Some(p.not_yet_due), None),
        row("Quá hạn", 1, Some(p.overdue), None),
        row("Lượt đánh giá", 0, Some(g.total), None),
        row("Hài lòng", 1, Some(g.satisfied.count), g.satisfied.percent),
        row("Bình thường", 1, Some(g.neutral.count), g.neutral.percent),
        row(
            "Không hài lòng",
            1,
            Some(g.dissatisfied.count),
            g.dissatisfied.percent,
        ),
        row("Chỉ số theo Quyết định 766/QĐ-TTg", 0, None, None),
        row("Tỷ lệ hồ sơ trực tuyến", 1, None, i.online_share),
        row(
            "Tỷ lệ giải quyết trước hạn và đúng hạn",
            1,
            None,
            i.timely_share,
        ),
        row("Tỷ lệ số hóa hồ sơ", 1, None, i.digitised_share),
        row("Mức độ hài lòng", 1, None, i.satisfaction),
    ]
}

fn breakdown(title: &str, key: &str, rows: &[Row]) -> Markup {
    html! {
        details.card open[rows.len() <= 12] {
            summary { h3 { (title) " (" (rows.len()) ")" } }
            div.scroll { table.list.num.keyname {
                thead { tr { th { (key) } th { "Tên" } @for h in ROW_COLUMNS_VI { th { (h) } } } }
                tbody { @for r in rows { tr {
                    td { (r.key) } td { (r.name) }
                    @for c in r.counts() { td { (c) } }
                } } }
            } }
        }
    }
}

fn pct(p: Option<Percent>) -> String {
    super::board::pct(p)
}

fn export_link(kind: &str, q: &ReportQuery) -> String {
    let mut url = format!("/bao-cao/{kind}?tu={}&den={}", q.tu, q.den);
    if !q.don_vi.is_empty() {
        url += &format!("&don_vi={}", q.don_vi);
    }
    url
}

/// `GET /bao-cao?tu=&den=&don_vi=`.
pub async fn page(
    State(state): State<AppState>,
    who: Signed<LEADER>,
    Query(q): Query<ReportQuery>,
) -> Result<Markup, WebError> {
    let r = resolve(q, clock_now())?;
    let report = report(&state, &r).await?;
    let s = state.clone();
    let own = state.shared.identity.unit.to_string();
    let period = r.period.clone();
    let unit = r.unit.clone();
    let (units, daily) = blocking(move || {
        let mut units = s.shared.store.units()?;
        if !units.contains(&own) {
            units.insert(0, own);
        }
        let mut daily = Vec::new();
        if (period.to - period.from).whole_days() < DAILY_CHART_DAYS_MAX {
            let mut d = period.from;
            loop {
                let sums = s.shared.store.counter_sums(unit.as_deref(), d, d)?;
                let received = sums.get("received").copied().unwrap_or(0).max(0) as u64;
                daily.push((
                    format!("{:02}/{:02}", d.day(), u8::from(d.month())),
                    received,
                ));
                match d.next_day() {
                    Some(n) if n <= period.to => d = n,
                    _ => break,
                }
            }
        }
        Ok((units, daily))
    })
    .await?;
    let rc = &report.received;
    let dv = &report.resolved;
    let g = &report.ratings;
    let channel_chart = charts::bars(
        "Hồ sơ tiếp nhận theo hình thức",
        &[
            ("Trực tuyến".into(), rc.online.count),
            ("Bưu chính".into(), rc.postal.count),
            ("Trực tiếp".into(), rc.direct.count),
        ],
        colors::BLUE,
    );
    let outcome_chart = charts::bars(
        "Hồ sơ đã giải quyết",
        &[
            ("Trước hạn".into(), dv.early.count),
            ("Đúng hạn".into(), dv.on_time.count),
            ("Quá hạn".into(), dv.overdue.count),
        ],
        colors::GREEN,
    );
    let rating_chart = charts::bars(
        "Mức độ hài lòng",
        &[
            ("Hài lòng".into(), g.satisfied.count),
            ("Bình thường".into(), g.neutral.count),
            ("Không hài lòng".into(), g.dissatisfied.count),
        ],
        colors::AMBER,
    );
    let daily_chart = (!daily.is_empty())
        .then(|| charts::daily_line("Hồ sơ tiếp nhận theo ngày", &daily, colors::BLUE));
    let body = html! {
        h1 { "Báo cáo kết quả giải quyết thủ tục hành chính" }
        form.card.row.wrap.report-form method="get" action="/bao-cao" {
            label { "Từ ngày" input type="date" name="tu" value=(r.query.tu) required; }
            label { "Đến ngày" input type="date" name="den" value=(r.query.den) required; }
            label { "Đơn vị"
                select name="don_vi" {
                    option value="" selected[r.unit.is_none()] { "Tất cả đơn vị trên nút" }
                    @for u in &units { option value=(u) selected[r.unit.as_deref() == Some(u.as_str())] { (u) } }
                }
            }
            button.primary type="submit" { "Xem báo cáo" }
            a.button #export-xlsx href=(export_link("xlsx", &r.query)) { "Tải Excel (.xlsx)" }
            a.button #export-csv href=(export_link("csv", &r.query)) { "Tải CSV" }
        }
        p { b { (report.scope) } " · từ " (format_date_vn(r.period.from)) " đến " (format_date_vn(r.period.to)) }
        div.grid2 {
            section.card {
                h2 { "Tổng hợp" }
                table.list.num.summary #report-summary {
                    thead { tr { th { "Chỉ tiêu" } th { "Số lượng" } th { "Tỷ lệ" } } }
                    tbody { @for row in summary_rows(&report) {
                        tr class={"lvl" (row.indent)} {
                            td { (row.label) }
                            td { (row.count.map(|c| c.to_string()).unwrap_or_default()) }
                            td { @if row.percent.is_some() || (row.count.is_none() && row.indent > 0) { (pct(row.percent)) } }
                        }
                    } }
                }
            }
            section.card.charts {
                figure.chart { (PreEscaped(channel_chart)) }
                figure.chart { (PreEscaped(outcome_chart)) }
                figure.chart { (PreEscaped(rating_chart)) }
            }
        }
        @if let Some(c) = daily_chart { section.card { figure.chart.wide { (PreEscaped(c)) } } }
        (breakdown("Theo đơn vị", "Mã đơn vị", &report.by_unit))
        (breakdown("Theo cơ quan", "Cơ quan", &report.by_agency))
        (breakdown("Theo thủ tục", "Mã thủ tục", &report.by_procedure))
        details.card open {
            summary { h3 { "Đánh giá theo cán bộ (" (report.by_official.len()) ")" } }
            table.list.num {
                thead { tr { th { "Đơn vị" } th { "Cán bộ" } th { "Lượt" } th { "Hài lòng" } th { "Bình thường" } th { "Không hài lòng" } } }
                tbody { @for o in &report.by_official { tr {
                    td { (o.unit) } td { (o.official) } td { (o.ratings.total) }
                    td { (pct(o.ratings.satisfied.percent)) }
                    td { (pct(o.ratings.neutral.percent)) }
                    td { (pct(o.ratings.dissatisfied.percent)) }
                } } }
            }
        }
    };
    Ok(layout::staff(&state, &who, "Báo cáo", body))
}

/// The report as an Excel workbook: a summary sheet and one sheet per breakdown. Counts are
/// numbers and percentages are numbers with two decimals, so officials can compute with them.
pub fn report_xlsx(report: &Report) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let pct_format = Format::new().set_num_format("0.00");
    let percent_value = |p: Percent| f64::from(p.0) / 100.0;
    {
        let ws = wb.add_worksheet();
        ws.set_name("Tổng hợp")?;
        ws.write_string_with_format(0, 0, "Báo cáo kết quả giải quyết thủ tục hành chính", &bold)?;
        ws.write_string(1, 0, &report.scope)?;
        ws.write_string(
            2,
            0,
            format!("Từ ngày {} đến ngày {}", report.from, report.to),
        )?;
        ws.write_string_with_format(4, 0, "Chỉ tiêu", &bold)?;
        ws.write_string_with_format(4, 1, "Số lượng", &bold)?;
        ws.write_string_with_format(4, 2, "Tỷ lệ (%)", &bold)?;
        for (i, row) in summary_rows(report).iter().enumerate() {
            let r = 5 + i as u32;
            let label = if row.indent > 0 {
                format!("    {}", row.label)
            } else {
                row.label.to_owned()
            };
            ws.write_string(r, 0, label)?;
            if let Some(c) = row.count {
                ws.write_number(r, 1, c as f64)?;
            }
            if let Some(p) = row.percent {
                ws.write_number_with_format(r, 2, percent_value(p), &pct_format)?;
            }
        }
        ws.set_column_width(0, 48)?;
        ws.set_column_width(1, 12)?;
        ws.set_column_width(2, 12)?;
    }
    for (name, key, rows) in [
        ("Theo đơn vị", "Mã đơn vị", &report.by_unit),
        ("Theo cơ quan", "Cơ quan", &report.by_agency),
        ("Theo thủ tục", "Mã thủ tục", &report.by_procedure),
    ] {
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        ws.write_string_with_format(0, 0, key, &bold)?;
        ws.write_string_with_format(0, 1, "Tên", &bold)?;
        for (c, h) in ROW_COLUMNS_VI.iter().enumerate() {
            ws.write_string_with_format(0, 2 + c as u16, *h, &bold)?;
        }
        for (i, row) in rows.iter().enumerate() {
            let r = 1 + i as u32;
            ws.write_string(r, 0, &row.key)?;
            ws.write_string(r, 1, &row.name)?;
            for (c, v) in row.counts().iter().enumerate() {
                ws.write_number(r, 2 + c as u16, *v as f64)?;
            }
        }
        ws.set_column_width(1, 40)?;
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name("Theo cán bộ")?;
        for (c, h) in [
            "Đơn vị",
            "Cán bộ",
            "Lượt đánh giá",
            "Hài lòng",
            "Bình thường",
            "Không hài lòng",
            "Tỷ lệ hài lòng (%)",
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        for (i, o) in report.by_official.iter().enumerate() {
            let r = 1 + i as u32;
            ws.write_string(r, 0, &o.unit)?;
            ws.write_string(r, 1, &o.official)?;
            ws.write_number(r, 2, o.ratings.total as f64)?;
            ws.write_number(r, 3, o.ratings.satisfied.count as f64)?;
            ws.write_number(r, 4, o.ratings.neutral.count as f64)?;
            ws.write_number(r, 5, o.ratings.dissatisfied.count as f64)?;
            if let Some(p) = o.ratings.satisfied.percent {
                ws.write_number_with_format(r, 6, percent_value(p), &pct_format)?;
            }
        }
    }
    wb.save_to_buffer()
}

fn attachment(kind: &str, name: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /bao-cao/xlsx?tu=&den=&don_vi=`.
pub async fn xlsx(
    State(state): State<AppState>,
    _who: Signed<LEADER>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let r = resolve(q, clock_now())?;
    let report = report(&state, &r).await?;
    let bytes = blocking(move || report_xlsx(&report).map_err(WebError::internal)).await?;
    Ok(attachment(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        format!("bao-cao-{}-{}.xlsx", r.query.tu, r.query.den),
        bytes,
    ))
}

/// `GET /bao-cao/csv?tu=&den=&don_vi=`: the CSV of `Report::to_csv`, with a byte-order mark so
/// that Excel opens the Vietnamese text as UTF-8.
pub async fn csv(
    State(state): State<AppState>,
    _who: Signed<LEADER>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let r = resolve(q, clock_now())?;
    let report = report(&state, &r).await?;
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(report.to_csv().as_bytes());
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("bao-cao-{}-{}.csv", r.query.tu, r.query.den),
        body,
    ))
}
