//! The trust registry: which keys may write what.
//!
//! The province's root key (kept offline) signs enrolment and revocation records. A record is the
//! exact JSON bytes that were signed plus the root's Ed25519 signature over
//! `"motcua/registry/v1" ‖ 0x00 ‖ record bytes`. Records are self-certifying: wherever a node
//! finds one (its init files, the replicated `registry` document, a bundle) it can check it
//! against the root key alone, so the registry needs no trusted channel.
//!
//! A change is authorised when its signer holds an enrolment valid at the change's time, not
//! revoked at or before that time, and the document is inside the role's scope:
//! - `province`: every document;
//! - `commune`: dossiers received by its unit or transferred to it, its unit's ratings and its
//!   unit's audit-log checkpoints;
//! - `auditor`: nothing (read-only).

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{DocId, UnitCode};
use crate::limits::REGISTRY_RECORDS_COUNT_MAX;
use crate::timestamp::Timestamp;

/// Domain-separation prefix of a registry record signature.
pub const REGISTRY_SIGNATURE_DOMAIN: &[u8] = b"motcua/registry/v1";
/// Largest encoded record body, in bytes.
pub const RECORD_SIZE_BYTES_MAX: usize = 2048;

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The provincial centre's node: writes anything, receives everything.
    Province,
    /// A commune office's node: writes its own unit's records.
    Commune,
    /// An inspector's node: reads everything, writes nothing.
    Auditor,
}

impl Role {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Province => "province",
            Role::Commune => "commune",
            Role::Auditor => "auditor",
        }
    }
}

/// The body of a root-signed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordBody {
    /// A key is enrolled for a unit and role.
    Enrolment {
        /// Node public key, hex.
        node_key: String,
        /// The unit the node serves.
        unit: UnitCode,
        /// The unit's name, for people.
        unit_name: String,
        /// The role.
        role: Role,
        /// Valid from (inclusive).
        valid_from: Timestamp,
        /// Valid until (exclusive), if limited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until: Option<Timestamp>,
        /// Issued at, by the root's operator's clock.
        issued_at: Timestamp,
    },
    /// A key is revoked from a time on.
    Revocation {
        /// Node public key, hex.
        node_key: String,
        /// Changes made at or after this instant are refused.
        revoked_at: Timestamp,
        /// Why.
        reason: String,
        /// Issued at.
        issued_at: Timestamp,
    },
}

impl RecordBody {
    /// The key the record is about.
    pub fn node_key(&self) -> &str {
        match self {
            RecordBody::Enrolment { node_key, .. } | RecordBody::Revocation { node_key, .. } => {
                node_key
            }
        }
    }
}

/// A record with the exact bytes the root signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// The record body as signed (compact JSON text).
    pub body: String,
    /// The root signature, hex.
    pub signature: String,
}

/// Why a record or a change was refused by the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The record is malformed.
    #[error("malformed registry record: {0}")]
    Malformed(String),
    /// The record's signature is not the root's.
    #[error("registry record not signed by the root key")]
    BadRootSignature,
    /// The registry is full.
    #[error("registry holds {REGISTRY_RECORDS_COUNT_MAX} records")]
    Full,
    /// No enrolment for the signer.
    #[error("signer {0} is not enrolled")]
    NotEnrolled(String),
    /// The signer was revoked before the change.
    #[error("signer {0} was revoked")]
    Revoked(String),
    /// The change's time is outside the enrolment's validity.
    #[error("signer {0} was not valid at the change's time")]
    OutsideValidity(String),
    /// The document is outside the signer's scope.
    #[error("{doc} is outside the scope of {role} {unit}")]
    OutOfScope {
        /// The document.
        doc: String,
        /// The signer's role.
        role: &'static str,
        /// The signer's unit.
        unit: String,
    },
}

impl TrustError {
    /// A short stable reason name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            TrustError::Malformed(_) => "registry_malformed",
            TrustError::BadRootSignature => "registry_signature",
            TrustError::Full => "registry_full",
            TrustError::NotEnrolled(_) => "not_enrolled",
            TrustError::Revoked(_) => "revoked",
            TrustError::OutsideValidity(_) => "outside_validity",
            TrustError::OutOfScope { .. } => "out_of_scope",
        }
    }
}

