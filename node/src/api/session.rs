//! Signing in and out, and the extractor that makes a handler require a signed-in staff member.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, blocking};
use crate::auth::{StaffRole, User};
use crate::writer::clock_now;

/// A signed-in staff member (from `Authorization: Bearer <token>`).
pub struct Staff(pub User);

impl Staff {
    /// Refuses unless the member's role is at least `role` in the order intake < processing <
    /// leader < admin.
    pub fn require(&self, role: StaffRole) -> Result<(), ApiError> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "requires role {} or above",
                role.label_vi()
            )))
        }
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::from(crate::auth::AuthError::NoSession))?;
        let state = state.clone();
        let user = blocking(move || {
            Ok(state
                .auth
                .session(state.shared.store.db(), &token, clock_now())?)
        })
        .await?;
        Ok(Staff(user))
    }
}

#[derive(Deserialize)]
pub(super) struct Login {
    username: String,
    password: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(login) = body?;
    let (token, user) = blocking(move || {
        Ok(state.auth.login(
            state.shared.store.db(),
            &login.username,
            &login.password,
            clock_now(),
        )?)
    })
    .await?;
    Ok(Json(json!({ "token": token, "user": user })))
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = bearer(&headers) {
        blocking(move || Ok(state.auth.logout(state.shared.store.db(), &token)?)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
