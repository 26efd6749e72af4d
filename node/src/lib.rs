//! motcua-node: one node of the network: its redb store, the apply pipeline, the writer with
//! group commit, the HTTP API and pages, and the `motcua` command.
//!
//! See ARCHITECTURE.md at the repository root for the map of rooms and their invariants.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod reference;
pub mod replication;
pub mod runtime;
pub mod setup;
pub mod store;
pub mod web;
pub mod writer;

#[cfg(test)]
mod test_nodes;
