//! The province's dashboard (on a node with role province): every unit with its figures from the
//! incremental counters, the province totals, the Decision 766 figures it can compute, and how
//! fresh each unit's data is; with a drill-down page per unit.
//!
//! Staleness is read through [`peer_sync_status`], from the replication links' status and the
//! catch-up times the store keeps; a unit never synced says so plainly ("chưa có dữ liệu đồng
//! bộ"): no time is ever invented.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use motcua_schema::report::Percent;
use motcua_schema::timestamp::{Timestamp, format_date, format_date_vn, parse_date};
use motcua_schema::trust::Role;
use serde::Deserialize;

use super::board::{Figures, pct};
use super::session::{LEADER, Signed};
use super::{WebError, blocking, date_time, layout};
use crate::api::AppState;
use crate::writer::clock_now;

/// Data older than this is marked stale, in milliseconds (one hour).
pub const STALE_AFTER_MS: i64 = 3600 * 1000;

/// What the dashboard knows about one unit's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSyncStatus {
    /// Unit code.
    pub unit: String,
    /// Unit name from its enrolment record.
    pub unit_name: String,
    /// Whether this node itself serves the unit (its figures are local, never stale).
    pub local: bool,
    /// When this node last completed a sync with the unit's node; `None` when unknown.
    pub last_sync: Option<Timestamp>,
}

/// The replication status of every enrolled unit, as far as this node knows: for each unit, the
/// freshest moment this node was caught up with one of that unit's nodes. A link that is up
/// and caught up right now counts as fresh now; otherwise the last catch-up recorded (kept in
/// the store, so it survives restarts). A unit never synced has `last_sync: None`.
pub fn peer_sync_status(state: &AppState) -> Vec<UnitSyncStatus> {
    let own = state.shared.identity.unit.to_string();
    let now = clock_now();
    let mut freshest: BTreeMap<[u8; 32], Timestamp> = BTreeMap::new();
    if let Ok(saved) = state.shared.store.peer_states() {
        for (key, s) in saved {
            if let Some(t) = s.last_caught_up_at {
                freshest.insert(key, t);
            }
        }
    }
    if let Some(repl) = &state.replication {
        for s in repl.statuses() {
            let Ok(key) = crate::config::parse_public_key(&s.node_key) else {
                continue;
            };
            let live = s.connected && s.behind == 0 && s.last_caught_up_at.is_some();
            let t = if live { Some(now) } else { s.last_caught_up_at };
            if let Some(t) = t {
                let e = freshest.entry(*key.as_bytes()).or_insert(t);
                *e = (*e).max(t);
            }
        }
    }
    let registry = state.shared.registry.read().expect("registry lock");
    let mut by_unit: BTreeMap<String, UnitSyncStatus> = BTreeMap::new();
    for (key, standing) in registry.standings() {
        if standing.role == Role::Auditor {
            continue;
        }
        let unit = standing.unit.to_string();
        let entry = by_unit
            .entry(unit.clone())
            .or_insert_with(|| UnitSyncStatus {
                local: unit == own,
                unit,
                unit_name: standing.unit_name.clone(),
                last_sync: None,
            });
        if let Some(t) = freshest.get(key) {
            entry.last_sync = Some(entry.last_sync.map_or(*t, |x| x.max(*t)));
        }
    }
    by_unit.into_values().collect()
}

fn staleness(s: &UnitSyncStatus, now: Timestamp) -> Markup {
    if s.local {
        return html! { span.badge.st-done { "Dữ liệu tại nút này" } };
    }
    match s.last_sync {
        None => html! { span.badge.st-none.stale { "chưa có dữ liệu đồng bộ" } },
        Some(t) => {
            let age_min = (now.0 - t.0).max(0) / 60_000;
            let stale = now.0 - t.0 > STALE_AFTER_MS;
            html! {
                (date_time(t)) br;
                span class={"badge " @if stale {"st-late stale"} @else {"st-done"}} {
                    @if stale { "Cũ: " } (age_min) " phút trước"
                }
            }
        }
    }
}

