//! Extractors that answer in the API's error format: JSON bodies, query strings, the caller.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use tigateway_auth::{Action, AuthError, Resource};

use super::error::ApiError;
use super::AppState;
use crate::identity::Principal;

/// A JSON body. Malformed JSON and values that do not fit the type (unknown fields included) →
/// 400; no JSON content type → 415; over the body limit → 413.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = match &rej {
        JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
        other => other.status(),
    };
    ApiError::new(status, rej.body_text())
}

/// A query string; anything that does not parse → 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::bad_request(rej.body_text())
}

/// The client's address from the connection; loopback when the router runs without one (tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(ClientIp(ip))
    }
}

/// The authenticated caller (`Authorization: Bearer <session JWT or API token>`); 401 otherwise.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::InvalidToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::InvalidToken.into());
        }
        Ok(Caller(state.identity.authenticate(token).await?))
    }
}

impl Caller {
    /// 403 unless one of the caller's roles grants `action` on `resource`.
    pub async fn require(&self, state: &AppState, resource: Resource, action: Action) -> Result<(), ApiError> {
        let rbac = state.identity.rbac().await?;
        if rbac.allows(&self.0.roles, resource, action) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!("{action:?} on {resource:?}").to_lowercase()).into())
        }
    }

    pub fn name(&self) -> &str {
        &self.0.username
    }
}
