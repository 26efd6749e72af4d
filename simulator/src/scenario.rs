//! Scenario files (`simulator/scenarios/*.toml`): the network, its workload, its faults and the
//! seeds a scenario is run with.
//!
//! Why a file: testers describe a province's situation (how many communes, how bad the links,
//! which faults) without touching code, and a failing seed is replayed from the same file. Every
//! field has a default calibrated on DOMAIN.md, so a scenario names only what it changes.

use serde::{Deserialize, Serialize};

/// Most communes a scenario may have (the largest province has 168).
pub const COMMUNES_COUNT_MAX: usize = 200;
/// Most simulated days.
pub const DAYS_MAX: u32 = 366;
/// Most Byzantine nodes.
pub const BYZANTINE_COUNT_MAX: usize = 16;

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The TOML does not parse.
    #[error("scenario does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("scenario field {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The seeds CI runs it with.
    pub seeds: Vec<u64>,
    /// The first simulated local day, `YYYY-MM-DD`.
    pub start_date: String,
    /// Simulated days of workload and faults (the heal window follows).
    pub days: u32,
    /// Hours after the last day with every fault healed and no new work, for convergence.
    pub heal_hours: u32,
    /// Number of communes.
    pub communes: usize,
    /// Whether an auditor node (receives everything, writes nothing) follows the province.
    pub auditor: bool,
    /// The workload.
    pub workload: Workload,
    /// Links.
    pub network: Network,
    /// Session settings.
    pub session: SessionSettings,
    /// Faults at honest nodes.
    pub faults: Faults,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Byzantine nodes.
    pub byzantine: Vec<Byzantine>,
    /// USB bundles.
    pub bundles: Bundles,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            description: String::new(),
            seeds: vec![1],
            start_date: "2025-11-03".into(),
            days: 2,
            heal_hours: 12,
            communes: 3,
            auditor: false,
            workload: Workload::default(),
            network: Network::default(),
            session: SessionSettings::default(),
            faults: Faults::default(),
            partitions: Vec::new(),
            byzantine: Vec::new(),
            bundles: Bundles::default(),
        }
    }
}

/// The calibrated workload (DOMAIN.md and issue 4's figures).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Dossiers a commune receives per working day (DOMAIN.md: tens).
    pub commune_dossiers_per_day: f64,
    /// Dossiers the provincial centre receives per working day (DOMAIN.md: 250-300).
    pub province_dossiers_per_day: f64,
    /// Share submitted online (DOMAIN.md: 64-80%).
    pub online_share: f64,
    /// Share submitted by post (about 3%).
    pub postal_share: f64,
    /// Share of online dossiers first registered and accepted later.
    pub registered_first_share: f64,
    /// Share refused at intake.
    pub refused_share: f64,
    /// Share withdrawn by the citizen during processing.
    pub withdrawn_share: f64,
    /// Share with a supplement request.
    pub supplement_share: f64,
    /// Share with fees to pay.
    pub payment_share: f64,
    /// Share of a commune's dossiers transferred to the province (liên thông).
    pub transfer_share: f64,
    /// Share of the province's dossiers transferred to a commune.
    pub province_transfer_share: f64,
    /// Share resolved after the due instant (under 1%).
    pub overdue_share: f64,
    /// Share of results returned by post (about 18%).
    pub returned_postal_share: f64,
    /// Share of results returned online.
    pub returned_online_share: f64,
    /// Share of dossiers rated (about 13%).
    pub rating_share: f64,
    /// Share of ratings that are satisfied (about 99.5%).
    pub satisfied_share: f64,
    /// Share of ratings that are dissatisfied (the rest of the unsatisfied are neutral).
    pub dissatisfied_share: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            commune_dossiers_per_day: 20.0,
            province_dossiers_per_day: 40.0,
            online_share: 0.70,
            postal_share: 0.03,
            registered_first_share: 0.2,
            refused_share: 0.02,
            withdrawn_share: 0.01,
            supplement_share: 0.08,
            payment_share: 0.3,
            transfer_share: 0.05,
            province_transfer_share: 0.03,
            overdue_share: 0.005,
            returned_postal_share: 0.18,
            returned_online_share: 0.2,
            rating_share: 0.13,
            satisfied_share: 0.995,
            dissatisfied_share: 0.001,
        }
    }
}

