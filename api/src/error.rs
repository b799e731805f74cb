//! One error type for the handlers, mapped to a status and one JSON shape in one place:
//! `{"error": "...", "details": [...]}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use producers::ProduceError;
use schemas::domain::DomainError;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON the endpoint takes.
    #[error("invalid JSON body")]
    BadJson(String),
    /// The query string is not what the endpoint takes.
    #[error("invalid query string")]
    BadQuery(String),
    /// Fields that fail validation, each named.
    #[error("validation failed")]
    Invalid(Vec<DomainError>),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The client did not send its whole body within `API_BODY_TIMEOUT`.
    #[error("request body not received in time")]
    BodyTimeout(String),
    #[error("unauthorized")]
    Unauthorized(String),
    #[error("forbidden")]
    Forbidden(String),
    /// Kafka could not take the write within the bound: try again shortly.
    #[error("the event store is unavailable, retry later")]
    Unavailable(String),
    /// ClickHouse did not answer a read: try again shortly.
    #[error("the analytics store is unavailable, retry later")]
    AnalyticsUnavailable(String),
    /// MongoDB did not answer a read: try again shortly.
    #[error("the document store is unavailable, retry later")]
    StoreUnavailable(String),
    /// No such resource.
    #[error("not found")]
    NotFound(String),
    /// A per-caller bound was reached; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests(String, u64),
    /// The body's media type is not one the endpoint takes.
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// The resource belongs to someone else (a post id another author used).
    #[error("conflict")]
    Conflict(String),
    /// The views model has too little data to predict (409): says what it has and needs.
    #[error("not enough data to predict views")]
    NotEnoughData(String),
    /// The path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("internal error")]
    Internal(String),
}

/// The error body, for the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a few words.
    #[schema(example = "validation failed")]
    pub error: String,
    /// Per field or per cause: `{"field": "...", "message": "..."}` or `{"message": "..."}`.
    pub details: Vec<serde_json::Value>,
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Invalid(vec![e])
    }
}

impl From<clickhouse::error::Error> for ApiError {
    fn from(e: clickhouse::error::Error) -> Self {
        ApiError::AnalyticsUnavailable(e.to_string())
    }
}

impl From<mongodb::error::Error> for ApiError {
    fn from(e: mongodb::error::Error) -> Self {
        ApiError::StoreUnavailable(e.to_string())
    }
}

impl From<ProduceError> for ApiError {
    fn from(e: ProduceError) -> Self {
        crate::metrics::produce_error(&e);
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ApiError {
    pub fn details(&self) -> Vec<serde_json::Value> {
        match self {
            ApiError::BadJson(m)
            | ApiError::BadQuery(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::NotEnoughData(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::TooManyRequests(m, _)
            | ApiError::MethodNotAllowed(m)
            | ApiError::BodyTimeout(m) => {
                vec![json!({"message": m})]
            }
            ApiError::Invalid(errors) => errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.reason}))
                .collect(),
            ApiError::TooLarge(_)
            | ApiError::Unavailable(_)
            | ApiError::AnalyticsUnavailable(_)
            | ApiError::StoreUnavailable(_)
            | ApiError::Internal(_) => vec![],
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::BadQuery(_) | ApiError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::NotEnoughData(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_)
            | ApiError::AnalyticsUnavailable(_)
            | ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unavailable(e) => tracing::warn!(error = %e, "produce failed"),
            ApiError::AnalyticsUnavailable(e) => {
                tracing::warn!(error = %e, "analytics read failed")
            }
            ApiError::StoreUnavailable(e) => tracing::warn!(error = %e, "document read failed"),
            ApiError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable(_)
            | ApiError::AnalyticsUnavailable(_)
            | ApiError::StoreUnavailable(_) => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::TooManyRequests(_, secs) => {
                response.insert_header(("Retry-After", secs.max(&1).to_string()));
            }
            ApiError::Unauthorized(_) => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response.json(json!({"error": self.to_string(), "details": self.details()}))
    }
}

/// Rewrites the framework's own 400, 404 and 405 answers (a refused CORS origin, an unknown path, a
/// wrong method: text or empty bodies) into
/// the JSON error shape every other error has; a JSON answer (a handler's own 404) is kept.
pub fn framework_errors<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let json = res
        .response()
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, _) = res.into_parts();
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path()))
    } else if status == StatusCode::BAD_REQUEST {
        // The framework's own 400s: a CORS request from an origin not listed, or a request it
        // could not take apart.
        let origin = req
            .headers()
            .get(actix_web::http::header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        ApiError::BadQuery(match origin {
            Some(origin) => {
                format!("origin {origin} may not call this API (CORS_ALLOWED_ORIGINS)")
            }
            None => "the request could not be read".to_string(),
        })
    } else {
        ApiError::NotFound(format!("no such path: {}", req.path()))
    };
    let res = actix_web::dev::ServiceResponse::new(req, error.error_response());
    Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
}