fn record_message(body: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(REGISTRY_SIGNATURE_DOMAIN.len() + 1 + body.len());
    m.extend_from_slice(REGISTRY_SIGNATURE_DOMAIN);
    m.push(0);
    m.extend_from_slice(body.as_bytes());
    m
}

impl SignedRecord {
    /// Signs a record with the root key (done offline, by the province's operator).
    pub fn sign(body: &RecordBody, root: &SigningKey) -> SignedRecord {
        let body = serde_json::to_string(body).expect("record serialises");
        let signature = hex::encode(root.sign(&record_message(&body)).to_bytes());
        SignedRecord { body, signature }
    }

    /// Verifies the record against the root key and parses its body.
    pub fn verify(&self, root: &VerifyingKey) -> Result<RecordBody, TrustError> {
        if self.body.len() > RECORD_SIZE_BYTES_MAX {
            return Err(TrustError::Malformed("record too large".into()));
        }
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TrustError::Malformed("signature is not 64 hex bytes".into()))?;
        root.verify_strict(&record_message(&self.body), &Signature::from_bytes(&sig))
            .map_err(|_| TrustError::BadRootSignature)?;
        let body: RecordBody =
            serde_json::from_str(&self.body).map_err(|e| TrustError::Malformed(e.to_string()))?;
        Ok(body)
    }

    /// A stable id of the record: hex of the first 16 bytes of its signature.
    pub fn id(&self) -> String {
        self.signature.chars().take(32).collect()
    }
}

fn parse_key(hex_key: &str) -> Result<[u8; 32], TrustError> {
    let bytes = key_bytes(hex_key)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| TrustError::Malformed("node key is not a valid point".into()))?;
    Ok(bytes)
}

/// The 32 bytes of a hex key, without checking that they are a curve point: for records already
/// admitted by [`parse_key`], so that rebuilding the standings costs no curve operation.
fn key_bytes(hex_key: &str) -> Result<[u8; 32], TrustError> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::Malformed("node key is not 32 hex bytes".into()))
}

/// An enrolled key's current standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The unit.
    pub unit: UnitCode,
    /// The unit's name.
    pub unit_name: String,
    /// The role.
    pub role: Role,
    /// Valid from.
    pub valid_from: Timestamp,
    /// Valid until.
    pub valid_until: Option<Timestamp>,
    /// Earliest revocation, if any.
    pub revoked_at: Option<Timestamp>,
}

/// The verified records a node knows, indexed by key. Order of insertion does not matter: the
/// standing of a key is a function of the set of records.
#[derive(Debug, Clone)]
pub struct Registry {
    root: VerifyingKey,
    /// Each record with its verified body, parsed once when it came in.
    records: BTreeMap<String, (SignedRecord, RecordBody)>,
    keys: BTreeMap<[u8; 32], Standing>,
}

impl Registry {
    /// An empty registry under `root`.
    pub fn new(root: VerifyingKey) -> Registry {
        Registry {
            root,
            records: BTreeMap::new(),
            keys: BTreeMap::new(),
        }
    }

    /// The root key.
    pub fn root(&self) -> &VerifyingKey {
        &self.root
    }

    /// Adds a record after verifying it. Returns whether it was new.
    pub fn insert(&mut self, record: SignedRecord) -> Result<bool, TrustError> {
        // A record held already was verified when it came in; nodes see the whole registry
        // again with every change to its document, so this skips a signature check per record.
        if self
            .records
            .get(&record.id())
            .is_some_and(|(r, _)| *r == record)
        {
            return Ok(false);
        }
        let body = record.verify(&self.root)?;
        if self.records.contains_key(&record.id()) {
            return Ok(false);
        }
        if self.records.len() >= REGISTRY_RECORDS_COUNT_MAX {
            return Err(TrustError::Full);
        }
        parse_key(body.node_key())?;
        self.records.insert(record.id(), (record, body));
        self.rebuild();
        Ok(true)
    }

