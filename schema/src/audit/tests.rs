//! The verifier against archives that honest nodes export and archives that an attacker, a
//! broken node or a dishonest one could produce: each tampering must be found and named.

use automerge::ReadDoc;
use proptest::prelude::*;

use super::archive::{self, CheckpointRecord, Section, WitnessedLog};
use super::fixture::{Fixture, Writer, commune_fixture, make_checkpoint};
use super::merkle::{MemoryTree, empty_root, leaf_hash};
use super::report::Report;
use super::sig::{KeyCache, Mode};
use super::verify::{Options, check_signatures, verify};
use crate::dossier::EventBody;
use crate::ids::UnitCode;
use crate::timestamp::Timestamp;
use crate::trust::Role;

const HOUR_MS: i64 = 3_600_000;

fn check(bytes: &[u8], options: &Options) -> Report {
    let mut cache = KeyCache::new();
    verify(bytes, options, &mut |inputs| {
        check_signatures(inputs, &mut cache, Mode::Batch)
    })
}

fn check_strict(bytes: &[u8]) -> Report {
    let mut cache = KeyCache::new();
    verify(bytes, &Options::default(), &mut |inputs| {
        check_signatures(inputs, &mut cache, Mode::Strict)
    })
}

fn reasons(r: &Report) -> Vec<&str> {
    r.failures.iter().map(|f| f.reason.as_str()).collect()
}

/// Rewrites section 6 of an archive with `f` applied to its (leaf, envelope) records, leaving
/// every other byte as it was: what someone editing an archive by hand would do.
fn rewrite_changes(bytes: &[u8], f: impl FnOnce(&mut Vec<(u64, Vec<u8>)>)) -> Vec<u8> {
    let a = archive::parse(bytes);
    let mut records: Vec<(u64, Vec<u8>)> = a
        .changes
        .iter()
        .map(|c| (c.leaf, c.envelope.to_vec()))
        .collect();
    f(&mut records);
    let span = a.spans[Section::Changes as usize - 1].unwrap();
    let mut payload = (records.len() as u64).to_be_bytes().to_vec();
    for (leaf, env) in &records {
        payload.extend_from_slice(&leaf.to_be_bytes());
        payload.extend_from_slice(&(env.len() as u32).to_be_bytes());
        payload.extend_from_slice(env);
    }
    let mut out = bytes[..span.offset - 8].to_vec();
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&bytes[span.offset + span.len..]);
    out
}

#[test]
fn an_honest_commune_archive_verifies() {
    // Why: the whole point: what a node exports must verify with nothing but the archive.
    let f = commune_fixture(10, 4);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let r = check(&bytes, &Options::default());
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.checks.changes, 20);
    assert_eq!(r.checks.signatures_valid, 20);
    assert_eq!(r.checks.checkpoints, 6);
    assert_eq!(r.log.size, 20);
    let unit = &r.units["X1"];
    assert_eq!((unit.changes, unit.documents), (20, 10));
    assert_eq!(unit.kinds["dossier"], 20);
    assert_eq!(check_strict(&bytes), r);
    assert!(r.to_text().contains("HỢP LỆ / VALID"));
}

#[test]
fn a_filtered_archive_proves_its_changes_with_a_range_proof() {
    // Why: an inspector may ask for one unit or period; the changes left out must not weaken
    // the proof that the ones exported sit where the log says.
    let f = commune_fixture(12, 5);
    let bytes = f.build_with(&|leaf| leaf % 3 == 1, Timestamp(1_750_100_000_000));
    let r = check(&bytes, &Options::default());
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.checks.changes, 8);
    // Dependencies left out of the export are an anomaly, not a failure.
    assert!(r.anomalies_by_reason.contains_key("dependency_absent"));
}

