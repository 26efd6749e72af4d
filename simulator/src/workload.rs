//! The calibrated workload: when dossiers arrive, what happens to each, and when.
//!
//! Why plans drawn at intake: the life of a dossier (accepted, perhaps transferred, a supplement
//! asked for, fees paid, resolved early or late, returned by post or at the counter, rated) is
//! decided by the seed the moment it arrives, and its steps then run at working times of the
//! unit holding it. The rates and shares come from the scenario (calibrated on DOMAIN.md).

use motcua_schema::calendar::Calendar;
use motcua_schema::catalog::{Catalog, Level, Procedure, ProcessingTime};
use motcua_schema::dossier::{Applicant, Channel, ReturnMethod};
use motcua_schema::rating::Score;
use motcua_schema::timestamp::Timestamp;
use time::Time;

use crate::rng::Rng;
use crate::scenario::Workload;

/// One hour, in ms.
pub const HOUR_MS: u64 = 3_600_000;
/// One day, in ms.
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// Working ms in a working day (07:30-11:30 and 13:00-17:00).
pub const WORKING_DAY_MS: u64 = 8 * HOUR_MS;
/// Longest search for the next working instant, in days.
pub const WORKING_SEARCH_DAYS_MAX: u64 = 30;

/// Working-time arithmetic on the simulation's clock (ms since the run's first local midnight).
#[derive(Debug, Clone)]
pub struct WorkTime {
    base_ms: i64,
    calendar: Calendar,
    periods: Vec<(u64, u64)>,
}

impl WorkTime {
    /// Working time over `calendar`, the run starting at Unix ms `base_ms` (a local midnight).
    pub fn new(base_ms: i64, calendar: Calendar) -> WorkTime {
        let v = &calendar.versions[0];
        let ms = |t: Time| u64::from(t.hour()) * HOUR_MS + u64::from(t.minute()) * 60_000;
        let periods = v.periods.iter().map(|p| (ms(p.start), ms(p.end))).collect();
        WorkTime {
            base_ms,
            calendar,
            periods,
        }
    }

    fn is_working_day(&self, t: u64) -> bool {
        let date = Timestamp(self.base_ms + t as i64).local_date();
        self.calendar.is_working_day(date)
    }

    /// Whether `t` is inside a working period of a working day.
    pub fn is_working(&self, t: u64) -> bool {
        let in_day = t % DAY_MS;
        self.is_working_day(t) && self.periods.iter().any(|(a, b)| (*a..*b).contains(&in_day))
    }

    /// The first working instant at or after `t`.
    pub fn next_working(&self, t: u64) -> u64 {
        let mut day = t - t % DAY_MS;
        for _ in 0..WORKING_SEARCH_DAYS_MAX {
            if self.is_working_day(day) {
                for (a, b) in &self.periods {
                    if day + b > t {
                        return t.max(day + a);
                    }
                }
            }
            day += DAY_MS;
        }
        t
    }

    /// The instant `dur` working ms after `t`.
    pub fn add_working(&self, t: u64, dur: u64) -> u64 {
        let mut t = self.next_working(t);
        let mut left = dur;
        for _ in 0..(WORKING_SEARCH_DAYS_MAX * 4 + dur / HOUR_MS * 2) {
            let in_day = t % DAY_MS;
            let end = self
                .periods
                .iter()
                .find(|(a, b)| (*a..*b).contains(&in_day))
                .map_or(in_day, |(_, b)| *b);
            let room = end - in_day;
            if left < room {
                return t + left;
            }
            left -= room;
            t = self.next_working(t + room);
        }
        t
    }
}

/// One step of a dossier's life.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Accept an online registration.
    Accept,
    /// Refuse at intake.
    Refuse,
    /// Transfer to the unit of node `to`.
    Transfer {
        /// Target node index.
        to: usize,
    },
    /// Ask for a supplement.
    SupplementRequest,
    /// The citizen supplements.
    Supplement,
    /// Ask for fees.
    PaymentRequest,
    /// Fees paid.
    Pay,
    /// The citizen withdraws.
    Withdraw,
    /// Resolve.
    Resolve,
    /// Hand the result back.
    Return(ReturnMethod),
    /// Take the citizen's rating at the unit holding the dossier.
    Rate(Score),
}

