//! The admin REST API under `/api/v1` (axum): JSON in and out, errors as
//! `{"code", "message", "errors"?, "currentVersion"?}`, every endpoint behind a bearer token and an
//! RBAC check except `POST /api/v1/login`.

mod config;
mod crud;
mod error;
mod extract;
mod identity;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tigateway_auth::LoginLimiter;
use tigateway_model::{AppAuth, MetaData, Plugin, RouteDefinition, Rule, Selector};

pub use config::redact;
pub use error::{ApiError, FieldError};

use crate::identity::Identity;
use crate::store::Store;
use extract::{ClientIp, JsonBody};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub identity: Identity,
    pub limiter: Arc<LoginLimiter>,
    /// How long a session from `POST /api/v1/login` lasts.
    pub session_ttl: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/login", post(login))
        .merge(crud::routes::<Selector>("/api/v1/selectors"))
        .merge(crud::routes::<Rule>("/api/v1/rules"))
        .merge(crud::routes::<Plugin>("/api/v1/plugins"))
        .merge(crud::routes::<MetaData>("/api/v1/metadata"))
        .merge(crud::routes::<AppAuth>("/api/v1/app-auth"))
        .merge(crud::routes::<RouteDefinition>("/api/v1/routes"))
        .route("/api/v1/batch", post(config::batch))
        .route("/api/v1/export", get(config::export))
        .route("/api/v1/import", post(config::import))
        .route("/api/v1/revisions", get(config::revisions))
        .route("/api/v1/revisions/{n}", get(config::revision))
        .route("/api/v1/revisions/{n}/rollback", post(config::rollback))
        .route("/api/v1/audit", get(config::audit))
        .merge(identity::routes())
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginResponse {
    token: String,
    expires_at: String,
}

async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (token, claims) = st.identity.login(&req.username, &req.password, ip, &st.limiter, st.session_ttl).await?;
    let expires_at = chrono::DateTime::from_timestamp(claims.exp as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(Json(LoginResponse { token, expires_at }))
}
