//! Whole-config endpoints: batch, export/import, revisions and rollback, audit.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tigateway_model::Config;

use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams};
use super::AppState;
use crate::store::{AuditEntry, Change, EntityKind, Page, RevisionSummary, WriteOutcome};

/// Field names whose values never leave the admin in audit or revision views.
const SECRET_FIELDS: [&str; 1] = ["appSecret"];

/// Replaces every secret field's value, at any depth, with `"***"`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) && !x.is_null() {
                    *x = Value::from("***");
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode: {e}")))
}

pub async fn batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(changes): JsonBody<Vec<Change>>,
) -> Result<Json<WriteOutcome>, ApiError> {
    Ok(Json(st.store.apply_batch(changes, caller.name()).await?))
}

pub async fn export(State(st): State<AppState>) -> Result<Json<Config>, ApiError> {
    Ok(Json(st.store.export().await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ImportQuery {
    dry_run: bool,
}

pub async fn import(
    State(st): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ImportQuery>,
    JsonBody(cfg): JsonBody<Config>,
) -> Result<Json<WriteOutcome>, ApiError> {
    Ok(Json(st.store.import(cfg, q.dry_run, caller.name()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PageQuery {
    page: u32,
    page_size: u32,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery { page: 1, page_size: 20 }
    }
}

pub async fn revisions(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<Page<RevisionSummary>>, ApiError> {
    Ok(Json(st.store.revisions(q.page, q.page_size).await?))
}

/// The revision's config and its changes from the previous one, secrets redacted.
/// Parsed here rather than by `Path<i64>`, whose rejection is plain text: every error is JSON.
fn revision_number(n: &str) -> Result<i64, ApiError> {
    n.parse().map_err(|_| ApiError::bad_request(format!("revision must be a whole number, got {n:?}")))
}

pub async fn revision(State(st): State<AppState>, Path(n): Path<String>) -> Result<Json<Value>, ApiError> {
    let n = revision_number(&n)?;
    let mut v = encode(&st.store.revision(n).await?)?;
    redact(&mut v);
    Ok(Json(v))
}

pub async fn rollback(
    State(st): State<AppState>,
    caller: Caller,
    Path(n): Path<String>,
) -> Result<Json<WriteOutcome>, ApiError> {
    let n = revision_number(&n)?;
    Ok(Json(st.store.rollback(n, caller.name()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditQuery {
    page: u32,
    page_size: u32,
    /// A table name as in the entries' `entityType`: `selector`, `rule`, `meta_data`, …
    entity_type: Option<String>,
    entity_id: Option<String>,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery { page: 1, page_size: 20, entity_type: None, entity_id: None }
    }
}

pub async fn audit(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let kind = match &q.entity_type {
        None => None,
        Some(t) => Some(
            EntityKind::ALL
                .into_iter()
                .find(|k| k.as_str() == t)
                .ok_or_else(|| ApiError::bad_request(format!("unknown entityType {t:?}")))?,
        ),
    };
    if kind.is_none() && q.entity_id.is_some() {
        return Err(ApiError::bad_request("entityId needs entityType"));
    }
    let mut page = st.store.audit(q.page, q.page_size, kind.map(|k| (k, q.entity_id.as_deref()))).await?;
    for e in &mut page.items {
        for v in [&mut e.before, &mut e.after].into_iter().flatten() {
            redact(v);
        }
    }
    Ok(Json(page))
}
