//! What a node remembers about each replication peer, in the `peers` table.
//!
//! The checkpoint of a peer's feed is written in the same write transaction as the changes it
//! covers (see `writer::Command::Import`), so after any crash the next session asks for exactly
//! what was not applied. The rest (the peer's acknowledgement of this node's feed, when the two
//! last caught up) serves bundles and the province's staleness figures.

use motcua_schema::timestamp::Timestamp;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::PEERS;
use super::{Store, StoreError, decode_json};

/// A position in some store's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedMark {
    /// The store id the position refers to (hex of 16 bytes).
    #[serde(with = "hex_16")]
    pub store_id: [u8; 16],
    /// The position: every change up to it (in scope) is held.
    pub upto: u64,
}

/// The protocol's checkpoint and the stored mark are one position; these are the only places
/// that convert between them.
impl From<motcua_sync::Checkpoint> for FeedMark {
    fn from(c: motcua_sync::Checkpoint) -> FeedMark {
        FeedMark {
            store_id: c.peer_store_id,
            upto: c.upto,
        }
    }
}

impl From<FeedMark> for motcua_sync::Checkpoint {
    fn from(m: FeedMark) -> motcua_sync::Checkpoint {
        motcua_sync::Checkpoint {
            peer_store_id: m.store_id,
            upto: m.upto,
        }
    }
}

mod hex_16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("store id is 32 hex characters"))
    }
}

/// What this node remembers about one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// How far this node holds the peer's feed.
    #[serde(default)]
    pub checkpoint: Option<FeedMark>,
    /// How far the peer said it holds this node's feed (from its last hello or bundle receipt).
    #[serde(default)]
    pub acked: Option<FeedMark>,
    /// When the two last caught up with each other (this node's clock).
    #[serde(default)]
    pub last_caught_up_at: Option<Timestamp>,
    /// When a connection with the peer was last established.
    #[serde(default)]
    pub last_connected_at: Option<Timestamp>,
}

/// Reads a peer's state inside a write transaction.
pub fn read_in(tx: &WriteTransaction, peer: &[u8; 32]) -> Result<PeerState, StoreError> {
    let table = tx.open_table(PEERS)?;
    let text = table.get(peer)?.map(|v| v.value().to_owned());
    Ok(text
        .map(|t| decode_json("peer state", &t))
        .transpose()?
        .unwrap_or_default())
}

/// Writes a peer's state inside a write transaction.
pub fn write_in(
    tx: &WriteTransaction,
    peer: &[u8; 32],
    state: &PeerState,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).expect("peer state serialises");
    tx.open_table(PEERS)?.insert(peer, json.as_str())?;
    Ok(())
}

impl Store {
    /// What this node remembers about `peer`.
    pub fn peer_state(&self, peer: &[u8; 32]) -> Result<PeerState, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PEERS)?;
        let text = table.get(peer)?.map(|v| v.value().to_owned());
        Ok(text
            .map(|t| decode_json("peer state", &t))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every peer this node remembers, by key.
    pub fn peer_states(&self) -> Result<Vec<([u8; 32], PeerState)>, StoreError> {
        let tx = self.db().begin_read()?;
        let table = tx.open_table(PEERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((*k.value(), decode_json("peer state", v.value())?));
        }
        Ok(out)
    }
}
