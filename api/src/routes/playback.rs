//! `POST /api/v1/movies/playback-event`.

use actix_web::{web, HttpRequest, HttpResponse};
use producers::EventProducer;
use schemas::domain::{DomainError, EventId, MovieId, PositionMs, Timestamp, UserId};
use schemas::events::{PlaybackEvent, PlaybackEventType};
use serde::Deserialize;
use serde_json::json;

use super::{json_body, BodyLimit, Validation};
use crate::error::ApiError;
use crate::telemetry::TraceContext;

/// The body as clients send it; every field is validated into the domain before anything is sent.
#[derive(Debug, Deserialize)]
pub struct PlaybackEventRequest {
    /// Optional client-chosen UUID: sending the same one again does not count twice.
    pub event_id: Option<String>,
    pub user_id: String,
    pub movie_id: String,
    /// play | pause | stop | fast_forward | rewind.
    pub event_type: String,
    pub position_ms: i64,
    /// RFC 3339; defaults to the time the API received it.
    pub occurred_at: Option<String>,
}

impl PlaybackEventRequest {
    pub fn into_event(self) -> Result<PlaybackEvent, ApiError> {
        let mut v = Validation::default();
        let event_id = match &self.event_id {
            Some(raw) => v.check(EventId::parse(raw)),
            None => Some(EventId::new_random()),
        };
        let user_id = v.check(UserId::parse(&self.user_id));
        let movie_id = v.check(MovieId::parse(&self.movie_id));
        let event_type = v.check(parse_event_type(&self.event_type));
        let position_ms = v.check(PositionMs::parse(self.position_ms));
        let occurred_at = match &self.occurred_at {
            Some(raw) => v.check(Timestamp::parse_rfc3339("occurred_at", raw)),
            None => Some(Timestamp::now()),
        };
        v.finish()?;
        // Every field is Some when validation passed.
        match (event_id, user_id, movie_id, event_type, position_ms, occurred_at) {
            (Some(event_id), Some(user_id), Some(movie_id), Some(event_type), Some(position_ms), Some(occurred_at)) => {
                Ok(PlaybackEvent {
                    event_id,
                    user_id,
                    movie_id,
                    event_type,
                    position_ms,
                    occurred_at,
                })
            }
            _ => Err(ApiError::Internal("validation state".into())),
        }
    }
}

fn parse_event_type(raw: &str) -> Result<PlaybackEventType, DomainError> {
    PlaybackEventType::ALL
        .into_iter()
        .find(|t| t.as_str() == raw)
        .ok_or_else(|| {
            DomainError::new(
                "event_type",
                format!("{raw:?} is not one of play, pause, stop, fast_forward, rewind"),
            )
        })
}

pub async fn playback_event(
    req: HttpRequest,
    body: web::Payload,
    limit: web::Data<BodyLimit>,
    producer: web::Data<EventProducer>,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<PlaybackEventRequest>(body, &limit).await?.into_event()?;
    let trace = TraceContext::from_request(&req);
    let span = tracing::info_span!(
        "produce",
        event_id = %event.event_id,
        request_id = %trace.request_id,
        trace_id = %trace.trace_id()
    );
    let _guard = span.enter();
    producer.send(&event, &trace.kafka_headers()).await?;
    Ok(HttpResponse::Accepted().json(json!({"status": "accepted", "event_id": event.event_id})))
}
