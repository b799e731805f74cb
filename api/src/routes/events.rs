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
const MAX_TYPE_CHARS: usize = 64;

/// What a required property must be.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A non-empty string or a number (seed clients send ids and qualities either way).
    Text,
    /// A UUID string.
    Uuid,
    /// A JSON object.
    Object,
}

/// The properties each known event type must carry (`payload.<name>`).
fn required(event_type: &str) -> &'static [(&'static str, &'static str, Expect)] {
    use Expect::*;
    match event_type {
        "click" => &[
            ("element_id", "payload.element_id", Text),
            ("element_type", "payload.element_type", Text),
        ],
        "page_view" => &[("page", "payload.page", Text)],
        "movie_quality_changed" => &[
            ("movie_id", "payload.movie_id", Uuid),
            ("previous_quality", "payload.previous_quality", Text),
            ("new_quality", "payload.new_quality", Text),
        ],
        "movie_completed" => &[("movie_id", "payload.movie_id", Uuid)],
        "search_filter_used" => &[("filters", "payload.filters", Object)],
        _ => &[],
    }
}

/// Which `event_type`s the API takes (`USER_EVENT_TYPES`): the known ones with their required
/// properties, plus the listed ones (`a,b`) or any (`*`). An unknown type is refused with 400
/// unless listed: a typo'd type would otherwise sit in ClickHouse unseen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventTypes {
    #[default]
    Known,
    Also(Vec<String>),
    Any,
}

impl EventTypes {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::Known);
        }
        if raw == "*" {
            return Ok(Self::Any);
        }
        let names: Vec<String> = raw.split(',').map(|n| n.trim().to_string()).collect();
        match names.iter().find(|n| !valid_type_name(n)) {
            Some(bad) => Err(format!(
                "{bad:?} is not an event type name (1 to {MAX_TYPE_CHARS} of a-z 0-9 _ . -)"
            )),
            None => Ok(Self::Also(names)),
        }
    }

    fn admits(&self, event_type: &str) -> bool {
        EVENT_TYPES.contains(&event_type)
            || match self {
                Self::Known => false,
                Self::Also(names) => names.iter().any(|n| n == event_type),
                Self::Any => true,
            }
    }

    /// 400 naming `payload.event_type` for a type this API does not take.
    pub fn admit(&self, event: &UserEvent) -> Result<(), ApiError> {
        if self.admits(&event.event_type) {
            return Ok(());
        }
        Err(DomainError::new(
            "payload.event_type",
            format!(
                "{:?} is not one of {} (USER_EVENT_TYPES lists more)",
                event.event_type,
                EVENT_TYPES.join(", ")
            ),
        )
        .into())
    }
}

fn valid_type_name(name: &str) -> bool {
    (1..=MAX_TYPE_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// `event_type` plus its properties, kept with their JSON types.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventPayload {
    /// click (element_id, element_type) | page_view (page) | movie_quality_changed (movie_id UUID,
    /// previous_quality, new_quality) | movie_completed (movie_id UUID) | search_filter_used
    /// (filters: object); other names only when `USER_EVENT_TYPES` lists them.
    #[schema(example = "search_filter_used")]
    pub event_type: String,
    /// Any further properties (at most 64; names up to 128 characters, each value's JSON text up
    /// to 2,048), with their JSON types: they reach Kafka as `properties_json`.
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

/// The validated payload: its type, the properties as text (the first contract's map) and as one
/// JSON object.
struct Payload {
    event_type: String,
    properties: HashMap<String, String>,
    properties_json: String,
}

fn parse_payload(p: EventPayload) -> Result<Payload, Vec<DomainError>> {
    let mut errors = Vec::new();
    if !valid_type_name(&p.event_type) {
        errors.push(DomainError::new(
            "payload.event_type",
            format!("1 to {MAX_TYPE_CHARS} characters of a-z 0-9 _ . -"),
        ));
    }
    for (name, field, expect) in required(&p.event_type) {
        let fits = match (p.properties.get(*name), expect) {
            (Some(Value::String(s)), Expect::Text) => !s.trim().is_empty(),
            (Some(Value::Number(_)), Expect::Text) => true,
            (Some(Value::String(s)), Expect::Uuid) => uuid::Uuid::parse_str(s).is_ok(),
            (Some(Value::Object(_)), Expect::Object) => true,
            _ => false,
        };
        if !fits {
            let what = match expect {
                Expect::Text => "a non-empty string or a number",
                Expect::Uuid => "a UUID",
                Expect::Object => "an object",
            };
            errors.push(DomainError::new(
                field,
                format!("{} requires {name}: {what}", p.event_type),
            ));
        }
    }
    let mut properties = HashMap::with_capacity(p.properties.len());
    if p.properties.len() > MAX_PROPERTIES {
        errors.push(DomainError::new(
            "payload",
            format!("at most {MAX_PROPERTIES} properties"),
        ));
    } else {
        for (k, v) in &p.properties {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if k.chars().count() > MAX_KEY_CHARS || text.chars().count() > MAX_VALUE_CHARS {
                errors.push(DomainError::new(
                    "payload",
                    format!("property names are at most {MAX_KEY_CHARS} characters, values {MAX_VALUE_CHARS}"),
                ));
                break;
            }
            properties.insert(k.clone(), text);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let properties_json = Value::Object(p.properties).to_string();
    Ok(Payload {
        event_type: p.event_type,
        properties,
        properties_json,
    })
}

/// The payload, or every field error of the request at once (the others', then the payload's).
fn collect(
    others: [Option<&DomainError>; 3],
    payload: Result<Payload, Vec<DomainError>>,
) -> Result<Payload, ApiError> {
    let payload_errors = payload.as_ref().err().into_iter().flatten().map(Some);
    all_valid(others.into_iter().chain(payload_errors))?;
    payload.map_err(ApiError::Invalid)
}

impl UserWrite for UserEventRequest {
    type Event = UserEvent;

    fn user(event: &UserEvent) -> Option<&UserId> {
        event.user_id.as_ref()
    }

    fn admit(event: &UserEvent, state: &AppState) -> Result<(), ApiError> {
        state.user_event_types.admit(event)
    }

    fn into_event(self) -> Result<UserEvent, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(&self.user_id);
        let occurred_at = occurred_at("timestamp", self.timestamp.as_ref());
        let payload = collect(
            [
                event_id.as_ref().err(),
                user_id.as_ref().err(),
                occurred_at.as_ref().err(),
            ],
            parse_payload(self.payload),
        )?;
        Ok(UserEvent {
            event_id: event_id?,
            user_id: Some(user_id?),
            anonymous_id: None,
            event_type: payload.event_type,
            properties: payload.properties,
            occurred_at: occurred_at?,
            properties_json: Some(payload.properties_json),
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
        let payload = collect(
            [
                event_id.as_ref().err(),
                anonymous_id.as_ref().err(),
                occurred_at.as_ref().err(),
            ],
            parse_payload(self.payload),
        )?;
        Ok(UserEvent {
            event_id: event_id?,
            user_id: None,
            anonymous_id: Some(anonymous_id?),
            event_type: payload.event_type,
            properties: payload.properties,
            occurred_at: occurred_at?,
            properties_json: Some(payload.properties_json),
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
    let event = json_body::<AnonymousEventRequest>(body, &state.limits)
        .await?
        .into_event()?;
    state.user_event_types.admit(&event)?;
    produce(&state, &req, event).await
}
