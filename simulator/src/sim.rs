//! The discrete-event loop: one province's nodes, their links, workload and faults on simulated
//! time, driven by one seed.
//!
//! Why one loop and no threads: the same seed and commit must give the same run byte for byte.
//! Every action (a message arriving, a session timer, a citizen at the counter, a crash) is an
//! event with a time and a sequence number; events run one at a time in (time, sequence) order,
//! and every random choice draws from the run's one [`Rng`] in that order. A SHA-256 over what
//! each event did (the trace hash) lets a test check that two runs are identical.
//!
//! The sessions are the real `motcua_sync::Session`; their driver here does what the node's
//! `replication::link` does (verify a batch, import it with its checkpoint in one transaction
//! through `writer::execute`, then `applied`), with simulated time and network. Imports wait in
//! the node's writer as they do in the node (`writer::IMPORT_LINGER_MS`): a node's imports of
//! one linger share one transaction.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use ed25519_dalek::SigningKey;
use motcua_node::commands::{CommandError, EventRequest, NewDossier, NewRating};
use motcua_node::replication::bundle::{AfterBundle, checkpoint_after, start_after};
use motcua_node::replication::source::LazySnapshot;
use motcua_node::replication::{
    CONNECTION_STABLE_MS, DIAL_TIMEOUT_MS, FeedStart, IDLE_TIMEOUT_MS, REDIAL_BACKOFF_MS_MAX,
    REDIAL_BACKOFF_MS_MIN, import_command, scope_of, start_session,
};
use motcua_node::store::peers::FeedMark;
use motcua_node::writer::{Command, Reply, may_wait_for_more};
use motcua_schema::calendar::Calendar;
use motcua_schema::catalog::{Catalog, Level};
use motcua_schema::dossier::{Event as DossierEvent, EventBody, Header};
use motcua_schema::ids::UnitCode;
use motcua_schema::rating::Rating;
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Role, SignedRecord};
use motcua_sync::bundle::{bundle_bytes, read_bundle};
use motcua_sync::wire::MESSAGE_SIZE_BYTES_MAX;
use motcua_sync::{
    ApplyReport, ChangeStore, Checkpoint, Event, Local, Scope, Session, SessionConfig,
};
use sha2::{Digest, Sha256};

use crate::byz::ByzNode;
use crate::net::{Conditions, Conn, End, Fate, Link, Remote, Window};
use crate::node::{HonestNode, Kind, NewEntry, role_of};
use crate::rng::Rng;
use crate::scenario::{Cut, Scenario};
use crate::track::{Tracker, doc_unit};
use crate::truth::{Truth, due_at};
use crate::workload::{DAY_MS, HOUR_MS, Plan, StepKind, WorkTime, draw_intake, draw_plan};

/// How often staleness is sampled, ms.
pub const SAMPLE_INTERVAL_MS: u64 = 30 * 60_000;
/// How often convergence is probed while a heal is pending, ms.
pub const PROBE_INTERVAL_MS: u64 = 10_000;
/// How long a run goes on after it converged, ms (lets sessions settle before the checks).
pub const SETTLE_AFTER_CONVERGENCE_MS: u64 = 10 * 60_000;
/// Wait before retrying a step whose node is down or whose write failed, ms.
pub const STEP_RETRY_MS: u64 = 15 * 60_000;
/// Most retries of one step before it is abandoned.
pub const STEP_RETRIES_COUNT_MAX: u32 = 7 * 24 * 4;
/// Wait before retrying a bundle import at a node that is down, ms.
pub const BUNDLE_RETRY_MS: u64 = HOUR_MS;
/// Wait before retrying a Byzantine wire attack when not connected, ms.
pub const ATTACK_RETRY_MS: u64 = 10 * 60_000;
/// Nodes first dial within this long of the start, ms (so a hundred do not dial at once).
pub const INITIAL_DIAL_SPREAD_MS: u64 = 5_000;
/// Validity of enrolments before the run starts, ms (clock jumps stay inside it).
pub const ENROLMENT_BACKDATE_MS: i64 = 30 * DAY_MS as i64;

/// What one event is.
#[derive(Debug)]
enum Ev {
    Deliver {
        link: usize,
        generation: u64,
        to: End,
        bytes: Vec<u8>,
    },
    Timer {
        link: usize,
        generation: u64,
        end: End,
    },
    ConnDead {
        link: usize,
        generation: u64,
    },
    Dial {
        link: usize,
    },
    Established {
        link: usize,
    },
    FeedWake {
        node: usize,
    },
    Intake {
        node: usize,
    },
    Step {
        plan: usize,
    },
    HourTick,
    Sample,
    Probe,
    Heal,
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Backup {
        node: usize,
        slot: usize,
    },
    Restore {
        node: usize,
        slot: usize,
    },
    ClockShift {
        node: usize,
        delta_ms: i64,
    },
    DiskFail {
        node: usize,
    },
    DiskOk {
        node: usize,
    },
    PartitionStart {
        index: usize,
    },
    PartitionEnd {
        index: usize,
    },
    BundleCut {
        node: usize,
    },
    BundleArrive {
        bundle: usize,
    },
    Attack {
        byz: usize,
        kind: Attack,
    },
    /// A node's writer ends its linger (`round`: the gathering it was scheduled for).
    ImportFlush {
        node: usize,
        round: u64,
    },
}

impl Ev {
    fn code(&self) -> u8 {
        match self {
            Ev::Deliver { .. } => 1,
            Ev::Timer { .. } => 2,
            Ev::ConnDead { .. } => 3,
            Ev::Dial { .. } => 4,
            Ev::Established { .. } => 5,
            Ev::FeedWake { .. } => 6,
            Ev::Intake { .. } => 7,
            Ev::Step { .. } => 8,
            Ev::HourTick => 9,
            Ev::Sample => 10,
            Ev::Probe => 11,
            Ev::Heal => 12,
            Ev::Crash { .. } => 13,
            Ev::Restart { .. } => 14,
            Ev::Backup { .. } => 15,
            Ev::Restore { .. } => 16,
            Ev::ClockShift { .. } => 17,
            Ev::DiskFail { .. } => 18,
            Ev::DiskOk { .. } => 19,
            Ev::PartitionStart { .. } => 20,
            Ev::PartitionEnd { .. } => 21,
            Ev::BundleCut { .. } => 22,
            Ev::BundleArrive { .. } => 23,
            Ev::Attack { .. } => 24,
            Ev::ImportFlush { .. } => 25,
        }
    }
}

/// A Byzantine wire attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// A frame larger than the protocol allows.
    Oversized,
    /// Bytes that are not a message.
    Malformed,
    /// A message it sent before, again.
    Replay,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A bundle on its way.
struct Bundle {
    to: usize,
    from_key: [u8; 32],
    bytes: Vec<u8>,
    twice: bool,
}

/// A heal whose convergence is being timed.
#[derive(Debug, Clone, Copy)]
pub struct PendingHeal {
    /// When it healed, ms.
    pub at: u64,
    /// The commune node.
    pub node: usize,
}

/// Everything measured during a run.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events processed.
    pub events: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Connections established.
    pub connections: u64,
    /// Bytes sent in each simulated hour (whole network).
    pub traffic_by_hour: Vec<u64>,
    /// Staleness samples per commune: (time ms, staleness ms).
    pub staleness: BTreeMap<usize, Vec<(u64, u64)>>,
    /// Convergence after each heal: (heal time ms, node, ms to converge; `None` when it broke
    /// again first).
    pub heals: Vec<(u64, usize, Option<u64>)>,
    /// Refusals and failures by reason.
    pub rejects: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Workload: acknowledged writes by kind.
    pub acked: BTreeMap<String, u64>,
    /// Workload: refused or abandoned requests by reason.
    pub refused: BTreeMap<String, u64>,
    /// Write transactions committed, by what they were for.
    pub commits: BTreeMap<&'static str, u64>,
    /// Reconciliations that decoded, and those that fell back to the feed.
    pub reconciliations: [u64; 2],
    /// Violations noticed while running (each is a failed check).
    pub violations: Vec<String>,
    /// When every node had converged after the final heal, ms.
    pub converged_at: Option<u64>,
    /// When the final heal happened, ms.
    pub healed_at: Option<u64>,
}

/// A run in progress.
pub struct Sim {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    rng: Rng,
    /// Simulated time, ms since the first local midnight.
    pub now: u64,
    /// Unix ms of the first local midnight.
    pub base_ms: i64,
    /// When faults and work stop and the network heals, ms.
    pub fault_end_ms: u64,
    /// When the run ends at the latest, ms.
    pub end_ms: u64,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    /// Honest nodes: 0 is the province, then the communes, then the auditor.
    pub nodes: Vec<HonestNode>,
    /// Byzantine nodes.
    pub byz: Vec<ByzNode>,
    /// Links, one per node that replicates with the province.
    pub links: Vec<Link>,
    node_link: Vec<Option<usize>>,
    conditions: Conditions,
    session_config: SessionConfig,
    /// Who holds what.
    pub tracker: Tracker,
    /// What happened.
    pub truth: Truth,
    /// Measurements.
    pub metrics: Metrics,
    plans: Vec<Plan>,
    catalog: Catalog,
    calendar: Calendar,
    work: WorkTime,
    workload_active: bool,
    healed: bool,
    wake_pending: Vec<Option<(bool, BTreeSet<String>)>>,
    /// Per node: the imports its writer holds back, and the number of the gathering.
    gathered: Vec<(Vec<Gathered>, u64)>,
    /// The (link, end, connection generation) sessions one of whose imports failed to be
    /// written: their later batches are not written either, as the node's writer refuses a
    /// link's writes after a failed one (`writer::WriteOrder`).
    write_failed: BTreeSet<(usize, End, u64)>,
    local_writes: Vec<VecDeque<(u64, [u8; 32])>>,
    backups: Vec<Option<Vec<u8>>>,
    bundles: Vec<Option<Bundle>>,
    pending_heals: Vec<PendingHeal>,
    probe_scheduled: bool,
    wait_for_sync: Vec<bool>,
    partitions_links: Vec<Vec<usize>>,
    trace: Sha256,
}

/// What a node's writer held back, taken to be written: each held batch's answer (and whether
/// it carried a command), and the commands, in order.
struct Held {
    answers: Vec<HeldAnswer>,
    commands: Vec<Command>,
}

