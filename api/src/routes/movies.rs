//! Player events: actions with a position, watch time, and the current position.

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, MovieId, PositionMs, UserId};
use schemas::events::{MovieViewing, PlaybackEvent, PlaybackEventType, PlaybackPosition};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    all_valid, event_id, occurred_at, write_for_user, TimeInput, UserWrite, WriteResponses,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A player action at a position.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlaybackEventRequest {
    /// Optional client-chosen UUID: sending the same one again does not count twice.
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    #[schema(example = "pause")]
    pub event_type: PlaybackEventTypeInput,
    /// Position in the movie, milliseconds, >= 0 (this or `playback_position`).
    #[schema(minimum = 0)]
    pub position_ms: Option<i64>,
    /// The seed's name for the position, in seconds (fractions kept to the millisecond): an
    /// alias of `position_ms` for its clients; send one of the two.
    #[schema(minimum = 0)]
    pub playback_position: Option<f64>,
    /// When it happened (RFC 3339 or epoch ms); defaults to when the API received it.
    pub occurred_at: Option<TimeInput>,
}

/// play | pause | stop | fast_forward | rewind (anything else is a 400 naming the field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "play")]
pub struct PlaybackEventTypeInput(String);

impl UserWrite for PlaybackEventRequest {
    type Event = PlaybackEvent;

    fn user(event: &PlaybackEvent) -> Option<&UserId> {
        Some(&event.user_id)
    }

    fn into_event(self) -> Result<PlaybackEvent, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(&self.user_id);
        let movie_id = MovieId::parse(&self.movie_id);
        let event_type = parse_event_type(&self.event_type.0);
        let position_ms = position(self.position_ms, self.playback_position);
        let occurred_at = occurred_at("occurred_at", self.occurred_at.as_ref());
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

/// The position from `position_ms`, or from the seed's `playback_position` in seconds; exactly one.
fn position(ms: Option<i64>, seconds: Option<f64>) -> Result<PositionMs, DomainError> {
    match (ms, seconds) {
        (Some(ms), None) => PositionMs::parse(ms),
        (None, Some(s)) if s.is_finite() && s >= 0.0 && s <= (i64::MAX / 1000) as f64 => {
            PositionMs::parse((s * 1000.0).round() as i64)
                .map_err(|e| DomainError::new("playback_position", e.reason))
        }
        (None, Some(_)) => Err(DomainError::new(
            "playback_position",
            "must be a number of seconds >= 0",
        )),
        (None, None) => Err(DomainError::new(
            "position_ms",
            "is required (or playback_position, in seconds)",
        )),
        (Some(_), Some(_)) => Err(DomainError::new(
            "playback_position",
            "send position_ms or playback_position, not both",
        )),
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

/// Record a player action (play, pause, stop, fast_forward, rewind) at a position.
#[utoipa::path(post, path = "/api/v1/movies/playback-event", tag = "movies",
    request_body = PlaybackEventRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn playback_event(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write_for_user::<PlaybackEventRequest>(req, caller, body, state).await
}

/// Seconds of a movie watched since the previous report.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MovieViewingRequest {
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// Seconds watched, 0 to 86400.
    #[schema(minimum = 0, maximum = 86400)]
    pub viewed_seconds: i64,
    pub occurred_at: Option<TimeInput>,
}

impl UserWrite for MovieViewingRequest {
    type Event = MovieViewing;

    fn user(event: &MovieViewing) -> Option<&UserId> {
        Some(&event.user_id)
    }

    fn into_event(self) -> Result<MovieViewing, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(&self.user_id);
        let movie_id = MovieId::parse(&self.movie_id);
        let viewed = if (0..=86_400).contains(&self.viewed_seconds) {
            Ok(self.viewed_seconds)
        } else {
            Err(DomainError::new(
                "viewed_seconds",
                "must be between 0 and 86400",
            ))
        };
        let occurred_at = occurred_at("occurred_at", self.occurred_at.as_ref());
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            movie_id.as_ref().err(),
            viewed.as_ref().err(),
            occurred_at.as_ref().err(),
        ])?;
        Ok(MovieViewing {
            event_id: event_id?,
            user_id: user_id?,
            movie_id: movie_id?,
            viewed_seconds: viewed?,
            occurred_at: occurred_at?,
        })
    }
}

/// Record watch time.
#[utoipa::path(post, path = "/api/v1/movies/movie-viewing", tag = "movies",
    request_body = MovieViewingRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn movie_viewing(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write_for_user::<MovieViewingRequest>(req, caller, body, state).await
}

/// Where the viewer is now (for "continue watching").
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlaybackPositionRequest {
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// Milliseconds, >= 0 (this or `playback_position`).
    #[schema(minimum = 0)]
    pub position_ms: Option<i64>,
    /// The seed's name for the position, in seconds: an alias of `position_ms`.
    #[schema(minimum = 0)]
    pub playback_position: Option<f64>,
    /// The movie's length, when the player knows it.
    #[schema(minimum = 0)]
    pub duration_ms: Option<i64>,
    pub occurred_at: Option<TimeInput>,
}

impl UserWrite for PlaybackPositionRequest {
    type Event = PlaybackPosition;

    fn user(event: &PlaybackPosition) -> Option<&UserId> {
        Some(&event.user_id)
    }

    fn into_event(self) -> Result<PlaybackPosition, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(&self.user_id);
        let movie_id = MovieId::parse(&self.movie_id);
        let position_ms = position(self.position_ms, self.playback_position);
        let duration_ms = self
            .duration_ms
            .map(|d| PositionMs::parse(d).map_err(|e| DomainError::new("duration_ms", e.reason)))
            .transpose();
        let occurred_at = occurred_at("occurred_at", self.occurred_at.as_ref());
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            movie_id.as_ref().err(),
            position_ms.as_ref().err(),
            duration_ms.as_ref().err(),
            occurred_at.as_ref().err(),
        ])?;
        Ok(PlaybackPosition {
            event_id: event_id?,
            user_id: user_id?,
            movie_id: movie_id?,
            position_ms: position_ms?,
            duration_ms: duration_ms?,
            occurred_at: occurred_at?,
        })
    }
}

/// Record the current playback position.
#[utoipa::path(post, path = "/api/v1/movies/playback-position", tag = "movies",
    request_body = PlaybackPositionRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn playback_position(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write_for_user::<PlaybackPositionRequest>(req, caller, body, state).await
}