/// A dossier's plan: its steps, each with the working delay before it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The dossier code (set once acknowledged).
    pub code: String,
    /// The node holding the dossier now.
    pub holder: usize,
    /// Remaining steps with their working delays, ms.
    pub steps: std::collections::VecDeque<(u64, StepKind)>,
    /// Retries of the current step.
    pub retries: u32,
}

/// What a new dossier is.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The procedure.
    pub procedure: Procedure,
    /// Channel.
    pub channel: Channel,
    /// Registered online first.
    pub registered_only: bool,
    /// The applicant.
    pub applicant: Applicant,
    /// Papers scanned.
    pub digitised: bool,
}

const FAMILIES: [&str; 12] = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
];
const MIDDLES: [&str; 8] = ["Văn", "Thị", "Hữu", "Minh", "Thanh", "Ngọc", "Đức", "Thu"];
const GIVENS: [&str; 16] = [
    "An", "Bình", "Cường", "Dung", "Giang", "Hà", "Hải", "Hạnh", "Hùng", "Khánh", "Lan", "Linh",
    "Long", "Mai", "Nam", "Phúc",
];

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// Draws a new dossier for a unit of `level`.
pub fn draw_intake(rng: &mut Rng, w: &Workload, catalog: &Catalog, level: Level) -> Intake {
    let procs: Vec<&Procedure> = catalog
        .procedures
        .iter()
        .filter(|p| p.level == level)
        .collect();
    let procs = if procs.is_empty() {
        catalog.procedures.iter().collect()
    } else {
        procs
    };
    let procedure = procs[rng.below(procs.len() as u64) as usize].clone();
    let channel = match rng.weighted(&[
        w.online_share,
        w.postal_share,
        (1.0 - w.online_share - w.postal_share).max(0.0),
    ]) {
        0 => Channel::Online,
        1 => Channel::Postal,
        _ => Channel::Direct,
    };
    let registered_only = channel == Channel::Online && rng.chance(w.registered_first_share);
    let mut id = String::with_capacity(12);
    id.push('0');
    for _ in 0..11 {
        id.push(char::from(b'0' + rng.below(10) as u8));
    }
    let applicant = Applicant {
        name: format!(
            "{} {} {}",
            pick(rng, &FAMILIES),
            pick(rng, &MIDDLES),
            pick(rng, &GIVENS)
        ),
        id_number: id,
        phone: format!("09{:08}", rng.below(100_000_000)),
        address: format!("Số {} thôn {}", rng.range(1, 300), rng.range(1, 20)),
    };
    Intake {
        procedure,
        channel,
        registered_only,
        applicant,
        digitised: rng.chance(0.6),
    }
}

fn processing_ms(p: ProcessingTime) -> u64 {
    match p {
        ProcessingTime::WorkingDays(0) => 3 * HOUR_MS,
        ProcessingTime::WorkingDays(d) => u64::from(d) * WORKING_DAY_MS,
        ProcessingTime::WorkingHours(h) => u64::from(h).max(1) * HOUR_MS,
    }
}

fn score(rng: &mut Rng, w: &Workload) -> Score {
    match rng.weighted(&[
        w.satisfied_share,
        w.dissatisfied_share,
        (1.0 - w.satisfied_share - w.dissatisfied_share).max(0.0),
    ]) {
        0 => Score::Satisfied,
        1 => Score::Dissatisfied,
        _ => Score::Neutral,
    }
}

