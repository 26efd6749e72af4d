//! The HTTP API (JSON, axum), documented in `docs/api.md`.
//!
//! Handlers parse and check the request, then either read through the store or submit a
//! command to the writer and answer once it is durable. Errors map to a status and a body
//! `{"error", "code"}`; a bad request is a 4xx with a message, never a panic.

mod dossiers;
mod node;
mod peers;
mod ratings;
mod reports;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::auth::{Auth, AuthError};
use crate::commands::CommandError;
use crate::store::StoreError;
use crate::writer::{Shared, Writer};

pub use session::Staff;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Store, registry, reference data, identity.
    pub shared: Shared,
    /// The writer.
    pub writer: Writer,
    /// Accounts and sessions.
    pub auth: Arc<Auth>,
    /// The unit's name, for pages and reports.
    pub unit_name: Arc<str>,
    /// Replication, when this node runs it.
    pub replication: Option<crate::replication::Replication>,
}

/// The API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/session",
            post(session::login).delete(session::logout),
        )
        .route("/api/v1/status", get(node::status))
        .route("/api/v1/procedures", get(node::procedures))
        .route("/api/v1/users", post(node::add_user).get(node::list_users))
        .route(
            "/api/v1/dossiers",
            post(dossiers::create).get(dossiers::list),
        )
        .route("/api/v1/dossiers/{code}", get(dossiers::get_one))
        .route("/api/v1/dossiers/{code}/events", post(dossiers::add_event))
        .route(
            "/api/v1/public/dossiers/{code}",
            get(dossiers::public_lookup),
        )
        .route("/api/v1/ratings", post(ratings::create))
        .route("/api/v1/reports", get(reports::report))
        .route("/api/v1/counters", get(reports::counters))
        .route("/api/v1/peers", get(peers::list))
        .route("/api/v1/peers/{key}/link", post(peers::set_link))
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// A 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
        }
    }

    fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({ "error": self.message, "code": self.code })),
        )
            .into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let (status, code) = match &e {
            CommandError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            CommandError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            CommandError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            CommandError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            CommandError::Store(_) | CommandError::Internal(_) => return ApiError::internal(e),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match &e {
            AuthError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            AuthError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AuthError::NoSession => (StatusCode::UNAUTHORIZED, "no_session"),
            AuthError::Exists(_) => (StatusCode::CONFLICT, "exists"),
            AuthError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            AuthError::Store(_) => return ApiError::internal(e),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError {
            status: e.status(),
            code: "bad_json",
            message: e.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
