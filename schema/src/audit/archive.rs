//! The audit archive container (format v1): what `motcua audit export` writes and every
//! verifier reads. `docs/audit-format.md` is the normative description; this is its code.
//!
//! ```text
//! archive  = magic "motcua/audit/v1\n" (16 bytes) ‖ 8 sections, in this order, nothing after
//! section  = u8 kind ‖ u64 big-endian length ‖ payload
//!   1 registry   JSON  {root_key, records: [{body, signature}]}
//!   2 log        JSON  {key, checkpoints: [{note, consistency}], proof: [{start, end, hash}]}
//!   3 witness    JSON  {logs: [{key, checkpoints: [{note, consistency}]}]}
//!   4 forks      JSON  [{first, second, ...}]                 envelopes in hex
//!   5 rejects    JSON  [{at, origin, doc, hash, signer, reason, message}]
//!   6 changes    u64 count ‖ count × (u64 leaf index ‖ u32 length ‖ envelope v1)
//!   7 manifest   JSON  {format, exporter, created_at, filter, changes, log, sections}
//!   8 signature  64 bytes: Ed25519 by the exporter over "motcua/archive/v1" ‖ 0x00 ‖ manifest
//! ```
//! Hashes inside JSON are base64 (standard alphabet, padded); keys, envelopes and signatures
//! are lowercase hex. The manifest gives each of sections 1–6 its length and SHA-256, so the
//! exporter's one signature covers every byte of the archive.
//!
//! The parser never stops at the first problem it can work around: a malformed section is
//! reported and read as empty, so a verifier names every broken record it can still reach.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{Hash, ProofEntry};
use crate::trust::SignedRecord;

/// The first 16 bytes of every archive.
pub const MAGIC: &[u8; 16] = b"motcua/audit/v1\n";
/// The manifest's `format` value.
pub const FORMAT: &str = "motcua/audit/v1";
/// Domain-separation prefix of the exporter's signature over the manifest.
pub const MANIFEST_SIGNATURE_DOMAIN: &[u8] = b"motcua/archive/v1";
/// Largest JSON section, in bytes: bounds what a verifier parses into memory in one piece.
pub const JSON_SECTION_SIZE_BYTES_MAX: u64 = 1 << 30;
/// Most changes one archive may hold.
pub const ARCHIVE_CHANGES_COUNT_MAX: u64 = 100_000_000;

/// The sections, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// The trust registry.
    Registry = 1,
    /// The exporter's log: checkpoints and the range proof.
    Log = 2,
    /// Checkpoints of other nodes' logs the exporter witnessed.
    Witness = 3,
    /// Fork proofs (equivocations) the exporter kept.
    Forks = 4,
    /// Changes the exporter refused.
    Rejects = 5,
    /// The signed changes.
    Changes = 6,
    /// The manifest.
    Manifest = 7,
    /// The exporter's signature over the manifest.
    Signature = 8,
}

impl Section {
    /// Every section in file order.
    pub const ALL: [Section; 8] = [
        Section::Registry,
        Section::Log,
        Section::Witness,
        Section::Forks,
        Section::Rejects,
        Section::Changes,
        Section::Manifest,
        Section::Signature,
    ];

    /// The name used in the manifest and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Section::Registry => "registry",
            Section::Log => "log",
            Section::Witness => "witness",
            Section::Forks => "forks",
            Section::Rejects => "rejects",
            Section::Changes => "changes",
            Section::Manifest => "manifest",
            Section::Signature => "signature",
        }
    }
}

/// Section 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// The province root public key, hex.
    pub root_key: String,
    /// Every root-signed record the exporter holds.
    pub records: Vec<SignedRecord>,
}

/// A published checkpoint: the signed note and the consistency proof from the checkpoint it
/// names as `prev` to itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRecord {
    /// The C2SP signed note (`super::note`).
    pub note: String,
    /// RFC 9162 consistency proof from `prev` to this checkpoint, base64 hashes.
    pub consistency: Vec<String>,
}