/// The session batch a held write answers, if any ((link, end, connection generation, batch)),
/// and whether the write carried a command.
type HeldAnswer = (Option<(usize, End, u64, u64)>, bool);

/// A write a node's writer holds back (an import, or what it notes about a peer), and the
/// session batch to answer when it is written.
struct Gathered {
    /// (link, end, connection generation, batch); `None`: nobody waits for it.
    answer: Option<(usize, End, u64, u64)>,
    /// `None`: a batch that writes nothing, answered in its turn after the link's earlier
    /// batches (as the node's link applier does).
    command: Option<Command>,
}

fn hex8(key: &[u8]) -> String {
    hex::encode(&key[..8.min(key.len())])
}

fn key_from(rng: &mut Rng) -> SigningKey {
    let mut b = [0u8; 32];
    rng.fill(&mut b);
    SigningKey::from_bytes(&b)
}

fn id16(rng: &mut Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[0] |= 1;
    b
}

fn epoch(rng: &mut Rng) -> [u8; 8] {
    let mut b = [0u8; 8];
    rng.fill(&mut b);
    b
}

/// The unit code of commune `i` (1-based): `000.<hundreds>.<rest>.H99`.
pub fn commune_unit(i: usize) -> UnitCode {
    UnitCode::new(&format!("000.{:02}.{:02}.H99", i / 100, i % 100)).expect("valid unit code")
}

/// The province's unit code.
pub fn province_unit() -> UnitCode {
    UnitCode::new("000.00.00.H99").expect("valid unit code")
}

impl Sim {
    /// Sets up a run of `scenario` with `seed`: keys, enrolments, stores, links, and every
    /// scheduled workload, fault and partition.
    pub fn new(scenario: &Scenario, seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let start = scenario.start().expect("validated");
        let base_ms = Timestamp::start_of_local_day(start).0;
        let fault_end_ms = u64::from(scenario.days) * DAY_MS;
        let end_ms = fault_end_ms + u64::from(scenario.heal_hours) * HOUR_MS;
        let calendar = motcua_schema::sample::sample_calendar();
        let catalog = motcua_schema::sample::sample_catalog();
        let root = key_from(&mut rng);
        let t0 = Timestamp(base_ms);
        let valid_from = Timestamp(base_ms - ENROLMENT_BACKDATE_MS);
        let mut nodes = Vec::new();
        let mut records: Vec<SignedRecord> = Vec::new();
        let f = &scenario.faults;
        let journal = f.crashes > 0 || f.restores > 0 || f.disk_failures > 0;
        let add_node = |nodes: &mut Vec<HonestNode>,
                        records: &mut Vec<SignedRecord>,
                        rng: &mut Rng,
                        name: String,
                        kind: Kind,
                        unit: UnitCode| {
            let key = key_from(rng);
            records.push(motcua_node::setup::enrolment(
                &root,
                &key.verifying_key(),
                &unit,
                &name,
                role_of(kind),
                valid_from,
                t0,
            ));
            let index = nodes.len();
            let store_id = id16(rng);
            let e = epoch(rng);
            nodes.push(HonestNode::new(
                index,
                name,
                kind,
                unit,
                key,
                root.verifying_key(),
                store_id,
                e,
                journal,
            ));
        };
        add_node(
            &mut nodes,
            &mut records,
            &mut rng,
            "province".into(),
            Kind::Province,
            province_unit(),
        );
        for i in 1..=scenario.communes {
            add_node(
                &mut nodes,
                &mut records,
                &mut rng,
                format!("commune-{i:03}"),
                Kind::Commune,
                commune_unit(i),
            );
        }
        if scenario.auditor {
            add_node(
                &mut nodes,
                &mut records,
                &mut rng,
                "auditor".into(),
                Kind::Auditor,
                UnitCode::new("000.00.00.TTR").expect("valid"),
            );
        }
        let mut byz = Vec::new();
        for (i, spec) in scenario.byzantine.iter().enumerate() {
            let key = key_from(&mut rng);
            let unit = UnitCode::new(&format!("000.99.{:02}.H99", i + 1)).expect("valid");
            if spec.enrolled {
                records.push(motcua_node::setup::enrolment(
                    &root,
                    &key.verifying_key(),
                    &unit,
                    "xã giả mạo",
                    Role::Commune,
                    valid_from,
                    t0,
                ));
            }
            let victim = commune_unit(1 + i % scenario.communes);
            byz.push(ByzNode::new(
                format!("byzantine-{}", i + 1),
                unit,
                key,
                spec.clone(),
                &victim,
                start,
                Timestamp(base_ms + 9 * HOUR_MS as i64),
                &mut rng,
            ));
        }
        let work = WorkTime::new(base_ms, calendar.clone());
        // The node's own session settings, with the scenario's anti-entropy interval.
        let session_config = motcua_node::replication::session_config(
            (scenario.session.anti_entropy_minutes > 0)
                .then_some(scenario.session.anti_entropy_minutes * 60_000),
        );
        let conditions = Conditions {
            latency_ms: scenario.network.latency_ms,
            jitter_ms: scenario.network.jitter_ms,
            bandwidth_kbps: scenario.network.bandwidth_kbps,
            loss: scenario.network.loss,
            drop: scenario.network.drop,
        };
        let n = nodes.len();
        let mut tracker = Tracker::new(n);
        tracker.set_receives_all(0);
        for node in &nodes {
            match node.kind {
                Kind::Commune => tracker.set_unit(node.index, node.unit.as_str()),
                Kind::Auditor => tracker.set_receives_all(node.index),
                Kind::Province => {}
            }
        }
        let mut sim = Sim {
            scenario: scenario.clone(),
            seed,
            rng,
            now: 0,
            base_ms,
            fault_end_ms,
            end_ms,
            heap: BinaryHeap::new(),
            seq: 0,
            nodes,
            byz,
            links: Vec::new(),
            node_link: vec![None; n],
            conditions,
            session_config,
            tracker,
            truth: Truth::default(),
            metrics: Metrics::default(),
            plans: Vec::new(),
            catalog,
            calendar,
            work,
            workload_active: true,
            healed: false,
            wake_pending: vec![None; n],
            gathered: (0..n).map(|_| (Vec::new(), 0)).collect(),
            write_failed: BTreeSet::new(),
            local_writes: vec![VecDeque::new(); n],
            backups: Vec::new(),
            bundles: Vec::new(),
            pending_heals: Vec::new(),
            probe_scheduled: false,
            wait_for_sync: vec![false; n],
            partitions_links: Vec::new(),
            trace: Sha256::new(),
        };
        sim.trace.update(seed.to_be_bytes());
        sim.setup_stores(records);
        sim.setup_links();
        sim.schedule_all();
        sim
    }

    fn setup_stores(&mut self, records: Vec<SignedRecord>) {
        let setup_time = Timestamp(self.base_ms - HOUR_MS as i64);
        for n in 0..self.nodes.len() {
            let out =
                self.nodes[n].run_batch(setup_time, vec![Command::AddRecords(records.clone())]);
            assert!(out.committed, "setting up {} failed", self.nodes[n].name);
            self.after_commit(n, out.new_entries, false);
        }
        // The province publishes the catalog and calendar, as `motcua init` does.
        let catalog = motcua_schema::sample::sample_catalog();
        let calendar = motcua_schema::sample::sample_calendar();
        let out = self.nodes[0].run_batch(
            setup_time,
            vec![
                Command::PutReference {
                    kind: "catalog",
                    version: catalog.version,
                    json: serde_json::to_string(&catalog).expect("catalog serialises"),
                },
                Command::PutReference {
                    kind: "calendar",
                    version: 1,
                    json: serde_json::to_string(&calendar).expect("calendar serialises"),
                },
            ],
        );
        assert!(out.committed, "publishing reference data failed");
        self.after_commit(0, out.new_entries, false);
    }

    fn setup_links(&mut self) {
        let net = &self.scenario.network;
        let window = Window {
            from_hour: net.up_from_hour,
            hours: net.up_hours,
        };
        for n in 1..self.nodes.len() {
            let commune = (self.nodes[n].kind == Kind::Commune).then_some(n);
            let has_network = commune.is_none_or(|c| !net.no_link.contains(&c));
            let daily =
                commune.is_some() && net.up_hours < 24 && self.rng.chance(net.daily_window_share);
            if !has_network
                && !self
                    .scenario
                    .bundles
                    .communes
                    .contains(&commune.unwrap_or(0))
            {
                self.tracker.untrack(n);
            }
            self.node_link[n] = Some(self.links.len());
            self.links.push(new_link(
                Remote::Honest(n),
                has_network,
                daily.then_some(window),
            ));
        }
        for b in 0..self.byz.len() {
            self.links.push(new_link(Remote::Byz(b), true, None));
        }
        let hour = self.local_hour();
        for l in 0..self.links.len() {
            self.links[l].refresh(hour);
        }
    }

