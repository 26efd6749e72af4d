//! motcua-sync: the replication protocol as a sans-IO state machine.
//!
//! Nodes replicate signed changes (`motcua_schema::signed`), never whole documents. The normal
//! path is a per-peer change feed with checkpoints and announce/need de-duplication; the repair
//! path is set reconciliation with a Rateless IBLT; the same change frames written to a file form
//! a bundle for sneakernet transfer.
//!
//! **Architecture invariant:** this crate performs no I/O and reads no clock and no random source
//! (DESIGN.md invariant 4, enforced by `clippy.toml`'s `disallowed-methods`). Messages and time
//! come in as parameters; messages, timer deadlines and events come out. So the iroh driver in the
//! node and the deterministic simulator run exactly the same protocol code.
//!
//! Map of the crate:
//! - [`wire`]: the bounded, versioned binary encoding of every message;
//! - [`store`]: the read-only view of a node's store the protocol needs, and [`store::Scope`];
//! - [`session`]: one connection to one peer, the state machine itself;
//! - [`reconcile`]: Rateless IBLT coding and decoding over change hashes;
//! - [`bundle`]: sneakernet files;
//! - `testing` (feature `testing`): an in-memory store and a two-session harness.

pub mod bundle;
pub mod reconcile;
pub mod session;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use session::{ApplyReport, Checkpoint, Event, FailReason, Local, Session, SessionConfig};
pub use store::{ChangeStore, FeedEntry, Scope, StoreError};
pub use wire::{Message, WireError};