#[test]
fn every_bit_flip_is_detected_and_named() {
    // Why: the promise: any single-bit change anywhere in an archive is found, and the
    // report says which record or section it hit.
    let f = commune_fixture(2, 3);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let a = archive::parse(&bytes);
    assert!(a.problems.is_empty());
    // Where each byte lies: a section's framing, a section's payload, or change #k.
    let locate = |i: usize| -> String {
        for s in Section::ALL {
            let span = a.spans[s as usize - 1].unwrap();
            if i >= span.offset - 9 && i < span.offset {
                return "framing".into();
            }
            if i >= span.offset && i < span.offset + span.len {
                if s == Section::Changes {
                    for c in &a.changes {
                        if i >= c.offset - 12 && i < c.offset + c.envelope.len() {
                            return format!("change #{}", c.position);
                        }
                    }
                    return "section changes".into();
                }
                return match s {
                    Section::Manifest | Section::Signature => "manifest".into(),
                    _ => format!("section {}", s.name()),
                };
            }
        }
        "framing".into()
    };
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1 << (i % 8);
        let r = check(&bad, &Options::default());
        let place = locate(i);
        assert!(!r.ok, "flip of byte {i} ({place}) not detected");
        let named = match place.as_str() {
            "framing" => r.has_failure("archive_format") || r.has_failure("section_digest"),
            p if p.starts_with("change #") => r.failures.iter().any(|f| {
                f.record.contains(&format!("{p} ("))
                    || f.message.contains(&format!("{p}:"))
                    || f.record.contains(&format!("{p}:"))
            }),
            p => r.failures.iter().any(|f| f.record.contains(p)),
        };
        assert!(
            named,
            "flip of byte {i} ({place}) not named:\n{}",
            r.to_text()
        );
    }
}

#[test]
fn a_tampered_signature_is_named_by_its_change() {
    // Why: an inspector must be told exactly which record is forged, in both checking modes.
    let f = commune_fixture(4, 10);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let target = archive::parse(&bytes).changes[3];
    let mut bad = bytes.clone();
    bad[target.offset + 2 + 30 + 32 + 5] ^= 0x10; // inside the signature's R
    for r in [check(&bad, &Options::default()), check_strict(&bad)] {
        let f = r
            .failures
            .iter()
            .find(|f| f.reason == "signature")
            .expect("signature failure");
        assert!(f.record.starts_with("change #3 (leaf 3"), "{}", f.record);
        assert_eq!(f.unit.as_deref(), Some("X1"));
    }
}

#[test]
fn a_removed_change_is_named_by_its_leaf() {
    // Why: dropping a record from an archive must not pass as "the node never had it".
    let f = commune_fixture(5, 100);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let bad = rewrite_changes(&bytes, |records| {
        records.remove(6);
    });
    let r = check(&bad, &Options::default());
    let missing = r
        .failures
        .iter()
        .find(|f| f.reason == "missing_leaf")
        .expect("missing leaf");
    assert_eq!(missing.record, "leaf 6");
    assert!(
        r.has_failure("change_count") && r.has_failure("section_digest"),
        "{:?}",
        reasons(&r)
    );
}

#[test]
fn a_reordered_archive_is_detected() {
    // Why: moving records around (or giving one change another's place) changes what the log
    // says happened first; neither may pass.
    let f = commune_fixture(5, 100);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let swapped = rewrite_changes(&bytes, |records| records.swap(2, 5));
    let r = check(&swapped, &Options::default());
    assert!(
        r.failures.iter().any(|f| f.reason == "leaf_order"
            && f.record
                .contains("change #3 (leaf 3) after change #2 (leaf 5)")),
        "{:?}",
        r.failures
    );
    let moved = rewrite_changes(&bytes, |records| {
        let (a, b) = (records[2].1.clone(), records[5].1.clone());
        records[2].1 = b;
        records[5].1 = a;
    });
    let r = check(&moved, &Options::default());
    assert!(r.has_failure("log_root_mismatch"), "{:?}", reasons(&r));
}

#[test]
fn a_rewritten_log_contradicts_its_witnessed_checkpoints() {
    // Why: a node that reorders or drops history after a peer witnessed its checkpoint must be
    // caught by a consistency check, even if its new log is internally sound.
    let f = commune_fixture(6, 4);
    let witnessed = WitnessedLog {
        key: hex::encode(f.exporter.public()),
        checkpoints: f.checkpoints.clone(),
    };
    // The same node rebuilds its log with two changes in the opposite order.
    let mut g = Fixture::new(9, f.exporter.clone(), Role::Commune);
    let mut log = f.log.clone();
    log.swap(1, 2);
    for (i, env) in log.into_iter().enumerate() {
        g.append(env);
        if (i + 1) % 4 == 0 {
            g.checkpoint(Timestamp(1_750_000_000_000 + i as i64));
        }
    }
    g.checkpoint(Timestamp(1_750_000_900_000));
    let bytes = g.build(Timestamp(1_750_100_000_000));
    assert!(
        check(&bytes, &Options::default()).ok,
        "the rewritten log is internally consistent"
    );
    let options = Options {
        witnesses: vec![witnessed],
        ..Options::default()
    };
    let r = check(&bytes, &options);
    assert!(r.has_failure("log_fork"), "{}", r.to_text());
    // A checkpoint chain whose link does not hold is named too.
    let mut h = f.clone();
    let mut tree = MemoryTree::new();
    for env in f.log.iter().rev() {
        tree.push(leaf_hash(env));
    }
    let last = f.checkpoints.len() - 1;
    let prev = archive::parse(&f.build(Timestamp(0))).log.checkpoints[last - 1].clone();
    let prev_cp = super::note::Checkpoint::open(&prev.note).unwrap();
    h.checkpoints[last] = make_checkpoint(
        &f.exporter.key,
        &tree,
        (prev_cp.size, prev_cp.root),
        Timestamp(1_750_000_950_000),
    );
    let r = check(&h.build(Timestamp(1_750_100_000_000)), &Options::default());
    assert!(
        r.has_failure("checkpoint_inconsistent"),
        "{:?}",
        reasons(&r)
    );
}

