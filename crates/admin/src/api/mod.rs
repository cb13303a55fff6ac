//! The admin REST API under `/api/v1` (axum): JSON in and out, errors as
//! `{"code", "message", "errors"?, "currentVersion"?}`, every endpoint behind a bearer token and an
//! RBAC check except `POST /api/v1/login`.

mod config;
mod crud;
mod error;
mod explain;
mod extract;
mod identity;
mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tigateway_auth::LoginLimiter;

pub use config::redact;
pub use error::{ApiError, FieldError};

use crate::identity::Identity;
use crate::store::{EntityKind, Store};
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

/// An HTTP method the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl ApiMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiMethod::Get => "GET",
            ApiMethod::Post => "POST",
            ApiMethod::Put => "PUT",
            ApiMethod::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            ApiMethod::Get => MethodFilter::GET,
            ApiMethod::Post => MethodFilter::POST,
            ApiMethod::Put => MethodFilter::PUT,
            ApiMethod::Delete => MethodFilter::DELETE,
        }
    }
}

/// One of the five operations every config kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrudOp {
    List,
    Create,
    Get,
    Update,
    Delete,
}

/// What an endpoint does; picks both its handler and its OpenAPI description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    OpenApi,
    Login,
    Crud(EntityKind, CrudOp),
    Batch,
    Export,
    Import,
    Revisions,
    Revision,
    Rollback,
    Audit,
    Explain,
    ListUsers,
    CreateUser,
    GetUser,
    UpdateUser,
    DeleteUser,
    ListRoles,
    CreateRole,
    GetRole,
    UpdateRole,
    DeleteRole,
    ListTokens,
    CreateToken,
    GetToken,
    RevokeToken,
}

/// One served (method, path).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub method: ApiMethod,
    pub path: String,
    pub op: Op,
}

/// The collection path of a config kind.
pub(crate) fn kind_path(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Selector => "/api/v1/selectors",
        EntityKind::Rule => "/api/v1/rules",
        EntityKind::Plugin => "/api/v1/plugins",
        EntityKind::MetaData => "/api/v1/metadata",
        EntityKind::AppAuth => "/api/v1/app-auth",
        EntityKind::Route => "/api/v1/routes",
    }
}

/// Every endpoint the API serves: the one table both [`router`] and the OpenAPI document
/// (`GET /api/v1/openapi.json`) are built from.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use ApiMethod::{Delete, Get, Post, Put};
    let ep = |method, path: &str, op| Endpoint { method, path: path.to_string(), op };
    let mut v = vec![ep(Get, "/api/v1/openapi.json", Op::OpenApi), ep(Post, "/api/v1/login", Op::Login)];
    for kind in EntityKind::ALL {
        let base = kind_path(kind);
        let one = format!("{base}/{{id}}");
        v.push(ep(Get, base, Op::Crud(kind, CrudOp::List)));
        v.push(ep(Post, base, Op::Crud(kind, CrudOp::Create)));
        v.push(ep(Get, &one, Op::Crud(kind, CrudOp::Get)));
        v.push(ep(Put, &one, Op::Crud(kind, CrudOp::Update)));
        v.push(ep(Delete, &one, Op::Crud(kind, CrudOp::Delete)));
    }
    v.extend([
        ep(Post, "/api/v1/batch", Op::Batch),
        ep(Get, "/api/v1/export", Op::Export),
        ep(Post, "/api/v1/import", Op::Import),
        ep(Get, "/api/v1/revisions", Op::Revisions),
        ep(Get, "/api/v1/revisions/{n}", Op::Revision),
        ep(Post, "/api/v1/revisions/{n}/rollback", Op::Rollback),
        ep(Get, "/api/v1/audit", Op::Audit),
        ep(Post, "/api/v1/explain", Op::Explain),
        ep(Get, "/api/v1/users", Op::ListUsers),
        ep(Post, "/api/v1/users", Op::CreateUser),
        ep(Get, "/api/v1/users/{id}", Op::GetUser),
        ep(Put, "/api/v1/users/{id}", Op::UpdateUser),
        ep(Delete, "/api/v1/users/{id}", Op::DeleteUser),
        ep(Get, "/api/v1/roles", Op::ListRoles),
        ep(Post, "/api/v1/roles", Op::CreateRole),
        ep(Get, "/api/v1/roles/{name}", Op::GetRole),
        ep(Put, "/api/v1/roles/{name}", Op::UpdateRole),
        ep(Delete, "/api/v1/roles/{name}", Op::DeleteRole),
        ep(Get, "/api/v1/tokens", Op::ListTokens),
        ep(Post, "/api/v1/tokens", Op::CreateToken),
        ep(Get, "/api/v1/tokens/{id}", Op::GetToken),
        ep(Delete, "/api/v1/tokens/{id}", Op::RevokeToken),
    ]);
    v
}

/// Every (method, path) the API serves, paths in OpenAPI form (`/api/v1/rules/{id}`).
pub fn served_routes() -> Vec<(&'static str, String)> {
    endpoints().into_iter().map(|e| (e.method.as_str(), e.path)).collect()
}

fn handler(ep: &Endpoint) -> MethodRouter<AppState> {
    let f = ep.method.filter();
    match ep.op {
        Op::OpenApi => on(f, openapi::serve),
        Op::Login => on(f, login),
        Op::Crud(kind, op) => crud::handler(kind, op, f),
        Op::Batch => on(f, config::batch),
        Op::Export => on(f, config::export),
        Op::Import => on(f, config::import),
        Op::Revisions => on(f, config::revisions),
        Op::Revision => on(f, config::revision),
        Op::Rollback => on(f, config::rollback),
        Op::Audit => on(f, config::audit),
        Op::Explain => on(f, explain::explain),
        Op::ListUsers => on(f, identity::list_users),
        Op::CreateUser => on(f, identity::create_user),
        Op::GetUser => on(f, identity::get_user),
        Op::UpdateUser => on(f, identity::update_user),
        Op::DeleteUser => on(f, identity::delete_user),
        Op::ListRoles => on(f, identity::list_roles),
        Op::CreateRole => on(f, identity::create_role),
        Op::GetRole => on(f, identity::get_role),
        Op::UpdateRole => on(f, identity::update_role),
        Op::DeleteRole => on(f, identity::delete_role),
        Op::ListTokens => on(f, identity::list_tokens),
        Op::CreateToken => on(f, identity::create_token),
        Op::GetToken => on(f, identity::get_token),
        Op::RevokeToken => on(f, identity::revoke_token),
    }
}

pub fn router(state: AppState) -> Router {
    endpoints()
        .iter()
        .fold(Router::new(), |r, ep| r.route(&ep.path, handler(ep)))
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginResponse {
    /// A session JWT: send it as `Authorization: Bearer <token>`.
    token: String,
    /// RFC 3339, UTC.
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
