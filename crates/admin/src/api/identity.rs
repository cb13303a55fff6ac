//! Users, roles and API tokens over [`crate::identity::Identity`]; RBAC resources `users`,
//! `roles` and `tokens` (only the built-in `admin` role writes them).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::crud::{expected_version, VersionQuery};
use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams};
use super::AppState;
use crate::identity::{NewToken, NewUser, RoleRecord, TokenInfo, User, UserUpdate};
use crate::store::Page;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub(super) struct ListParams {
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

pub(super) async fn list_users(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    Ok(Json(st.identity.list_users(q.page, q.page_size, q.username.as_deref()).await?))
}

pub(super) async fn get_user(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<User>, ApiError> {
    Ok(Json(st.identity.get_user(&id).await?))
}

pub(super) async fn create_user(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let user = st.identity.create_user(new, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

pub(super) async fn update_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
    JsonBody(update): JsonBody<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    let version = expected_version(&headers, &q, None)?;
    Ok(Json(st.identity.update_user(&id, version, update, caller.name()).await?))
}

pub(super) async fn delete_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    let version = expected_version(&headers, &q, None)?;
    st.identity.delete_user(&id, version, caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's own session.
pub(super) async fn logout(State(st): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    st.identity.logout(&caller.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn revoke_sessions(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.identity.revoke_sessions(&id, caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn rotate_session_secret(State(st): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    st.identity.rotate_session_secret(caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_roles(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<RoleRecord>>, ApiError> {
    Ok(Json(st.identity.list_roles(q.page, q.page_size).await?))
}

pub(super) async fn get_role(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RoleRecord>, ApiError> {
    Ok(Json(st.identity.get_role(&name).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRole {
    name: String,
    /// `[["rules", "write"], ["audit", "read"], …]`
    #[schema(value_type = Vec<Vec<String>>)]
    permissions: Vec<(String, String)>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleUpdate {
    /// `[["rules", "write"], ["audit", "read"], …]`; replaces the whole set.
    #[schema(value_type = Vec<Vec<String>>)]
    permissions: Vec<(String, String)>,
}

pub(super) async fn create_role(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewRole>,
) -> Result<Response, ApiError> {
    let role = st.identity.create_role(&new.name, &new.permissions, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(role)).into_response())
}

pub(super) async fn update_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
    JsonBody(update): JsonBody<RoleUpdate>,
) -> Result<Json<RoleRecord>, ApiError> {
    let version = expected_version(&headers, &q, None)?;
    Ok(Json(st.identity.update_role(&name, version, &update.permissions, caller.name()).await?))
}

pub(super) async fn delete_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    let version = expected_version(&headers, &q, None)?;
    st.identity.delete_role(&name, version, caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_tokens(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<TokenInfo>>, ApiError> {
    Ok(Json(st.identity.list_tokens(q.page, q.page_size, q.owner.as_deref()).await?))
}

pub(super) async fn get_token(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(st.identity.get_token(&id).await?))
}

/// The plaintext token appears in this response only.
#[derive(Serialize)]
pub(super) struct CreatedToken {
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

pub(super) async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let (token, info) = st.identity.create_token(new, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })).into_response())
}

/// Revokes (the row stays, for the audit trail); answers the revoked token's info.
pub(super) async fn revoke_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(st.identity.revoke_token(&id, caller.name()).await?))
}
