//! Users, roles and API tokens over [`crate::identity::Identity`]; RBAC resources `users`,
//! `roles` and `tokens` (only the built-in `admin` role writes them).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tigateway_auth::{Action, Resource};

use super::crud::{expected_version, VersionQuery};
use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams};
use super::AppState;
use crate::identity::{NewToken, NewUser, RoleRecord, TokenInfo, User, UserUpdate};
use crate::store::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user).put(update_user).delete(delete_user))
        .route("/api/v1/roles", get(list_roles).post(create_role))
        .route("/api/v1/roles/{name}", get(get_role).put(update_role).delete(delete_role))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", get(get_token).delete(revoke_token))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct ListParams {
    page: u32,
    page_size: u32,
    /// Users: a case-insensitive substring of the username.
    username: Option<String>,
    /// Tokens: the owner's username.
    owner: Option<String>,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { page: 1, page_size: 20, username: None, owner: None }
    }
}

async fn list_users(
    State(st): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    caller.require(&st, Resource::Users, Action::Read).await?;
    Ok(Json(st.identity.list_users(q.page, q.page_size, q.username.as_deref()).await?))
}

async fn get_user(State(st): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<User>, ApiError> {
    caller.require(&st, Resource::Users, Action::Read).await?;
    Ok(Json(st.identity.get_user(&id).await?))
}

async fn create_user(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    caller.require(&st, Resource::Users, Action::Write).await?;
    let user = st.identity.create_user(new, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn update_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
    JsonBody(update): JsonBody<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    caller.require(&st, Resource::Users, Action::Write).await?;
    let version = expected_version(&headers, &q, None)?;
    Ok(Json(st.identity.update_user(&id, version, update, caller.name()).await?))
}

async fn delete_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require(&st, Resource::Users, Action::Write).await?;
    let version = expected_version(&headers, &q, None)?;
    st.identity.delete_user(&id, version, caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(
    State(st): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<RoleRecord>>, ApiError> {
    caller.require(&st, Resource::Roles, Action::Read).await?;
    Ok(Json(st.identity.list_roles(q.page, q.page_size).await?))
}

async fn get_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RoleRecord>, ApiError> {
    caller.require(&st, Resource::Roles, Action::Read).await?;
    Ok(Json(st.identity.get_role(&name).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    /// `[["rules", "write"], ["audit", "read"], …]`
    permissions: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleUpdate {
    permissions: Vec<(String, String)>,
}

async fn create_role(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewRole>,
) -> Result<Response, ApiError> {
    caller.require(&st, Resource::Roles, Action::Write).await?;
    let role = st.identity.create_role(&new.name, &new.permissions, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(role)).into_response())
}

async fn update_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
    JsonBody(update): JsonBody<RoleUpdate>,
) -> Result<Json<RoleRecord>, ApiError> {
    caller.require(&st, Resource::Roles, Action::Write).await?;
    let version = expected_version(&headers, &q, None)?;
    Ok(Json(st.identity.update_role(&name, version, &update.permissions, caller.name()).await?))
}

async fn delete_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require(&st, Resource::Roles, Action::Write).await?;
    let version = expected_version(&headers, &q, None)?;
    st.identity.delete_role(&name, version, caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(
    State(st): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<TokenInfo>>, ApiError> {
    caller.require(&st, Resource::Tokens, Action::Read).await?;
    Ok(Json(st.identity.list_tokens(q.page, q.page_size, q.owner.as_deref()).await?))
}

async fn get_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(&st, Resource::Tokens, Action::Read).await?;
    Ok(Json(st.identity.get_token(&id).await?))
}

/// The plaintext token appears in this response only.
#[derive(Serialize)]
struct CreatedToken {
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    caller.require(&st, Resource::Tokens, Action::Write).await?;
    let (token, info) = st.identity.create_token(new, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })).into_response())
}

/// Revokes (the row stays, for the audit trail); answers the revoked token's info.
async fn revoke_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(&st, Resource::Tokens, Action::Write).await?;
    Ok(Json(st.identity.revoke_token(&id, caller.name()).await?))
}
