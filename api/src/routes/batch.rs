//! `POST /api/v1/events/batch`: many events in one request, as a JSON array or NDJSON. Each item
//! names its kind in `type` (default `user_event`) and has the body of that kind's endpoint, with
//! path ids as fields. Every item is validated on its own; the valid ones are produced together
//! (all sends in flight at once, librdkafka batches them) and the answer comes once Kafka acked
//! them all, saying per item accepted or why rejected.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::future::join_all;
use producers::{EventProducer, ProduceError};
use schemas::domain::{DomainError, UserId};
use schemas::events::{FavouriteAction, Rating};
use schemas::Event;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;
use utoipa::ToSchema;

use super::events::{AnonymousEventRequest, UserEventRequest};
use super::favorites::EventMeta;
use super::likes::RatingRequest;
use super::movies::{MovieViewingRequest, PlaybackEventRequest, PlaybackPositionRequest};
use super::{read_body, UserWrite};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::TraceContext;

/// One validated event of any kind the batch takes.
enum AnyEvent {
    Playback(schemas::events::PlaybackEvent),
    Position(schemas::events::PlaybackPosition),
    Viewing(schemas::events::MovieViewing),
    Rating(Rating),
    Favourite(schemas::events::Favourite),
    User(schemas::events::UserEvent),
}

impl AnyEvent {
    fn user(&self) -> Option<&UserId> {
        match self {
            AnyEvent::Playback(e) => Some(&e.user_id),
            AnyEvent::Position(e) => Some(&e.user_id),
            AnyEvent::Viewing(e) => Some(&e.user_id),
            AnyEvent::Rating(e) => Some(&e.user_id),
            AnyEvent::Favourite(e) => Some(&e.user_id),
            AnyEvent::User(e) => e.user_id.as_ref(),
        }
    }

    fn within_time_bounds(&self, state: &AppState) -> Result<(), ApiError> {
        use super::within_time_bounds as check;
        match self {
            AnyEvent::Playback(e) => check(state, e),
            AnyEvent::Position(e) => check(state, e),
            AnyEvent::Viewing(e) => check(state, e),
            AnyEvent::Rating(e) => check(state, e),
            AnyEvent::Favourite(e) => check(state, e),
            AnyEvent::User(e) => check(state, e),
        }
    }

    fn event_id(&self) -> String {
        match self {
            AnyEvent::Playback(e) => e.event_id().to_string(),
            AnyEvent::Position(e) => e.event_id().to_string(),
            AnyEvent::Viewing(e) => e.event_id().to_string(),
            AnyEvent::Rating(e) => e.event_id().to_string(),
            AnyEvent::Favourite(e) => e.event_id().to_string(),
            AnyEvent::User(e) => e.event_id().to_string(),
        }
    }

    async fn send(&self, p: &EventProducer, headers: &[(&str, &str)]) -> Result<(), ProduceError> {
        match self {
            AnyEvent::Playback(e) => p.send(e, headers).await,
            AnyEvent::Position(e) => p.send(e, headers).await,
            AnyEvent::Viewing(e) => p.send(e, headers).await,
            AnyEvent::Rating(e) => p.send(e, headers).await,
            AnyEvent::Favourite(e) => p.send(e, headers).await,
            AnyEvent::User(e) => p.send(e, headers).await,
        }
        .map(|_| ())
    }
}

#[derive(Deserialize)]
struct Ids {
    user_id: String,
    movie_id: String,
}

#[derive(Deserialize)]
struct FavouriteItem {
    user_id: String,
    movie_id: String,
    /// added | removed
    action: String,
    #[serde(flatten)]
    meta: EventMeta,
}

