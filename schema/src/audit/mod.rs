//! Audit: records an inspector can verify without trusting motcua.
//!
//! Every change a node stores is a leaf of that node's **audit log**, a Merkle tree with
//! RFC 6962 hashing over the signed envelopes in the order the node stored them (its feed). The
//! node periodically signs a **checkpoint** of the log (size, root, time, and the checkpoint it
//! extends) as a C2SP signed note, with the RFC 9162 consistency proof from the previous one,
//! and publishes it as a change of its `log/<unit>/<day>` document; peers that receive it keep
//! it (they **witness** it), so a node that later drops or rewrites history contradicts
//! checkpoints held elsewhere.
//!
//! An **archive** (`motcua audit export`) carries the changes exactly as signed, the trust
//! registry, the exporter's checkpoints with a range proof placing every exported change in its
//! log, the checkpoints it witnessed, its fork proofs and rejects, and a signed manifest. The
//! **verifier** (`motcua audit verify`, or any implementation of `docs/audit-format.md`)
//! checks all of it from the archive alone.
//!
//! - [`merkle`]: tree hashing, inclusion, consistency and range proofs;
//! - [`note`]: checkpoints as signed notes;
//! - [`change`]: envelopes and Automerge change headers read from bytes, without Automerge;
//! - [`sig`]: strict Ed25519, batched where that is sound;
//! - [`archive`]: the container format, writer and reader;
//! - [`verify`] and [`report`]: the checks and what they found;
//! - [`show`]: a dossier's history from an archive;
//! - [`fixture`]: archives built from scratch, for tests and benchmarks.
//!
//! **Architecture invariant:** like the rest of `schema`, this module reads no clock, disk or
//! random source: archives come in as bytes, times as parameters.

pub mod archive;
pub mod change;
pub mod fixture;
pub mod merkle;
pub mod note;
pub mod report;
pub mod show;
pub mod sig;
pub mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
