//! The period report that centres publish (DOMAIN.md "Reports that people actually publish").
//!
//! [`compute`] is a pure function of dossier summaries, ratings and a period, so the provincial
//! node, a commune node, the simulator's ground truth and an auditor all get the same figures
//! from the same records (invariant 6: the provincial report equals the report of the union).
//!
//! **Definitions** (a period is a range of local days, both ends included):
//! - *received*: accepted (status 2 reached) inside the period, by channel;
//! - *carried over*: accepted before the period and neither resolved nor closed at its start;
//! - *to process*: received + carried over (what the unit had to resolve in the period);
//! - *resolved*: result ready inside the period, split early / on time / overdue against the due
//!   instant; its percentage is of *to process*;
//! - *returned*: result handed back inside the period, and how many of them by post;
//! - *in progress at the end*: accepted and not finished at the period's end, split into not yet
//!   due and overdue at that instant;
//! - *ratings*: taken inside the period, per unit and per official;
//! - Decision 766/QĐ-TTg figures computable from these records: online share of received,
//!   early-or-on-time share of resolved, digitised share of received, and satisfaction =
//!   (received − dissatisfied ratings − overdue resolutions) / received.
//!
//! Counts are exact integers. Percentages are rounded half up to two decimals, the way published
//! reports round (57,549 of 72,165 online is 79.75%), computed in integers so no float error can
//! move a figure.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use time::Date;

use crate::calendar::Outcome;
use crate::dossier::{Channel, ReturnMethod, Status};
use crate::limits::REPORT_PERIOD_DAYS_MAX;
use crate::rating::{Rating, Score};
use crate::summary::DossierSummary;
use crate::timestamp::{Timestamp, format_date, format_date_vn};

/// Why a period was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The end is before the start.
    #[error("the period ends before it starts")]
    Reversed,
    /// The period is too long.
    #[error("a report period spans at most {REPORT_PERIOD_DAYS_MAX} days")]
    TooLong,
}

/// A range of local days, both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub from: Date,
    /// Last day (included).
    pub to: Date,
}

impl Period {
    /// A period from `from` to `to`, both included.
    pub fn new(from: Date, to: Date) -> Result<Period, ReportError> {
        if to < from {
            return Err(ReportError::Reversed);
        }
        if (to - from).whole_days() >= REPORT_PERIOD_DAYS_MAX {
            return Err(ReportError::TooLong);
        }
        Ok(Period { from, to })
    }

    /// Local midnight starting the first day.
    pub fn start(&self) -> Timestamp {
        Timestamp::start_of_local_day(self.from)
    }

    /// Local midnight ending the last day (exclusive).
    pub fn end(&self) -> Timestamp {
        match self.to.next_day() {
            Some(d) => Timestamp::start_of_local_day(d),
            None => Timestamp(i64::MAX),
        }
    }

    /// Whether `t` falls inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start() <= t && t < self.end()
    }
}

/// A percentage in hundredths of a percent (7975 is 79.75%), serialised as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl Percent {
    /// `part` of `whole`, rounded half up to two decimals; `None` when `whole` is zero.
    pub fn of(part: u64, whole: u64) -> Option<Percent> {
        if whole == 0 {
            return None;
        }
        let scaled = u128::from(part) * 10_000 * 2 + u128::from(whole);
        Some(Percent((scaled / (2 * u128::from(whole))) as u32))
    }

    /// Text with a decimal point, e.g. `79.75`.
    pub fn text(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }

    /// The Vietnamese reading with a decimal comma, e.g. `79,75%`.
    pub fn label_vi(self) -> String {
        format!("{},{:02}%", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `79.75` parses to the f64 nearest 79.75, which serde_json prints back as `79.75`.
        s.serialize_f64(self.text().parse().unwrap_or(0.0))
    }
}

/// A count and its share of some whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Share {
    /// The count.
    pub count: u64,
    /// Its percentage of the whole (`null` when the whole is zero).
    pub percent: Option<Percent>,
}

impl Share {
    fn of(count: u64, whole: u64) -> Share {
        Share {
            count,
            percent: Percent::of(count, whole),
        }
    }
}

/// Received figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    /// Accepted inside the period.
    pub total: u64,
    /// Online.
    pub online: Share,
    /// By post.
    pub postal: Share,
    /// In person.
    pub direct: Share,
    /// With scanned papers attached.
    pub digitised: Share,
    /// Accepted before the period, still open at its start.
    pub carried_over: u64,
    /// `total + carried_over`.
    pub to_process: u64,
}

