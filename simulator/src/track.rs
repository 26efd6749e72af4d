//! Who holds which change, and who should: the simulator's view for convergence and checks.
//!
//! Why counts and not set comparisons: convergence is probed every simulated minute after a
//! heal, for up to 170 communes and a province holding hundreds of thousands of changes. Every
//! change stored by an honest node enters the *universe* (the changes that exist and verify);
//! each node's *expected* count is how many universe changes its scope admits, maintained as
//! changes enter or leave the universe and as transfers widen a commune's scope. A node has
//! converged when it holds exactly that many (it never holds more: the end-of-run check compares
//! the sets themselves).

use std::collections::{HashMap, HashSet};

/// A change and its document id.
pub type Held = ([u8; 32], String);

/// Which nodes admit a document.
#[derive(Debug, Clone)]
struct DocInfo {
    /// Honest commune nodes that admit it (its unit's node, and nodes it was transferred to).
    communes: Vec<usize>,
    /// Catalog, calendar, registry: every node admits it.
    shared: bool,
    /// Universe changes of this document.
    count: u64,
}

/// The tracker.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per honest node: the change hashes it holds (its feed).
    held: Vec<HashSet<[u8; 32]>>,
    /// Per honest node: whether it receives everything (province, auditor).
    receives_all: Vec<bool>,
    /// Per honest node: whether it is tracked for convergence.
    tracked: Vec<bool>,
    /// Per honest node: universe changes its scope admits.
    expected: Vec<u64>,
    /// Change hash → (document index, honest holders).
    changes: HashMap<[u8; 32], (u32, u32)>,
    docs: Vec<DocInfo>,
    doc_ids: Vec<String>,
    doc_index: HashMap<String, u32>,
    /// Unit code → commune node index.
    unit_node: HashMap<String, usize>,
}

const SHARED_DOCS: [&str; 3] = ["catalog", "calendar", "registry"];

/// The unit code of a dossier or ratings document id.
pub fn doc_unit(doc: &str) -> Option<&str> {
    if let Some(code) = doc.strip_prefix("dossier/") {
        return code.split('-').next();
    }
    doc.strip_prefix("ratings/")
        .and_then(|r| r.split('/').next())
}

impl Tracker {
    /// A tracker for `nodes` honest nodes.
    pub fn new(nodes: usize) -> Tracker {
        Tracker {
            held: vec![HashSet::new(); nodes],
            receives_all: vec![false; nodes],
            tracked: vec![true; nodes],
            expected: vec![0; nodes],
            ..Tracker::default()
        }
    }

    /// Declares node `n` as receiving everything.
    pub fn set_receives_all(&mut self, n: usize) {
        self.receives_all[n] = true;
    }

    /// Declares commune node `n` as the node of `unit`.
    pub fn set_unit(&mut self, n: usize, unit: &str) {
        self.unit_node.insert(unit.to_owned(), n);
    }

    /// Excludes node `n` from convergence (a commune with neither link nor bundles).
    pub fn untrack(&mut self, n: usize) {
        self.tracked[n] = false;
    }

    fn doc(&mut self, doc: &str) -> u32 {
        if let Some(i) = self.doc_index.get(doc) {
            return *i;
        }
        let i = self.docs.len() as u32;
        let shared = SHARED_DOCS.contains(&doc);
        let communes = doc_unit(doc)
            .and_then(|u| self.unit_node.get(u).copied())
            .into_iter()
            .collect();
        self.docs.push(DocInfo {
            communes,
            shared,
            count: 0,
        });
        self.doc_ids.push(doc.to_owned());
        self.doc_index.insert(doc.to_owned(), i);
        i
    }

    fn admits(&self, n: usize, d: &DocInfo) -> bool {
        self.receives_all[n] || d.shared || d.communes.contains(&n)
    }

    fn adjust_expected(&mut self, d: u32, delta: i64) {
        let info = self.docs[d as usize].clone();
        for n in 0..self.expected.len() {
            if self.admits(n, &info) {
                self.expected[n] = (self.expected[n] as i64 + delta) as u64;
            }
        }
    }

    /// Node `n` stored a change.
    pub fn add(&mut self, n: usize, hash: [u8; 32], doc: &str) {
        if !self.held[n].insert(hash) {
            return;
        }
        let d = match self.changes.get(&hash) {
            Some((d, _)) => *d,
            None => self.doc(doc),
        };
        let entry = self.changes.entry(hash).or_insert((d, 0));
        entry.1 += 1;
        if entry.1 == 1 {
            self.docs[d as usize].count += 1;
            self.adjust_expected(d, 1);
        }
    }

