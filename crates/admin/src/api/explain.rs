//! `POST /api/v1/explain`: how the stored config handles a described request, computed by the
//! same matching code the gateways run (`tigateway-explain`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tigateway_explain::{ExplainError, ExplainRequest, Explanation};

use super::error::{ApiError, FieldError};
use super::extract::JsonBody;
use super::AppState;

pub async fn explain(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<ExplainRequest>,
) -> Result<Json<Explanation>, ApiError> {
    let cfg = st.store.export().await?;
    // Compiling a large config takes a while: keep it off the async workers.
    let answer = tokio::task::spawn_blocking(move || tigateway_explain::explain(&cfg, &req))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("explain failed: {e}")))?;
    match answer {
        Ok(e) => Ok(Json(e)),
        Err(ExplainError::BadRequest { field, message }) => {
            let mut e = ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {message}"));
            e.errors = vec![FieldError { path: field.to_string(), message }];
            Err(e)
        }
        Err(ExplainError::InvalidConfig(errs)) => {
            let mut e = ApiError::new(StatusCode::CONFLICT, "the stored config does not compile; nothing to explain");
            e.errors = errs.into_iter().map(|v| FieldError { path: v.path, message: v.message }).collect();
            Err(e)
        }
    }
}
