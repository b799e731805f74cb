//! Generic frontend events: click, page_view, movie_quality_changed, movie_completed,
//! search_filter_used — by a signed-in user or by an anonymous visitor.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{AnonymousId, DomainError, UserId};
use schemas::events::UserEvent;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    all_valid, event_id, json_body, occurred_at, produce, write_for_user, TimeInput, UserWrite,
    WriteResponses,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub const EVENT_TYPES: [&str; 5] = [
    "click",
    "page_view",
    "movie_quality_changed",
    "movie_completed",
    "search_filter_used",
];
const MAX_PROPERTIES: usize = 64;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 2048;

/// `event_type` plus any properties (scalars are kept as text, objects and arrays as JSON text).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventPayload {
    /// click | page_view | movie_quality_changed | movie_completed | search_filter_used.
    #[schema(example = "page_view")]
    pub event_type: String,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Object>)]
    pub properties: serde_json::Map<String, Value>,
}

/// A signed-in user's event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserEventRequest {
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    #[schema(format = Uuid)]
    pub user_id: String,
    /// When it happened (RFC 3339 or epoch ms); defaults to now.
    pub timestamp: Option<TimeInput>,
    pub payload: EventPayload,
}

/// An anonymous visitor's event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AnonymousEventRequest {
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    /// 1 to 128 characters of letters, digits and `. _ : -`.
    #[schema(example = "anon-3f2c9a")]
    pub anonymous_id: String,
    pub timestamp: Option<TimeInput>,
    pub payload: EventPayload,
}

fn parse_payload(
    p: EventPayload,
) -> (
    Result<String, DomainError>,
    Result<HashMap<String, String>, DomainError>,
) {
    let event_type = if EVENT_TYPES.contains(&p.event_type.as_str()) {
        Ok(p.event_type)
    } else {
        Err(DomainError::new(
            "payload.event_type",
            format!(
                "{:?} is not one of {}",
                p.event_type,
                EVENT_TYPES.join(", ")
            ),
        ))
    };
    let properties = if p.properties.len() > MAX_PROPERTIES {
        Err(DomainError::new(
            "payload",
            format!("at most {MAX_PROPERTIES} properties"),
        ))
    } else {
        p.properties
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if k.chars().count() > MAX_KEY_CHARS || text.chars().count() > MAX_VALUE_CHARS {
                    Err(DomainError::new(
                        "payload",
                        format!("property names are at most {MAX_KEY_CHARS} characters, values {MAX_VALUE_CHARS}"),
                    ))
                } else {
                    Ok((k, text))
                }
            })
            .collect()
    };
    (event_type, properties)
}

impl UserWrite for UserEventRequest {
    type Event = UserEvent;

    fn user(event: &UserEvent) -> Option<&UserId> {
        event.user_id.as_ref()
    }

    fn into_event(self) -> Result<UserEvent, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(&self.user_id);
        let occurred_at = occurred_at("timestamp", self.timestamp.as_ref());
        let (event_type, properties) = parse_payload(self.payload);
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            occurred_at.as_ref().err(),
            event_type.as_ref().err(),
            properties.as_ref().err(),
        ])?;
        Ok(UserEvent {
            event_id: event_id?,
            user_id: Some(user_id?),
            anonymous_id: None,
            event_type: event_type?,
            properties: properties?,
            occurred_at: occurred_at?,
        })
    }
}

impl UserWrite for AnonymousEventRequest {
    type Event = UserEvent;

    fn user(_: &UserEvent) -> Option<&UserId> {
        None
    }

    fn into_event(self) -> Result<UserEvent, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let anonymous_id = AnonymousId::parse(&self.anonymous_id);
        let occurred_at = occurred_at("timestamp", self.timestamp.as_ref());
        let (event_type, properties) = parse_payload(self.payload);
        all_valid([
            event_id.as_ref().err(),
            anonymous_id.as_ref().err(),
            occurred_at.as_ref().err(),
            event_type.as_ref().err(),
            properties.as_ref().err(),
        ])?;
        Ok(UserEvent {
            event_id: event_id?,
            user_id: None,
            anonymous_id: Some(anonymous_id?),
            event_type: event_type?,
            properties: properties?,
            occurred_at: occurred_at?,
        })
    }
}

/// Record a signed-in user's frontend event.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body = UserEventRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn user_event(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write_for_user::<UserEventRequest>(req, caller, body, state).await
}

/// Record an anonymous visitor's frontend event (no credentials; rate-limited by address).
#[utoipa::path(post, path = "/api/v1/anonymous-events", tag = "events",
    request_body = AnonymousEventRequest, responses(WriteResponses))]
pub async fn anonymous_event(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<AnonymousEventRequest>(body, state.limits.max_body_bytes)
        .await?
        .into_event()?;
    produce(&state, &req, event).await
}
