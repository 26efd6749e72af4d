//! What a verification found, for people (text) and machines (JSON).
//!
//! A **failure** is something that must not be: a broken signature, a change outside its
//! signer's enrolment, a log that does not extend its earlier checkpoints, an equivocation. Any
//! failure makes `motcua audit verify` exit non-zero. An **anomaly** is something a person should
//! look at but that honest nodes can produce: clocks that disagree (rural clocks drift), a
//! dependency the node never received. Each names the exact record it is about.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::timestamp::Timestamp;

/// Most findings of each kind kept in a report; the counts by reason stay exact.
pub const FINDINGS_COUNT_MAX: usize = 10_000;
/// The bucket of documents that belong to no unit (catalog, calendar, registry).
pub const PROVINCE_WIDE: &str = "*";

/// One failure or anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable reason name (`signature`, `revoked`, `missing_leaf`, `clock_before_dependency`…).
    pub reason: String,
    /// The record it is about, e.g. `change #12 (leaf 57)`, `checkpoint #3`, `section registry`.
    pub record: String,
    /// The change hash (hex) when the record is a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The unit the record belongs to, when it belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A sentence for people.
    pub message: String,
}

/// One signer's share of a unit's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignerSummary {
    /// The unit of its enrolment.
    pub unit: Option<String>,
    /// Its unit's name.
    pub unit_name: Option<String>,
    /// Its role.
    pub role: Option<String>,
    /// Changes it signed in this archive.
    pub changes: u64,
}

/// Everything about one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitReport {
    /// Changes of this unit's documents.
    pub changes: u64,
    /// Distinct documents.
    pub documents: u64,
    /// Changes by document kind (`dossier`, `ratings`, `log`…).
    pub kinds: BTreeMap<String, u64>,
    /// Changes by signer key (hex).
    pub signers: BTreeMap<String, u64>,
    /// Failures about its records.
    pub failures: u64,
    /// Anomalies about its records.
    pub anomalies: u64,
    /// Refused changes the exporter logged, by reason.
    pub rejects: BTreeMap<String, u64>,
}

/// Counts of what was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// Changes in the archive.
    pub changes: u64,
    /// Signatures that verified.
    pub signatures_valid: u64,
    /// Registry records that verified against the root key.
    pub registry_records: u64,
    /// The exporter's checkpoints that verified.
    pub checkpoints: u64,
    /// Other nodes whose checkpoints were witnessed.
    pub witnessed_logs: u64,
    /// Witnessed checkpoints that verified.
    pub witnessed_checkpoints: u64,
    /// Fork proofs examined.
    pub fork_proofs: u64,
    /// Refused changes listed.
    pub rejects: u64,
    /// Changes whose scope depended on a transfer, checked by reading the dossier.
    pub transfer_scoped: u64,
}

/// The exporter's log as verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    /// Tree size of the last checkpoint.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
    /// Time of the first checkpoint.
    pub first_checkpoint_at: Option<Timestamp>,
    /// Time of the last checkpoint.
    pub last_checkpoint_at: Option<Timestamp>,
}

/// The whole result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No failure.
    pub ok: bool,
    /// Exporter key, hex.
    pub exporter: String,
    /// Exporter's unit and name, as the registry knows them.
    pub exporter_unit: Option<String>,
    /// Root key the registry is checked against, hex.
    pub root_key: String,
    /// When the archive was made (exporter's clock).
    pub created_at: Option<Timestamp>,
    /// Counts.
    pub checks: Checks,
    /// The exporter's log.
    pub log: LogSummary,
    /// Failures (at most [`FINDINGS_COUNT_MAX`]).
    pub failures: Vec<Finding>,
    /// Failures by reason (all of them).
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Anomalies (at most [`FINDINGS_COUNT_MAX`]).
    pub anomalies: Vec<Finding>,
    /// Anomalies by reason (all of them).
    pub anomalies_by_reason: BTreeMap<String, u64>,
    /// Per unit ([`PROVINCE_WIDE`] for province-wide documents).
    pub units: BTreeMap<String, UnitReport>,
    /// Every signer, by key hex.
    pub signers: BTreeMap<String, SignerSummary>,
}