/// A province exporter holding the changes of two communes.
fn province_fixture() -> (Fixture, Writer, Writer) {
    let p = Writer::new(21, "P");
    let x1 = Writer::new(11, "X1");
    let x2 = Writer::new(12, "X2");
    let mut f = Fixture::new(9, p, Role::Province);
    f.enrol(&x1, Role::Commune, Timestamp(0));
    f.enrol(&x2, Role::Commune, Timestamp(0));
    (f, x1, x2)
}

#[test]
fn a_change_signed_after_revocation_is_refused_and_one_before_is_kept() {
    // Why: a stolen key is revoked from a time on; its later changes are forgeries, its earlier
    // ones stay valid, and one logged suspiciously late is flagged for a person.
    let (mut f, _x1, x2) = province_fixture();
    let revoked_at = Timestamp(1_750_000_000_000);
    f.revoke(&x2, revoked_at);
    let (_, _, before) = x2.new_dossier(&x2.unit, 1, revoked_at.plus_millis(-HOUR_MS));
    let (_, _, after) = x2.new_dossier(&x2.unit, 2, revoked_at.plus_millis(HOUR_MS));
    f.append(before.encode());
    f.append(after.encode());
    f.checkpoint(revoked_at.plus_millis(2 * HOUR_MS));
    let r = check(
        &f.build(revoked_at.plus_millis(3 * HOUR_MS)),
        &Options::default(),
    );
    let failures: Vec<_> = r
        .failures
        .iter()
        .filter(|f| f.reason == "revoked")
        .collect();
    assert_eq!(failures.len(), 1, "{}", r.to_text());
    assert_eq!(
        failures[0].hash.as_deref(),
        Some(hex::encode(after.hash()).as_str())
    );
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.reason == "logged_after_revocation"
                && a.hash.as_deref() == Some(hex::encode(before.hash()).as_str()))
    );
}

#[test]
fn a_change_outside_its_signers_scope_is_refused() {
    // Why: a commune writes only its own unit's dossiers, and another's only once transferred.
    let (mut f, x1, x2) = province_fixture();
    let t = Timestamp(1_750_000_000_000);
    // X1 creates a dossier numbered in X2's sequence: out of scope.
    let (_, _, forged) = x1.new_dossier(&x2.unit, 7, t);
    f.append(forged.encode());
    // X2 receives a dossier and transfers it to X1; X1 then records a step: in scope.
    let (mut doc, doc_id, first) = x2.new_dossier(&x2.unit, 1, t);
    let mut x1_doc = doc.fork();
    let transfer = x2.event(
        &mut doc,
        &doc_id,
        EventBody::Transferred {
            to_unit: UnitCode::new("X1").unwrap(),
            to_agency: None,
            note: String::new(),
        },
        t.plus_millis(60_000),
    );
    // X1 writing before it has the transfer in its history (from another process, so no
    // equivocation with the later step): out of scope.
    let x1_other = Writer {
        epoch: [99; 8],
        ..x1.clone()
    };
    let early = x1_other.event(
        &mut x1_doc,
        &doc_id,
        EventBody::Resolved {
            note: String::new(),
        },
        t.plus_millis(90_000),
    );
    let mut x1_later = doc.fork();
    let step = x1.event(
        &mut x1_later,
        &doc_id,
        EventBody::Resolved {
            note: String::new(),
        },
        t.plus_millis(120_000),
    );
    assert!(
        x1_later
            .get_change_by_hash(&automerge::ChangeHash(transfer.hash()))
            .is_some()
    );
    for c in [&first, &transfer, &early, &step] {
        f.append(c.encode());
    }
    f.checkpoint(t.plus_millis(HOUR_MS));
    let r = check(&f.build(t.plus_millis(2 * HOUR_MS)), &Options::default());
    let out: Vec<String> = r
        .failures
        .iter()
        .filter(|f| f.reason == "out_of_scope")
        .filter_map(|f| f.hash.clone())
        .collect();
    assert_eq!(
        out,
        vec![hex::encode(forged.hash()), hex::encode(early.hash())],
        "{}",
        r.to_text()
    );
    assert_eq!(r.checks.transfer_scoped, 3);
    assert_eq!(r.failures.len(), 2, "{}", r.to_text());
}

