//! `POST /api/v1/movies/playback-event`.

use actix_web::{web, HttpRequest, HttpResponse};
use producers::EventProducer;
use schemas::domain::{DomainError, EventId, MovieId, PositionMs, Timestamp, UserId};
use schemas::events::{PlaybackEvent, PlaybackEventType};
use serde::Deserialize;
use serde_json::json;

use super::{all_valid, json_body, BodyLimit};
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
        let event_id = self
            .event_id
            .as_deref()
            .map_or_else(|| Ok(EventId::new_random()), EventId::parse);
        let user_id = UserId::parse(&self.user_id);
        let movie_id = MovieId::parse(&self.movie_id);
        let event_type = parse_event_type(&self.event_type);
        let position_ms = PositionMs::parse(self.position_ms);
        let occurred_at = self.occurred_at.as_deref().map_or_else(
            || Ok(Timestamp::now()),
            |raw| Timestamp::parse_rfc3339("occurred_at", raw),
        );
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            movie_id.as_ref().err(),
            event_type.as_ref().err(),
            position_ms.as_ref().err(),
            occurred_at.as_ref().err(),
        ])?;
        Ok(PlaybackEvent {
            event_id: event_id?,
            user_id: user_id?,
            movie_id: movie_id?,
            event_type: event_type?,
            position_ms: position_ms?,
            occurred_at: occurred_at?,
        })
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
    let event = json_body::<PlaybackEventRequest>(body, &limit)
        .await?
        .into_event()?;
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
