pub mod health;
pub mod playback;

use actix_web::web;

use schemas::domain::DomainError;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/healthcheck/ping", web::get().to(health::ping))
            .route(
                "/movies/playback-event",
                web::post().to(playback::playback_event),
            ),
    );
}

/// The largest request body accepted (`API_MAX_BODY_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Reads a JSON body into `T`: 413 over the limit, 400 with the parser's reason when it is not
/// the JSON the endpoint takes.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    mut payload: web::Payload,
    limit: &BodyLimit,
) -> Result<T, ApiError> {
    use futures::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadJson(e.to_string()))?;
        if body.len() + chunk.len() > limit.0 {
            return Err(ApiError::TooLarge(limit.0));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(e.to_string()))
}

/// Every field error at once, so one response names every bad field.
pub(crate) fn all_valid<'a>(
    errors: impl IntoIterator<Item = Option<&'a DomainError>>,
) -> Result<(), ApiError> {
    let errors: Vec<DomainError> = errors.into_iter().flatten().cloned().collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(errors))
    }
}
