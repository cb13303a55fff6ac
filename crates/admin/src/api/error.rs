//! The API's error body: `{"code", "message", "errors"?, "currentVersion"?}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tigateway_auth::AuthError;
use tigateway_model::ValidationErrors;

use crate::identity::IdentityError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<FieldError>,
    pub current_version: Option<i64>,
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), errors: Vec::new(), current_version: None, retry_after_secs: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(errs: &ValidationErrors) -> ApiError {
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the request does not validate");
        e.errors = errs.0.iter().map(|v| FieldError { path: v.path.clone(), message: v.message.clone() }).collect();
        e
    }

    fn conflict(current_version: i64) -> ApiError {
        let mut e =
            ApiError::new(StatusCode::CONFLICT, format!("version conflict: the current version is {current_version}"));
        e.current_version = Some(current_version);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.status.as_u16(),
            message: &self.message,
            errors: &self.errors,
            current_version: self.current_version,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { .. } | StoreError::RevisionNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            StoreError::AlreadyExists { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Conflict { current_version } => ApiError::conflict(current_version),
            StoreError::Invalid(errs) => ApiError::invalid(&errs),
            StoreError::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            StoreError::Database(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Missing | AuthError::InvalidToken | AuthError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            AuthError::Throttled { retry_after_secs } => {
                let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string());
                err.retry_after_secs = Some(retry_after_secs);
                err
            }
            AuthError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            AuthError::Hash(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        match e {
            IdentityError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            IdentityError::AlreadyExists { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            IdentityError::Conflict { current_version } => ApiError::conflict(current_version),
            IdentityError::Invalid(errs) => ApiError::invalid(&errs),
            IdentityError::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            IdentityError::Database(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            IdentityError::Auth(a) => a.into(),
        }
    }
}