/// One entry of a range proof as written in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofEntryJson {
    /// First leaf covered.
    pub start: u64,
    /// One past the last leaf covered.
    pub end: u64,
    /// Base64 hash.
    pub hash: String,
}

/// Section 2.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The exporter's node key, hex.
    pub key: String,
    /// Every checkpoint of the exporter's log, oldest first; each names the one before as prev.
    pub checkpoints: Vec<CheckpointRecord>,
    /// Range proof of the exported changes against the last checkpoint.
    pub proof: Vec<ProofEntryJson>,
}

/// Another node's log as the exporter witnessed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    /// The node key, hex.
    pub key: String,
    /// Its checkpoints the exporter holds, oldest first.
    pub checkpoints: Vec<CheckpointRecord>,
}

/// Section 3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSection {
    /// One entry per witnessed node.
    pub logs: Vec<WitnessedLog>,
}

/// The exporter, as it describes itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exporter {
    /// Node key, hex.
    pub key: String,
    /// Unit code.
    pub unit: String,
    /// Unit name.
    pub unit_name: String,
    /// Role.
    pub role: String,
}

/// What the exporter was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only these units (empty: all).
    pub units: Vec<String>,
    /// First local day, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Last local day (inclusive).
    pub to: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
}

/// The log state the changes are proven against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLog {
    /// Tree size of the last checkpoint.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
}

/// One section's length and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionDigest {
    /// Section name.
    pub name: String,
    /// Payload length in bytes.
    pub bytes: u64,
    /// SHA-256 of the payload, hex.
    pub sha256: String,
}

/// Section 7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Who exported.
    pub exporter: Exporter,
    /// When, by the exporter's clock (ms since the epoch).
    pub created_at: i64,
    /// What was asked for.
    pub filter: Filter,
    /// Number of changes in section 6.
    pub changes: u64,
    /// The checkpoint the range proof is against.
    pub log: ManifestLog,
    /// Sections 1 to 6.
    pub sections: Vec<SectionDigest>,
}

/// Base64 of a hash.
pub fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// A hash from canonical base64.
pub fn hash_from_b64(text: &str) -> Option<Hash> {
    let bytes = B64.decode(text).ok()?;
    (B64.encode(&bytes) == text).then_some(())?;
    bytes.try_into().ok()
}

impl ProofEntryJson {
    /// From a proof entry.
    pub fn from_entry(e: &ProofEntry) -> ProofEntryJson {
        ProofEntryJson {
            start: e.start,
            end: e.end,
            hash: b64(&e.hash),
        }
    }

    /// To a proof entry, if the hash is canonical base64 of 32 bytes.
    pub fn to_entry(&self) -> Option<ProofEntry> {
        Some(ProofEntry {
            start: self.start,
            end: self.end,
            hash: hash_from_b64(&self.hash)?,
        })
    }
}