/// The Decision 766 figures computable from counters.
pub struct Index766 {
    /// Online share of received.
    pub online: Option<Percent>,
    /// Early-or-on-time share of resolved.
    pub timely: Option<Percent>,
    /// Digitised share of received.
    pub digitised: Option<Percent>,
    /// (received − dissatisfied − overdue) / received.
    pub satisfaction: Option<Percent>,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Index766 {
    /// From counter figures, with the formulas of `motcua_schema::report`.
    pub fn of(f: &Figures) -> Index766 {
        let received = u(f.received);
        Index766 {
            online: Percent::of(u(f.online), received),
            timely: Percent::of(u(f.timely), u(f.resolved)),
            digitised: Percent::of(u(f.digitised), received),
            satisfaction: Percent::of(
                received.saturating_sub(u(f.dissatisfied) + u(f.overdue)),
                received,
            ),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct PeriodQuery {
    #[serde(default)]
    tu: String,
    #[serde(default)]
    den: String,
}

fn period_of(q: &PeriodQuery, now: Timestamp) -> Result<(time::Date, time::Date), WebError> {
    let today = now.local_date();
    let from = match q.tu.as_str() {
        "" => today.replace_day(1).unwrap_or(today),
        t => parse_date(t).ok_or_else(|| WebError::bad_request("Ngày bắt đầu không hợp lệ."))?,
    };
    let to = match q.den.as_str() {
        "" => today,
        t => parse_date(t).ok_or_else(|| WebError::bad_request("Ngày kết thúc không hợp lệ."))?,
    };
    if to < from {
        return Err(WebError::bad_request(
            "Ngày kết thúc phải sau ngày bắt đầu.",
        ));
    }
    Ok((from, to))
}

fn require_province(state: &AppState) -> Result<(), WebError> {
    if state.shared.identity.role == Role::Province {
        Ok(())
    } else {
        Err(WebError::not_found(
            "Trang tổng hợp toàn tỉnh chỉ có trên nút của Trung tâm Phục vụ hành chính công tỉnh.",
        ))
    }
}

fn index_cards(i: &Index766) -> Markup {
    html! {
        div.figures.small-figures {
            div.figure { span.value { (pct(i.online)) } span.label { "Tỷ lệ hồ sơ trực tuyến" } }
            div.figure { span.value { (pct(i.timely)) } span.label { "Giải quyết trước hạn, đúng hạn" } }
            div.figure { span.value { (pct(i.digitised)) } span.label { "Tỷ lệ số hóa hồ sơ" } }
            div.figure { span.value { (pct(i.satisfaction)) } span.label { "Mức độ hài lòng (766)" } }
        }
    }
}

/// `GET /tinh?tu=&den=`.
pub async fn dashboard(
    State(state): State<AppState>,
    who: Signed<LEADER>,
    Query(q): Query<PeriodQuery>,
) -> Result<Markup, WebError> {
    require_province(&state)?;
    let now = clock_now();
    let (from, to) = period_of(&q, now)?;
    let mut statuses = peer_sync_status(&state);
    let s = state.clone();
    let known: Vec<String> = statuses.iter().map(|x| x.unit.clone()).collect();
    let (rows, totals, extra) = blocking(move || {
        let store = &s.shared.store;
        let mut units = known;
        let mut extra = Vec::new();
        for unit in store.units()? {
            if !units.contains(&unit) {
                units.push(unit.clone());
                extra.push(unit);
            }
        }
        let today = now.local_date();
        let mut rows = BTreeMap::new();
        for unit in &units {
            let day = Figures::from_counters(&store.counter_sums(Some(unit), today, today)?);
            let span = Figures::from_counters(&store.counter_sums(Some(unit), from, to)?);
            rows.insert(unit.clone(), (day, span));
        }
        let totals = Figures::from_counters(&store.counter_sums(None, from, to)?);
        Ok((rows, totals, extra))
    })
    .await?;
    for unit in extra {
        statuses.push(UnitSyncStatus {
            unit_name: unit.clone(),
            unit,
            local: false,
            last_sync: None,
        });
    }
    let index = Index766::of(&totals);
    let any_synced = statuses.iter().any(|s| !s.local && s.last_sync.is_some());
    let body = html! {
        h1 { "Tổng hợp toàn tỉnh" }
        form.card.row.wrap method="get" action="/tinh" {
            label { "Từ ngày" input type="date" name="tu" value=(format_date(from)); }
            label { "Đến ngày" input type="date" name="den" value=(format_date(to)); }
            button.primary type="submit" { "Xem" }
            a.button href={"/bao-cao?tu=" (format_date(from)) "&den=" (format_date(to))} { "Báo cáo chi tiết, xuất Excel" }
        }
        @if !any_synced {
            p.alert.warn #sync-unknown {
                "Nút tỉnh chưa đồng bộ được với xã nào: chưa có dữ liệu đồng bộ từ các xã. Số liệu dưới "
                "đây chỉ gồm những gì nút tỉnh đang giữ; cột «Đồng bộ lần cuối» cho biết độ mới của số "
                "liệu từng xã khi kết nối được thiết lập."
            }
        }
        section.card {
            h2 { "Toàn tỉnh · " (format_date_vn(from)) " – " (format_date_vn(to)) }
            div.figures.small-figures {
                div.figure { span.value #total-received { (totals.received) } span.label { "Hồ sơ tiếp nhận" } }
                div.figure { span.value { (totals.resolved) } span.label { "Đã giải quyết" } }
                div.figure { span.value { (totals.returned) } span.label { "Đã trả kết quả" } }
                div.figure { span.value { (pct(totals.satisfaction())) } span.label { "Hài lòng (" (totals.ratings) " lượt)" } }
            }
            h3 { "Chỉ số theo Quyết định 766/QĐ-TTg (phần tính được từ dữ liệu motcua)" }
            (index_cards(&index))
        }
        section.card {
            h2 { "Theo đơn vị" }
            div.scroll { table.list.num #units {
                thead { tr {
                    th { "Đơn vị" } th { "Tiếp nhận hôm nay" } th { "Tiếp nhận trong kỳ" } th { "Đã giải quyết" }
                    th { "Đúng hạn" } th { "Trả kết quả" } th { "Hài lòng" } th { "Trực tuyến" }
                    th { "Đồng bộ lần cuối" }
                } }
                tbody {
                    @for st in &statuses {
                        @let (day, span) = rows.get(&st.unit).cloned().unwrap_or_default();
                        @let i = Index766::of(&span);
                        tr class=[(!st.local && st.last_sync.is_none_or(|t| now.0 - t.0 > STALE_AFTER_MS)).then_some("stale-row")] {
                            td { a href={"/tinh/don-vi/" (st.unit)} { (st.unit_name) } br; small.muted { (st.unit) } }
                            td { (day.received) }
                            td { (span.received) }
                            td { (span.resolved) }
                            td { (pct(span.on_time())) }
                            td { (span.returned) }
                            td { (pct(span.satisfaction())) }
                            td { (pct(i.online)) }
                            td { (staleness(st, now)) }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::staff(&state, &who, "Tổng hợp toàn tỉnh", body))
}

/// `GET /tinh/don-vi/{unit}`: one unit's figures and its sync status.
pub async fn unit_page(
    State(state): State<AppState>,
    who: Signed<LEADER>,
    Path(unit): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Result<Markup, WebError> {
    require_province(&state)?;
    let now = clock_now();
    let (from, to) = period_of(&q, now)?;
    let status = peer_sync_status(&state)
        .into_iter()
        .find(|s| s.unit == unit)
        .unwrap_or(UnitSyncStatus {
            unit: unit.clone(),
            unit_name: unit.clone(),
            local: false,
            last_sync: None,
        });
    let s = state.clone();
    let u = unit.clone();
    let (day, span) = blocking(move || {
        let store = &s.shared.store;
        let today = now.local_date();
        Ok((
            Figures::from_counters(&store.counter_sums(Some(&u), today, today)?),
            Figures::from_counters(&store.counter_sums(Some(&u), from, to)?),
        ))
    })
    .await?;
    let body = html! {
        div.row.between {
            h1 { (status.unit_name) }
            a.button href="/tinh" { "← Toàn tỉnh" }
        }
        p { "Mã đơn vị " code { (status.unit) } " · Đồng bộ lần cuối: " (staleness(&status, now)) }
        div.grid2 {
            section.card {
                h2 { "Hôm nay" }
                div.figures.small-figures {
                    div.figure { span.value { (day.received) } span.label { "Tiếp nhận" } }
                    div.figure { span.value { (day.returned) } span.label { "Trả kết quả" } }
                    div.figure { span.value { (pct(day.on_time())) } span.label { "Đúng hạn" } }
                    div.figure { span.value { (pct(day.satisfaction())) } span.label { "Hài lòng" } }
                }
            }
            section.card {
                h2 { (format_date_vn(from)) " – " (format_date_vn(to)) }
                div.figures.small-figures {
                    div.figure { span.value { (span.received) } span.label { "Tiếp nhận" } }
                    div.figure { span.value { (span.returned) } span.label { "Trả kết quả" } }
                    div.figure { span.value { (pct(span.on_time())) } span.label { "Đúng hạn" } }
                    div.figure { span.value { (pct(span.satisfaction())) } span.label { "Hài lòng" } }
                }
            }
        }
        section.card {
            h2 { "Chỉ số theo Quyết định 766/QĐ-TTg" }
            (index_cards(&Index766::of(&span)))
            p { a.button href={"/bao-cao?don_vi=" (status.unit) "&tu=" (format_date(from)) "&den=" (format_date(to))} { "Báo cáo chi tiết của đơn vị" } }
        }
    };
    Ok(layout::staff(&state, &who, &status.unit_name, body))
}
