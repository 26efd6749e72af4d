//! The test vectors of `docs/audit-format.md` §12, generated from this implementation and
//! compared with `docs/audit-vectors.json`, so the file an outside verifier tests itself against
//! is always what motcua actually does. `MOTCUA_WRITE_VECTORS=1 cargo test -p motcua-schema
//! vectors` rewrites the file after a deliberate format change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use super::archive;
use super::change::parse_change;
use super::fixture::commune_fixture;
use super::merkle::{self, MemoryTree, leaf_hash};
use super::note::Checkpoint;
use super::sig::{KeyCache, Mode, verify_one};
use super::verify::{Options, check_signatures, verify};
use crate::ids::DocId;
use crate::signed::signing_message;
use crate::timestamp::Timestamp;

fn hx(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn merkle_vectors() -> (Value, Value) {
    let leaves: Vec<Vec<u8>> = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|t| hex::decode(t).expect("hex"))
    .collect();
    let mut tree = MemoryTree::new();
    for l in &leaves {
        tree.push(leaf_hash(l));
    }
    let roots: Vec<String> = (0..=8)
        .map(|n| hx(merkle::root(&tree, n).expect("in memory")))
        .collect();
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for size in 1..=8u64 {
        for index in 0..size {
            let proof = merkle::inclusion_proof(&tree, index, size).expect("in memory");
            inclusion.push(json!({"index": index, "size": size, "proof": proof.iter().map(hx).collect::<Vec<_>>()}));
        }
        for old in 0..=size {
            let proof = merkle::consistency_proof(&tree, old, size).expect("in memory");
            consistency.push(
                json!({"old": old, "new": size, "proof": proof.iter().map(hx).collect::<Vec<_>>()}),
            );
        }
    }
    let mut ranges = Vec::new();
    for (size, exported) in [
        (8u64, vec![0u64]),
        (8, vec![2, 3, 6]),
        (7, vec![1, 4]),
        (5, vec![]),
        (8, (0..8).collect()),
    ] {
        let entries = merkle::range_proof(&tree, size, &exported).expect("in memory");
        ranges.push(json!({
            "size": size,
            "exported": exported,
            "entries": entries.iter().map(|e| json!({"start": e.start, "end": e.end, "hash": hx(e.hash)})).collect::<Vec<_>>(),
            "root": hx(merkle::root(&tree, size).expect("in memory")),
        }));
    }
    (
        json!({
            "leaves": leaves.iter().map(hx).collect::<Vec<_>>(),
            "roots": roots,
            "inclusion": inclusion,
            "consistency": consistency,
        }),
        Value::Array(ranges),
    )
}

fn change_vectors(envelopes: &[Vec<u8>]) -> (Value, Value) {
    let mut changes = Vec::new();
    let mut envs = Vec::new();
    for env in envelopes {
        let e = super::change::parse_envelope(env).expect("fixture envelope");
        let h = parse_change(e.change).expect("fixture change");
        changes.push(json!({
            "bytes": hx(e.change),
            "hash": hx(h.hash),
            "checksum_ok": h.checksum_ok,
            "actor": hx(h.actor),
            "seq": h.seq,
            "start_op": h.start_op,
            "time": h.time,
            "message": h.message,
            "deps": h.deps().map(hx).collect::<Vec<_>>(),
        }));
        let message = signing_message(e.doc_id, &h.hash);
        envs.push(json!({
            "bytes": hx(env),
            "doc_id": e.doc_id,
            "signer": hx(e.signer),
            "signing_message": hx(&message),
            "valid": verify_one(e.signer, &message, e.signature),
        }));
        // The same envelope signed over another document id: the signature no longer holds.
        let mut moved = env.clone();
        let pos = 2 + e.doc_id.len() - 1;
        moved[pos] = if moved[pos] == b'1' { b'2' } else { b'1' };
        let m = super::change::parse_envelope(&moved).expect("same layout");
        envs.push(json!({
            "bytes": hx(&moved),
            "doc_id": m.doc_id,
            "signer": hx(m.signer),
            "signing_message": hx(signing_message(m.doc_id, &h.hash)),
            "valid": verify_one(m.signer, &signing_message(m.doc_id, &h.hash), m.signature),
        }));
    }
    let first = super::change::parse_envelope(&envelopes[0])
        .expect("fixture envelope")
        .change
        .to_vec();
    let mut bad_checksum = first.clone();
    bad_checksum[4] ^= 0xff;
    let h = parse_change(&bad_checksum).expect("only the checksum differs");
    changes.push(json!({"bytes": hx(&bad_checksum), "hash": hx(h.hash), "checksum_ok": false,
        "actor": hx(h.actor), "seq": h.seq, "start_op": h.start_op, "time": h.time, "message": h.message,
        "deps": h.deps().map(hx).collect::<Vec<_>>()}));
    // The body length written with a redundant LEB128 group: refused.
    let len_byte = first[9];
    assert!(
        len_byte & 0x80 != 0,
        "fixture change body is longer than 127 bytes"
    );
    let mut overlong = first[..9].to_vec();
    let mut i = 9;
    while first[i] & 0x80 != 0 {
        overlong.push(first[i]);
        i += 1;
    }
    overlong.push(first[i] | 0x80);
    overlong.push(0x00);
    overlong.extend_from_slice(&first[i + 1..]);
    assert!(parse_change(&overlong).is_err());
    changes.push(json!({"bytes": hx(&overlong), "error": "change_format"}));
    let mut wrong_type = first.clone();
    wrong_type[8] = 0x02;
    changes.push(json!({"bytes": hx(&wrong_type), "error": "change_format"}));
    (Value::Array(changes), Value::Array(envs))
}

