//! One error type for the handlers, mapped to a status and one JSON shape in one place:
//! `{"error": "...", "details": [...]}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use producers::ProduceError;
use schemas::domain::DomainError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON the endpoint takes.
    #[error("invalid JSON body")]
    BadJson(String),
    /// Fields that fail validation, each named.
    #[error("validation failed")]
    Invalid(Vec<DomainError>),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Kafka could not take the write within the bound: try again shortly.
    #[error("the event store is unavailable, retry later")]
    Unavailable(#[source] ProduceError),
    #[error("internal error")]
    Internal(String),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Invalid(vec![e])
    }
}

impl From<ProduceError> for ApiError {
    fn from(e: ProduceError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let details: Vec<serde_json::Value> = match self {
            ApiError::BadJson(m) => vec![json!({"message": m})],
            ApiError::Invalid(errors) => errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.reason}))
                .collect(),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "produce failed");
                vec![]
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                vec![]
            }
            ApiError::TooLarge(_) => vec![],
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_)) {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(json!({"error": self.to_string(), "details": details}))
    }
}
