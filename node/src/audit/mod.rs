//! Audit on the node: the Merkle log of every stored change, signed checkpoints, witnessing
//! peers' checkpoints, and the `motcua audit` commands (export, verify, show).
//!
//! The formats and the verifier are pure and live in `motcua_schema::audit`; this module is the
//! part that touches redb, the clock, files and threads:
//! - `log`: the tree, checkpoints and witnessed checkpoints in the store (the apply pipeline
//!   calls [`log::append`] for every stored change and [`log::witness`] for every log document);
//! - `export`: `motcua audit export`;
//! - `cli`: the `motcua audit` subcommands, with verification spread over the cores and a
//!   progress bar.
//!
//! **Why witnessing rides on ordinary changes:** a checkpoint is published as a signed change of
//! the node's `log/<unit>/<day>` document, so it replicates, is verified, scoped and stored by
//! the existing pipeline, enters the receiver's own log, and needs no protocol change. The
//! province receives every unit's log (and so witnesses every commune); a commune receives its
//! own; an auditor node, which receives everything, witnesses all.

pub mod cli;
pub mod export;
pub mod log;

#[cfg(test)]
mod tests;
