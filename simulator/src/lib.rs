//! motcua-simulator: the deterministic network simulator of a province's nodes.
//!
//! It will drive the real node core (schema, the sync state machine and the store on redb's
//! in-memory backend) over a simulated network on simulated time, from one seed. Until the
//! replication protocol lands, the crate holds nothing else.