    fn schedule_all(&mut self) {
        let s = self.scenario.clone();
        for l in 0..self.links.len() {
            let delay = self.rng.below(INITIAL_DIAL_SPREAD_MS);
            self.schedule(delay, Ev::Dial { link: l });
            self.links[l].dialing = true;
        }
        self.schedule(HOUR_MS - self.now % HOUR_MS, Ev::HourTick);
        self.schedule(SAMPLE_INTERVAL_MS, Ev::Sample);
        self.schedule_at(self.fault_end_ms, Ev::Heal);
        for n in 0..self.nodes.len() {
            if matches!(self.nodes[n].kind, Kind::Province | Kind::Commune) {
                let first = self.next_arrival(n, 0);
                self.schedule_at(first, Ev::Intake { node: n });
            }
        }
        let window = self.fault_end_ms.saturating_sub(2 * HOUR_MS).max(HOUR_MS);
        let communes: Vec<usize> = (1..=s.communes).collect();
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|n| *n != 0 || s.faults.province_crashes)
            .collect();
        for _ in 0..s.faults.crashes {
            let node = honest[self.rng.below(honest.len() as u64) as usize];
            let at = self.rng.range(HOUR_MS, window);
            let down = self
                .rng
                .range(60_000, s.faults.crash_down_minutes_max.max(1) * 60_000);
            self.schedule_at(at, Ev::Crash { node });
            self.schedule_at(at + down, Ev::Restart { node });
            *self.metrics.faults.entry("crash".into()).or_default() += 1;
        }
        for _ in 0..s.faults.restores {
            let node = communes[self.rng.below(communes.len() as u64) as usize];
            let at = self.rng.range(HOUR_MS, window);
            let slot = self.backups.len();
            self.backups.push(None);
            let backup_at = at.saturating_sub(s.faults.restore_backup_age_hours * HOUR_MS);
            self.schedule_at(backup_at, Ev::Backup { node, slot });
            self.schedule_at(at, Ev::Restore { node, slot });
            *self
                .metrics
                .faults
                .entry("restore from backup".into())
                .or_default() += 1;
        }
        for _ in 0..s.faults.clock_skews {
            let node = communes[self.rng.below(communes.len() as u64) as usize];
            let minutes = self.rng.range(1, s.faults.clock_skew_minutes_max.max(1)) as i64;
            let sign = if self.rng.chance(0.5) { -1 } else { 1 };
            self.nodes[node].clock_offset_ms += sign * minutes * 60_000;
            *self.metrics.faults.entry("clock skew".into()).or_default() += 1;
        }
        for _ in 0..s.faults.clock_jumps {
            let node = communes[self.rng.below(communes.len() as u64) as usize];
            let at = self.rng.range(HOUR_MS, window);
            let hours = self.rng.range(1, s.faults.clock_jump_hours_max.max(1)) as i64;
            let sign = if self.rng.chance(0.5) { -1 } else { 1 };
            let delta = sign * hours * HOUR_MS as i64;
            let back = self.rng.range(HOUR_MS, 12 * HOUR_MS);
            self.schedule_at(
                at,
                Ev::ClockShift {
                    node,
                    delta_ms: delta,
                },
            );
            self.schedule_at(
                (at + back).min(self.fault_end_ms),
                Ev::ClockShift {
                    node,
                    delta_ms: -delta,
                },
            );
            *self.metrics.faults.entry("clock jump".into()).or_default() += 1;
        }
        for _ in 0..s.faults.disk_failures {
            let node = honest[self.rng.below(honest.len() as u64) as usize];
            let at = self.rng.range(HOUR_MS, window);
            self.schedule_at(at, Ev::DiskFail { node });
            self.schedule_at(
                (at + s.faults.disk_failure_minutes * 60_000).min(self.fault_end_ms),
                Ev::DiskOk { node },
            );
            *self
                .metrics
                .faults
                .entry("disk failure".into())
                .or_default() += 1;
        }
        for (i, p) in s.partitions.iter().enumerate() {
            let links: Vec<usize> = match &p.cut {
                Cut::Named(_) => (0..self.links.len()).collect(),
                Cut::Communes(list) => list.iter().filter_map(|c| self.node_link[*c]).collect(),
            };
            self.partitions_links.push(links);
            let at = (p.at_hours * HOUR_MS as f64) as u64;
            let end = at + (p.hours * HOUR_MS as f64) as u64;
            self.schedule_at(at, Ev::PartitionStart { index: i });
            self.schedule_at(end.min(self.fault_end_ms), Ev::PartitionEnd { index: i });
            *self.metrics.faults.entry("partition".into()).or_default() += 1;
        }
        for c in s.bundles.communes.clone() {
            let at = u64::from(s.bundles.hour) * HOUR_MS;
            self.schedule_at(at, Ev::BundleCut { node: c });
        }
        for b in 0..self.byz.len() {
            let spec = self.byz[b].spec.clone();
            let kinds = [
                (spec.oversized, Attack::Oversized),
                (spec.malformed, Attack::Malformed),
                (spec.replays, Attack::Replay),
            ];
            for (count, kind) in kinds {
                for _ in 0..count {
                    let at = self.rng.range(HOUR_MS, window);
                    self.schedule_at(at, Ev::Attack { byz: b, kind });
                }
            }
        }
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.schedule_at(self.now + delay, ev);
    }

    fn schedule_at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    /// The true Unix ms now.
    pub fn true_ms(&self) -> i64 {
        self.base_ms + self.now as i64
    }

    fn local_hour(&self) -> u32 {
        u32::from(Timestamp(self.true_ms()).local().hour())
    }

    fn wall(&self, n: usize) -> Timestamp {
        self.nodes[n].wall(self.true_ms())
    }

    fn reject(&mut self, reason: impl Into<String>) {
        *self.metrics.rejects.entry(reason.into()).or_default() += 1;
    }

    fn violation(&mut self, text: String) {
        if self.metrics.violations.len() < 1000 {
            self.metrics.violations.push(text);
        }
    }

    /// Runs to the end; `progress` is told (simulated ms, end ms) now and then.
    pub fn run(&mut self, progress: &mut dyn FnMut(u64, u64)) {
        let mut last_report = 0u64;
        while let Some(s) = self.heap.pop() {
            if s.at > self.end_ms {
                break;
            }
            if let Some(c) = self.metrics.converged_at
                && s.at > c + SETTLE_AFTER_CONVERGENCE_MS
            {
                break;
            }
            self.now = s.at;
            self.metrics.events += 1;
            self.trace.update(s.at.to_be_bytes());
            self.trace.update([s.ev.code()]);
            if self.now >= last_report + HOUR_MS {
                last_report = self.now;
                progress(self.now, self.end_ms);
            }
            self.dispatch(s.ev);
        }
        progress(self.end_ms, self.end_ms);
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                link,
                generation,
                to,
                bytes,
            } => self.on_deliver(link, generation, to, bytes),
            Ev::Timer {
                link,
                generation,
                end,
            } => self.on_timer(link, generation, end),
            Ev::ConnDead { link, generation } => self.on_conn_dead(link, generation),
            Ev::Dial { link } => self.on_dial(link),
            Ev::Established { link } => self.on_established(link),
            Ev::FeedWake { node } => self.on_feed_wake(node),
            Ev::Intake { node } => self.on_intake(node),
            Ev::Step { plan } => self.on_step(plan),
            Ev::HourTick => {
                self.refresh_links();
                self.schedule(HOUR_MS, Ev::HourTick);
            }
            Ev::Sample => {
                self.sample();
                self.schedule(SAMPLE_INTERVAL_MS, Ev::Sample);
            }
            Ev::Probe => self.on_probe(),
            Ev::Heal => self.on_heal(),
            Ev::Crash { node } => self.on_crash(node),
            Ev::Restart { node } => self.on_restart(node),
            Ev::Backup { node, slot } => {
                self.backups[slot] = Some(self.nodes[node].disk.image());
            }
            Ev::Restore { node, slot } => self.on_restore(node, slot),
            Ev::ClockShift { node, delta_ms } => {
                self.nodes[node].clock_offset_ms += delta_ms;
            }
            Ev::DiskFail { node } => self.nodes[node].disk.set_failing(true),
            Ev::DiskOk { node } => self.on_disk_ok(node),
            Ev::PartitionStart { index } => self.on_partition(index, true),
            Ev::PartitionEnd { index } => self.on_partition(index, false),
            Ev::BundleCut { node } => self.on_bundle_cut(node),
            Ev::BundleArrive { bundle } => self.on_bundle_arrive(bundle),
            Ev::Attack { byz, kind } => self.on_attack(byz, kind),
            Ev::ImportFlush { node, round } => {
                if self.gathered[node].1 == round {
                    self.flush_imports(node);
                }
            }
        }
    }

    // ----- the network -----

    fn holder(&self, l: usize, end: End) -> Remote {
        match end {
            End::Province => Remote::Honest(0),
            End::Remote => self.links[l].remote,
        }
    }

    fn is_up(&self, r: Remote) -> bool {
        match r {
            Remote::Honest(n) => self.nodes[n].is_up(),
            Remote::Byz(_) => true,
        }
    }

    /// Calls `f` on the session at `end` of link `l` with that node's store view.
    fn call(
        &mut self,
        l: usize,
        end: End,
        f: impl FnOnce(&mut Session, u64, &dyn ChangeStore),
    ) -> bool {
        let now = self.now;
        let holder = self.holder(l, end);
        let Sim {
            links, nodes, byz, ..
        } = self;
        let Some(conn) = links[l].conn.as_mut() else {
            return false;
        };
        let Some(session) = conn.session(end).as_mut() else {
            return false;
        };
        match holder {
            Remote::Honest(n) => {
                let node = &nodes[n];
                let Some(store) = node.store.as_ref() else {
                    return false;
                };
                let snap = LazySnapshot::new(store, node.store_id, node.feed_seen);
                f(session, now, &snap);
            }
            Remote::Byz(b) => f(session, now, &byz[b].store),
        }
        true
    }

    fn send(&mut self, l: usize, from: End, bytes: Vec<u8>) {
        let now = self.now;
        let conditions = self.conditions;
        let Sim { links, rng, .. } = self;
        let link = &mut links[l];
        let Some(conn) = link.conn.as_mut() else {
            return;
        };
        if !conn.alive {
            return;
        }
        let generation = conn.generation;
        match conditions.send(conn, from, bytes.len() as u64, now, rng) {
            Fate::Dies => {
                conn.alive = false;
                self.reject("connection: lost");
                self.schedule(
                    IDLE_TIMEOUT_MS,
                    Ev::ConnDead {
                        link: l,
                        generation,
                    },
                );
            }
            Fate::Arrives(at) => {
                let size = bytes.len() as u64 + crate::net::FRAME_HEADER_SIZE_BYTES;
                link.bytes[from.index()] += size;
                link.messages[from.index()] += 1;
                let hour = (now / HOUR_MS) as usize;
                if self.metrics.traffic_by_hour.len() <= hour {
                    self.metrics.traffic_by_hour.resize(hour + 1, 0);
                }
                self.metrics.traffic_by_hour[hour] += size;
                if from == End::Remote
                    && let Remote::Byz(b) = link.remote
                {
                    self.byz[b].remember(&bytes);
                }
                self.schedule_at(
                    at,
                    Ev::Deliver {
                        link: l,
                        generation,
                        to: from.other(),
                        bytes,
                    },
                );
            }
        }
    }

    fn conn_matches(&self, l: usize, generation: u64) -> bool {
        self.links[l]
            .conn
            .as_ref()
            .is_some_and(|c| c.generation == generation && c.alive)
    }

    fn on_deliver(&mut self, l: usize, generation: u64, to: End, bytes: Vec<u8>) {
        if !self.conn_matches(l, generation) {
            return;
        }
        self.metrics.messages_delivered += 1;
        self.trace.update((bytes.len() as u64).to_be_bytes());
        self.trace.update(&bytes[..bytes.len().min(64)]);
        if bytes.len() > MESSAGE_SIZE_BYTES_MAX {
            // The receiver's framing refuses the frame before reading it and drops the link.
            self.reject("frame: oversized");
            self.close_conn(l, 0);
            return;
        }
        self.call(l, to, |s, now, st| s.handle_bytes(now, &bytes, st));
        self.drive(l, to);
    }

    fn on_timer(&mut self, l: usize, generation: u64, end: End) {
        let now = self.now;
        let Some(conn) = self.links[l].conn.as_mut() else {
            return;
        };
        if conn.generation != generation {
            return;
        }
        if conn.timer[end.index()] == Some(now) {
            conn.timer[end.index()] = None;
        }
        let due = conn
            .session(end)
            .as_ref()
            .and_then(Session::poll_timeout)
            .is_some_and(|t| t <= now);
        if due && !self.call(l, end, |s, now, st| s.handle_timeout(now, st)) {
            // The node behind this end is gone; its session with it.
            return;
        }
        self.drive(l, end);
    }

    /// Drains a session's messages and events, acting on them, until it is quiet; then arms its
    /// timer.
    fn drive(&mut self, l: usize, end: End) {
        loop {
            let Some(conn) = self.links[l].conn.as_mut() else {
                return;
            };
            let Some(session) = conn.session(end).as_mut() else {
                return;
            };
            let mut out = Vec::new();
            while let Some(m) = session.poll_transmit() {
                out.push(m);
            }
            let mut events = Vec::new();
            while let Some(e) = session.poll_event() {
                events.push(e);
            }
            if out.is_empty() && events.is_empty() {
                break;
            }
            for m in out {
                match m.encode() {
                    Ok(bytes) => self.send(l, end, bytes),
                    Err(e) => self.violation(format!("session built an unencodable message: {e}")),
                }
            }
            for e in events {
                self.on_session_event(l, end, e);
            }
        }
        self.arm_timer(l, end);
    }

    fn arm_timer(&mut self, l: usize, end: End) {
        let now = self.now;
        let Some(conn) = self.links[l].conn.as_mut() else {
            return;
        };
        let generation = conn.generation;
        let Some(t) = conn.session(end).as_ref().and_then(Session::poll_timeout) else {
            return;
        };
        let t = t.max(now);
        let armed = &mut conn.timer[end.index()];
        if armed.is_none_or(|a| t < a) {
            *armed = Some(t);
            self.schedule_at(
                t,
                Ev::Timer {
                    link: l,
                    generation,
                    end,
                },
            );
        }
    }

    fn on_session_event(&mut self, l: usize, end: End, e: Event) {
        match e {
            Event::Apply {
                batch,
                envelopes,
                checkpoint,
            } => self.on_apply(l, end, batch, envelopes, checkpoint),
            Event::CaughtUp { .. } => {
                if let Remote::Honest(n) = self.holder(l, end) {
                    let peer = self.peer_key(l, end);
                    // As the node's link: the catch-up time is written at most every half hour.
                    let now = self.now;
                    let due = self.links[l]
                        .conn
                        .as_mut()
                        .is_some_and(|c| c.bookkeeping[end.index()].caught_up_due(now));
                    if due {
                        self.write_peer_seen(n, peer, None, true, false);
                    }
                    if end == End::Remote && self.wait_for_sync[n] {
                        self.wait_for_sync[n] = false;
                    }
                }
            }
            Event::PeerHello { acked, .. } => {
                // As the node's link: one write per connection, with the peer's acknowledgement
                // of this node's feed.
                if let Remote::Honest(n) = self.holder(l, end) {
                    let peer = self.peer_key(l, end);
                    let store_id = self.nodes[n].store_id;
                    let acked = acked.map(|upto| FeedMark { store_id, upto });
                    self.write_peer_seen(n, peer, Some(acked), false, true);
                }
            }
            Event::ReconcileDone(r) => {
                let i = usize::from(!r.decoded || r.fell_back_to_feed);
                self.metrics.reconciliations[i] += 1;
            }
            Event::Failed { reason } => {
                let kind = match &reason {
                    motcua_sync::FailReason::Version { .. } => "version",
                    motcua_sync::FailReason::Wire(_) => "undecodable message",
                    motcua_sync::FailReason::Protocol(_) => "protocol violation",
                    motcua_sync::FailReason::Timeout { .. } => "timeout",
                    motcua_sync::FailReason::Peer { .. } => "ended by peer",
                    motcua_sync::FailReason::Store(_) => "store failed",
                    motcua_sync::FailReason::Closed => "closed",
                };
                self.reject(format!("session: {kind}"));
                // The failing end sends its last words (already queued), then closes.
                let last = self.links[l]
                    .conn
                    .as_ref()
                    .map_or(0, |c| c.last_arrival[end.index()]);
                self.close_conn(l, last.saturating_sub(self.now) + 1);
            }
        }
    }

    /// Whether an empty batch's checkpoint is written now; if not, it is kept to be written
    /// when the connection ends. A batch that is written clears what was kept.
    fn checkpoint_due(&mut self, l: usize, end: End, checkpoint: Option<Checkpoint>) -> bool {
        let now = self.now;
        let Some(conn) = self.links[l].conn.as_mut() else {
            return true;
        };
        let i = end.index();
        if conn.bookkeeping[i].checkpoint_due(now) {
            conn.unsaved[i] = None;
            true
        } else {
            conn.unsaved[i] = checkpoint.or(conn.unsaved[i]);
            false
        }
    }

    /// Writes the checkpoints the ends of a closing connection kept back (a crashed node's are
    /// lost with it, as in the node).
    fn flush_unsaved(&mut self, l: usize) {
        let Some(conn) = self.links[l].conn.as_mut() else {
            return;
        };
        let unsaved = std::mem::take(&mut conn.unsaved);
        let starts = conn.starts;
        // Imports the writer still holds carry older checkpoints of this link: they go first.
        self.flush_imports(0);
        if let Remote::Honest(r) = self.links[l].remote {
            self.flush_imports(r);
        }
        for end in [End::Province, End::Remote] {
            let (Some(c), Remote::Honest(n)) = (unsaved[end.index()], self.holder(l, end)) else {
                continue;
            };
            // Only the process that made the connection may write what it kept in memory; a
            // node that crashed or was restored since lost it.
            if self.nodes[n].is_up() && self.nodes[n].starts == starts[end.index()] {
                let peer = self.peer_key(l, end);
                let origin = format!("peer:{}", hex8(&peer));
                let _ = self.import(n, Vec::new(), origin, Some((peer, c)));
            }
        }
    }

    fn peer_key(&self, l: usize, end: End) -> [u8; 32] {
        match end {
            End::Remote => *self.nodes[0].key.verifying_key().as_bytes(),
            End::Province => match self.links[l].remote {
                Remote::Honest(n) => *self.nodes[n].key.verifying_key().as_bytes(),
                Remote::Byz(b) => *self.byz[b].key.verifying_key().as_bytes(),
            },
        }
    }

    fn on_apply(
        &mut self,
        l: usize,
        end: End,
        batch: u64,
        envelopes: Vec<Vec<u8>>,
        checkpoint: Option<Checkpoint>,
    ) {
        let report = match self.holder(l, end) {
            Remote::Byz(b) => self.byz[b].absorb(envelopes),
            Remote::Honest(n)
                if envelopes.is_empty() && !self.checkpoint_due(l, end, checkpoint) =>
            {
                // As the node's link: a checkpoint moved over positions with nothing new is
                // written at most every half hour, and when the connection ends. It is
                // answered after the link's batches the writer still holds.
                let generation = self.links[l].conn.as_ref().map(|c| c.generation);
                let held = &mut self.gathered[n].0;
                if let Some(generation) = generation
                    && held.iter().any(|g| {
                        g.answer
                            .is_some_and(|(gl, ge, gg, _)| (gl, ge, gg) == (l, end, generation))
                    })
                {
                    held.push(Gathered {
                        answer: Some((l, end, generation, batch)),
                        command: None,
                    });
                    return;
                }
                ApplyReport::default()
            }
            Remote::Honest(n) => {
                let peer = self.peer_key(l, end);
                let origin = format!("peer:{}", hex8(&peer));
                let command = self.import_command(envelopes, origin, checkpoint.map(|c| (peer, c)));
                let Some(generation) = self.links[l].conn.as_ref().map(|c| c.generation) else {
                    return;
                };
                self.gather(
                    n,
                    Gathered {
                        answer: Some((l, end, generation, batch)),
                        command: Some(command),
                    },
                );
                return;
            }
        };
        self.call(l, end, |s, now, st| s.applied(now, batch, report, st));
    }

    /// Hands an import to node `n`'s writer, which holds it back for the linger unless the
    /// imports it holds carry enough changes to be written at once.
    fn gather(&mut self, n: usize, g: Gathered) {
        let linger = self.scenario.session.import_linger_ms;
        let (held, round) = &mut self.gathered[n];
        held.push(g);
        if linger == 0 || !may_wait_for_more(held.iter().filter_map(|g| g.command.as_ref())) {
            self.flush_imports(n);
        } else if held.len() == 1 {
            let round = *round;
            self.schedule(linger, Ev::ImportFlush { node: n, round });
        }
    }

    /// Writes the imports node `n`'s writer holds in one transaction, then answers each
    /// session that is still the one that asked. As the node's link: a failed write ends the
    /// link; nothing was applied.
    fn flush_imports(&mut self, n: usize) {
        let Some(held) = self.take_held(n) else {
            return;
        };
        let kind = if held.commands.iter().any(|c| c.import_changes() > 0) {
            "import"
        } else if held
            .commands
            .iter()
            .any(|c| matches!(c, Command::Import { .. }))
        {
            "checkpoint only"
        } else {
            "peer seen"
        };
        let wall = self.wall(n);
        let out = self.nodes[n].run_batch(wall, held.commands);
        if out.committed {
            *self.metrics.commits.entry(kind).or_default() += 1;
            self.after_commit(n, out.new_entries, false);
        } else {
            self.reject("import: write failed");
        }
        self.answer_held(held.answers, out.results, out.committed);
    }

    /// Takes what node `n`'s writer holds back, less the batches of sessions whose earlier write
    /// failed; `None` when nothing is left.
    fn take_held(&mut self, n: usize) -> Option<Held> {
        let (held, round) = &mut self.gathered[n];
        let mut held = std::mem::take(held);
        *round += 1;
        held.retain(|g| {
            g.answer.is_none_or(|(l, end, generation, _)| {
                !self.write_failed.contains(&(l, end, generation))
            })
        });
        if held.is_empty() {
            return None;
        }
        let mut answers = Vec::with_capacity(held.len());
        let mut commands = Vec::with_capacity(held.len());
        for g in held {
            answers.push((g.answer, g.command.is_some()));
            commands.extend(g.command);
        }
        Some(Held { answers, commands })
    }

    /// Answers the sessions whose held batches were written (`results`: one per command, in
    /// order), then drives them. As the node's link: a failed write ends the link.
    fn answer_held(
        &mut self,
        answers: Vec<HeldAnswer>,
        results: Vec<Result<Reply, CommandError>>,
        committed: bool,
    ) {
        let mut results = results.into_iter();
        let mut to_drive: Vec<(usize, End)> = Vec::new();
        for (answer, wrote) in answers {
            let result = if wrote {
                results.next()
            } else {
                Some(Ok(Reply::Imported(Default::default())))
            };
            let Some((l, end, generation, batch)) = answer else {
                continue;
            };
            let report = match result {
                Some(Ok(Reply::Imported(r))) if committed => Some(r.into()),
                Some(Err(e)) if committed => {
                    self.reject(format!("import: {e}"));
                    None
                }
                _ => None,
            };
            if report.is_none() {
                self.write_failed.insert((l, end, generation));
            }
            if !self.conn_matches(l, generation) {
                continue;
            }
            match report {
                Some(report) => {
                    self.call(l, end, |s, now, st| s.applied(now, batch, report, st));
                    if !to_drive.contains(&(l, end)) {
                        to_drive.push((l, end));
                    }
                }
                None => self.close_conn(l, 1),
            }
        }
        // Every batch written here is answered before any session runs on: a session driven
        // after its first answer could hand over a batch that is answered before its second.
        for (l, end) in to_drive {
            self.drive(l, end);
        }
    }

    /// Verifies and imports envelopes at node `n` in one transaction, with a checkpoint; `None`
    /// when the write failed.
    fn import(
        &mut self,
        n: usize,
        envelopes: Vec<Vec<u8>>,
        origin: String,
        checkpoint: Option<([u8; 32], Checkpoint)>,
    ) -> Option<ApplyReport> {
        // Not a link's: it does not wait, and ends the writer's wait (see `local`).
        self.flush_imports(n);
        let empty = envelopes.is_empty();
        let command = self.import_command(envelopes, origin, checkpoint);
        let wall = self.wall(n);
        let out = self.nodes[n].run_batch(wall, vec![command]);
        if !out.committed {
            self.reject("import: write failed");
            return None;
        }
        let kind = if empty { "checkpoint only" } else { "import" };
        *self.metrics.commits.entry(kind).or_default() += 1;
        self.after_commit(n, out.new_entries, false);
        match out.results.into_iter().next() {
            Some(Ok(Reply::Imported(r))) => Some(r.into()),
            Some(Err(e)) => {
                self.reject(format!("import: {e}"));
                None
            }
            _ => None,
        }
    }

    /// Verifies envelopes as the node's link does before it hands them to the writer
    /// (`replication::import_command`), counting each refusal.
    fn import_command(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        origin: String,
        checkpoint: Option<([u8; 32], Checkpoint)>,
    ) -> Command {
        let (command, refused) = import_command(&envelopes, origin, checkpoint);
        for reason in refused {
            self.reject(format!("verify: {reason}"));
        }
        command
    }

    fn write_peer_seen(
        &mut self,
        n: usize,
        peer: [u8; 32],
        acked: Option<Option<FeedMark>>,
        caught_up: bool,
        connected: bool,
    ) {
        // The node's link hands it to the writer without waiting; the writer holds it back
        // with imports (`Writer::submit_replicated`).
        let command = Command::PeerSeen {
            peer,
            acked,
            caught_up,
            connected,
        };
        self.gather(
            n,
            Gathered {
                answer: None,
                command: Some(command),
            },
        );
    }

    /// Closes link `l`'s connection: both ends see it end after `delay` ms.
    fn close_conn(&mut self, l: usize, delay: u64) {
        let Some(conn) = self.links[l].conn.as_ref() else {
            return;
        };
        let generation = conn.generation;
        self.schedule(
            delay,
            Ev::ConnDead {
                link: l,
                generation,
            },
        );
    }

    /// The connection is lost now: messages in flight vanish, the ends notice after the idle
    /// timeout.
    fn lose_conn(&mut self, l: usize) {
        if let Some(conn) = self.links[l].conn.as_mut()
            && conn.alive
        {
            conn.alive = false;
            let generation = conn.generation;
            self.schedule(
                IDLE_TIMEOUT_MS,
                Ev::ConnDead {
                    link: l,
                    generation,
                },
            );
        }
    }

    fn on_conn_dead(&mut self, l: usize, generation: u64) {
        let Some(conn) = self.links[l].conn.as_ref() else {
            return;
        };
        if conn.generation != generation {
            return;
        }
        self.flush_unsaved(l);
        self.links[l].conn = None;
        // As the node's dialer: only a connection that lasted resets the backoff.
        if self.now.saturating_sub(self.links[l].established_at) >= CONNECTION_STABLE_MS {
            self.links[l].backoff_ms = REDIAL_BACKOFF_MS_MIN;
        }
        self.redial(l);
    }

    fn redial(&mut self, l: usize) {
        let link = &self.links[l];
        if link.dialing || link.conn.is_some() || !self.is_up(link.remote) {
            return;
        }
        let backoff = link.backoff_ms;
        let wait = backoff / 2 + self.rng.below(backoff / 2 + 1);
        self.links[l].backoff_ms = (backoff * 2).min(REDIAL_BACKOFF_MS_MAX);
        self.links[l].dialing = true;
        self.schedule(wait, Ev::Dial { link: l });
    }

    fn on_dial(&mut self, l: usize) {
        self.links[l].dialing = false;
        let remote = self.links[l].remote;
        if !self.is_up(remote) || self.links[l].conn.is_some() {
            return;
        }
        if self.links[l].up && self.nodes[0].is_up() {
            self.links[l].dialing = true;
            let rtt =
                2 * self.conditions.latency_ms + self.rng.below(self.conditions.jitter_ms + 1);
            self.schedule(rtt, Ev::Established { link: l });
        } else {
            // The dial times out, then the node waits its backoff.
            let backoff = self.links[l].backoff_ms;
            let wait = backoff / 2 + self.rng.below(backoff / 2 + 1);
            self.links[l].backoff_ms = (backoff * 2).min(REDIAL_BACKOFF_MS_MAX);
            self.links[l].dialing = true;
            self.schedule(DIAL_TIMEOUT_MS + wait, Ev::Dial { link: l });
        }
    }

    fn session_for(&self, n: usize, peer: [u8; 32]) -> Result<Session, String> {
        let node = &self.nodes[n];
        let store = node.store.as_ref().ok_or("down")?;
        let standing = node
            .registry
            .check_key(&peer, self.wall(n))
            .map_err(|e| e.reason().to_owned())?;
        let peer_scope = scope_of(standing.role, standing.unit.as_str());
        let start = FeedStart {
            store_id: node.store_id,
            feed_head: node.feed_seen,
        };
        start_session(
            store,
            &peer,
            start,
            node.scope(),
            peer_scope,
            self.session_config.clone(),
            self.now,
        )
        .map_err(|e| e.to_string())
    }

    fn on_established(&mut self, l: usize) {
        self.links[l].dialing = false;
        let remote = self.links[l].remote;
        if !self.links[l].up || !self.nodes[0].is_up() || !self.is_up(remote) {
            self.redial(l);
            return;
        }
        let remote_key = self.peer_key(l, End::Province);
        let province_key = self.peer_key(l, End::Remote);
        let province = match self.session_for(0, remote_key) {
            Ok(s) => s,
            Err(reason) => {
                self.reject(format!("connection refused: {reason}"));
                self.redial(l);
                return;
            }
        };
        let remote_session = match remote {
            Remote::Honest(n) => match self.session_for(n, province_key) {
                Ok(s) => s,
                Err(reason) => {
                    self.reject(format!("connection refused: {reason}"));
                    self.redial(l);
                    return;
                }
            },
            Remote::Byz(b) => {
                let node = &self.byz[b];
                Session::new(
                    self.session_config.clone(),
                    Local {
                        store_id: node.store.store_id(),
                        feed_head: node.store.feed_head(),
                        checkpoint: None,
                        scope: Scope::Unit {
                            unit: node.unit.to_string(),
                        },
                    },
                    Scope::All,
                    self.now,
                )
            }
        };
        let starts = [End::Province, End::Remote].map(|end| match self.holder(l, end) {
            Remote::Honest(n) => self.nodes[n].starts,
            Remote::Byz(_) => 0,
        });
        let link = &mut self.links[l];
        link.generation += 1;
        link.established_at = self.now;
        link.connections += 1;
        link.conn = Some(Conn {
            generation: link.generation,
            alive: true,
            province: Some(province),
            remote: Some(remote_session),
            free_at: [self.now; 2],
            last_arrival: [self.now; 2],
            timer: [None; 2],
            bookkeeping: Default::default(),
            unsaved: [None; 2],
            starts,
        });
        self.metrics.connections += 1;
        self.drive(l, End::Remote);
        self.drive(l, End::Province);
    }

    fn refresh_links(&mut self) {
        let hour = self.local_hour();
        for l in 0..self.links.len() {
            if self.links[l].refresh(hour) {
                self.link_changed(l);
            }
        }
    }

    fn link_changed(&mut self, l: usize) {
        if self.links[l].up {
            if let Remote::Honest(n) = self.links[l].remote {
                self.note_heal(n);
            }
            if !self.links[l].dialing && self.links[l].conn.is_none() {
                self.links[l].backoff_ms = REDIAL_BACKOFF_MS_MIN;
                self.links[l].dialing = true;
                self.schedule(0, Ev::Dial { link: l });
            }
        } else {
            self.lose_conn(l);
            if let Remote::Honest(n) = self.links[l].remote {
                self.drop_heal(n);
            }
        }
    }

    // ----- the feed -----

    /// Records what a committed batch stored at node `n` and wakes its sessions.
    fn after_commit(&mut self, n: usize, entries: Vec<NewEntry>, local: bool) {
        if entries.is_empty() {
            return;
        }
        let province_filter = n == 0 && !self.scenario.session.wake_all;
        let mut units = BTreeSet::new();
        let mut all = !province_filter;
        let mut dossiers = Vec::new();
        for e in &entries {
            self.trace.update(e.hash);
            self.tracker.add(n, e.hash, &e.doc);
            if local && self.nodes[n].kind == Kind::Commune {
                self.local_writes[n].push_back((self.now, e.hash));
            }
            if province_filter {
                match doc_unit(&e.doc) {
                    None => all = true,
                    Some(u) => {
                        units.insert(u.to_owned());
                        if e.doc.starts_with("dossier/") {
                            dossiers.push(e.doc.as_str());
                        }
                    }
                }
            }
        }
        // The units a dossier was transferred to are in its scope too.
        units.extend(self.nodes[n].transfers(&dossiers));
        let schedule = self.wake_pending[n].is_none();
        let pending = self.wake_pending[n].get_or_insert_with(|| (false, BTreeSet::new()));
        pending.0 |= all;
        pending.1.extend(units);
        if schedule {
            self.schedule(0, Ev::FeedWake { node: n });
        }
    }

    fn on_feed_wake(&mut self, n: usize) {
        let Some((all, units)) = self.wake_pending[n].take() else {
            return;
        };
        if !self.nodes[n].is_up() {
            return;
        }
        let targets: Vec<(usize, End)> = if n == 0 {
            (0..self.links.len())
                .filter(|l| self.links[*l].conn.is_some())
                .filter(|l| {
                    all || match self.links[*l].remote {
                        Remote::Honest(r) => {
                            self.nodes[r].kind == Kind::Auditor
                                || units.contains(self.nodes[r].unit.as_str())
                        }
                        Remote::Byz(b) => units.contains(self.byz[b].unit.as_str()),
                    }
                })
                .map(|l| (l, End::Province))
                .collect()
        } else {
            self.node_link[n]
                .filter(|l| self.links[*l].conn.is_some())
                .map(|l| (l, End::Remote))
                .into_iter()
                .collect()
        };
        for (l, end) in targets {
            self.call(l, end, |s, now, st| s.local_feed_advanced(now, st));
            self.drive(l, end);
        }
    }

    // ----- the workload -----

    fn next_arrival(&mut self, n: usize, after: u64) -> u64 {
        let per_day = match self.nodes[n].kind {
            Kind::Province => self.scenario.workload.province_dossiers_per_day,
            _ => self.scenario.workload.commune_dossiers_per_day,
        };
        if per_day <= 0.0 {
            return u64::MAX / 2;
        }
        let mean = crate::workload::WORKING_DAY_MS as f64 / per_day;
        let gap = self.rng.exp_ms(mean);
        self.work.add_working(after, gap)
    }

    fn staff(&mut self) -> String {
        format!("canbo.{:02}", self.rng.below(6) + 1)
    }

    /// Runs one local command at node `n`; returns its result and the hash of the change it
    /// stored in `doc` (if it committed).
    fn local(
        &mut self,
        n: usize,
        command: Command,
        doc: impl Fn(&Reply) -> String,
    ) -> Result<(Reply, [u8; 32]), CommandError> {
        // A local write ends the writer's wait: what it holds back is written with it, in one
        // transaction, before it (as the node's writer runs its batch in arrival order).
        let held = self.take_held(n);
        let (answers, mut commands) =
            held.map_or((Vec::new(), Vec::new()), |h| (h.answers, h.commands));
        let local_index = commands.len();
        commands.push(command);
        let wall = self.wall(n);
        let mut out = self.nodes[n].run_batch(wall, commands);
        if out.committed {
            *self.metrics.commits.entry("local write").or_default() += 1;
        } else if local_index > 0 {
            self.reject("import: write failed");
        }
        let (imported, entries) = out.split_entries_at(local_index);
        self.after_commit(n, imported, false);
        self.after_commit(n, entries.clone(), true);
        let result = out
            .results
            .pop()
            .unwrap_or_else(|| Err(CommandError::Internal("no result".into())));
        self.answer_held(answers, out.results, out.committed);
        let result = result?;
        let doc = doc(&result);
        let hash = entries
            .iter()
            .rev()
            .find(|e| e.doc == doc)
            .map(|e| e.hash)
            .ok_or_else(|| CommandError::Internal(format!("acknowledged {doc} stored nothing")))?;
        Ok((result, hash))
    }

    fn on_intake(&mut self, n: usize) {
        if !self.workload_active {
            return;
        }
        let next = self.next_arrival(n, self.now + 1);
        self.schedule_at(next, Ev::Intake { node: n });
        if !self.nodes[n].is_up() || self.wait_for_sync[n] {
            *self
                .metrics
                .refused
                .entry("intake: node down".into())
                .or_default() += 1;
            return;
        }
        let level = if self.nodes[n].kind == Kind::Province {
            Level::Province
        } else {
            Level::Commune
        };
        let w = self.scenario.workload.clone();
        let intake = draw_intake(&mut self.rng, &w, &self.catalog, level);
        let transfer_to = if n == 0 {
            (self.scenario.communes > 0)
                .then(|| 1 + self.rng.below(self.scenario.communes as u64) as usize)
        } else {
            Some(0)
        };
        let mut plan = draw_plan(&mut self.rng, &w, &intake, n, transfer_to);
        let by = self.staff();
        let wall = self.wall(n);
        let p = &intake.procedure;
        let first = if intake.registered_only {
            EventBody::Registered
        } else {
            match due_at(&self.calendar, wall, p.processing, p.cutoff) {
                Some(due_at) => EventBody::Received { due_at },
                None => EventBody::Registered,
            }
        };
        let command = Command::CreateDossier {
            req: NewDossier {
                procedure_code: p.code.clone(),
                channel: intake.channel,
                applicant: intake.applicant.clone(),
                digitised: intake.digitised,
                registered_only: intake.registered_only,
            },
            by: by.clone(),
        };
        let result = self.local(n, command, |r| match r {
            Reply::Dossier(s) => format!("dossier/{}", s.code),
            _ => String::new(),
        });
        match result {
            Ok((Reply::Dossier(summary), hash)) => {
                let header = Header {
                    code: summary.code.clone(),
                    unit: self.nodes[n].unit.clone(),
                    procedure_code: p.code.clone(),
                    procedure_name: p.name.clone(),
                    agency: p.agency.clone(),
                    processing: p.processing,
                    channel: intake.channel,
                    applicant: intake.applicant.clone(),
                    digitised: intake.digitised,
                };
                let event = DossierEvent {
                    at: wall,
                    by,
                    unit: self.nodes[n].unit.clone(),
                    body: first,
                };
                let code = summary.code.to_string();
                *self.metrics.acked.entry("dossier".into()).or_default() += 1;
                if !self.truth.add_dossier(header, event, hash) {
                    self.violation(format!("{} reused dossier code {code}", self.nodes[n].name));
                    return;
                }
                self.check_ack(&code, &summary);
                plan.code = code;
                self.start_plan(plan);
            }
            Ok(_) => self.violation("create answered with something else".into()),
            Err(e) => {
                *self
                    .metrics
                    .refused
                    .entry(format!("intake: {}", error_kind(&e)))
                    .or_default() += 1;
            }
        }
    }

    fn check_ack(&mut self, code: &str, summary: &motcua_schema::summary::DossierSummary) {
        let Some(t) = self.truth.dossiers.get(code) else {
            return;
        };
        let expected = t.summary();
        if &expected != summary {
            self.violation(format!(
                "acknowledged summary of {code} differs from the ground truth: node {summary:?}, truth {expected:?}"
            ));
        }
    }

    fn start_plan(&mut self, plan: Plan) {
        let Some((delay, _)) = plan.steps.front() else {
            return;
        };
        let at = self.work.add_working(self.now, *delay);
        let id = self.plans.len();
        self.plans.push(plan);
        self.schedule_at(at, Ev::Step { plan: id });
    }

    fn retry_step(&mut self, p: usize, delay: u64, reason: &str) {
        self.plans[p].retries += 1;
        if self.plans[p].retries > STEP_RETRIES_COUNT_MAX {
            *self
                .metrics
                .refused
                .entry(format!("step abandoned: {reason}"))
                .or_default() += 1;
            return;
        }
        let at = self.work.next_working(self.now + delay);
        self.schedule_at(at, Ev::Step { plan: p });
    }

    fn on_step(&mut self, p: usize) {
        if !self.workload_active {
            return;
        }
        let Some((_, kind)) = self.plans[p].steps.front().cloned() else {
            return;
        };
        let n = self.plans[p].holder;
        let code = self.plans[p].code.clone();
        if !self.nodes[n].is_up() || self.wait_for_sync[n] {
            self.retry_step(p, STEP_RETRY_MS, "node down");
            return;
        }
        let unit = self.nodes[n].unit.clone();
        let held = self.nodes[n].store().summary(&code).ok().flatten();
        if held.as_ref().is_none_or(|s| s.holder != unit) {
            self.retry_step(p, 2 * STEP_RETRY_MS, "dossier never reached its holder");
            return;
        }
        let Some(truth) = self.truth.dossiers.get(&code).cloned() else {
            // Lost to a restore: nothing more happens to it.
            return;
        };
        let state = truth.state();
        let wall = self.wall(n);
        let by = self.staff();
        let fee = 50_000u64;
        let (req, body): (Option<EventRequest>, Option<EventBody>) = match &kind {
            StepKind::Accept => {
                let p = self.catalog.get(&truth.header.procedure_code);
                let due = due_at(
                    &self.calendar,
                    wall,
                    truth.header.processing,
                    p.and_then(|p| p.cutoff),
                );
                (
                    Some(EventRequest::Received),
                    due.map(|due_at| EventBody::Received { due_at }),
                )
            }
            StepKind::Refuse => {
                let reason = "Thiếu giấy tờ theo quy định".to_owned();
                (
                    Some(EventRequest::Refused {
                        reason: reason.clone(),
                    }),
                    Some(EventBody::Refused { reason }),
                )
            }
            StepKind::Transfer { to } => {
                let to_unit = self.nodes[*to].unit.clone();
                (
                    Some(EventRequest::Transferred {
                        to_unit: to_unit.clone(),
                        to_agency: None,
                        note: "Liên thông".into(),
                    }),
                    Some(EventBody::Transferred {
                        to_unit,
                        to_agency: None,
                        note: "Liên thông".into(),
                    }),
                )
            }
            StepKind::SupplementRequest => {
                let reason = "Bổ sung bản sao giấy tờ".to_owned();
                (
                    Some(EventRequest::SupplementRequested {
                        reason: reason.clone(),
                    }),
                    Some(EventBody::SupplementRequested { reason }),
                )
            }
            StepKind::Supplement => {
                let due = state
                    .due_at
                    .zip(truth.paused_at())
                    .and_then(|(due, paused)| {
                        self.calendar.extend_for_pause(due, paused, wall).ok()
                    });
                (
                    Some(EventRequest::Supplemented),
                    due.map(|due_at| EventBody::Supplemented { due_at }),
                )
            }
            StepKind::PaymentRequest => (
                Some(EventRequest::PaymentRequested {
                    amount_vnd: fee,
                    note: "Lệ phí".into(),
                }),
                Some(EventBody::PaymentRequested {
                    amount_vnd: fee,
                    note: "Lệ phí".into(),
                }),
            ),
            StepKind::Pay => (
                Some(EventRequest::Paid { amount_vnd: fee }),
                Some(EventBody::Paid { amount_vnd: fee }),
            ),
            StepKind::Withdraw => {
                let reason = "Công dân rút hồ sơ".to_owned();
                (
                    Some(EventRequest::Withdrawn {
                        reason: reason.clone(),
                    }),
                    Some(EventBody::Withdrawn { reason }),
                )
            }
            StepKind::Resolve => (
                Some(EventRequest::Resolved {
                    note: String::new(),
                }),
                Some(EventBody::Resolved {
                    note: String::new(),
                }),
            ),
            StepKind::Return(method) => (
                Some(EventRequest::Returned { method: *method }),
                Some(EventBody::Returned { method: *method }),
            ),
            StepKind::Rate(_) => (None, None),
        };
        if let StepKind::Rate(score) = kind {
            self.rate(p, n, &code, score, by, wall);
            return;
        }
        let (Some(req), Some(body)) = (req, body) else {
            *self
                .metrics
                .refused
                .entry("step: no due date".into())
                .or_default() += 1;
            return;
        };
        let name = req_name(&req);
        let command = Command::AddEvent {
            code: code.clone(),
            req,
            by: by.clone(),
        };
        let doc = format!("dossier/{code}");
        match self.local(n, command, |_| doc.clone()) {
            Ok((Reply::Dossier(summary), hash)) => {
                *self.metrics.acked.entry(name.into()).or_default() += 1;
                let event = DossierEvent {
                    at: wall,
                    by,
                    unit: unit.clone(),
                    body,
                };
                self.truth.add_event(&code, event, hash);
                self.check_ack(&code, &summary);
                if let StepKind::Transfer { to } = kind {
                    self.plans[p].holder = to;
                    let to_unit = self.nodes[to].unit.to_string();
                    self.tracker.transfer(&doc, &to_unit);
                }
                self.next_step(p);
            }
            Ok(_) => self.violation("step answered with something else".into()),
            Err(e @ (CommandError::Internal(_) | CommandError::Store(_))) => {
                let reason = format!("step: {}", error_kind(&e));
                *self.metrics.refused.entry(reason).or_default() += 1;
                self.retry_step(p, STEP_RETRY_MS, "write failed");
            }
            Err(e) => {
                *self
                    .metrics
                    .refused
                    .entry(format!("step {name}: {}", error_kind(&e)))
                    .or_default() += 1;
            }
        }
    }

    fn next_step(&mut self, p: usize) {
        self.plans[p].steps.pop_front();
        self.plans[p].retries = 0;
        if let Some((delay, _)) = self.plans[p].steps.front() {
            let at = self.work.add_working(self.now, *delay);
            self.schedule_at(at, Ev::Step { plan: p });
        }
    }

    fn rate(
        &mut self,
        p: usize,
        n: usize,
        code: &str,
        score: motcua_schema::rating::Score,
        by: String,
        wall: Timestamp,
    ) {
        let req = NewRating {
            score,
            official: Some(by.clone()),
            dossier: Some(code.to_owned()),
            criteria: Vec::new(),
            comment: String::new(),
            device: "kiosk-1".into(),
        };
        let unit = self.nodes[n].unit.clone();
        let day = motcua_schema::timestamp::date_key(wall.local_date());
        let doc = format!("ratings/{unit}/{day}");
        match self.local(n, Command::Rate(req), |_| doc.clone()) {
            Ok((Reply::Rating(r), hash)) => {
                *self.metrics.acked.entry("rating".into()).or_default() += 1;
                let expected = Rating {
                    id: r.id.clone(),
                    unit,
                    official: Some(by),
                    dossier: motcua_schema::ids::DossierCode::parse(code).ok(),
                    score,
                    criteria: Vec::new(),
                    comment: String::new(),
                    at: wall,
                    device: "kiosk-1".into(),
                };
                if expected != r {
                    self.violation(format!(
                        "acknowledged rating {} differs from the request",
                        r.id
                    ));
                }
                if !self.truth.add_rating(expected, hash) {
                    self.violation(format!("{} reused rating id {}", self.nodes[n].name, r.id));
                }
                self.next_step(p);
            }
            Ok(_) => self.violation("rate answered with something else".into()),
            Err(e @ (CommandError::Internal(_) | CommandError::Store(_))) => {
                let reason = format!("rating: {}", error_kind(&e));
                *self.metrics.refused.entry(reason).or_default() += 1;
                self.retry_step(p, STEP_RETRY_MS, "write failed");
            }
            Err(e) => {
                *self
                    .metrics
                    .refused
                    .entry(format!("rating: {}", error_kind(&e)))
                    .or_default() += 1;
            }
        }
    }

    // ----- faults -----

    fn links_of(&self, n: usize) -> Vec<usize> {
        if n == 0 {
            (0..self.links.len()).collect()
        } else {
            self.node_link[n].into_iter().collect()
        }
    }

    fn on_crash(&mut self, n: usize) {
        if !self.nodes[n].is_up() {
            return;
        }
        self.nodes[n].crash();
        self.process_gone(n);
    }

    /// Node `n`'s process is gone: its sessions with it, and its connections are lost.
    fn process_gone(&mut self, n: usize) {
        // The writer's queue was in the process's memory.
        let (held, round) = &mut self.gathered[n];
        held.clear();
        *round += 1;
        let end = if n == 0 { End::Province } else { End::Remote };
        for l in self.links_of(n) {
            if let Some(conn) = self.links[l].conn.as_mut() {
                *conn.session(end) = None;
            }
            self.lose_conn(l);
        }
    }

    fn on_restart(&mut self, n: usize) {
        // A node cannot open its store on a disk that refuses writes: it stays down until the
        // disk works again (`on_disk_ok` starts it then).
        if self.nodes[n].is_up() || self.nodes[n].disk.is_failing() {
            return;
        }
        let e = epoch(&mut self.rng);
        let seen = self.nodes[n].feed_seen;
        if let Err(err) = self.nodes[n].restart(e) {
            self.violation(format!("{} does not restart: {err}", self.nodes[n].name));
            return;
        }
        let head = self.nodes[n].feed_head();
        if head != seen {
            self.violation(format!(
                "{} restarted with feed head {head}, but {seen} positions were committed",
                self.nodes[n].name
            ));
        }
        let entries = self.nodes[n].read_new_entries();
        self.after_commit(n, entries, false);
        self.note_heal(n);
        self.restart_links(n);
    }

    fn restart_links(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(l) = self.node_link[n] {
            self.links[l].backoff_ms = REDIAL_BACKOFF_MS_MIN;
            self.redial(l);
        }
    }

    fn on_restore(&mut self, n: usize, slot: usize) {
        let Some(image) = self.backups[slot].take() else {
            return;
        };
        let was_up = self.nodes[n].is_up();
        self.nodes[n].crash();
        self.process_gone(n);
        let id = id16(&mut self.rng);
        let e = epoch(&mut self.rng);
        if let Err(err) = self.nodes[n].restore(image, id, e) {
            self.violation(format!("{} cannot be restored: {err}", self.nodes[n].name));
            return;
        }
        // What the other nodes' writers hold back is written now, before the ground truth
        // decides which of this node's writes the restore lost: a change waiting in the
        // province's writer would otherwise count as lost although it is about to be held, or
        // count as held although a crash may yet take it from that queue.
        for m in (0..self.nodes.len()).filter(|&m| m != n) {
            self.flush_imports(m);
        }
        self.tracker.clear(n);
        let entries = self.nodes[n].read_new_entries();
        for e in &entries {
            self.tracker.add(n, e.hash, &e.doc);
        }
        let tracker = &self.tracker;
        let lost = self.truth.forget_lost(|h| tracker.exists(h));
        *self
            .metrics
            .faults
            .entry("writes lost to restore".into())
            .or_default() += lost;
        let tracker = &self.tracker;
        self.local_writes[n].retain(|(_, h)| tracker.exists(h));
        // The operator reopens the counter only after the node has synced with the province.
        self.wait_for_sync[n] = self.scenario.faults.restore_waits_for_sync
            && self.node_link[n].is_some_and(|l| self.links[l].has_network);
        if was_up {
            self.note_heal(n);
        }
        self.restart_links(n);
    }

    fn on_disk_ok(&mut self, n: usize) {
        self.nodes[n].disk.set_failing(false);
        // redb refuses every transaction after an I/O error until the store is reopened, so
        // the operator restarts the node once the disk works again.
        if self.nodes[n].is_up() {
            self.nodes[n].crash();
            self.process_gone(n);
        }
        self.on_restart(n);
    }

    fn on_partition(&mut self, i: usize, start: bool) {
        let links = self.partitions_links[i].clone();
        let hour = self.local_hour();
        for l in links {
            if start {
                self.links[l].partitions += 1;
            } else {
                self.links[l].partitions = self.links[l].partitions.saturating_sub(1);
            }
            if self.links[l].refresh(hour) {
                self.link_changed(l);
            }
        }
    }

    fn on_heal(&mut self) {
        self.healed = true;
        self.workload_active = false;
        self.metrics.healed_at = Some(self.now);
        for n in 0..self.nodes.len() {
            if self.nodes[n].disk.is_failing() {
                self.on_disk_ok(n);
            }
            if !self.nodes[n].is_up() {
                self.on_restart(n);
            }
        }
        for l in 0..self.links.len() {
            self.links[l].forced_up = true;
        }
        self.refresh_links();
        self.ensure_probe();
    }

    // ----- convergence and staleness -----

    fn note_heal(&mut self, n: usize) {
        if self.nodes[n].kind != Kind::Commune && n != 0 {
            return;
        }
        if n == 0 {
            for c in 1..self.nodes.len() {
                if self.nodes[c].kind == Kind::Commune {
                    self.note_heal(c);
                }
            }
            return;
        }
        if self.pending_heals.iter().any(|h| h.node == n) {
            return;
        }
        self.pending_heals.push(PendingHeal {
            at: self.now,
            node: n,
        });
        self.ensure_probe();
    }

    fn drop_heal(&mut self, n: usize) {
        let metrics = &mut self.metrics;
        self.pending_heals.retain(|h| {
            if h.node == n {
                metrics.heals.push((h.at, n, None));
                false
            } else {
                true
            }
        });
    }

    fn ensure_probe(&mut self) {
        if !self.probe_scheduled {
            self.probe_scheduled = true;
            self.schedule(PROBE_INTERVAL_MS, Ev::Probe);
        }
    }

    fn staleness(&mut self, c: usize) -> u64 {
        let tracker = &self.tracker;
        let q = &mut self.local_writes[c];
        while q
            .front()
            .is_some_and(|(_, h)| tracker.holds(0, h) || !tracker.exists(h))
        {
            q.pop_front();
        }
        q.front().map_or(0, |(t, _)| self.now - t)
    }

    fn on_probe(&mut self) {
        self.probe_scheduled = false;
        let pending = std::mem::take(&mut self.pending_heals);
        for h in pending {
            if self.tracker.converged(h.node) && self.staleness(h.node) == 0 {
                self.metrics
                    .heals
                    .push((h.at, h.node, Some(self.now - h.at)));
            } else {
                self.pending_heals.push(h);
            }
        }
        if self.healed && self.metrics.converged_at.is_none() && self.tracker.all_converged() {
            self.metrics.converged_at = Some(self.now);
        }
        if !self.pending_heals.is_empty() || (self.healed && self.metrics.converged_at.is_none()) {
            self.ensure_probe();
        }
    }

    fn sample(&mut self) {
        for c in 1..self.nodes.len() {
            if self.nodes[c].kind == Kind::Commune {
                let s = self.staleness(c);
                self.metrics
                    .staleness
                    .entry(c)
                    .or_default()
                    .push((self.now, s));
            }
        }
    }

    // ----- bundles -----

    fn on_bundle_cut(&mut self, c: usize) {
        let b = self.scenario.bundles.clone();
        self.schedule(u64::from(b.every_days) * DAY_MS, Ev::BundleCut { node: c });
        let province_key = *self.nodes[0].key.verifying_key().as_bytes();
        let commune_key = *self.nodes[c].key.verifying_key().as_bytes();
        for (from, to, scope, from_key) in [
            (0, c, self.nodes[c].scope(), province_key),
            (c, 0, Scope::All, commune_key),
        ] {
            let node = &self.nodes[from];
            let Some(store) = node.store.as_ref() else {
                continue;
            };
            let to_key = *self.nodes[to].key.verifying_key().as_bytes();
            // As `motcua bundle export` (`start_after`): for the province, after what it acknowledged.
            let after = start_after(store, &to_key, &scope, node.store_id).unwrap_or(0);
            let snap = LazySnapshot::new(store, node.store_id, node.feed_seen);
            let Ok((mut bytes, _)) = bundle_bytes(&snap, &scope, after, Some(from_key)) else {
                self.reject("bundle: export failed");
                continue;
            };
            // Sticks misbehave only until the final heal; after it they arrive whole and on time.
            let faulty = self.now < self.fault_end_ms;
            if faulty && self.rng.chance(b.truncated_share) {
                let cut = self.rng.below(bytes.len() as u64) as usize;
                bytes.truncate(cut);
                *self
                    .metrics
                    .faults
                    .entry("bundle truncated".into())
                    .or_default() += 1;
            }
            let twice = faulty && self.rng.chance(b.duplicated_share);
            let mut travel = u64::from(b.travel_hours) * HOUR_MS;
            if faulty && self.rng.chance(b.delayed_share) {
                travel += DAY_MS;
                *self
                    .metrics
                    .faults
                    .entry("bundle delayed".into())
                    .or_default() += 1;
            }
            if twice {
                *self
                    .metrics
                    .faults
                    .entry("bundle imported twice".into())
                    .or_default() += 1;
            }
            let id = self.bundles.len();
            self.bundles.push(Some(Bundle {
                to,
                from_key,
                bytes,
                twice,
            }));
            self.schedule(travel, Ev::BundleArrive { bundle: id });
        }
    }

    fn on_bundle_arrive(&mut self, id: usize) {
        let Some(bundle) = self.bundles[id].as_ref() else {
            return;
        };
        let n = bundle.to;
        if !self.nodes[n].is_up() {
            self.schedule(BUNDLE_RETRY_MS, Ev::BundleArrive { bundle: id });
            return;
        }
        let bytes = bundle.bytes.clone();
        let from_key = bundle.from_key;
        let twice = bundle.twice;
        self.import_bundle(n, &bytes, from_key);
        if twice {
            if let Some(b) = self.bundles[id].as_mut() {
                b.twice = false;
            }
            self.schedule(HOUR_MS, Ev::BundleArrive { bundle: id });
        } else {
            self.bundles[id] = None;
        }
    }

    /// Imports a bundle as `motcua bundle import` does: every intact frame in order, then the
    /// source's checkpoint if the bundle arrived whole, was cut for this node's scope and
    /// continues from what this node holds.
    fn import_bundle(&mut self, n: usize, bytes: &[u8], from_key: [u8; 32]) {
        let mut reader = match read_bundle(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.reject(format!("bundle: {e}"));
                return;
            }
        };
        let header = reader.header().clone();
        let origin = format!("bundle:{}", hex8(&from_key));
        let mut stopped = false;
        for frame in reader.by_ref() {
            let envelopes = match frame {
                Ok(e) => e,
                Err(e) => {
                    self.reject(format!(
                        "bundle: {}",
                        match e {
                            motcua_sync::bundle::BundleError::Truncated { .. } => "truncated",
                            _ => "damaged frame",
                        }
                    ));
                    stopped = true;
                    break;
                }
            };
            if self.import(n, envelopes, origin.clone(), None).is_none() {
                stopped = true;
                break;
            }
        }
        let own = self.nodes[n].scope();
        if reader.is_complete() && !stopped && header.scope == own {
            let source = header.node_key.unwrap_or(from_key);
            let held = self.nodes[n]
                .store()
                .peer_state(&source)
                .ok()
                .and_then(|s| s.checkpoint);
            match checkpoint_after(&header, held) {
                AfterBundle::Advance(mark) => {
                    self.import(n, Vec::new(), origin, Some((source, mark.into())));
                }
                AfterBundle::Gap { .. } => self.reject("bundle: starts past what the node holds"),
                AfterBundle::Keep => {}
            }
        }
    }

    // ----- Byzantine wire attacks -----

    fn on_attack(&mut self, b: usize, kind: Attack) {
        if self.now >= self.fault_end_ms {
            return;
        }
        let l = self
            .links
            .iter()
            .position(|x| x.remote == Remote::Byz(b))
            .expect("every Byzantine node has a link");
        let connected = self.links[l].conn.as_ref().is_some_and(|c| c.alive);
        if !connected {
            self.schedule(ATTACK_RETRY_MS, Ev::Attack { byz: b, kind });
            return;
        }
        let bytes = match kind {
            Attack::Oversized => vec![0u8; MESSAGE_SIZE_BYTES_MAX + 1],
            Attack::Malformed => {
                let mut v = vec![0u8; 48];
                self.rng.fill(&mut v);
                v
            }
            Attack::Replay => {
                let sent = &self.byz[b].sent;
                if sent.is_empty() {
                    self.schedule(ATTACK_RETRY_MS, Ev::Attack { byz: b, kind });
                    return;
                }
                sent[self.rng.below(sent.len() as u64) as usize].clone()
            }
        };
        *self
            .metrics
            .faults
            .entry(format!("byzantine {kind:?}").to_lowercase())
            .or_default() += 1;
        self.send(l, End::Remote, bytes);
    }

    /// The trace hash of everything the run did so far, hex.
    pub fn trace_hash(&self) -> String {
        hex::encode(self.trace.clone().finalize())
    }

    /// The honest commune nodes.
    pub fn communes(&self) -> impl Iterator<Item = usize> + '_ {
        (1..self.nodes.len()).filter(|n| self.nodes[*n].kind == Kind::Commune)
    }

    /// The staleness of commune `c` now (public for reports).
    pub fn staleness_now(&mut self, c: usize) -> u64 {
        self.staleness(c)
    }
}