impl Report {
    /// Records a failure.
    pub fn fail(&mut self, f: Finding) {
        *self.failures_by_reason.entry(f.reason.clone()).or_insert(0) += 1;
        if let Some(u) = &f.unit {
            self.units.entry(u.clone()).or_default().failures += 1;
        }
        if self.failures.len() < FINDINGS_COUNT_MAX {
            self.failures.push(f);
        }
    }

    /// Records an anomaly.
    pub fn anomaly(&mut self, f: Finding) {
        *self
            .anomalies_by_reason
            .entry(f.reason.clone())
            .or_insert(0) += 1;
        if let Some(u) = &f.unit {
            self.units.entry(u.clone()).or_default().anomalies += 1;
        }
        if self.anomalies.len() < FINDINGS_COUNT_MAX {
            self.anomalies.push(f);
        }
    }

    /// Whether some failure has this reason.
    pub fn has_failure(&self, reason: &str) -> bool {
        self.failures_by_reason.contains_key(reason)
    }

    /// The report for people: a summary, then per unit its records, signers and anomalies,
    /// then every failure with its record and reason.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let verdict = if self.ok {
            "HỢP LỆ / VALID"
        } else {
            "KHÔNG HỢP LỆ / INVALID"
        };
        let _ = writeln!(t, "Kết quả kiểm tra / verification: {verdict}");
        let _ = writeln!(
            t,
            "Nút xuất / exporter: {} {}",
            self.exporter,
            self.exporter_unit
                .as_deref()
                .unwrap_or("(không đăng ký / not enrolled)")
        );
        let _ = writeln!(t, "Khóa gốc / root key: {}", self.root_key);
        if let Some(at) = self.created_at {
            let _ = writeln!(t, "Thời điểm xuất / exported at: {}", at.to_rfc3339());
        }
        let c = &self.checks;
        let _ = writeln!(
            t,
            "Đã kiểm tra / checked: {} changes ({} signatures valid), {} registry records, {} checkpoints, \
             {} witnessed checkpoints of {} other logs, {} fork proofs, {} rejects, {} transfer-scoped changes",
            c.changes,
            c.signatures_valid,
            c.registry_records,
            c.checkpoints,
            c.witnessed_checkpoints,
            c.witnessed_logs,
            c.fork_proofs,
            c.rejects,
            c.transfer_scoped
        );
        let _ = writeln!(
            t,
            "Nhật ký / log: size {} root {}",
            self.log.size, self.log.root
        );
        for (unit, u) in &self.units {
            let name = if unit == PROVINCE_WIDE {
                "toàn tỉnh / province-wide"
            } else {
                unit.as_str()
            };
            let _ = writeln!(t, "\nĐơn vị / unit {name}");
            let kinds: Vec<String> = u.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                t,
                "  bản ghi / records: {} changes in {} documents ({})",
                u.changes,
                u.documents,
                kinds.join(", ")
            );
            for (key, n) in &u.signers {
                let s = self.signers.get(key);
                let who = s
                    .and_then(|s| {
                        s.unit.as_ref().map(|unit| {
                            format!(
                                "{} {unit} {}",
                                s.role.as_deref().unwrap_or("?"),
                                s.unit_name.as_deref().unwrap_or("")
                            )
                        })
                    })
                    .unwrap_or_else(|| "(không đăng ký / not enrolled)".into());
                let _ = writeln!(t, "  người ký / signer {key}: {n} changes, {who}");
            }
            let _ = writeln!(
                t,
                "  bất thường / anomalies: {}, lỗi / failures: {}",
                u.anomalies, u.failures
            );
            if !u.rejects.is_empty() {
                let r: Vec<String> = u.rejects.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let _ = writeln!(
                    t,
                    "  bị từ chối / refused by the exporter: {}",
                    r.join(", ")
                );
            }
        }
        if !self.anomalies.is_empty() {
            let _ = writeln!(
                t,
                "\nBất thường / anomalies ({} kinds):",
                self.anomalies_by_reason.len()
            );
            for a in &self.anomalies {
                let _ = writeln!(t, "  [{}] {}: {}", a.reason, a.record, a.message);
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(t, "\nLỗi / failures:");
            for f in &self.failures {
                let _ = writeln!(t, "  [{}] {}: {}", f.reason, f.record, f.message);
            }
            let shown = self.failures.len() as u64;
            let total: u64 = self.failures_by_reason.values().sum();
            if total > shown {
                let _ = writeln!(t, "  … and {} more", total - shown);
            }
        }
        t
    }
}