fn item<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| ApiError::BadJson(e.to_string()))
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// Validates one item into an event. Items stay unparsed text until here, so each is parsed
/// once into its own request type (no intermediate JSON tree).
fn parse_item(v: &RawValue) -> Result<AnyEvent, ApiError> {
    let kind = item::<Kind<'_>>(v)?
        .kind
        .unwrap_or(Cow::Borrowed("user_event"));
    Ok(match kind.as_ref() {
        "playback_event" => AnyEvent::Playback(item::<PlaybackEventRequest>(v)?.into_event()?),
        "playback_position" => {
            AnyEvent::Position(item::<PlaybackPositionRequest>(v)?.into_event()?)
        }
        "movie_viewing" => AnyEvent::Viewing(item::<MovieViewingRequest>(v)?.into_event()?),
        "rating" => {
            let ids: Ids = item(v)?;
            AnyEvent::Rating(item::<RatingRequest>(v)?.into_event(&ids.user_id, &ids.movie_id)?)
        }
        "favourite" => {
            let f: FavouriteItem = item(v)?;
            let action = match f.action.as_str() {
                "added" => FavouriteAction::Added,
                "removed" => FavouriteAction::Removed,
                _ => return Err(DomainError::new("action", "must be added or removed").into()),
            };
            AnyEvent::Favourite(f.meta.into_favourite(&f.user_id, &f.movie_id, action)?)
        }
        "user_event" => AnyEvent::User(item::<UserEventRequest>(v)?.into_event()?),
        "anonymous_event" => AnyEvent::User(item::<AnonymousEventRequest>(v)?.into_event()?),
        other => {
            return Err(DomainError::new(
                "type",
                format!(
                    "{other:?} is not one of playback_event, playback_position, movie_viewing, \
                     rating, favourite, user_event, anonymous_event"
                ),
            )
            .into())
        }
    })
}

/// Per item: accepted (with its event id) or rejected (with the error shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    /// accepted | rejected | failed (Kafka did not take it: retry the item)
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl ItemResult {
    fn new(
        index: usize,
        status: &'static str,
        event_id: Option<String>,
        error: Option<&ApiError>,
    ) -> Self {
        Self {
            index,
            status,
            event_id,
            error: error.map(ToString::to_string),
            details: error.map(ApiError::details).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub failed: usize,
    pub results: Vec<ItemResult>,
}

/// Splits a body into items: a JSON array, or one JSON object per line.
fn items(body: &[u8], max: usize) -> Result<Vec<&RawValue>, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::BadJson("body is not UTF-8".into()))?;
    let trimmed = text.trim_start();
    let values: Vec<&RawValue> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| ApiError::BadJson(e.to_string()))?
    } else {
        trimmed
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| ApiError::BadJson(format!("line {}: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?
    };
    if values.is_empty() {
        return Err(ApiError::BadJson("the batch is empty".into()));
    }
    if values.len() > max {
        return Err(DomainError::new("batch", format!("at most {max} events per request")).into());
    }
    Ok(values)
}

/// Send many events at once (JSON array or NDJSON).
#[utoipa::path(post, path = "/api/v1/events/batch", tag = "events",
    request_body(content = Vec<Object>, description = "Items with a `type` (playback_event, playback_position, \
        movie_viewing, rating, favourite, user_event (default), anonymous_event) and that kind's fields.",
        content_type = "application/json"),
    responses(
        (status = 202, description = "Every valid item was acknowledged by Kafka; see results", body = BatchResponse),
        (status = 400, description = "Not a batch, or no valid item", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
        (status = 503, description = "Kafka did not take some items: retry those marked failed", body = BatchResponse)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn batch(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(
        body,
        state.limits.batch_max_body_bytes,
        state.limits.body_timeout,
    )
    .await?;
    let values = items(&body, state.limits.batch_max_events)?;
    let trace = TraceContext::of(&req);
    let headers = trace.kafka_headers();

    let parsed: Vec<Result<AnyEvent, ApiError>> = values
        .into_iter()
        .map(|v| {
            let event = parse_item(v)?;
            if let AnyEvent::User(user_event) = &event {
                state.user_event_types.admit(user_event)?;
            }
            event.within_time_bounds(&state)?;
            if let Some(user) = event.user() {
                caller.may_act_for(user)?;
            }
            Ok(event)
        })
        .collect();
    let producer = &state.producer;
    let headers = &headers;
    let results: Vec<ItemResult> =
        join_all(parsed.into_iter().enumerate().map(|(index, p)| async move {
            match p {
                Err(e) => ItemResult::new(index, "rejected", None, Some(&e)),
                Ok(event) => match event.send(producer, headers).await {
                    Ok(()) => ItemResult::new(index, "accepted", Some(event.event_id()), None),
                    Err(err) => ItemResult::new(
                        index,
                        "failed",
                        Some(event.event_id()),
                        Some(&ApiError::from(err)),
                    ),
                },
            }
        }))
        .await;
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    let response = BatchResponse {
        accepted: count("accepted"),
        rejected: count("rejected"),
        failed: count("failed"),
        results,
    };
    Ok(if response.failed > 0 {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(response)
    } else if response.accepted == 0 {
        HttpResponse::BadRequest().json(json!({
            "error": "no valid event in the batch",
            "details": response.results,
        }))
    } else {
        HttpResponse::Accepted().json(response)
    })
}