#[test]
fn an_equivocation_is_reported_with_its_signer() {
    // Why: two different changes under one (actor, seq) mean a node forked its own history, on
    // purpose or by reusing an actor after a restore; the signer must be named.
    let (mut f, x1, _) = province_fixture();
    let t = Timestamp(1_750_000_000_000);
    let (doc, doc_id, first) = x1.new_dossier(&x1.unit, 1, t);
    let (mut a, mut b) = (doc.fork(), doc.fork());
    let one = x1.event(
        &mut a,
        &doc_id,
        EventBody::Resolved {
            note: "một".into()
        },
        t.plus_millis(60_000),
    );
    let two = x1.event(
        &mut b,
        &doc_id,
        EventBody::Resolved { note: "hai".into() },
        t.plus_millis(60_000),
    );
    assert_eq!(one.seq(), two.seq());
    f.append(first.encode());
    f.append(one.encode());
    f.append(two.encode());
    f.checkpoint(t.plus_millis(HOUR_MS));
    let r = check(&f.build(t.plus_millis(2 * HOUR_MS)), &Options::default());
    let e = r
        .failures
        .iter()
        .find(|f| f.reason == "equivocation")
        .expect("equivocation");
    assert!(
        e.message.contains(&hex::encode(x1.public())) && e.message.contains("commune X1"),
        "{}",
        e.message
    );
    // The same found as a fork proof the node kept (the second change was refused, not logged).
    let (mut g, _, _) = province_fixture();
    g.append(first.encode());
    g.append(one.encode());
    g.forks.push(serde_json::json!({"first": hex::encode(one.encode()), "second": hex::encode(two.encode())}));
    g.checkpoint(t.plus_millis(HOUR_MS));
    let r = check(&g.build(t.plus_millis(2 * HOUR_MS)), &Options::default());
    assert_eq!(reasons(&r), vec!["equivocation"], "{}", r.to_text());
    assert_eq!(r.failures[0].unit.as_deref(), Some("X1"));
    // A fork proof that proves nothing is itself a failure.
    g.forks[0] = serde_json::json!({"first": hex::encode(one.encode()), "second": hex::encode(one.encode())});
    let r = check(&g.build(t.plus_millis(2 * HOUR_MS)), &Options::default());
    assert_eq!(reasons(&r), vec!["fork_proof_invalid"]);
}

#[test]
fn witnessed_checkpoints_verify_and_a_split_view_is_caught() {
    // Why: witnessing is what catches a node showing different histories to different peers.
    let (mut f, x1, _) = province_fixture();
    let mut tree = MemoryTree::new();
    for i in 0..5u8 {
        tree.push(leaf_hash(&[i]));
    }
    let first = make_checkpoint(
        &x1.key,
        &tree,
        (0, empty_root()),
        Timestamp(1_750_000_000_000),
    );
    let first_root = super::merkle::root(&tree, 5).unwrap();
    let mut grown = tree.clone();
    grown.push(leaf_hash(b"six"));
    let second = make_checkpoint(
        &x1.key,
        &grown,
        (5, first_root),
        Timestamp(1_750_000_100_000),
    );
    f.witness.push(WitnessedLog {
        key: hex::encode(x1.public()),
        checkpoints: vec![first.clone(), second],
    });
    f.checkpoint(Timestamp(1_750_000_200_000));
    let r = check(&f.build(Timestamp(1_750_000_300_000)), &Options::default());
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(
        (r.checks.witnessed_logs, r.checks.witnessed_checkpoints),
        (1, 2)
    );
    // X1 shows another peer a different tree of the same size.
    let mut other = MemoryTree::new();
    for i in 10..15u8 {
        other.push(leaf_hash(&[i]));
    }
    let split = make_checkpoint(
        &x1.key,
        &other,
        (0, empty_root()),
        Timestamp(1_750_000_050_000),
    );
    let options = Options {
        witnesses: vec![WitnessedLog {
            key: hex::encode(x1.public()),
            checkpoints: vec![split],
        }],
        ..Options::default()
    };
    let r = check(&f.build(Timestamp(1_750_000_300_000)), &options);
    assert!(r.has_failure("log_fork"), "{}", r.to_text());
    // A forged witnessed note.
    let mut forged: CheckpointRecord = first;
    forged.note = forged.note.replacen("\n5\n", "\n4\n", 1);
    f.witness[0].checkpoints[0] = forged;
    let r = check(&f.build(Timestamp(1_750_000_300_000)), &Options::default());
    assert!(r.has_failure("witness_note_signature"), "{:?}", reasons(&r));
}