/// The message the exporter signs.
pub fn manifest_message(manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(MANIFEST_SIGNATURE_DOMAIN.len() + 1 + manifest.len());
    m.extend_from_slice(MANIFEST_SIGNATURE_DOMAIN);
    m.push(0);
    m.extend_from_slice(manifest);
    m
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The sink failed.
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
    /// Sections were written out of order or a count was wrong: a bug in the caller.
    #[error("archive written out of order: {0}")]
    Order(&'static str),
}

/// Writes an archive section by section to any sink, hashing as it goes, so a million changes
/// never need to be in memory at once. Call the `*_section` methods in file order, then
/// [`ArchiveWriter::finish`].
pub struct ArchiveWriter<W: Write> {
    out: W,
    next: u8,
    digests: Vec<SectionDigest>,
    changes: Option<ChangesState>,
}

struct ChangesState {
    count: u64,
    written: u64,
    bytes_declared: u64,
    bytes_written: u64,
    hasher: Sha256,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(mut out: W) -> Result<ArchiveWriter<W>, WriteError> {
        out.write_all(MAGIC)?;
        Ok(ArchiveWriter {
            out,
            next: 1,
            digests: Vec::new(),
            changes: None,
        })
    }

    fn json_section<T: Serialize>(
        &mut self,
        section: Section,
        value: &T,
    ) -> Result<(), WriteError> {
        if self.next != section as u8 {
            return Err(WriteError::Order(section.name()));
        }
        let payload = serde_json::to_vec(value).expect("archive sections serialise");
        self.out.write_all(&[section as u8])?;
        self.out.write_all(&(payload.len() as u64).to_be_bytes())?;
        self.out.write_all(&payload)?;
        self.digests.push(SectionDigest {
            name: section.name().into(),
            bytes: payload.len() as u64,
            sha256: hex::encode(Sha256::digest(&payload)),
        });
        self.next += 1;
        Ok(())
    }

    /// Section 1.
    pub fn registry(&mut self, v: &RegistrySection) -> Result<(), WriteError> {
        self.json_section(Section::Registry, v)
    }

    /// Section 2.
    pub fn log(&mut self, v: &LogSection) -> Result<(), WriteError> {
        self.json_section(Section::Log, v)
    }

    /// Section 3.
    pub fn witness(&mut self, v: &WitnessSection) -> Result<(), WriteError> {
        self.json_section(Section::Witness, v)
    }

    /// Section 4.
    pub fn forks(&mut self, v: &[serde_json::Value]) -> Result<(), WriteError> {
        self.json_section(Section::Forks, &v)
    }

    /// Section 5.
    pub fn rejects(&mut self, v: &[serde_json::Value]) -> Result<(), WriteError> {
        self.json_section(Section::Rejects, &v)
    }

    /// The payload size of a changes section holding envelopes of these sizes.
    pub fn changes_payload_bytes(envelope_sizes: impl IntoIterator<Item = u64>) -> u64 {
        8 + envelope_sizes.into_iter().map(|s| 12 + s).sum::<u64>()
    }

    /// Starts section 6: `count` changes whose envelopes total `envelope_bytes`.
    pub fn begin_changes(&mut self, count: u64, envelope_bytes: u64) -> Result<(), WriteError> {
        if self.next != Section::Changes as u8 {
            return Err(WriteError::Order("changes"));
        }
        let len = 8 + 12 * count + envelope_bytes;
        self.out.write_all(&[Section::Changes as u8])?;
        self.out.write_all(&len.to_be_bytes())?;
        let mut hasher = Sha256::new();
        let head = count.to_be_bytes();
        hasher.update(head);
        self.out.write_all(&head)?;
        self.changes = Some(ChangesState {
            count,
            written: 0,
            bytes_declared: len,
            bytes_written: 8,
            hasher,
        });
        Ok(())
    }

    /// Writes one change of section 6.
    pub fn change(&mut self, leaf: u64, envelope: &[u8]) -> Result<(), WriteError> {
        let st = self
            .changes
            .as_mut()
            .ok_or(WriteError::Order("change before begin_changes"))?;
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&leaf.to_be_bytes());
        head[8..].copy_from_slice(&(envelope.len() as u32).to_be_bytes());
        st.hasher.update(head);
        st.hasher.update(envelope);
        self.out.write_all(&head)?;
        self.out.write_all(envelope)?;
        st.written += 1;
        st.bytes_written += 12 + envelope.len() as u64;
        Ok(())
    }

    /// Ends section 6.
    pub fn end_changes(&mut self) -> Result<(), WriteError> {
        let st = self
            .changes
            .take()
            .ok_or(WriteError::Order("end_changes before begin_changes"))?;
        if st.written != st.count || st.bytes_written != st.bytes_declared {
            return Err(WriteError::Order(
                "changes count or size differs from begin_changes",
            ));
        }
        self.digests.push(SectionDigest {
            name: Section::Changes.name().into(),
            bytes: st.bytes_written,
            sha256: hex::encode(st.hasher.finalize()),
        });
        self.next += 1;
        Ok(())
    }

    /// Writes the manifest (its `sections` filled in here) and the exporter's signature.
    pub fn finish(mut self, mut manifest: Manifest, key: &SigningKey) -> Result<W, WriteError> {
        if self.next != Section::Manifest as u8 {
            return Err(WriteError::Order("manifest"));
        }
        manifest.format = FORMAT.into();
        manifest.sections = std::mem::take(&mut self.digests);
        let payload = serde_json::to_vec(&manifest).expect("manifest serialises");
        self.out.write_all(&[Section::Manifest as u8])?;
        self.out.write_all(&(payload.len() as u64).to_be_bytes())?;
        self.out.write_all(&payload)?;
        let signature = key.sign(&manifest_message(&payload)).to_bytes();
        self.out.write_all(&[Section::Signature as u8])?;
        self.out.write_all(&64u64.to_be_bytes())?;
        self.out.write_all(&signature)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Where a section lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the payload.
    pub offset: usize,
    /// Payload length.
    pub len: usize,
}

/// One change as found in section 6.
#[derive(Debug, Clone, Copy)]
pub struct RawChange<'a> {
    /// Position in the section (from 0).
    pub position: usize,
    /// Leaf index it claims in the exporter's log.
    pub leaf: u64,
    /// Offset of the envelope in the file.
    pub offset: usize,
    /// The envelope bytes.
    pub envelope: &'a [u8],
}

