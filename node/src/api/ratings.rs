//! Recording ratings: by a signed-in official, or by the counter's rating tablet with its own
//! device token (a kiosk may record ratings and nothing else).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::session::bearer;
use super::{ApiError, AppState, blocking};
use crate::auth::{AuthError, DeviceKind};
use crate::commands::NewRating;
use crate::writer::{Command, Reply, clock_now};

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewRating>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let token = bearer(&headers).ok_or_else(|| ApiError::from(AuthError::NoSession))?;
    let s = state.clone();
    let t = token.clone();
    // A staff session first; otherwise a kiosk's device token, whose name goes into the rating.
    let device = blocking(
        move || match s.auth.session(s.shared.store.db(), &t, clock_now()) {
            Ok(_) => Ok(None),
            Err(AuthError::NoSession) => {
                match s.auth.device(s.shared.store.db(), &t, clock_now()) {
                    Ok(d) if d.kind == DeviceKind::Kiosk => Ok(Some(d.name)),
                    Ok(_) => Err(ApiError::forbidden("this device may not record ratings")),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        },
    )
    .await?;
    let Json(mut req) = body?;
    if let Some(name) = device {
        req.device = name;
    }
    match state.writer.submit(Command::Rate(req)).await? {
        Reply::Rating(r) => Ok((StatusCode::CREATED, Json(json!({ "rating": r })))),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}
