//! Recording ratings from the counter's tablet.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, AppState, Staff};
use crate::commands::NewRating;
use crate::writer::{Command, Reply};

pub(super) async fn create(
    State(state): State<AppState>,
    _staff: Staff,
    body: Result<Json<NewRating>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) = body?;
    match state.writer.submit(Command::Rate(req)).await? {
        Reply::Rating(r) => Ok((StatusCode::CREATED, Json(json!({ "rating": r })))),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}
