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
use axum::middleware::{self, Next};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tigateway_auth::{Action, AuthError, LoginLimiter, Resource};

pub use config::redact;
pub use error::{ApiError, FieldError};

use crate::identity::Identity;
use crate::store::{EntityKind, Store};
use extract::{ClientIp, JsonBody};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// `import` and `batch` carry whole configs (10,000 ShenYu rules are ~3 MB of JSON), so they get a
/// larger limit than single objects.
pub const MAX_CONFIG_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub identity: Identity,
    pub limiter: Arc<LoginLimiter>,
    /// How long a session from `POST /api/v1/login` lasts.
    pub session_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` names the client (for login throttling per address).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl AppState {
    /// The defaults an operator gets: 5 failed logins per user or address per 5 minutes, 1-hour
    /// sessions, no trusted proxies.
    pub fn new(store: Store, identity: Identity) -> AppState {
        AppState {
            store,
            identity,
            limiter: Arc::new(LoginLimiter::new(5, Duration::from_secs(300))),
            session_ttl: Duration::from_secs(3600),
            trusted_proxies: Arc::from(Vec::new()),
        }
    }
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
    Logout,
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
    RevokeSessions,
    RotateSessionSecret,
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

impl Op {
    /// What a caller needs for this operation; `None` for the two public endpoints. The check is
    /// made by [`router`] before the handler runs (and before its body is read), so an endpoint
    /// cannot be added without one and a caller without the grant learns nothing about the body.
    pub(crate) fn permission(self) -> Option<(Resource, Action)> {
        use Action::{Read, Write};
        Some(match self {
            // Logout needs a valid session but no grant: anyone may end their own session.
            Op::OpenApi | Op::Login | Op::Logout => return None,
            Op::Crud(kind, CrudOp::List | CrudOp::Get) => (crud::resource_of(kind), Read),
            Op::Crud(kind, _) => (crud::resource_of(kind), Write),
            Op::Batch | Op::Import | Op::Rollback => (Resource::Config, Write),
            Op::Export | Op::Revisions | Op::Revision | Op::Explain => (Resource::Config, Read),
            Op::Audit => (Resource::Audit, Read),
            Op::ListUsers | Op::GetUser => (Resource::Users, Read),
            Op::CreateUser | Op::UpdateUser | Op::DeleteUser | Op::RevokeSessions | Op::RotateSessionSecret => {
                (Resource::Users, Write)
            }
            Op::ListRoles | Op::GetRole => (Resource::Roles, Read),
            Op::CreateRole | Op::UpdateRole | Op::DeleteRole => (Resource::Roles, Write),
            Op::ListTokens | Op::GetToken => (Resource::Tokens, Read),
            Op::CreateToken | Op::RevokeToken => (Resource::Tokens, Write),
        })
    }
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
    let mut v = vec![
        ep(Get, "/api/v1/openapi.json", Op::OpenApi),
        ep(Post, "/api/v1/login", Op::Login),
        ep(Post, "/api/v1/logout", Op::Logout),
    ];
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
        ep(Post, "/api/v1/users/{id}/revoke-sessions", Op::RevokeSessions),
        ep(Post, "/api/v1/session-secret/rotate", Op::RotateSessionSecret),
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
        Op::Logout => on(f, identity::logout),
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
        Op::RevokeSessions => on(f, identity::revoke_sessions),
        Op::RotateSessionSecret => on(f, identity::rotate_session_secret),
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

/// Authenticates the caller and checks `perm` before the handler runs; the principal is left in
/// the request's extensions for the handler's [`extract::Caller`].
async fn authorize(
    State(st): State<AppState>,
    perm: (Resource, Action),
    mut req: axum::extract::Request,
    next: Next,
) -> Result<axum::response::Response, ApiError> {
    let principal = extract::authenticate(&st, req.headers()).await?;
    let rbac = st.identity.rbac().await?;
    let (resource, action) = perm;
    if !rbac.allows(&principal.roles, resource, action) {
        return Err(AuthError::Forbidden(format!("{action:?} on {resource:?}").to_lowercase()).into());
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

pub fn router(state: AppState) -> Router {
    endpoints()
        .iter()
        .fold(Router::new(), |r, ep| {
            let route = match ep.op.permission() {
                None => handler(ep),
                Some(perm) => handler(ep).route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    move |st: State<AppState>, req: axum::extract::Request, next: Next| authorize(st, perm, req, next),
                )),
            };
            let route = match ep.op {
                Op::Import | Op::Batch => route.layer(DefaultBodyLimit::max(MAX_CONFIG_BODY_BYTES)),
                _ => route,
            };
            r.route(&ep.path, route)
        })
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
