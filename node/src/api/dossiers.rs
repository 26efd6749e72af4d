//! Receiving dossiers, recording their steps, finding them, and the public status lookup.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use motcua_schema::dossier::Status;
use motcua_schema::timestamp::{Timestamp, parse_date};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Staff, blocking};
use crate::auth::StaffRole;
use crate::commands::{EventRequest, NewDossier};
use crate::store::ListFilter;
use crate::writer::{Command, Reply, clock_now};

async fn view(state: &AppState, code: String) -> Result<Value, ApiError> {
    let s = state.clone();
    let view = blocking(move || Ok(s.shared.store.dossier(&code)?)).await?;
    let view = view.ok_or_else(|| ApiError::not_found("no such dossier"))?;
    Ok(serde_json::to_value(view).expect("view serialises"))
}

pub(super) async fn create(
    State(state): State<AppState>,
    staff: Staff,
    body: Result<Json<NewDossier>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    staff.require(StaffRole::Intake)?;
    let Json(req) = body?;
    let reply = state
        .writer
        .submit(Command::CreateDossier {
            req,
            by: staff.0.username.clone(),
        })
        .await?;
    let Reply::Dossier(summary) = reply else {
        return Err(ApiError::internal("unexpected reply"));
    };
    Ok((
        StatusCode::CREATED,
        Json(view(&state, summary.code.to_string()).await?),
    ))
}

pub(super) async fn add_event(
    State(state): State<AppState>,
    staff: Staff,
    Path(code): Path<String>,
    body: Result<Json<EventRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) = body?;
    // The same table the web pages use: which role each step needs.
    staff.require(crate::auth::role_for_event(req.kind()))?;
    state
        .writer
        .submit(Command::AddEvent {
            code: code.clone(),
            req,
            by: staff.0.username.clone(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, code).await?)))
}

pub(super) async fn get_one(
    State(state): State<AppState>,
    _staff: Staff,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&state, code).await?))
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    #[serde(default)]
    overdue: bool,
    due_before: Option<String>,
    code: Option<String>,
    id_number: Option<String>,
    q: Option<String>,
    unit: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Status::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown status {s}")))?,
        ),
        None => None,
    };
    let due_before = match (q.overdue, q.due_before.as_deref().filter(|s| !s.is_empty())) {
        (true, _) => Some(clock_now()),
        (false, Some(d)) => Some(Timestamp::start_of_local_day(
            parse_date(d).ok_or_else(|| ApiError::bad_request("due_before must be YYYY-MM-DD"))?,
        )),
        (false, None) => None,
    };
    let filter = ListFilter {
        status,
        due_before,
        code: q.code.filter(|c| !c.is_empty()),
        id_number: q.id_number.filter(|c| !c.is_empty()),
        text: q.q.filter(|c| !c.trim().is_empty()),
        unit: q.unit.filter(|c| !c.is_empty()),
        limit: q.limit.unwrap_or(50),
    };
    let items = blocking(move || Ok(state.shared.store.list(&filter)?)).await?;
    Ok(Json(json!({ "items": items })))
}

/// The citizen's lookup: status and dates only, never personal data (Decree 13/2023).
pub(super) async fn public_lookup(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let code = code.trim().to_owned();
    let summary = blocking(move || Ok(state.shared.store.summary(&code)?)).await?;
    let s = summary.ok_or_else(|| ApiError::not_found("không tìm thấy hồ sơ với mã này"))?;
    Ok(Json(json!({
        "code": s.code,
        "status": s.status.map(|x| x.name()),
        "status_label": s.status.map(|x| x.label_vi()),
        "procedure_name": s.procedure_name,
        "received_at": s.received_at.map(|t| t.to_rfc3339()),
        "appointment_at": s.appointment_at.map(|t| t.to_rfc3339()),
        "resolved_at": s.resolved_at.map(|t| t.to_rfc3339()),
        "returned": s.status == Some(Status::Returned),
    })))
}
