//! Node status, the procedure catalog, and staff accounts.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Staff, blocking};
use crate::auth::StaffRole;

pub(super) async fn status(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    let counts = blocking(move || Ok(s.shared.store.counts()?)).await?;
    let (catalog, calendar) = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .info();
    let id = &state.shared.identity;
    Ok(Json(json!({
        "node_key": hex::encode(id.key.verifying_key().as_bytes()),
        "actor": id.actor.to_hex_string(),
        "unit": id.unit,
        "unit_name": &*state.unit_name,
        "role": id.role,
        "counts": counts,
        "catalog": catalog,
        "calendar": calendar,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

#[derive(Deserialize)]
pub(super) struct ProcedureQuery {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

pub(super) async fn procedures(
    State(state): State<AppState>,
    _staff: Staff,
    query: Result<Query<ProcedureQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let reference = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .clone();
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let items: Vec<_> = if query.q.trim().is_empty() {
        reference.catalog.procedures.iter().take(limit).collect()
    } else {
        reference.catalog.search(&query.q, limit)
    };
    Ok(Json(
        json!({ "items": items, "version": reference.catalog.version, "sample": reference.catalog.sample }),
    ))
}

#[derive(Deserialize)]
pub(super) struct NewUser {
    username: String,
    password: String,
    full_name: String,
    role: StaffRole,
}

pub(super) async fn add_user(
    State(state): State<AppState>,
    staff: Staff,
    body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    staff.require(StaffRole::Admin)?;
    let Json(u) = body?;
    let user = blocking(move || {
        Ok(state.auth.add_user(
            state.shared.store.db(),
            &u.username,
            &u.password,
            &u.full_name,
            u.role,
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

pub(super) async fn list_users(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Value>, ApiError> {
    staff.require(StaffRole::Admin)?;
    let users = blocking(move || Ok(state.auth.users(state.shared.store.db())?)).await?;
    Ok(Json(json!({ "items": users })))
}