/// Link conditions between each commune and the province.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Extra random one-way delay, up to this, ms.
    pub jitter_ms: u64,
    /// Commune link bandwidth each way, kbit/s (serialisation delay).
    pub bandwidth_kbps: u64,
    /// Per message: probability that a packet of it was lost and retransmitted (adds a
    /// retransmission timeout; QUIC keeps the stream in order, so the message is delayed, not
    /// reordered).
    pub loss: f64,
    /// Per message: probability that the connection dies (the peer sees an idle timeout and
    /// redials).
    pub drop: f64,
    /// Local hour at which commune links come up each day (with `up_hours`).
    pub up_from_hour: u32,
    /// Hours a commune link stays up each day (24: always up).
    pub up_hours: u32,
    /// Share of communes whose link follows the daily window; the rest are always up.
    pub daily_window_share: f64,
    /// Communes (1-based) with no network link at all: bundles only.
    pub no_link: Vec<usize>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: 40,
            jitter_ms: 20,
            bandwidth_kbps: 512,
            loss: 0.01,
            drop: 0.0005,
            up_from_hour: 0,
            up_hours: 24,
            daily_window_share: 0.0,
            no_link: Vec::new(),
        }
    }
}

/// How the simulator's driver runs sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Anti-entropy interval in minutes (0: none). The node uses 30.
    pub anti_entropy_minutes: u64,
    /// Wake every session of a node when its feed grows (`true`, as the node's driver does), or
    /// only the sessions whose peer's scope admits one of the new changes (`false`: the same
    /// protocol, fewer wake-ups; see ARCHITECTURE.md).
    pub wake_all: bool,
    /// How long a node's writer holds back imports to share a commit, ms (the node's
    /// `writer::IMPORT_LINGER_MS`; 0: each import is written at once).
    pub import_linger_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            anti_entropy_minutes: 30,
            wake_all: true,
            import_linger_ms: motcua_node::writer::IMPORT_LINGER_MS,
        }
    }
}

/// Faults at honest nodes, placed at random instants of the fault window by the run's seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Crashes (power cut: what was not synced is lost), each followed by a restart.
    pub crashes: u32,
    /// Minutes a crashed node stays down, at most.
    pub crash_down_minutes_max: u64,
    /// Whether the province may be the one that crashes.
    pub province_crashes: bool,
    /// Restores of a commune from a backup taken this many hours earlier.
    pub restores: u32,
    /// Age of the backup restored, hours.
    pub restore_backup_age_hours: u64,
    /// Nodes whose clock is off by a constant skew.
    pub clock_skews: u32,
    /// Largest skew, minutes (either way).
    pub clock_skew_minutes_max: u64,
    /// Sudden clock jumps at a node.
    pub clock_jumps: u32,
    /// Largest jump, hours (either way; kept under the enrolment back-dating).
    pub clock_jump_hours_max: u64,
    /// Disks that fail writes for a while.
    pub disk_failures: u32,
    /// How long a disk fails, minutes.
    pub disk_failure_minutes: u64,
    /// Whether the operator of a restored commune lets it sync with the province before the
    /// counter reopens (`false`: intake goes on at once, from the restored sequence numbers).
    pub restore_waits_for_sync: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            crashes: 0,
            crash_down_minutes_max: 30,
            province_crashes: true,
            restores: 0,
            restore_backup_age_hours: 6,
            clock_skews: 0,
            clock_skew_minutes_max: 10,
            clock_jumps: 0,
            clock_jump_hours_max: 24,
            disk_failures: 0,
            disk_failure_minutes: 20,
            restore_waits_for_sync: true,
        }
    }
}

/// A partition: some links are down for a while.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Start, hours after the run starts.
    pub at_hours: f64,
    /// Duration, hours.
    pub hours: f64,
    /// Who is cut off: `province` (every link), `all`, or a list of commune numbers (1-based).
    pub cut: Cut,
}

/// Who a partition cuts off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cut {
    /// `"province"` or `"all"`: every link.
    Named(String),
    /// Commune numbers, 1-based.
    Communes(Vec<usize>),
}