/// A named signature vector: key, message, signature.
type SignatureCase<'a> = (&'a str, [u8; 32], Vec<u8>, [u8; 64]);

fn signature_vectors() -> (Value, Value) {
    // RFC 8032 §7.1 test 1.
    let rfc = SigningKey::from_bytes(
        &hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex")
            .try_into()
            .expect("32"),
    );
    let key = SigningKey::from_bytes(&[7; 32]);
    let a = *key.verifying_key().as_bytes();
    let m = b"motcua".to_vec();
    let good = key.sign(&m).to_bytes();
    // S + ℓ as a 256-bit integer: below 2^253, the same scalar mod ℓ, refused by rule 1.
    let mut s_plus_l = good;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(good[32 + i]) + u16::from(super::sig::ELL[i]) + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    let mut small_r = good;
    small_r[..32].copy_from_slice(&EdwardsPoint::default().compress().to_bytes());
    let weak = EIGHT_TORSION[1].compress().to_bytes();
    let weak_sig = {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&EIGHT_TORSION[2].compress().to_bytes());
        s
    };
    // R = [r]B + T with S = r + k·a: exact except for a torsion component.
    let mixed = {
        let r = Scalar::from(12345u64);
        let big_r = EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1];
        let r_bytes = big_r.compress().to_bytes();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(a)
                .chain_update(&m),
        );
        let s = r + k * key.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    };
    let mut noncanonical_r = good;
    noncanonical_r[..32].copy_from_slice(&{
        let mut y = [0xffu8; 32];
        y[0] = 0xee; // p + 1: the identity written with y ≥ p
        y[31] = 0x7f;
        y
    });
    let cases: Vec<SignatureCase<'_>> = vec![
        (
            "rfc8032 test 1",
            *rfc.verifying_key().as_bytes(),
            Vec::new(),
            rfc.sign(b"").to_bytes(),
        ),
        ("valid", a, m.clone(), good),
        ("other message", a, b"motcub".to_vec(), good),
        ("S + l (non-canonical S)", a, m.clone(), s_plus_l),
        ("small-order R", a, m.clone(), small_r),
        ("small-order A", weak, m.clone(), weak_sig),
        ("non-canonical R (y >= p)", a, m.clone(), noncanonical_r),
        (
            "mixed-order R made with the secret key",
            a,
            m.clone(),
            mixed,
        ),
    ];
    let sigs: Vec<Value> = cases
        .iter()
        .map(|(name, k, msg, s)| {
            json!({"name": name, "key": hx(k), "message": hx(msg), "signature": hx(s), "valid": verify_one(k, msg, s)})
        })
        .collect();
    // Point decoding (rule 2) and small order (rule 3).
    let mut points: Vec<[u8; 32]> = vec![
        ED25519_BASEPOINT_POINT.compress().to_bytes(),
        (ED25519_BASEPOINT_POINT + EIGHT_TORSION[3])
            .compress()
            .to_bytes(),
    ];
    points.extend(EIGHT_TORSION.iter().map(|t| t.compress().to_bytes()));
    // y = 1 with the sign bit set (x = 0 read as 0), and every y = p + j (j < 19) with both signs.
    let mut one_signed = [0u8; 32];
    one_signed[0] = 1;
    one_signed[31] = 0x80;
    points.push(one_signed);
    for j in 0..19u8 {
        for sign in [0u8, 0x80] {
            let mut y = [0xffu8; 32];
            y[0] = 0xed + j;
            y[31] = 0x7f | sign;
            points.push(y);
        }
    }
    points.push([0x02; 32]);
    let pts: Vec<Value> = points
        .iter()
        .map(|p| {
            let d = CompressedEdwardsY(*p).decompress();
            json!({"bytes": hx(p), "decodes": d.is_some(), "small_order": d.is_some_and(|d| d.is_small_order())})
        })
        .collect();
    (Value::Array(sigs), Value::Array(pts))
}