    /// Node `n` no longer holds anything (restored from a backup: its feed is re-read).
    pub fn clear(&mut self, n: usize) {
        let held = std::mem::take(&mut self.held[n]);
        for hash in held {
            let Some(entry) = self.changes.get_mut(&hash) else {
                continue;
            };
            entry.1 -= 1;
            if entry.1 == 0 {
                let d = entry.0;
                self.changes.remove(&hash);
                self.docs[d as usize].count -= 1;
                self.adjust_expected(d, -1);
            }
        }
    }

    /// Dossier `doc` was transferred to `unit`: its commune node now admits it.
    pub fn transfer(&mut self, doc: &str, unit: &str) {
        let Some(&n) = self.unit_node.get(unit) else {
            return;
        };
        let d = self.doc(doc);
        let info = &self.docs[d as usize];
        if self.admits(n, info) {
            return;
        }
        let count = info.count;
        self.docs[d as usize].communes.push(n);
        self.expected[n] += count;
    }

    /// Whether node `n` holds `hash`.
    pub fn holds(&self, n: usize, hash: &[u8; 32]) -> bool {
        self.held[n].contains(hash)
    }

    /// Whether any honest node holds `hash`.
    pub fn exists(&self, hash: &[u8; 32]) -> bool {
        self.changes.contains_key(hash)
    }

    /// Changes node `n` holds.
    pub fn held_count(&self, n: usize) -> u64 {
        self.held[n].len() as u64
    }

    /// Changes node `n` should hold.
    pub fn expected_count(&self, n: usize) -> u64 {
        self.expected[n]
    }

    /// Whether node `n` holds exactly what it should (untracked nodes always have).
    pub fn converged(&self, n: usize) -> bool {
        !self.tracked[n] || self.held[n].len() as u64 == self.expected[n]
    }

    /// Whether every tracked node has converged.
    pub fn all_converged(&self) -> bool {
        (0..self.held.len()).all(|n| self.converged(n))
    }

    /// Changes in the universe.
    pub fn universe_count(&self) -> u64 {
        self.changes.len() as u64
    }

    /// The universe changes node `n` should hold but does not, and those it holds but should
    /// not (a scope breach), with their document ids.
    ///
    /// Scans what the node holds first; the whole universe (every change times every node, the
    /// bulk of a large run's final checks) only when the node holds fewer admitted changes than
    /// its scope admits, i.e. when something is missing.
    pub fn differences(&self, n: usize) -> (Vec<Held>, Vec<Held>) {
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        let mut admitted_held = 0u64;
        for hash in &self.held[n] {
            let Some((d, _)) = self.changes.get(hash) else {
                continue;
            };
            if self.admits(n, &self.docs[*d as usize]) {
                admitted_held += 1;
            } else {
                extra.push((*hash, self.doc_ids[*d as usize].clone()));
            }
        }
        if admitted_held < self.expected[n] {
            for (hash, (d, _)) in &self.changes {
                if !self.held[n].contains(hash) && self.admits(n, &self.docs[*d as usize]) {
                    missing.push((*hash, self.doc_ids[*d as usize].clone()));
                }
            }
        }
        missing.sort();
        extra.sort();
        (missing, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_follow_scope_transfers_and_restores() {
        // Why: convergence is judged by these counts; they must match the scope rules.
        let mut t = Tracker::new(3);
        t.set_receives_all(0);
        t.set_unit(1, "A");
        t.set_unit(2, "B");
        t.add(1, [1; 32], "dossier/A-251103-0001");
        t.add(2, [2; 32], "dossier/B-251103-0001");
        t.add(0, [3; 32], "catalog");
        assert_eq!(t.expected_count(0), 3);
        assert_eq!(t.expected_count(1), 2);
        assert!(!t.converged(1));
        t.add(1, [3; 32], "catalog");
        assert!(t.converged(1));
        t.transfer("dossier/B-251103-0001", "A");
        assert_eq!(t.expected_count(1), 3);
        t.add(0, [1; 32], "dossier/A-251103-0001");
        t.clear(1);
        assert_eq!(t.universe_count(), 3);
        assert_eq!(t.held_count(1), 0);
        let (missing, extra) = t.differences(1);
        assert_eq!(missing.len(), 3);
        assert!(extra.is_empty());
    }
}
