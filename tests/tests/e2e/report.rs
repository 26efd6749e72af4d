//! The report a node serves equals a report computed independently, in this test, from the raw
//! events the test itself recorded (no code shared with `motcua_schema::report`).
//!
//! Sixty days of calibrated work at one commune (intake by every channel, refusals,
//! withdrawals, supplements, late resolutions, returns at the counter and by post, ratings of
//! three officials) are recorded through the same commands the counter uses, at chosen past
//! instants; the report over days 20-45 must then have carried-over, in-progress, early, on
//! time and overdue figures, all matching.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use motcua_node::auth::StaffRole;
use motcua_node::commands::{EventRequest, NewDossier, NewRating};
use motcua_node::config::{DataDir, SyncConfig, generate_key};
use motcua_node::setup::{InitOptions, Trust, enrolment, init};
use motcua_node::writer::{Command, Reply};
use motcua_schema::dossier::{Applicant, Channel, ReturnMethod};
use motcua_schema::ids::UnitCode;
use motcua_schema::rating::Score;
use motcua_schema::report::{Period, compute};
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::Role;
use serde_json::Value;
use time::macros::{date, time};
use time::{Date, Duration};

const DAY_MS: i64 = 24 * 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;
const UNIT: &str = "000.01.07.H99";

/// xorshift64*: the data set is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the test knows about one dossier: its raw history, by its own records.
#[derive(Default, Debug)]
struct Truth {
    channel: Option<Channel>,
    digitised: bool,
    received_at: Option<Timestamp>,
    due_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    /// (end kind, at, returned by post)
    closed: Option<(&'static str, Timestamp, bool)>,
}

struct RatingTruth {
    at: Timestamp,
    score: Score,
    official: String,
}

fn submit(node: &motcua_node::runtime::Node, cmd: Command, at: Timestamp) -> Reply {
    node.writer
        .submit_blocking(cmd, Some(at))
        .unwrap_or_else(|e| panic!("command at {}: {e}", at.to_rfc3339()))
}

fn due_of(reply: &Reply) -> Option<Timestamp> {
    match reply {
        Reply::Dossier(s) => s.due_at,
        _ => None,
    }
}

/// Half-up rounding to two decimals through floating point: a different method from the
/// report's integer arithmetic on purpose.
fn pct(part: u64, whole: u64) -> Value {
    if whole == 0 {
        return Value::Null;
    }
    let x = part as f64 * 100.0 / whole as f64;
    serde_json::json!((x * 100.0 + 0.5 + 1e-9).floor() / 100.0)
}

#[test]
fn report_equals_independent_computation_from_raw_events() {
    // Why: officials publish these figures; a wrong count or a percentage rounded differently
    // from the published way would be noticed by the province and undermine trust in the system.
    let tmp = tempfile::tempdir().unwrap();
    let root = generate_key();
    let key = generate_key();
    let unit = UnitCode::new(UNIT).unwrap();
    let long_ago = Timestamp::start_of_local_day(date!(2025 - 01 - 01));
    let record = enrolment(
        &root,
        &key.verifying_key(),
        &unit,
        "UBND xã Thử Nghiệm",
        Role::Commune,
        long_ago,
        long_ago,
    );
    let node = init(InitOptions {
        dir: DataDir::new(tmp.path().join("node")),
        unit: unit.clone(),
        unit_name: "UBND xã Thử Nghiệm".into(),
        role: Role::Commune,
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        trust: Trust::Existing {
            root: root.verifying_key(),
            records: vec![record],
        },
        admin_password: "mat-khau-quan-tri".into(),
        key: Some(key),
        sync: SyncConfig {
            enabled: false,
            ..SyncConfig::default()
        },
    })
    .unwrap();
    node.auth
        .add_user(
            node.shared.store.db(),
            "xuly",
            "mat-khau-xu-ly",
            "Cán bộ xử lý",
            StaffRole::Leader,
        )
        .unwrap();
    let catalog = node.shared.reference.read().unwrap().catalog.clone();
    let procedures: Vec<_> = catalog
        .procedures
        .iter()
        .filter(|p| p.level == motcua_schema::catalog::Level::Commune)
        .cloned()
        .collect();

    let first_day: Date = date!(2025 - 09 - 01);
    let horizon = Timestamp::start_of_local_day(first_day + Duration::days(60));
    let mut rng = Rng(0x5EED_2025);
    let mut truth: BTreeMap<String, Truth> = BTreeMap::new();
    let mut ratings: Vec<RatingTruth> = Vec::new();
    for day in 0..60 {
        let date = first_day + Duration::days(day);
        let weekend = matches!(
            date.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        );
        for _ in 0..rng.below(if weekend { 2 } else { 9 }) {
            let channel = if weekend {
                Channel::Online
            } else {
                match rng.below(100) {
                    0..=69 => Channel::Online,
                    70..=73 => Channel::Postal,
                    _ => Channel::Direct,
                }
            };
            let at = Timestamp::from_local(date, time!(7:30))
                .plus_millis(rng.below(9 * 60) as i64 * 60_000);
            let p = &procedures[rng.below(procedures.len() as u64) as usize];
            let digitised = rng.percent(75);
            let n = truth.len() as u64;
            let req = NewDossier {
                procedure_code: p.code.clone(),
                channel,
                applicant: Applicant {
                    name: format!("Công dân {n}"),
                    id_number: format!("{:012}", 100_000_000_000 + n),
                    phone: "0900000000".into(),
                    address: "Thôn 1".into(),
                },
                digitised,
                registered_only: false,
            };
            let reply = submit(
                &node,
                Command::CreateDossier {
                    req,
                    by: "tiepnhan".into(),
                },
                at,
            );
            let Reply::Dossier(summary) = &reply else {
                panic!("unexpected reply")
            };
            let code = summary.code.to_string();
            let mut t = Truth {
                channel: Some(channel),
                digitised,
                received_at: Some(at),
                due_at: due_of(&reply),
                ..Truth::default()
            };
            let mut now = at;
            let step = |req: EventRequest, when: Timestamp| -> Option<Reply> {
                (when < horizon).then(|| {
                    submit(
                        &node,
                        Command::AddEvent {
                            code: code.clone(),
                            req,
                            by: "xuly".into(),
                        },
                        when,
                    )
                })
            };
            let end = rng.below(100);
            if end < 3 {
                now = now.plus_millis(20 * 60_000);
                if step(
                    EventRequest::Refused {
                        reason: "Không đủ điều kiện".into(),
                    },
                    now,
                )
                .is_some()
                {
                    t.closed = Some(("refused", now, false));
                }
                truth.insert(code, t);
                continue;
            }
            if rng.percent(8) {
                now = now.plus_millis(2 * HOUR_MS);
                if step(
                    EventRequest::SupplementRequested {
                        reason: "Thiếu giấy tờ".into(),
                    },
                    now,
                )
                .is_some()
                {
                    now = now.plus_millis((1 + rng.below(3) as i64) * DAY_MS);
                    match step(EventRequest::Supplemented, now) {
                        Some(reply) => t.due_at = due_of(&reply),
                        None => {
                            truth.insert(code, t);
                            continue;
                        }
                    }
                }
            }
            if end < 5 {
                now = now.plus_millis(DAY_MS);
                if step(
                    EventRequest::Withdrawn {
                        reason: "Công dân rút".into(),
                    },
                    now,
                )
                .is_some()
                {
                    t.closed = Some(("withdrawn", now, false));
                }
                truth.insert(code, t);
                continue;
            }
            if end < 6 {
                now = now.plus_millis(DAY_MS);
                if step(
                    EventRequest::Stopped {
                        reason: "Dừng theo quy định".into(),
                    },
                    now,
                )
                .is_some()
                {
                    t.closed = Some(("stopped", now, false));
                }
                truth.insert(code, t);
                continue;
            }
            let due = t.due_at.expect("received dossiers have a due date");
            let span = (due.0 - now.0).max(HOUR_MS);
            // Most finish before or at the due instant; about one in twelve runs late.
            let factor = if rng.percent(8) {
                110 + rng.below(60)
            } else {
                20 + rng.below(80)
            };
            let resolve_at =
                Timestamp(now.0 + span * factor as i64 / 100).max(now.plus_millis(60_000));
            if step(
                EventRequest::Resolved {
                    note: String::new(),
                },
                resolve_at,
            )
            .is_none()
            {
                truth.insert(code, t);
                continue;
            }
            t.resolved_at = Some(resolve_at);
            if rng.percent(85) {
                let postal = rng.percent(18);
                let method = if postal {
                    ReturnMethod::Postal
                } else {
                    ReturnMethod::Counter
                };
                let return_at = resolve_at.plus_millis(rng.below(48) as i64 * HOUR_MS + 60_000);
                if step(EventRequest::Returned { method }, return_at).is_some() {
                    t.closed = Some(("returned", return_at, postal));
                    if rng.percent(15) && return_at.plus_millis(60_000) < horizon {
                        let score = match rng.below(100) {
                            0..=93 => Score::Satisfied,
                            94..=97 => Score::Neutral,
                            _ => Score::Dissatisfied,
                        };
                        let official =
                            ["canbo1", "canbo2", "canbo3"][rng.below(3) as usize].to_owned();
                        let r = NewRating {
                            score,
                            official: Some(official.clone()),
                            dossier: Some(code.clone()),
                            criteria: Vec::new(),
                            comment: String::new(),
                            device: "may-1".into(),
                        };
                        let rated_at = return_at.plus_millis(60_000);
                        submit(&node, Command::Rate(r), rated_at);
                        ratings.push(RatingTruth {
                            at: rated_at,
                            score,
                            official,
                        });
                    }
                }
            }
            truth.insert(code, t);
        }
    }
    assert!(truth.len() > 200, "data set too small: {}", truth.len());

    let period = Period::new(
        first_day + Duration::days(20),
        first_day + Duration::days(45),
    )
    .unwrap();
    let (summaries, stored_ratings) = node.shared.store.report_inputs(None, &period).unwrap();
    let report = serde_json::to_value(compute(
        "UBND xã Thử Nghiệm",
        &period,
        &summaries,
        &stored_ratings,
    ))
    .unwrap();

    // The independent computation.
    let start = Timestamp::start_of_local_day(period.from);
    let end = Timestamp::start_of_local_day(period.to + Duration::days(1));
    let inside = |t: Timestamp| start <= t && t < end;
    let finished_at = |t: &Truth| match (t.resolved_at, t.closed.map(|c| c.1)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let open_at = |t: &Truth, at: Timestamp| {
        t.received_at.is_some_and(|r| r < at) && finished_at(t).is_none_or(|f| f >= at)
    };
    let mut c: BTreeMap<&str, u64> = BTreeMap::new();
    for t in truth.values() {
        let mut add = |k: &'static str| *c.entry(k).or_default() += 1;
        if t.received_at.is_some_and(inside) {
            add("received");
            add(match t.channel.unwrap() {
                Channel::Online => "online",
                Channel::Postal => "postal",
                Channel::Direct => "direct",
            });
            if t.digitised {
                add("digitised");
            }
        }
        if t.received_at.is_some_and(|r| r < start) && open_at(t, start) {
            add("carried_over");
        }
        if let Some(r) = t.resolved_at.filter(|r| inside(*r)) {
            add("resolved");
            let due = t.due_at.unwrap();
            add(if r > due {
                "overdue"
            } else if r.local_date() < due.local_date() {
                "early"
            } else {
                "on_time"
            });
        }
        if let Some((kind, _, postal)) = t.closed.filter(|c| inside(c.1)) {
            add(kind);
            if postal {
                add("returned_postal");
            }
        }
        if open_at(t, end) {
            add("in_progress");
            if t.due_at.is_some_and(|d| d < end) {
                add("in_progress_overdue");
            }
        }
    }
    let mut scores: BTreeMap<(String, Score), u64> = BTreeMap::new();
    let mut unit_scores = [0u64; 3];
    for r in ratings.iter().filter(|r| inside(r.at)) {
        *scores.entry((r.official.clone(), r.score)).or_default() += 1;
        unit_scores[Score::ALL.iter().position(|s| *s == r.score).unwrap()] += 1;
    }
    let n = |k: &str| c.get(k).copied().unwrap_or(0);
    for k in [
        "carried_over",
        "in_progress",
        "overdue",
        "early",
        "on_time",
        "returned_postal",
        "refused",
    ] {
        assert!(n(k) > 0, "the data set must exercise {k}");
    }
    let received = n("received");
    let resolved = n("resolved");
    assert_eq!(report["received"]["total"], received);
    assert_eq!(report["received"]["carried_over"], n("carried_over"));
    assert_eq!(
        report["received"]["to_process"],
        received + n("carried_over")
    );
    for ch in ["online", "postal", "direct", "digitised"] {
        assert_eq!(report["received"][ch]["count"], n(ch), "{ch}");
        assert_eq!(
            report["received"][ch]["percent"],
            pct(n(ch), received),
            "{ch}"
        );
    }
    assert_eq!(report["resolved"]["total"], resolved);
    assert_eq!(
        report["resolved"]["percent_of_to_process"],
        pct(resolved, received + n("carried_over"))
    );
    for o in ["early", "on_time", "overdue"] {
        assert_eq!(report["resolved"][o]["count"], n(o), "{o}");
        assert_eq!(report["resolved"][o]["percent"], pct(n(o), resolved), "{o}");
    }
    for k in ["returned", "refused", "withdrawn", "stopped"] {
        assert_eq!(report["resolved"][k], n(k), "{k}");
    }
    assert_eq!(
        report["resolved"]["returned_postal"]["count"],
        n("returned_postal")
    );
    assert_eq!(
        report["resolved"]["returned_postal"]["percent"],
        pct(n("returned_postal"), n("returned"))
    );
    assert_eq!(report["in_progress"]["total"], n("in_progress"));
    assert_eq!(report["in_progress"]["overdue"], n("in_progress_overdue"));
    assert_eq!(
        report["in_progress"]["not_yet_due"],
        n("in_progress") - n("in_progress_overdue")
    );
    let rated: u64 = unit_scores.iter().sum();
    assert!(rated > 0, "the data set must exercise ratings");
    assert_eq!(report["ratings"]["total"], rated);
    assert_eq!(
        report["ratings"]["satisfied"]["percent"],
        pct(unit_scores[0], rated)
    );
    assert_eq!(report["ratings"]["dissatisfied"]["count"], unit_scores[2]);
    for row in report["by_official"].as_array().unwrap() {
        let official = row["official"].as_str().unwrap().to_owned();
        for (i, s) in Score::ALL.iter().enumerate() {
            let expected = scores.get(&(official.clone(), *s)).copied().unwrap_or(0);
            let key = ["satisfied", "neutral", "dissatisfied"][i];
            assert_eq!(row["ratings"][key]["count"], expected, "{official} {key}");
        }
    }
    assert_eq!(
        report["by_official"].as_array().unwrap().len(),
        scores
            .keys()
            .map(|k| &k.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    let idx = &report["index_766"];
    assert_eq!(idx["online_share"], pct(n("online"), received));
    assert_eq!(
        idx["timely_share"],
        pct(n("early") + n("on_time"), resolved)
    );
    assert_eq!(idx["digitised_share"], pct(n("digitised"), received));
    assert_eq!(
        idx["satisfaction"],
        pct(
            received.saturating_sub(unit_scores[2] + n("overdue")),
            received
        )
    );
    // Per procedure and per agency rows add up to the totals.
    for breakdown in ["by_procedure", "by_agency", "by_unit"] {
        let rows = report[breakdown].as_array().unwrap();
        let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("received"), received, "{breakdown}");
        assert_eq!(sum("resolved"), resolved, "{breakdown}");
        assert_eq!(sum("overdue"), n("overdue"), "{breakdown}");
        assert_eq!(sum("in_progress"), n("in_progress"), "{breakdown}");
    }
}
