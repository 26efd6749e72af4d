//! motcua-schema: the domain of Vietnam's one-stop public administrative service.
//!
//! Dossiers and their lifecycle, satisfaction ratings, the procedure catalog, the working-day
//! calendar, reports, the Automerge layout of every document, the signed change envelope, the
//! trust registry, and the audit formats (Merkle log, checkpoints, archives and their verifier).
//!
//! **Architecture invariant:** this crate is pure. It reads no clock, no network, no disk and no
//! random source; time and randomness come in as parameters (enforced by `clippy.toml`'s
//! `disallowed-methods`). So every node, the simulator and an auditor's tool compute the same
//! results from the same inputs.

pub mod audit;
pub mod calendar;
pub mod catalog;
pub mod dossier;
pub mod ids;
pub mod layout;
pub mod limits;
pub mod rating;
pub mod report;
pub mod sample;
pub mod signed;
pub mod summary;
pub mod timestamp;
pub mod trust;

pub use automerge;
pub use ed25519_dalek;