    /// Recomputes standings from the whole record set, so the result does not depend on the order
    /// records arrived in. Registries are small (bounded by `REGISTRY_RECORDS_COUNT_MAX`) and
    /// change rarely, so recomputing is simpler than keeping an incremental index right.
    fn rebuild(&mut self) {
        let mut keys: BTreeMap<[u8; 32], Standing> = BTreeMap::new();
        let mut revocations: BTreeMap<[u8; 32], Timestamp> = BTreeMap::new();
        for (_, body) in self.records.values() {
            let Ok(key) = key_bytes(body.node_key()) else {
                continue;
            };
            match body {
                RecordBody::Enrolment {
                    unit,
                    unit_name,
                    role,
                    valid_from,
                    valid_until,
                    ..
                } => {
                    if keys.get(&key).is_none_or(|s| *valid_from > s.valid_from) {
                        keys.insert(
                            key,
                            Standing {
                                unit: unit.clone(),
                                unit_name: unit_name.clone(),
                                role: *role,
                                valid_from: *valid_from,
                                valid_until: *valid_until,
                                revoked_at: None,
                            },
                        );
                    }
                }
                RecordBody::Revocation { revoked_at, .. } => {
                    let r = revocations.entry(key).or_insert(*revoked_at);
                    *r = (*r).min(*revoked_at);
                }
            }
        }
        for (key, at) in revocations {
            if let Some(s) = keys.get_mut(&key) {
                s.revoked_at = Some(at);
            }
        }
        self.keys = keys;
    }

    /// Every record, in id order.
    pub fn records(&self) -> impl Iterator<Item = &SignedRecord> {
        self.records.values().map(|(r, _)| r)
    }

    /// The standing of a key.
    pub fn standing(&self, key: &[u8; 32]) -> Option<&Standing> {
        self.keys.get(key)
    }

    /// Every enrolled key with its standing.
    pub fn standings(&self) -> impl Iterator<Item = (&[u8; 32], &Standing)> {
        self.keys.iter()
    }

    /// Whether `key` may act (connect, sign) at `at`: enrolled, valid then, not revoked by then.
    pub fn check_key(&self, key: &[u8; 32], at: Timestamp) -> Result<&Standing, TrustError> {
        let hex_key = || hex::encode(key);
        let s = self
            .keys
            .get(key)
            .ok_or_else(|| TrustError::NotEnrolled(hex_key()))?;
        if s.revoked_at.is_some_and(|r| at >= r) {
            return Err(TrustError::Revoked(hex_key()));
        }
        if at < s.valid_from || s.valid_until.is_some_and(|u| at >= u) {
            return Err(TrustError::OutsideValidity(hex_key()));
        }
        Ok(s)
    }

