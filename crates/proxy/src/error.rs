//! One error type for the data plane with a fixed mapping to status codes and a JSON body.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::ProxyBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    HeaderTooLarge,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    /// Close the client connection after answering (request framing can no longer be trusted).
    pub close: bool,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        GatewayError { kind, message: message.into(), close: false }
    }

    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.kind.status();
        json_response(status, status.as_u16() as i64, &self.message, self.close)
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.status().as_u16(), self.message)
    }
}

/// `{"code":N,"message":"…"}` — ShenYu's error body shape, but with a real HTTP status.
pub fn json_response(status: StatusCode, code: i64, message: &str, close: bool) -> Response<ProxyBody> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if close {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// What a request that matched nothing gets: 404 JSON, or ShenYu's HTTP 200 with code -107 when the
/// config asks for drop-in compatibility.
pub fn not_found(shenyu_compatible: bool) -> Response<ProxyBody> {
    if shenyu_compatible {
        json_response(StatusCode::OK, -107, "divide:Can not find selector, please check your configuration!", false)
    } else {
        json_response(StatusCode::NOT_FOUND, 404, "no route matches this request", false)
    }
}