/// Resolved and closed figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// Result ready inside the period.
    pub total: u64,
    /// `total` as a share of `received.to_process`.
    pub percent_of_to_process: Option<Percent>,
    /// Before the due day.
    pub early: Share,
    /// On the due day, by the due time.
    pub on_time: Share,
    /// After the due instant.
    pub overdue: Share,
    /// Results handed back inside the period.
    pub returned: u64,
    /// Of those, by post.
    pub returned_postal: Share,
    /// Refused at intake inside the period.
    pub refused: u64,
    /// Withdrawn inside the period.
    pub withdrawn: u64,
    /// Stopped inside the period.
    pub stopped: u64,
}

/// Dossiers still open at the period's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InProgress {
    /// All open.
    pub total: u64,
    /// Not yet due at the end.
    pub not_yet_due: u64,
    /// Past due at the end.
    pub overdue: u64,
}

/// Rating figures.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Ratings {
    /// Ratings taken.
    pub total: u64,
    /// Hài lòng.
    pub satisfied: Share,
    /// Bình thường.
    pub neutral: Share,
    /// Không hài lòng.
    pub dissatisfied: Share,
}

/// The Decision 766/QĐ-TTg figures motcua can compute from its own records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index766 {
    /// Online share of received dossiers.
    pub online_share: Option<Percent>,
    /// Early-or-on-time share of resolved dossiers.
    pub timely_share: Option<Percent>,
    /// Digitised share of received dossiers.
    pub digitised_share: Option<Percent>,
    /// (received − dissatisfied − overdue) / received.
    pub satisfaction: Option<Percent>,
}

/// One row of a breakdown (per unit, agency or procedure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The key (unit code, agency name or procedure code).
    pub key: String,
    /// A name for people (procedure name; the key otherwise).
    pub name: String,
    /// Received inside the period.
    pub received: u64,
    /// Carried over.
    pub carried_over: u64,
    /// Resolved inside the period.
    pub resolved: u64,
    /// Early.
    pub early: u64,
    /// On time.
    pub on_time: u64,
    /// Overdue.
    pub overdue: u64,
    /// Open at the end.
    pub in_progress: u64,
    /// Open and past due at the end.
    pub in_progress_overdue: u64,
    /// Ratings (per unit only; empty for agencies and procedures).
    pub ratings: Ratings,
}

/// The Vietnamese headings of a breakdown row's counts, in the order of [`Row::counts`].
pub const ROW_COLUMNS_VI: [&str; 8] = [
    "Tiếp nhận",
    "Kỳ trước chuyển sang",
    "Đã giải quyết",
    "Trước hạn",
    "Đúng hạn",
    "Quá hạn",
    "Đang giải quyết",
    "Đang giải quyết quá hạn",
];

impl Row {
    /// The row's counts in the order of [`ROW_COLUMNS_VI`] (CSV, spreadsheet and page columns).
    pub fn counts(&self) -> [u64; 8] {
        [
            self.received,
            self.carried_over,
            self.resolved,
            self.early,
            self.on_time,
            self.overdue,
            self.in_progress,
            self.in_progress_overdue,
        ]
    }
}

/// Ratings of one official.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfficialRow {
    /// The unit.
    pub unit: String,
    /// The official's account.
    pub official: String,
    /// Their ratings.
    pub ratings: Ratings,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What the report covers (a unit's name, `toàn tỉnh`, ...).
    pub scope: String,
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day, `YYYY-MM-DD`.
    pub to: String,
    /// Received.
    pub received: Received,
    /// Resolved.
    pub resolved: Resolved,
    /// Open at the end.
    pub in_progress: InProgress,
    /// Ratings.
    pub ratings: Ratings,
    /// Decision 766 figures.
    pub index_766: Index766,
    /// Per receiving unit.
    pub by_unit: Vec<Row>,
    /// Per agency.
    pub by_agency: Vec<Row>,
    /// Per procedure.
    pub by_procedure: Vec<Row>,
    /// Per official.
    pub by_official: Vec<OfficialRow>,
}

/// Raw counts of one group, turned into a [`Row`] at the end.
#[derive(Default)]
struct Tally {
    name: String,
    received: u64,
    carried_over: u64,
    resolved: u64,
    outcomes: [u64; 3],
    in_progress: u64,
    in_progress_overdue: u64,
    scores: [u64; 3],
}