/// Draws the steps of a new dossier. `transfer_to` is the node a transfer would go to.
pub fn draw_plan(
    rng: &mut Rng,
    w: &Workload,
    intake: &Intake,
    holder: usize,
    transfer_to: Option<usize>,
) -> Plan {
    let mut steps = std::collections::VecDeque::new();
    let minutes = |rng: &mut Rng, lo: u64, hi: u64| rng.range(lo, hi) * 60_000;
    if intake.registered_only {
        steps.push_back((minutes(rng, 30, 240), StepKind::Accept));
    }
    if rng.chance(w.refused_share) {
        steps.push_back((minutes(rng, 5, 60), StepKind::Refuse));
        return Plan {
            code: String::new(),
            holder,
            steps,
            retries: 0,
        };
    }
    if intake.channel == Channel::Direct && rng.chance(w.rating_share) {
        steps.push_back((minutes(rng, 1, 10), StepKind::Rate(score(rng, w))));
    }
    let share = if holder == 0 {
        w.province_transfer_share
    } else {
        w.transfer_share
    };
    if let Some(to) = transfer_to.filter(|_| rng.chance(share)) {
        steps.push_back((minutes(rng, 30, 480), StepKind::Transfer { to }));
    }
    if rng.chance(w.supplement_share) {
        steps.push_back((minutes(rng, 60, 960), StepKind::SupplementRequest));
        steps.push_back((minutes(rng, 240, 2400), StepKind::Supplement));
    }
    if rng.chance(w.payment_share) {
        steps.push_back((minutes(rng, 30, 240), StepKind::PaymentRequest));
        steps.push_back((minutes(rng, 30, 1440), StepKind::Pay));
    }
    if rng.chance(w.withdrawn_share) {
        steps.push_back((minutes(rng, 60, 2400), StepKind::Withdraw));
        return Plan {
            code: String::new(),
            holder,
            steps,
            retries: 0,
        };
    }
    let processing = processing_ms(intake.procedure.processing);
    let resolve = if rng.chance(w.overdue_share) {
        processing + rng.range(1, 3) * WORKING_DAY_MS
    } else {
        (processing as f64 * (0.1 + 0.6 * rng.unit())) as u64
    };
    steps.push_back((resolve.max(10 * 60_000), StepKind::Resolve));
    let method = match rng.weighted(&[
        w.returned_postal_share,
        w.returned_online_share,
        (1.0 - w.returned_postal_share - w.returned_online_share).max(0.0),
    ]) {
        0 => ReturnMethod::Postal,
        1 => ReturnMethod::Online,
        _ => ReturnMethod::Counter,
    };
    steps.push_back((minutes(rng, 10, 960), StepKind::Return(method)));
    if intake.channel != Channel::Direct && rng.chance(w.rating_share) {
        steps.push_back((minutes(rng, 1, 10), StepKind::Rate(score(rng, w))));
    }
    Plan {
        code: String::new(),
        holder,
        steps,
        retries: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_schema::sample::sample_calendar;
    use time::macros::date;

    fn wt() -> WorkTime {
        WorkTime::new(
            Timestamp::start_of_local_day(date!(2025 - 11 - 03)).0,
            sample_calendar(),
        )
    }

    #[test]
    fn working_time_skips_nights_lunch_and_weekends() {
        // Why: every arrival and step is placed with this; a step at 03:00 would be wrong.
        let w = wt();
        // Monday 2025-11-03 00:00 → 07:30.
        assert_eq!(w.next_working(0), 7 * HOUR_MS + 30 * 60_000);
        // 11:00 + 1 h → 13:30 (lunch 11:30-13:00 skipped).
        assert_eq!(
            w.add_working(11 * HOUR_MS, HOUR_MS),
            13 * HOUR_MS + 30 * 60_000
        );
        // Friday 16:30 + 1 h → Monday 08:00.
        let friday = 4 * DAY_MS + 16 * HOUR_MS + 30 * 60_000;
        assert_eq!(w.add_working(friday, HOUR_MS), 7 * DAY_MS + 8 * HOUR_MS);
        assert!(w.is_working(8 * HOUR_MS));
        assert!(!w.is_working(12 * HOUR_MS));
        assert!(!w.is_working(5 * DAY_MS + 8 * HOUR_MS));
    }

    #[test]
    fn plans_end_in_one_end_state() {
        // Why: every plan must finish a dossier exactly once (refused, withdrawn or returned).
        let mut rng = Rng::new(5);
        let catalog = motcua_schema::sample::sample_catalog();
        let w = Workload::default();
        for _ in 0..500 {
            let intake = draw_intake(&mut rng, &w, &catalog, Level::Commune);
            let plan = draw_plan(&mut rng, &w, &intake, 1, Some(0));
            let ends = plan
                .steps
                .iter()
                .filter(|(_, s)| {
                    matches!(
                        s,
                        StepKind::Refuse | StepKind::Withdraw | StepKind::Return(_)
                    )
                })
                .count();
            assert_eq!(ends, 1);
        }
    }
}
