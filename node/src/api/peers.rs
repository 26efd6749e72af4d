//! Replication status per peer, and the switch that cuts or restores a link.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Staff};
use crate::auth::StaffRole;
use crate::config::parse_public_key;

pub(super) async fn list(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Value>, ApiError> {
    let Some(repl) = &state.replication else {
        return Ok(Json(json!({ "enabled": false, "items": [] })));
    };
    Ok(Json(json!({
        "enabled": true,
        "node_key": hex::encode(state.shared.identity.key.verifying_key().as_bytes()),
        "addrs": repl.bound_addrs(),
        "items": repl.statuses(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkSwitch {
    enabled: bool,
}

pub(super) async fn set_link(
    State(state): State<AppState>,
    staff: Staff,
    Path(key): Path<String>,
    body: Result<Json<LinkSwitch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    staff.require(StaffRole::Admin)?;
    let Json(switch) = body?;
    let repl = state
        .replication
        .as_ref()
        .ok_or_else(|| ApiError::not_found("replication is not running on this node"))?;
    let key =
        parse_public_key(&key).map_err(|e| ApiError::bad_request(format!("peer key: {e}")))?;
    repl.set_link(*key.as_bytes(), switch.enabled);
    Ok(Json(
        json!({ "node_key": hex::encode(key.as_bytes()), "link_enabled": switch.enabled }),
    ))
}