/// A Byzantine node and what it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Byzantine {
    /// Enrolled as a commune (`true`) or not enrolled at all.
    pub enrolled: bool,
    /// Changes with a broken signature.
    pub forged: u32,
    /// Validly signed changes to another unit's dossiers (refused as out of scope).
    pub out_of_scope: u32,
    /// Out-of-scope changes whose dependencies are missing (held pending, never applied).
    pub out_of_scope_pending: u32,
    /// Pairs of different changes with one actor and seq.
    pub equivocations: u32,
    /// Honest-looking dossiers of its own unit (accepted).
    pub valid: u32,
    /// Oversized frames sent on the wire.
    pub oversized: u32,
    /// Malformed messages sent on the wire.
    pub malformed: u32,
    /// Earlier messages sent again on the wire.
    pub replays: u32,
}

impl Default for Byzantine {
    fn default() -> Self {
        Byzantine {
            enrolled: true,
            forged: 3,
            out_of_scope: 2,
            out_of_scope_pending: 1,
            equivocations: 2,
            valid: 3,
            oversized: 1,
            malformed: 1,
            replays: 1,
        }
    }
}

/// USB bundles carried between communes and the province.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bundles {
    /// Communes (1-based) that carry bundles (each way).
    pub communes: Vec<usize>,
    /// A bundle is cut every this many days.
    pub every_days: u32,
    /// Local hour at which bundles are cut.
    pub hour: u32,
    /// Hours the stick travels.
    pub travel_hours: u32,
    /// Probability that a stick is pulled out early (truncated bundle).
    pub truncated_share: f64,
    /// Probability that a bundle is imported twice.
    pub duplicated_share: f64,
    /// Probability that a stick is delayed a day (arriving after the next one: out of order).
    pub delayed_share: f64,
}

impl Default for Bundles {
    fn default() -> Self {
        Bundles {
            communes: Vec::new(),
            every_days: 1,
            hour: 16,
            travel_hours: 3,
            truncated_share: 0.1,
            duplicated_share: 0.2,
            delayed_share: 0.2,
        }
    }
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// The first local day.
    pub fn start(&self) -> Result<time::Date, ScenarioError> {
        motcua_schema::timestamp::parse_date(&self.start_date).ok_or(ScenarioError::Invalid {
            field: "start_date",
            message: "must be YYYY-MM-DD".into(),
        })
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |field: &'static str, message: &str| {
            Err(ScenarioError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        self.start()?;
        if self.communes == 0 || self.communes > COMMUNES_COUNT_MAX {
            return bad("communes", "must be 1..=200");
        }
        if self.days == 0 || self.days > DAYS_MAX {
            return bad("days", "must be 1..=366");
        }
        if self.byzantine.len() > BYZANTINE_COUNT_MAX {
            return bad("byzantine", "at most 16 nodes");
        }
        if self.network.up_hours == 0
            || self.network.up_hours > 24
            || self.network.up_from_hour > 23
        {
            return bad("network.up_hours", "must be 1..=24, from hour 0..=23");
        }
        if self.network.bandwidth_kbps == 0 {
            return bad("network.bandwidth_kbps", "must be positive");
        }
        let communes = |list: &[usize]| list.iter().all(|c| (1..=self.communes).contains(c));
        if !communes(&self.network.no_link) || !communes(&self.bundles.communes) {
            return bad("communes lists", "commune numbers are 1..=communes");
        }
        for p in &self.partitions {
            match &p.cut {
                Cut::Named(n) if n == "province" || n == "all" => {}
                Cut::Named(_) => return bad("partitions.cut", "\"province\", \"all\" or a list"),
                Cut::Communes(list) if communes(list) => {}
                Cut::Communes(_) => return bad("partitions.cut", "commune numbers out of range"),
            }
        }
        if self.bundles.every_days == 0 {
            return bad("bundles.every_days", "must be positive");
        }
        if self.faults.clock_jump_hours_max > 24 * 20 {
            return bad("faults.clock_jump_hours_max", "at most 20 days");
        }
        Ok(())
    }
}