    /// Whether a change by `key` at `at` to `doc` is authorised. `transferred_to_signer` says
    /// whether the dossier's current state names the signer's unit as a transfer target (the
    /// caller reads that from the document; only dossiers can be transferred).
    pub fn authorize(
        &self,
        key: &[u8; 32],
        at: Timestamp,
        doc: &DocId,
        transferred_to: &[UnitCode],
    ) -> Result<&Standing, TrustError> {
        let s = self.check_key(key, at)?;
        let in_scope = match (s.role, doc) {
            (Role::Province, _) => true,
            (Role::Commune, DocId::Dossier(code)) => {
                code.unit() == s.unit || transferred_to.contains(&s.unit)
            }
            (Role::Commune, DocId::Ratings(unit, _) | DocId::Log(unit, _)) => *unit == s.unit,
            (Role::Commune, DocId::Catalog | DocId::Calendar | DocId::Registry) => false,
            (Role::Auditor, _) => false,
        };
        if in_scope {
            Ok(s)
        } else {
            Err(TrustError::OutOfScope {
                doc: doc.to_string(),
                role: s.role.name(),
                unit: s.unit.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn node(seed: u8) -> [u8; 32] {
        *SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .as_bytes()
    }

    fn enrol(seed: u8, unit: &str, role: Role) -> SignedRecord {
        SignedRecord::sign(
            &RecordBody::Enrolment {
                node_key: hex::encode(node(seed)),
                unit: UnitCode::new(unit).unwrap(),
                unit_name: "Xã A".into(),
                role,
                valid_from: Timestamp(0),
                valid_until: None,
                issued_at: Timestamp(0),
            },
            &root(),
        )
    }

    #[test]
    fn scope_follows_role_and_unit() {
        // Why: a commune may write only its own unit's records; the province may write all.
        let mut reg = Registry::new(root().verifying_key());
        reg.insert(enrol(1, "X1", Role::Commune)).unwrap();
        reg.insert(enrol(2, "P", Role::Province)).unwrap();
        reg.insert(enrol(3, "A", Role::Auditor)).unwrap();
        let own = DocId::parse("dossier/X1-250101-0001").unwrap();
        let other = DocId::parse("dossier/X2-250101-0001").unwrap();
        let t = Timestamp(5);
        assert!(reg.authorize(&node(1), t, &own, &[]).is_ok());
        assert_eq!(
            reg.authorize(&node(1), t, &other, &[])
                .unwrap_err()
                .reason(),
            "out_of_scope"
        );
        assert!(
            reg.authorize(&node(1), t, &other, &[UnitCode::new("X1").unwrap()])
                .is_ok()
        );
        assert!(reg.authorize(&node(1), t, &DocId::Catalog, &[]).is_err());
        assert!(reg.authorize(&node(2), t, &other, &[]).is_ok());
        assert!(reg.authorize(&node(3), t, &own, &[]).is_err());
        assert_eq!(
            reg.authorize(&node(4), t, &own, &[]).unwrap_err().reason(),
            "not_enrolled"
        );
    }

    #[test]
    fn revocation_applies_from_its_time() {
        // Why: a stolen key's changes after revocation must be refused, older ones kept.
        let mut reg = Registry::new(root().verifying_key());
        reg.insert(enrol(1, "X1", Role::Commune)).unwrap();
        let rev = SignedRecord::sign(
            &RecordBody::Revocation {
                node_key: hex::encode(node(1)),
                revoked_at: Timestamp(100),
                reason: "mất máy".into(),
                issued_at: Timestamp(100),
            },
            &root(),
        );
        reg.insert(rev).unwrap();
        let doc = DocId::parse("dossier/X1-250101-0001").unwrap();
        assert!(reg.authorize(&node(1), Timestamp(99), &doc, &[]).is_ok());
        assert_eq!(
            reg.authorize(&node(1), Timestamp(100), &doc, &[])
                .unwrap_err()
                .reason(),
            "revoked"
        );
    }

    #[test]
    fn records_not_signed_by_root_are_refused() {
        // Why: only the province's root may enrol keys.
        let mut reg = Registry::new(root().verifying_key());
        let mut forged = enrol(1, "X1", Role::Province);
        forged.body = forged.body.replace("province", "commune");
        assert_eq!(
            reg.insert(forged).unwrap_err(),
            TrustError::BadRootSignature
        );
        let other_root = SigningKey::from_bytes(&[8; 32]);
        let rec = SignedRecord::sign(
            &RecordBody::Revocation {
                node_key: hex::encode(node(1)),
                revoked_at: Timestamp(0),
                reason: String::new(),
                issued_at: Timestamp(0),
            },
            &other_root,
        );
        assert!(reg.insert(rec).is_err());
    }

    #[test]
    fn a_held_record_is_not_new_and_a_tampered_copy_of_it_is_still_refused() {
        // Why: a held record skips its signature check when it comes again (every registry
        // change brings the whole registry); a copy with a changed body keeps the id, which is
        // taken from the signature, and must not slip through that shortcut.
        let mut reg = Registry::new(root().verifying_key());
        let rec = enrol(1, "X1", Role::Commune);
        assert_eq!(reg.insert(rec.clone()), Ok(true));
        assert_eq!(reg.insert(rec.clone()), Ok(false));
        let mut tampered = rec;
        tampered.body = tampered.body.replace("commune", "province");
        assert_eq!(reg.insert(tampered), Err(TrustError::BadRootSignature));
        assert_eq!(reg.standing(&node(1)).map(|s| s.role), Some(Role::Commune));
    }

    #[test]
    fn insertion_order_does_not_matter() {
        // Why: nodes learn records in different orders and must agree on every key's standing.
        let rev = SignedRecord::sign(
            &RecordBody::Revocation {
                node_key: hex::encode(node(1)),
                revoked_at: Timestamp(10),
                reason: String::new(),
                issued_at: Timestamp(10),
            },
            &root(),
        );
        let mut a = Registry::new(root().verifying_key());
        a.insert(enrol(1, "X1", Role::Commune)).unwrap();
        a.insert(rev.clone()).unwrap();
        let mut b = Registry::new(root().verifying_key());
        b.insert(rev).unwrap();
        b.insert(enrol(1, "X1", Role::Commune)).unwrap();
        assert_eq!(a.standing(&node(1)), b.standing(&node(1)));
        assert_eq!(
            a.standing(&node(1)).unwrap().revoked_at,
            Some(Timestamp(10))
        );
    }
}