#[test]
fn the_root_key_can_be_pinned() {
    // Why: an archive could bring its own root and registry; the inspector checks it against
    // the province's published key.
    let f = commune_fixture(1, 10);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let good = Options {
        root_key: Some(*f.root.verifying_key().as_bytes()),
        ..Options::default()
    };
    assert!(check(&bytes, &good).ok);
    let other = Options {
        root_key: Some([1; 32]),
        ..Options::default()
    };
    assert_eq!(reasons(&check(&bytes, &other)), vec!["root_key"]);
}

#[test]
fn clock_anomalies_are_flagged_not_failed() {
    // Why: rural clocks drift; an event stamped before the one it follows, or after the log
    // took it, is for a person to look at, never a reason to reject the record.
    let (mut f, x1, _) = province_fixture();
    let t = Timestamp(1_750_000_000_000);
    let (mut doc, doc_id, first) = x1.new_dossier(&x1.unit, 1, t);
    let back = x1.event(
        &mut doc,
        &doc_id,
        EventBody::Resolved {
            note: String::new(),
        },
        t.plus_millis(-HOUR_MS),
    );
    let (_, _, future) = x1.new_dossier(&x1.unit, 2, t.plus_millis(24 * HOUR_MS));
    for c in [&first, &back, &future] {
        f.append(c.encode());
    }
    f.checkpoint(t.plus_millis(HOUR_MS));
    let r = check(&f.build(t.plus_millis(2 * HOUR_MS)), &Options::default());
    assert!(r.ok, "{}", r.to_text());
    let found = |reason: &str, c: &crate::signed::SignedChange| {
        r.anomalies.iter().any(|a| {
            a.reason == reason && a.hash.as_deref() == Some(hex::encode(c.hash()).as_str())
        })
    };
    assert!(found("clock_before_dependency", &back));
    assert!(found("clock_after_log", &future));
    assert_eq!(r.units["X1"].anomalies, 2);
}

#[test]
fn show_reproduces_a_dossier_with_its_signers() {
    // Why: an inspector reads a dossier's history from the archive alone, with who signed what.
    let f = commune_fixture(3, 10);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let code = format!("X1-{}-0002", "250615");
    let h = super::show::dossier_history(&bytes, &code).unwrap();
    assert_eq!(h.events.len(), 2);
    assert_eq!(h.events[0].kind, "received");
    assert_eq!(h.events[1].kind, "resolved");
    for e in &h.events {
        assert_eq!(
            e.signer.as_deref(),
            Some(hex::encode(f.exporter.public()).as_str())
        );
        assert!(
            e.signer_enrolment
                .as_deref()
                .unwrap()
                .starts_with("commune X1")
        );
    }
    assert!(!h.to_text().contains("Người thử"), "no personal data");
    assert!(super::show::dossier_history(&bytes, "X1-250615-0009").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_edit_of_an_archive_is_refused_without_panicking(
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        junk in proptest::collection::vec(any::<u8>(), 1..64),
        how in 0u8..3,
    ) {
        // Why: archives come from whoever exported them; the verifier must survive truncations,
        // insertions and overwrites anywhere, and never call such an archive valid.
        let bytes = commune_fixture(2, 3).build(Timestamp(1_750_100_000_000));
        let mut bad = bytes.clone();
        match how {
            0 => bad.truncate(cut.index(bytes.len())),
            1 => {
                let i = at.index(bytes.len() + 1);
                bad.splice(i..i, junk.iter().copied());
            }
            _ => {
                let i = at.index(bytes.len());
                for (k, b) in junk.iter().enumerate() {
                    if let Some(slot) = bad.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
        }
        let r = check(&bad, &Options::default());
        prop_assert_eq!(r.ok, bad == bytes, "{}", r.to_text());
        let _ = super::show::dossier_history(&bad, "X1-250615-0001");
    }
}