fn note_vectors() -> Value {
    let key = SigningKey::from_bytes(&[3; 32]);
    let cp = Checkpoint {
        key: *key.verifying_key().as_bytes(),
        size: 42,
        root: leaf_hash(b"root"),
        time: Timestamp(1_750_000_000_000),
        prev_size: 40,
        prev_root: leaf_hash(b"prev"),
    };
    let note = cp.sign(&key);
    let wrong_size = note.replacen("\n42\n", "\n43\n", 1);
    let other = SigningKey::from_bytes(&[4; 32]);
    let text = cp.text();
    let forged = format!(
        "{text}\n\u{2014} {} {}\n",
        super::note::origin(&cp.key),
        B64.encode(
            [
                &super::note::key_id(&super::note::origin(&cp.key), &cp.key)[..],
                &other.sign(text.as_bytes()).to_bytes()
            ]
            .concat()
        )
    );
    let one = |n: &str| {
        let ok = Checkpoint::open(n).ok();
        json!({
            "note": n,
            "valid": ok.is_some(),
            "size": ok.map(|c| c.size),
            "root": ok.map(|c| B64.encode(c.root)),
            "time": ok.map(|c| c.time.0),
            "prev_size": ok.map(|c| c.prev_size),
            "prev_root": ok.map(|c| B64.encode(c.prev_root)),
        })
    };
    Value::Array(vec![one(&note), one(&wrong_size), one(&forged)])
}

fn doc_id_vectors() -> Value {
    let ids = [
        "catalog",
        "registry",
        "dossier/000.00.12.H12-231116-0001",
        "dossier/X1-250229-00001",
        "dossier/X1-240229-0001",
        "dossier/X1-240230-0001",
        "dossier/X1-240101-001",
        "dossier/X-1-240101-0001",
        "ratings/X1/20250101",
        "ratings/X1/20251301",
        "ratings/X1/+2025010",
        "log/X1/20250615",
        "log/X1/2025061",
        "other",
        "Catalog",
    ];
    Value::Array(
        ids.iter()
            .map(|id| {
                let d = DocId::parse(id).ok();
                json!({"id": id, "valid": d.is_some(), "unit": d.and_then(|d| d.unit()).map(|u| u.to_string())})
            })
            .collect(),
    )
}

fn archive_vectors() -> (Value, Value) {
    let f = commune_fixture(2, 3);
    let bytes = f.build(Timestamp(1_750_100_000_000));
    let check = |b: &[u8]| {
        let mut cache = KeyCache::new();
        verify(b, &Options::default(), &mut |i| {
            check_signatures(i, &mut cache, Mode::Strict)
        })
    };
    let r = check(&bytes);
    assert!(r.ok);
    let good = json!({
        "bytes": hx(&bytes),
        "root_key": hx(f.root.verifying_key().as_bytes()),
        "ok": r.ok,
        "changes": r.checks.changes,
        "signatures_valid": r.checks.signatures_valid,
        "registry_records": r.checks.registry_records,
        "checkpoints": r.checks.checkpoints,
        "log_size": r.log.size,
    });
    let target = archive::parse(&bytes).changes[1];
    let mut bad = bytes.clone();
    bad[target.offset + 2 + target.envelope[1] as usize + 32 + 40] ^= 0x04; // inside S
    let r = check(&bad);
    let reasons: Vec<&String> = r.failures_by_reason.keys().collect();
    let hashes: Vec<&String> = r
        .failures
        .iter()
        .filter(|f| f.reason == "signature")
        .filter_map(|f| f.hash.as_ref())
        .collect();
    let tampered = json!({"bytes": hx(&bad), "ok": r.ok, "failure_reasons": reasons, "bad_signature_hashes": hashes});
    (good, tampered)
}

/// Every vector, as the JSON document written to `docs/audit-vectors.json`.
fn vectors() -> Value {
    let f = commune_fixture(2, 3);
    let (merkle, range_proofs) = merkle_vectors();
    let (changes, envelopes) = change_vectors(&f.log);
    let (signatures, points) = signature_vectors();
    let (archive, archive_tampered) = archive_vectors();
    json!({
        "about": "Test vectors of docs/audit-format.md (motcua audit archive v1); generated by motcua-schema audit::vectors.",
        "merkle": merkle,
        "range_proofs": range_proofs,
        "changes": changes,
        "envelopes": envelopes,
        "signatures": signatures,
        "points": points,
        "notes": note_vectors(),
        "doc_ids": doc_id_vectors(),
        "archive": archive,
        "archive_tampered": archive_tampered,
    })
}

#[test]
fn vectors_file_is_current() {
    // Why: outside verifiers test themselves against this file; it must be exactly what this
    // implementation does, or the spec and the code have drifted apart.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit-vectors.json");
    let text = serde_json::to_string_pretty(&vectors()).expect("vectors serialise") + "\n";
    if std::env::var_os("MOTCUA_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).expect("writing the vectors");
    }
    let on_disk = std::fs::read_to_string(&path).expect("docs/audit-vectors.json exists");
    assert!(
        on_disk == text,
        "docs/audit-vectors.json is stale: rerun with MOTCUA_WRITE_VECTORS=1"
    );
}

#[test]
fn vectors_agree_with_the_spec_statements() {
    // Why: the spec quotes some vectors' results in prose; they must hold.
    let v = vectors();
    assert_eq!(
        v["merkle"]["roots"][8],
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    let sigs = v["signatures"].as_array().expect("array");
    let valid: Vec<bool> = sigs
        .iter()
        .map(|s| s["valid"].as_bool().expect("bool"))
        .collect();
    assert_eq!(
        valid,
        vec![true, true, false, false, false, false, false, false]
    );
    assert_eq!(v["archive_tampered"]["ok"], false);
}
