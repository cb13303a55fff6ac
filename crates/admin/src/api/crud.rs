//! One set of handlers for the six config kinds: list, get, create, update, delete.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use tigateway_auth::Resource;
use tigateway_model::{AppAuth, MetaData, Plugin, RouteDefinition, Rule, Selector};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams};
use super::{AppState, CrudOp};
use crate::store::{Entity, EntityKind, ListQuery, Page, Stored};

/// What RBAC calls a kind.
pub fn resource_of(kind: EntityKind) -> Resource {
    match kind {
        EntityKind::Plugin => Resource::Plugins,
        EntityKind::Selector => Resource::Selectors,
        EntityKind::Rule => Resource::Rules,
        EntityKind::MetaData => Resource::Metadata,
        EntityKind::AppAuth => Resource::AppAuth,
        EntityKind::Route => Resource::Routes,
    }
}

/// The handler of `op` on `kind`, for the methods `f`.
pub(super) fn handler(kind: EntityKind, op: CrudOp, f: MethodFilter) -> MethodRouter<AppState> {
    match kind {
        EntityKind::Plugin => handler_for::<Plugin>(op, f),
        EntityKind::Selector => handler_for::<Selector>(op, f),
        EntityKind::Rule => handler_for::<Rule>(op, f),
        EntityKind::MetaData => handler_for::<MetaData>(op, f),
        EntityKind::AppAuth => handler_for::<AppAuth>(op, f),
        EntityKind::Route => handler_for::<RouteDefinition>(op, f),
    }
}

fn handler_for<E: Entity>(op: CrudOp, f: MethodFilter) -> MethodRouter<AppState> {
    match op {
        CrudOp::List => on(f, list::<E>),
        CrudOp::Create => on(f, create::<E>),
        CrudOp::Get => on(f, get_one::<E>),
        CrudOp::Update => on(f, update::<E>),
        CrudOp::Delete => on(f, delete::<E>),
    }
}

/// The object as JSON with its `version` added.
fn with_version<E: Entity>(s: Stored<E>) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(&s.value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode: {e}")))?;
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), Value::from(s.version));
    }
    Ok(v)
}

async fn list<E: Entity>(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Page<Value>>, ApiError> {
    let page = st.store.list::<E>(&q).await?;
    let items = page.items.into_iter().map(with_version).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Page { items, total: page.total, page: page.page, page_size: page.page_size }))
}

async fn get_one<E: Entity>(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(with_version(st.store.get::<E>(&id).await?)?))
}

/// Splits a request body into the object and the `version` it may carry (which the model types
/// do not know, so it is taken out before they see the rest). The id defaults to `id`.
fn parse_body<E: Entity>(body: Value, id: &str) -> Result<(E, Option<i64>), ApiError> {
    let Value::Object(mut m) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let version = match m.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| ApiError::bad_request("version must be an integer"))?),
    };
    if !m.contains_key("id") {
        m.insert("id".into(), Value::from(id));
    }
    let value = serde_json::from_value::<E>(Value::Object(m)).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((value, version))
}

async fn create<E: Entity>(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let (value, _) = parse_body::<E>(body, "")?;
    let stored = st.store.create(value, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(with_version(stored)?)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    version: Option<i64>,
}

/// `If-Match: "3"` (or `W/"3"`, or `3`), else `?version=3`, else the body's `version`.
pub fn expected_version(headers: &HeaderMap, q: &VersionQuery, body: Option<i64>) -> Result<i64, ApiError> {
    if let Some(h) = headers.get(header::IF_MATCH) {
        let s = h.to_str().map_err(|_| ApiError::bad_request("If-Match is not readable"))?.trim();
        let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        return s.parse().map_err(|_| ApiError::bad_request("If-Match must hold the object's version"));
    }
    q.version.or(body).ok_or_else(|| {
        ApiError::new(StatusCode::PRECONDITION_REQUIRED, "give the object's version in If-Match or ?version=")
    })
}

async fn update<E: Entity>(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let (value, body_version) = parse_body::<E>(body, &id)?;
    if value.id() != id {
        return Err(ApiError::bad_request(format!("the body's id {:?} differs from the path's {id:?}", value.id())));
    }
    let version = expected_version(&headers, &q, body_version)?;
    let stored = st.store.update(&id, version, value, caller.name()).await?;
    Ok(Json(with_version(stored)?))
}

async fn delete<E: Entity>(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let version = expected_version(&headers, &q, None)?;
    let out = st.store.delete::<E>(&id, version, caller.name()).await?;
    let mut m = Map::new();
    m.insert("revision".into(), Value::from(out.revision));
    Ok(Json(Value::Object(m)))
}