fn new_link(remote: Remote, has_network: bool, window: Option<Window>) -> Link {
    Link {
        remote,
        has_network,
        window,
        partitions: 0,
        forced_up: false,
        up: false,
        conn: None,
        generation: 0,
        backoff_ms: REDIAL_BACKOFF_MS_MIN,
        established_at: 0,
        dialing: false,
        bytes: [0; 2],
        messages: [0; 2],
        connections: 0,
    }
}

fn error_kind(e: &CommandError) -> &'static str {
    match e {
        CommandError::Invalid(_) => "invalid",
        CommandError::NotFound(_) => "not found",
        CommandError::Conflict(_) => "conflict",
        CommandError::Forbidden(_) => "forbidden",
        CommandError::Store(_) => "storage",
        CommandError::Internal(_) => "write failed",
    }
}

fn req_name(r: &EventRequest) -> &'static str {
    match r {
        EventRequest::Received => "accepted",
        EventRequest::Transferred { .. } => "transferred",
        EventRequest::SupplementRequested { .. } => "supplement requested",
        EventRequest::Supplemented => "supplemented",
        EventRequest::PaymentRequested { .. } => "payment requested",
        EventRequest::Paid { .. } => "paid",
        EventRequest::Refused { .. } => "refused",
        EventRequest::Withdrawn { .. } => "withdrawn",
        EventRequest::Stopped { .. } => "stopped",
        EventRequest::Resolved { .. } => "resolved",
        EventRequest::Apologized { .. } => "apologized",
        EventRequest::Returned { .. } => "returned",
        EventRequest::ConflictResolved { .. } => "conflict resolved",
    }
}