/// A problem found while reading the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// Which section (or `archive` for the framing).
    pub section: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// An archive read into its parts, borrowing the file's bytes.
#[derive(Debug, Default)]
pub struct Archive<'a> {
    /// Where each section's payload lies, by [`Section`] order (index = kind − 1).
    pub spans: [Option<Span>; 8],
    /// Section 1.
    pub registry: RegistrySection,
    /// Section 2.
    pub log: LogSection,
    /// Section 3.
    pub witness: WitnessSection,
    /// Section 4.
    pub forks: Vec<serde_json::Value>,
    /// Section 5.
    pub rejects: Vec<serde_json::Value>,
    /// Section 6.
    pub changes: Vec<RawChange<'a>>,
    /// The count section 6 declares.
    pub changes_declared: u64,
    /// Section 7, raw.
    pub manifest_bytes: &'a [u8],
    /// Section 7, parsed.
    pub manifest: Manifest,
    /// Section 8.
    pub signature: Option<[u8; 64]>,
    /// Everything that could not be read.
    pub problems: Vec<ParseProblem>,
}

impl<'a> Archive<'a> {
    /// The payload of a section, if it was found.
    pub fn payload(&self, bytes: &'a [u8], section: Section) -> Option<&'a [u8]> {
        let span = self.spans[section as usize - 1]?;
        bytes.get(span.offset..span.offset + span.len)
    }
}

/// Reads an archive. Never fails: what cannot be read is listed in `problems`.
pub fn parse(bytes: &[u8]) -> Archive<'_> {
    let mut a = Archive::default();
    let problem = |a: &mut Archive<'_>, section: &'static str, message: String| {
        a.problems.push(ParseProblem { section, message });
    };
    if bytes.get(..16) != Some(&MAGIC[..]) {
        problem(
            &mut a,
            "archive",
            "does not start with \"motcua/audit/v1\\n\"".into(),
        );
        return a;
    }
    let mut at = 16usize;
    for section in Section::ALL {
        let Some(head) = bytes.get(at..at + 9) else {
            problem(
                &mut a,
                "archive",
                format!("ends at byte {at}, before the {} section", section.name()),
            );
            return a;
        };
        if head[0] != section as u8 {
            problem(
                &mut a,
                "archive",
                format!(
                    "byte {at}: section kind {} where {} ({}) was expected",
                    head[0],
                    section as u8,
                    section.name()
                ),
            );
            return a;
        }
        let len = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes"));
        let offset = at + 9;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| offset.checked_add(l));
        let Some(end) = end.filter(|&e| e <= bytes.len()) else {
            problem(
                &mut a,
                section.name(),
                format!("declares {len} bytes at byte {offset}, past the end of the file"),
            );
            return a;
        };
        a.spans[section as usize - 1] = Some(Span {
            offset,
            len: end - offset,
        });
        at = end;
    }
    if at != bytes.len() {
        problem(
            &mut a,
            "archive",
            format!("{} bytes after the signature section", bytes.len() - at),
        );
    }
    macro_rules! read_json {
        ($field:ident, $section:expr) => {
            if let Some(p) = json_payload(&mut a, bytes, $section) {
                match serde_json::from_slice(p) {
                    Ok(v) => a.$field = v,
                    Err(e) => problem(&mut a, $section.name(), format!("malformed JSON: {e}")),
                }
            }
        };
    }
    read_json!(registry, Section::Registry);
    read_json!(log, Section::Log);
    read_json!(witness, Section::Witness);
    read_json!(forks, Section::Forks);
    read_json!(rejects, Section::Rejects);
    if let Some(p) = json_payload(&mut a, bytes, Section::Manifest) {
        a.manifest_bytes = p;
        match serde_json::from_slice(p) {
            Ok(v) => a.manifest = v,
            Err(e) => problem(&mut a, "manifest", format!("malformed JSON: {e}")),
        }
    }
    if let Some(p) = a.payload(bytes, Section::Signature) {
        match <[u8; 64]>::try_from(p) {
            Ok(sig) => a.signature = Some(sig),
            Err(_) => problem(&mut a, "signature", format!("{} bytes, not 64", p.len())),
        }
    }
    if let Some(span) = a.spans[Section::Changes as usize - 1] {
        parse_changes(bytes, span, &mut a);
    }
    a
}

