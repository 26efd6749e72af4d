//! End-to-end tests: real `motcua` processes on loopback, each module one concern.
//!
//! - `durability`: acknowledged intake survives SIGKILL in the middle of a burst (invariant 1).
//! - `api`: the HTTP API refuses bad input with a clear 4xx and writes nothing, and the public
//!   lookup shows no personal data.
//! - `replication`: a province and communes over iroh: outages, restores, refusals, bundles.
//! - `report`: the report a node computes equals one computed independently from raw events.

mod api;
mod durability;
mod replication;
mod report;

/// The tests' copy of the `motcua` binary.
pub fn motcua() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_motcua-under-test"))
}