impl Tally {
    fn add_dossier(&mut self, f: &Facts) {
        self.received += u64::from(f.received);
        self.carried_over += u64::from(f.carried_over);
        if let Some(o) = f.resolved {
            self.resolved += 1;
            self.outcomes[o as usize] += 1;
        }
        if let Some(overdue) = f.open_at_end {
            self.in_progress += 1;
            self.in_progress_overdue += u64::from(overdue);
        }
    }

    fn row(&self, key: &str) -> Row {
        Row {
            key: key.to_owned(),
            name: if self.name.is_empty() {
                key.to_owned()
            } else {
                self.name.clone()
            },
            received: self.received,
            carried_over: self.carried_over,
            resolved: self.resolved,
            early: self.outcomes[0],
            on_time: self.outcomes[1],
            overdue: self.outcomes[2],
            in_progress: self.in_progress,
            in_progress_overdue: self.in_progress_overdue,
            ratings: ratings_of(self.scores),
        }
    }
}

fn ratings_of(scores: [u64; 3]) -> Ratings {
    let total = scores.iter().sum();
    Ratings {
        total,
        satisfied: Share::of(scores[0], total),
        neutral: Share::of(scores[1], total),
        dissatisfied: Share::of(scores[2], total),
    }
}

fn score_index(s: Score) -> usize {
    match s {
        Score::Satisfied => 0,
        Score::Neutral => 1,
        Score::Dissatisfied => 2,
    }
}

/// What one dossier contributes to a report over a period.
struct Facts {
    received: bool,
    carried_over: bool,
    resolved: Option<Outcome>,
    /// `Some(overdue at end)` when open at the end.
    open_at_end: Option<bool>,
}

fn facts(s: &DossierSummary, period: &Period) -> Facts {
    let (start, end) = (period.start(), period.end());
    let inside = |t: Option<Timestamp>| t.is_some_and(|t| period.contains(t));
    Facts {
        received: inside(s.received_at),
        carried_over: s.received_at.is_some_and(|r| r < start) && s.open_at(start),
        resolved: if inside(s.resolved_at) {
            s.outcome
        } else {
            None
        },
        open_at_end: s.open_at(end).then(|| s.due_at.is_some_and(|d| d < end)),
    }
}

