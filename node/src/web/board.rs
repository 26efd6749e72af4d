//! The hall's TV board: large figures for today and this month (received, returned, on-time
//! share, satisfaction) for the unit and the satisfaction of each official.
//!
//! Why counters only: the board refreshes every few seconds all day long, so it reads the
//! incremental counters (`Store::counter_sums`, a few range reads) and never a document or a
//! summary. It refreshes itself by polling a fragment (the script), or, with scripts off, by
//! reloading the whole page every minute.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{Markup, html};
use motcua_schema::report::Percent;
use motcua_schema::timestamp::Timestamp;

use super::dossier::staff_names;
use super::session::BoardViewer;
use super::{WebError, blocking, layout, weekday_date};
use crate::api::AppState;
use crate::writer::clock_now;

/// How often the board's script asks for new figures, in milliseconds.
pub const BOARD_REFRESH_MS: u32 = 5_000;
/// How often the board reloads itself when scripts are off, in seconds.
pub const BOARD_RELOAD_SECS: u32 = 60;

/// The figures of one span of days, from counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Dossiers received.
    pub received: i64,
    /// Results handed back.
    pub returned: i64,
    /// Dossiers resolved.
    pub resolved: i64,
    /// Of those, early or on time.
    pub timely: i64,
    /// Ratings taken.
    pub ratings: i64,
    /// Of those, satisfied.
    pub satisfied: i64,
    /// Of those, dissatisfied.
    pub dissatisfied: i64,
    /// Dossiers received online.
    pub online: i64,
    /// Dossiers received with scanned papers.
    pub digitised: i64,
    /// Resolved overdue.
    pub overdue: i64,
    /// Per official account: (ratings, satisfied).
    pub officials: BTreeMap<String, (i64, i64)>,
}

fn n(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Figures {
    /// Reads the counter sums of `Store::counter_sums`.
    pub fn from_counters(sums: &BTreeMap<String, i64>) -> Figures {
        let get = |k: &str| sums.get(k).copied().unwrap_or(0);
        let mut officials: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (k, v) in sums {
            if let Some(rest) = k.strip_prefix("official/") {
                if let Some(name) = rest.strip_suffix("/rating") {
                    officials.entry(name.to_owned()).or_default().0 += v;
                } else if let Some(name) = rest.strip_suffix("/rating.satisfied") {
                    officials.entry(name.to_owned()).or_default().1 += v;
                }
            }
        }
        Figures {
            received: get("received"),
            returned: get("returned"),
            resolved: get("resolved"),
            timely: get("resolved.early") + get("resolved.on_time"),
            ratings: get("rating"),
            satisfied: get("rating.satisfied"),
            dissatisfied: get("rating.dissatisfied"),
            online: get("received.online"),
            digitised: get("received.digitised"),
            overdue: get("resolved.overdue"),
            officials,
        }
    }

    /// Early-or-on-time share of resolved dossiers.
    pub fn on_time(&self) -> Option<Percent> {
        Percent::of(n(self.timely), n(self.resolved))
    }

    /// Satisfied share of ratings.
    pub fn satisfaction(&self) -> Option<Percent> {
        Percent::of(n(self.satisfied), n(self.ratings))
    }
}

/// A percentage for display, `—` when there is nothing to divide.
pub fn pct(p: Option<Percent>) -> String {
    p.map_or_else(|| "—".to_owned(), Percent::label_vi)
}

/// Today's and this month's figures of this node's unit.
pub async fn unit_figures(
    state: &AppState,
    now: Timestamp,
) -> Result<(Figures, Figures), WebError> {
    let unit = state.shared.identity.unit.to_string();
    let s = state.clone();
    blocking(move || {
        let today = now.local_date();
        let month_start = today.replace_day(1).unwrap_or(today);
        let store = &s.shared.store;
        let d = store.counter_sums(Some(&unit), today, today)?;
        let m = store.counter_sums(Some(&unit), month_start, today)?;
        Ok((Figures::from_counters(&d), Figures::from_counters(&m)))
    })
    .await
}

fn panel(title: &str, f: &Figures, id: &str) -> Markup {
    html! {
        section.panel id=(id) {
            h2 { (title) }
            div.figures {
                div.figure { span.value data-figure="received" { (f.received) } span.label { "Hồ sơ tiếp nhận" } }
                div.figure { span.value data-figure="returned" { (f.returned) } span.label { "Đã trả kết quả" } }
                div.figure { span.value data-figure="on-time" { (pct(f.on_time())) } span.label { "Đúng hạn" } }
                div.figure { span.value data-figure="satisfaction" { (pct(f.satisfaction())) }
                    span.label { "Hài lòng (" span data-figure="ratings" { (f.ratings) } " lượt)" } }
            }
        }
    }
}

async fn figures_markup(state: &AppState) -> Result<Markup, WebError> {
    let now = clock_now();
    let (today, month) = unit_figures(state, now).await?;
    let names = staff_names(state).await?;
    Ok(html! {
        div.board-grid {
            (panel("Hôm nay", &today, "today"))
            (panel("Tháng này", &month, "month"))
        }
        section.panel {
            h2 { "Mức độ hài lòng theo cán bộ" }
            @if month.officials.is_empty() {
                p { "Chưa có lượt đánh giá nào gắn với cán bộ trong tháng." }
            } @else {
                table.officials {
                    thead { tr { th { "Cán bộ" } th { "Hôm nay" } th { "Tháng này" } th { "Hài lòng (tháng)" } } }
                    tbody {
                        @for (o, (count, satisfied)) in &month.officials {
                            @let t = today.officials.get(o).copied().unwrap_or((0, 0));
                            tr data-official=(o) {
                                td { (names.get(o).cloned().unwrap_or_else(|| o.clone())) }
                                td { (t.0) }
                                td { (count) }
                                td { (pct(Percent::of(n(*satisfied), n(*count)))) }
                            }
                        }
                    }
                }
            }
        }
        p.updated { "Cập nhật lúc " (super::date_time(now)) }
    })
}

/// `GET /bang-tin`.
pub async fn page(State(state): State<AppState>, _viewer: BoardViewer) -> Result<Markup, WebError> {
    let now = clock_now();
    let inner = figures_markup(&state).await?;
    Ok(layout::bare_refreshing(
        "Bảng tin kết quả giải quyết hồ sơ",
        "board",
        None,
        html! {
            noscript { meta http-equiv="refresh" content=(BOARD_RELOAD_SECS); }
            header.board-head {
                h1 { (state.unit_name) }
                p { "Kết quả tiếp nhận, giải quyết hồ sơ và mức độ hài lòng · " (weekday_date(now)) }
            }
            div #board-figures data-refresh="/bang-tin/so-lieu" data-interval=(BOARD_REFRESH_MS) { (inner) }
        },
    ))
}

/// `GET /bang-tin/so-lieu`: the figures alone, for the board's script.
pub async fn figures(
    State(state): State<AppState>,
    _viewer: BoardViewer,
) -> Result<Markup, WebError> {
    figures_markup(&state).await
}