fn json_payload<'a>(a: &mut Archive<'a>, bytes: &'a [u8], s: Section) -> Option<&'a [u8]> {
    let p = a.payload(bytes, s)?;
    if p.len() as u64 > JSON_SECTION_SIZE_BYTES_MAX {
        a.problems.push(ParseProblem {
            section: s.name(),
            message: "larger than the JSON section bound".into(),
        });
        return None;
    }
    Some(p)
}

fn parse_changes<'a>(bytes: &'a [u8], span: Span, a: &mut Archive<'a>) {
    let p = &bytes[span.offset..span.offset + span.len];
    let Some(count) = p
        .get(..8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
    else {
        a.problems.push(ParseProblem {
            section: "changes",
            message: "shorter than its count".into(),
        });
        return;
    };
    a.changes_declared = count;
    if count > ARCHIVE_CHANGES_COUNT_MAX {
        a.problems.push(ParseProblem {
            section: "changes",
            message: format!("declares {count} changes, above the bound"),
        });
        return;
    }
    let mut at = 8usize;
    a.changes.reserve(count.min((p.len() / 12) as u64) as usize);
    for position in 0..count as usize {
        let Some(head) = p.get(at..at + 12) else {
            a.problems.push(ParseProblem {
                section: "changes",
                message: format!(
                    "change #{position}: record header truncated at byte {}",
                    span.offset + at
                ),
            });
            return;
        };
        let leaf = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(head[8..].try_into().expect("4 bytes")) as usize;
        let start = at + 12;
        let Some(envelope) = p.get(start..start + len) else {
            a.problems.push(ParseProblem {
                section: "changes",
                message: format!(
                    "change #{position}: envelope of {len} bytes runs past the section"
                ),
            });
            return;
        };
        a.changes.push(RawChange {
            position,
            leaf,
            offset: span.offset + start,
            envelope,
        });
        at = start + len;
    }
    if at != p.len() {
        a.problems.push(ParseProblem {
            section: "changes",
            message: format!("{} bytes after the last of {count} changes", p.len() - at),
        });
    }
}