/// Computes the report of `summaries` and `ratings` over `period`. Records outside the period
/// contribute nothing, so callers may pass a superset. `scope` names what it covers.
pub fn compute(
    scope: &str,
    period: &Period,
    summaries: &[DossierSummary],
    ratings: &[Rating],
) -> Report {
    let mut total = Tally::default();
    let mut channels = [0u64; 3];
    let mut digitised = 0;
    let (mut returned, mut returned_postal, mut refused, mut withdrawn, mut stopped) =
        (0, 0, 0, 0, 0);
    let mut by_unit: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_agency: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_procedure: BTreeMap<String, Tally> = BTreeMap::new();
    for s in summaries {
        let f = facts(s, period);
        total.add_dossier(&f);
        if f.received {
            channels[Channel::ALL
                .iter()
                .position(|c| *c == s.channel)
                .unwrap_or(0)] += 1;
            digitised += u64::from(s.digitised);
        }
        if s.closed_at.is_some_and(|t| period.contains(t)) {
            match s.status {
                Some(Status::Returned) => {
                    returned += 1;
                    returned_postal += u64::from(s.return_method == Some(ReturnMethod::Postal));
                }
                Some(Status::Refused) => refused += 1,
                Some(Status::Withdrawn) => withdrawn += 1,
                Some(Status::Stopped) => stopped += 1,
                _ => {}
            }
        }
        if f.received || f.carried_over || f.resolved.is_some() || f.open_at_end.is_some() {
            by_unit
                .entry(s.unit.to_string())
                .or_default()
                .add_dossier(&f);
            by_agency
                .entry(s.agency.clone())
                .or_default()
                .add_dossier(&f);
            let p = by_procedure.entry(s.procedure_code.clone()).or_default();
            p.add_dossier(&f);
            if p.name.is_empty() {
                p.name = s.procedure_name.clone();
            }
        }
    }
    let mut by_official: BTreeMap<(String, String), [u64; 3]> = BTreeMap::new();
    for r in ratings.iter().filter(|r| period.contains(r.at)) {
        let i = score_index(r.score);
        total.scores[i] += 1;
        by_unit.entry(r.unit.to_string()).or_default().scores[i] += 1;
        if let Some(o) = r.official.as_deref().filter(|o| !o.is_empty()) {
            by_official
                .entry((r.unit.to_string(), o.to_owned()))
                .or_default()[i] += 1;
        }
    }
    let received = total.received;
    let resolved = total.resolved;
    let [online, postal, direct] = channels;
    let [early, on_time, overdue] = total.outcomes;
    let dissatisfied = total.scores[2];
    Report {
        scope: scope.to_owned(),
        from: format_date(period.from),
        to: format_date(period.to),
        received: Received {
            total: received,
            online: Share::of(online, received),
            postal: Share::of(postal, received),
            direct: Share::of(direct, received),
            digitised: Share::of(digitised, received),
            carried_over: total.carried_over,
            to_process: received + total.carried_over,
        },
        resolved: Resolved {
            total: resolved,
            percent_of_to_process: Percent::of(resolved, received + total.carried_over),
            early: Share::of(early, resolved),
            on_time: Share::of(on_time, resolved),
            overdue: Share::of(overdue, resolved),
            returned,
            returned_postal: Share::of(returned_postal, returned),
            refused,
            withdrawn,
            stopped,
        },
        in_progress: InProgress {
            total: total.in_progress,
            not_yet_due: total.in_progress - total.in_progress_overdue,
            overdue: total.in_progress_overdue,
        },
        ratings: ratings_of(total.scores),
        index_766: Index766 {
            online_share: Percent::of(online, received),
            timely_share: Percent::of(early + on_time, resolved),
            digitised_share: Percent::of(digitised, received),
            satisfaction: Percent::of(received.saturating_sub(dissatisfied + overdue), received),
        },
        by_unit: by_unit.iter().map(|(k, t)| t.row(k)).collect(),
        by_agency: by_agency.iter().map(|(k, t)| t.row(k)).collect(),
        by_procedure: by_procedure.iter().map(|(k, t)| t.row(k)).collect(),
        by_official: by_official
            .into_iter()
            .map(|((unit, official), scores)| OfficialRow {
                unit,
                official,
                ratings: ratings_of(scores),
            })
            .collect(),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn pct(p: Option<Percent>) -> String {
    p.map_or_else(String::new, Percent::text)
}

impl Report {
    /// The report as CSV (UTF-8, comma-separated, decimal point), in Vietnamese, in the order
    /// published reports use: the headline figures, then each breakdown as its own section.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            out.push_str(
                &cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push_str("\r\n");
        };
        let s = |t: &str| t.to_owned();
        let n = |v: u64| v.to_string();
        let from = crate::timestamp::parse_date(&self.from)
            .map_or_else(|| self.from.clone(), format_date_vn);
        let to =
            crate::timestamp::parse_date(&self.to).map_or_else(|| self.to.clone(), format_date_vn);
        line(&[
            s("Báo cáo kết quả giải quyết thủ tục hành chính"),
            self.scope.clone(),
            format!("Từ {from} đến {to}"),
        ]);
        line(&[s("Chỉ tiêu"), s("Số lượng"), s("Tỷ lệ (%)")]);
        let r = &self.received;
        line(&[s("Hồ sơ tiếp nhận trong kỳ"), n(r.total), String::new()]);
        line(&[s("  Trực tuyến"), n(r.online.count), pct(r.online.percent)]);
        line(&[
            s("  Bưu chính công ích"),
            n(r.postal.count),
            pct(r.postal.percent),
        ]);
        line(&[s("  Trực tiếp"), n(r.direct.count), pct(r.direct.percent)]);
        line(&[
            s("  Số hóa hồ sơ"),
            n(r.digitised.count),
            pct(r.digitised.percent),
        ]);
        line(&[
            s("Hồ sơ kỳ trước chuyển sang"),
            n(r.carried_over),
            String::new(),
        ]);
        line(&[
            s("Tổng số hồ sơ phải giải quyết"),
            n(r.to_process),
            String::new(),
        ]);
        let d = &self.resolved;
        line(&[
            s("Hồ sơ đã giải quyết"),
            n(d.total),
            pct(d.percent_of_to_process),
        ]);
        line(&[s("  Trước hạn"), n(d.early.count), pct(d.early.percent)]);
        line(&[s("  Đúng hạn"), n(d.on_time.count), pct(d.on_time.percent)]);
        line(&[s("  Quá hạn"), n(d.overdue.count), pct(d.overdue.percent)]);
        line(&[s("Đã trả kết quả"), n(d.returned), String::new()]);
        line(&[
            s("  Qua bưu chính công ích"),
            n(d.returned_postal.count),
            pct(d.returned_postal.percent),
        ]);
        line(&[s("Từ chối tiếp nhận"), n(d.refused), String::new()]);
        line(&[s("Công dân rút hồ sơ"), n(d.withdrawn), String::new()]);
        line(&[s("Dừng xử lý"), n(d.stopped), String::new()]);
        let p = &self.in_progress;
        line(&[s("Đang giải quyết cuối kỳ"), n(p.total), String::new()]);
        line(&[s("  Chưa đến hạn"), n(p.not_yet_due), String::new()]);
        line(&[s("  Quá hạn"), n(p.overdue), String::new()]);
        let g = &self.ratings;
        line(&[s("Lượt đánh giá"), n(g.total), String::new()]);
        line(&[
            s("  Hài lòng"),
            n(g.satisfied.count),
            pct(g.satisfied.percent),
        ]);
        line(&[
            s("  Bình thường"),
            n(g.neutral.count),
            pct(g.neutral.percent),
        ]);
        line(&[
            s("  Không hài lòng"),
            n(g.dissatisfied.count),
            pct(g.dissatisfied.percent),
        ]);
        let i = &self.index_766;
        line(&[
            s("Chỉ số theo Quyết định 766/QĐ-TTg"),
            String::new(),
            String::new(),
        ]);
        line(&[
            s("  Tỷ lệ hồ sơ trực tuyến"),
            String::new(),
            pct(i.online_share),
        ]);
        line(&[
            s("  Tỷ lệ giải quyết trước hạn và đúng hạn"),
            String::new(),
            pct(i.timely_share),
        ]);
        line(&[
            s("  Tỷ lệ số hóa hồ sơ"),
            String::new(),
            pct(i.digitised_share),
        ]);
        line(&[s("  Mức độ hài lòng"), String::new(), pct(i.satisfaction)]);

        for (title, rows) in [
            ("Theo đơn vị", &self.by_unit),
            ("Theo cơ quan", &self.by_agency),
            ("Theo thủ tục", &self.by_procedure),
        ] {
            line(&[]);
            let mut head = vec![s(title), s("Tên")];
            head.extend(ROW_COLUMNS_VI.iter().map(|h| s(h)));
            line(&head);
            for row in rows {
                let mut cells = vec![row.key.clone(), row.name.clone()];
                cells.extend(row.counts().map(n));
                line(&cells);
            }
        }
        line(&[]);
        line(&[
            s("Theo công chức"),
            s("Đơn vị"),
            s("Lượt đánh giá"),
            s("Hài lòng (%)"),
            s("Bình thường (%)"),
            s("Không hài lòng (%)"),
        ]);
        for o in &self.by_official {
            let r = &o.ratings;
            line(&[
                o.official.clone(),
                o.unit.clone(),
                n(r.total),
                pct(r.satisfied.percent),
                pct(r.neutral.percent),
                pct(r.dissatisfied.percent),
            ]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::outcome;
    use crate::ids::{DossierCode, UnitCode};
    use time::macros::{date, time};

    #[test]
    fn percentages_round_like_published_reports() {
        // Why: officials compare our figures with the ones they published by hand.
        assert_eq!(Percent::of(57_549, 72_165).unwrap().text(), "79.75");
        assert_eq!(Percent::of(9_273, 9_315).unwrap().text(), "99.55");
        assert_eq!(Percent::of(42, 9_315).unwrap().text(), "0.45");
        assert_eq!(Percent::of(1, 8).unwrap().text(), "12.50");
        assert_eq!(Percent::of(1, 3).unwrap().label_vi(), "33,33%");
        assert_eq!(Percent::of(2, 3).unwrap().text(), "66.67");
        assert_eq!(Percent::of(0, 0), None);
        assert_eq!(
            serde_json::to_string(&Percent::of(57_549, 72_165)).unwrap(),
            "79.75"
        );
    }

    fn summary(
        n: u32,
        channel: Channel,
        received: Timestamp,
        due: Timestamp,
        resolved: Option<Timestamp>,
    ) -> DossierSummary {
        let unit = UnitCode::new("X1").unwrap();
        DossierSummary {
            code: DossierCode::new(&unit, received.local_date(), n).unwrap(),
            unit: unit.clone(),
            holder: unit,
            transfers: vec![],
            agency: "Tư pháp".into(),
            procedure_code: "1.001193".into(),
            procedure_name: "Đăng ký khai sinh".into(),
            channel,
            digitised: n.is_multiple_of(2),
            status: Some(if resolved.is_some() {
                Status::Resolved
            } else {
                Status::InProcessing
            }),
            received_at: Some(received),
            due_at: Some(due),
            appointment_at: Some(due),
            resolved_at: resolved,
            outcome: resolved.map(|r| outcome(r, due)),
            closed_at: None,
            return_method: None,
            applicant_name: String::new(),
            applicant_id_number: String::new(),
            open_conflicts: 0,
            events: 2,
        }
    }

    #[test]
    fn carried_over_received_resolved_and_in_progress() {
        // Why: these are the headline figures of every monthly report.
        let at = |d, t| Timestamp::from_local(d, t);
        let period = Period::new(date!(2025 - 11 - 16), date!(2025 - 11 - 30)).unwrap();
        let s = vec![
            // Carried over from before, resolved on time inside.
            summary(
                1,
                Channel::Direct,
                at(date!(2025 - 11 - 14), time!(9:00)),
                at(date!(2025 - 11 - 18), time!(9:00)),
                Some(at(date!(2025 - 11 - 18), time!(8:00))),
            ),
            // Received inside online, resolved early.
            summary(
                2,
                Channel::Online,
                at(date!(2025 - 11 - 17), time!(9:00)),
                at(date!(2025 - 11 - 20), time!(9:00)),
                Some(at(date!(2025 - 11 - 19), time!(8:00))),
            ),
            // Received inside by post, open and overdue at the end.
            summary(
                3,
                Channel::Postal,
                at(date!(2025 - 11 - 20), time!(9:00)),
                at(date!(2025 - 11 - 25), time!(9:00)),
                None,
            ),
            // Received inside, open, not yet due at the end.
            summary(
                4,
                Channel::Online,
                at(date!(2025 - 11 - 28), time!(9:00)),
                at(date!(2025 - 12 - 03), time!(9:00)),
                None,
            ),
            // Received after the period: nothing.
            summary(
                5,
                Channel::Online,
                at(date!(2025 - 12 - 01), time!(9:00)),
                at(date!(2025 - 12 - 03), time!(9:00)),
                None,
            ),
        ];
        let r = compute("Xã X1", &period, &s, &[]);
        assert_eq!(r.received.total, 3);
        assert_eq!(r.received.online.count, 2);
        assert_eq!(r.received.online.percent.unwrap().text(), "66.67");
        assert_eq!(r.received.carried_over, 1);
        assert_eq!(r.received.to_process, 4);
        assert_eq!(r.resolved.total, 2);
        assert_eq!(
            (
                r.resolved.early.count,
                r.resolved.on_time.count,
                r.resolved.overdue.count
            ),
            (1, 1, 0)
        );
        assert_eq!(
            (
                r.in_progress.total,
                r.in_progress.not_yet_due,
                r.in_progress.overdue
            ),
            (2, 1, 1)
        );
        assert_eq!(r.by_procedure.len(), 1);
        assert_eq!(r.by_procedure[0].name, "Đăng ký khai sinh");
        assert_eq!(r.index_766.timely_share.unwrap().text(), "100.00");
        let csv = r.to_csv();
        assert!(csv.contains("Hồ sơ tiếp nhận trong kỳ,3,"));
        assert!(csv.contains("  Trực tuyến,2,66.67"));
    }

    #[test]
    fn periods_are_checked() {
        // Why: a reversed or decades-long period is a typing error, not a report.
        assert_eq!(
            Period::new(date!(2025 - 02 - 01), date!(2025 - 01 - 01)),
            Err(ReportError::Reversed)
        );
        assert!(Period::new(date!(2000 - 01 - 01), date!(2030 - 01 - 01)).is_err());
        let p = Period::new(date!(2025 - 01 - 01), date!(2025 - 01 - 01)).unwrap();
        assert!(p.contains(Timestamp::from_local(date!(2025 - 01 - 01), time!(23:59))));
        assert!(!p.contains(Timestamp::from_local(date!(2025 - 01 - 02), time!(0:00))));
    }
}
