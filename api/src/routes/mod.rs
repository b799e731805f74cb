//! The routes, one module per resource, and the helpers every write shares: read the body (413 over
//! the limit, 400 when it is not the JSON the endpoint takes), validate every field at once, produce,
//! answer 202 once Kafka acknowledged.

pub mod analytics;
pub mod batch;
pub mod channels;
pub mod events;
pub mod favorites;
pub mod feed;
pub mod follows;
pub(crate) mod form;
pub mod health;
pub mod images;
pub mod keywords;
pub mod likes;
pub mod lists;
pub mod movies;
pub mod posts;
pub mod predictions;
pub mod video_search;
pub mod videos;

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, EventId, Timestamp};
use schemas::Event;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::TraceContext;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        // One resource per path, so a wrong method is 405 (a route per method would be 404).
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(media_type))
            .service(web::resource("/healthcheck/ping").route(web::get().to(health::ping)))
            .service(web::resource("/health/ready").route(web::get().to(health::ready)))
            .service(
                web::resource("/movies/playback-event")
                    .route(web::post().to(movies::playback_event)),
            )
            .service(
                web::resource("/movies/movie-viewing").route(web::post().to(movies::movie_viewing)),
            )
            .service(
                web::resource("/movies/playback-position")
                    .route(web::post().to(movies::playback_position)),
            )
            .service(
                web::resource("/likes/users/{user_id}/movies/{movie_id}")
                    .route(web::post().to(likes::rate)),
            )
            .service(
                web::resource("/favorites/users/{user_id}/movies/{movie_id}")
                    .route(web::post().to(favorites::add))
                    .route(web::delete().to(favorites::remove)),
            )
            .service(
                web::resource("/follows/{followee_id}")
                    .route(web::post().to(follows::follow))
                    .route(web::delete().to(follows::unfollow)),
            )
            .service(
                web::resource("/favorites/users/{user_id}").route(web::get().to(favorites::list)),
            )
            .service(web::resource("/likes/users/{user_id}").route(web::get().to(likes::list)))
            .service(web::resource("/movies/top-rated").route(web::get().to(likes::top_rated)))
            .service(
                web::resource("/movies/{movie_id}/rating")
                    .route(web::get().to(likes::movie_rating)),
            )
            .service(
                web::resource("/users/{user_id}/followers")
                    .route(web::get().to(follows::followers)),
            )
            .service(
                web::resource("/users/{user_id}/following")
                    .route(web::get().to(follows::following)),
            )
            .service(web::resource("/posts").route(web::post().to(posts::create)))
            .service(web::resource("/posts/{post_id}/fanout").route(web::get().to(feed::fanout)))
            .service(web::resource("/feed").route(web::get().to(feed::feed)))
            .service(web::resource("/images/resize").route(web::post().to(images::resize)))
            .service(web::resource("/images/result/{task_id}").route(web::get().to(images::result)))
            .service(web::resource("/status/{task_id}").route(web::get().to(images::status)))
            .service(web::resource("/videos").route(web::get().to(videos::list)))
            .service(web::resource("/videos/fetch").route(web::post().to(videos::fetch)))
            .service(web::resource("/videos/search").route(web::get().to(videos::search)))
            .service(
                web::resource("/videos/trending-keywords")
                    .route(web::get().to(videos::trending_keywords)),
            )
            .service(
                web::resource("/videos/views-prediction")
                    .route(web::post().to(predictions::request)),
            )
            .service(
                web::resource("/videos/views-prediction/{request_id}")
                    .route(web::get().to(predictions::poll)),
            )
            // After every fixed /videos/... path: a video id never shadows them.
            .service(web::resource("/videos/{video_id}").route(web::get().to(videos::details)))
            .service(web::resource("/channels").route(web::get().to(channels::search)))
            .service(
                web::resource("/channels/{channel_id}").route(web::get().to(channels::details)),
            )
            .service(
                web::resource("/channels/{channel_id}/stats").route(web::get().to(channels::stats)),
            )
            .service(web::resource("/keywords/top").route(web::get().to(keywords::top)))
            .service(web::resource("/keywords/{keyword}").route(web::get().to(keywords::trend)))
            .service(web::resource("/events").route(web::post().to(events::user_event)))
            .service(web::resource("/events/batch").route(web::post().to(batch::batch)))
            .service(
                web::resource("/anonymous-events").route(web::post().to(events::anonymous_event)),
            )
            .service(
                web::resource("/analytics/users/{user_id}/movies/{movie_id}/watch-time")
                    .route(web::get().to(analytics::watch_time)),
            )
            .service(
                web::resource("/analytics/users/{user_id}/continue-watching")
                    .route(web::get().to(analytics::continue_watching)),
            )
            .service(
                web::resource("/analytics/movies/top").route(web::get().to(analytics::top_movies)),
            )
            .service(
                web::resource("/analytics/events/hourly")
                    .route(web::get().to(analytics::events_hourly)),
            ),
    )
    .route("/health/ready", web::get().to(health::ready))
    .route("/health/live", web::get().to(health::ping));
}

/// The media types a write may carry: JSON everywhere, NDJSON too for batches, a multipart form
/// for image uploads. Anything else is `415` before the body is read, so a web page cannot make
/// visitors' browsers post events (a cross-site form or `text/plain` post carries another type).
/// A write without a body and without a type (`POST /follows/{id}`) passes.
pub(crate) fn accepted_media(path: &str) -> &'static [&'static str] {
    if path.ends_with("/images/resize") {
        &["multipart/form-data"]
    } else if path.ends_with("/events/batch") {
        &["application/json", "application/x-ndjson"]
    } else {
        &["application/json"]
    }
}

async fn media_type(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::{header, Method};
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if writes {
        let allowed = accepted_media(req.path());
        let given = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        let ok = match &given {
            Some(t) => allowed.contains(&t.as_str()),
            None => empty,
        };
        if !ok {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send Content-Type: {} (got {})",
                allowed.join(" or "),
                given.as_deref().unwrap_or("none")
            ))
            .into());
        }
    }
    next.call(req).await
}

/// Reads a JSON body into `T` (an empty body reads as `{}` when `T` allows it).
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
    limits: &crate::state::Limits,
) -> Result<T, ApiError> {
    let body = read_body(payload, limits.max_body_bytes, limits.body_timeout).await?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))
}

/// The whole body, at most `limit` bytes (`413` past it, nothing more is read) and within
/// `timeout` (`API_BODY_TIMEOUT`; `408` for a client that sends too slowly or stalls).
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<web::BytesMut, ApiError> {
    use futures::StreamExt;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadJson(e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| body_timeout(timeout))?
}

pub(crate) fn body_timeout(timeout: std::time::Duration) -> ApiError {
    ApiError::BodyTimeout(format!(
        "the body must arrive within {} s (API_BODY_TIMEOUT)",
        timeout.as_secs_f64()
    ))
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

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// 1-based page; `page × size` at most 10,000 (`LIST_MAX_DEPTH`), else 400.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

const MAX_PAGE: i64 = 1_000_000;

/// The deepest item a page-numbered list serves (`page × size`, `LIST_MAX_DEPTH`): a request past it
/// would make the store read and skip everything before it (`?page=10000&limit=100` is a million
/// rows). Beyond it: 400, naming the limit.
pub const LIST_MAX_DEPTH: u64 = 10_000;

/// `Ok` when `page × size` stays within `max_depth`.
/// A YouTube id (video `dQw4w9WgXcQ`, channel `UC` + 22): 1 to 64 letters, digits, `-` or `_`.
pub(crate) fn youtube_id(field: &'static str, raw: String) -> Result<String, DomainError> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(raw)
        .ok_or_else(|| DomainError::new(field, "must be 1 to 64 letters, digits, '-' or '_'"))
}

pub(crate) fn within_depth(page: u64, size: u64, max_depth: u64) -> Result<(), ApiError> {
    if page.saturating_mul(size) > max_depth {
        return Err(DomainError::new(
            "page",
            format!("page × size must be at most {max_depth} (the list's first {max_depth} items)"),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn page(q: &PageQuery, max_depth: u64) -> Result<(u64, u64), ApiError> {
    let page = q.page.unwrap_or(1);
    let size = q.size.unwrap_or(20);
    let p = if (1..=MAX_PAGE).contains(&page) {
        Ok(page)
    } else {
        Err(DomainError::new("page", "must be 1 to 1000000"))
    };
    let s = if (1..=100).contains(&size) {
        Ok(size)
    } else {
        Err(DomainError::new("size", "must be 1 to 100"))
    };
    all_valid([p.as_ref().err(), s.as_ref().err()])?;
    let (page, size) = (p? as u64, s? as u64);
    within_depth(page, size, max_depth)?;
    Ok((page, size))
}

/// A time as clients send it: RFC 3339 text or epoch milliseconds.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TimeInput {
    /// RFC 3339, e.g. `2026-11-23T07:18:57.123Z`.
    Text(String),
    /// Milliseconds since the epoch.
    Millis(i64),
}

/// The client's event id (kept, so a resend is not a second event) or a new one.
pub(crate) fn event_id(raw: Option<&str>) -> Result<EventId, DomainError> {
    raw.map_or_else(|| Ok(EventId::new_random()), EventId::parse)
}

/// The client's time of the event, or now.
pub(crate) fn occurred_at(
    field: &'static str,
    raw: Option<&TimeInput>,
) -> Result<Timestamp, DomainError> {
    match raw {
        None => Ok(Timestamp::now()),
        Some(TimeInput::Text(t)) => Timestamp::parse_rfc3339(field, t),
        Some(TimeInput::Millis(ms)) => Timestamp::from_millis(field, *ms),
    }
}

/// The 202 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    #[schema(format = Uuid)]
    pub event_id: String,
}

/// Refuses an event whose time is outside the time bounds (too old, or ahead of our clock), naming
/// the field the client sent it in.
pub(crate) fn within_time_bounds<E: Event>(state: &AppState, event: &E) -> Result<(), ApiError> {
    let field = if E::TOPIC == schemas::topics::USER_EVENTS {
        "timestamp"
    } else {
        "occurred_at"
    };
    state
        .limits
        .time_bounds
        .check(field, event.occurred_at(), Timestamp::now())
        .map_err(ApiError::from)
}

/// Produces `event` with the request's trace headers; 202 once Kafka acknowledged.
pub(crate) async fn produce<E: Event>(
    state: &AppState,
    req: &HttpRequest,
    event: E,
) -> Result<HttpResponse, ApiError> {
    produce_answering(state, req, event, ()).await
}

/// The 202 of a write: `status`, `event_id`, and the fields of `more` beside them.
#[derive(serde::Serialize)]
struct AcceptedWith<A: serde::Serialize> {
    status: &'static str,
    event_id: String,
    #[serde(flatten)]
    more: A,
}

/// The same, answering the fields of `more` too (a struct, or `()` for none).
pub(crate) async fn produce_answering<E: Event, A: serde::Serialize>(
    state: &AppState,
    req: &HttpRequest,
    event: E,
    more: A,
) -> Result<HttpResponse, ApiError> {
    within_time_bounds(state, &event)?;
    send(state, req, &event).await?;
    Ok(HttpResponse::Accepted().json(AcceptedWith {
        status: "accepted",
        event_id: event.event_id().to_string(),
        more,
    }))
}

/// Sends an event (its time bounds already checked) with the request's trace headers; returns once
/// Kafka acknowledged it.
pub(crate) async fn send<E: Event>(
    state: &AppState,
    req: &HttpRequest,
    event: &E,
) -> Result<(), ApiError> {
    let trace = TraceContext::of(req);
    state.producer.send(event, &trace.kafka_headers()).await?;
    Ok(())
}

/// A request body that validates into one event written for a user (checked against the caller).
pub(crate) trait UserWrite: serde::de::DeserializeOwned {
    type Event: Event;
    fn into_event(self) -> Result<Self::Event, ApiError>;
    /// The user the event belongs to, if any (anonymous events have none).
    fn user(event: &Self::Event) -> Option<&schemas::domain::UserId>;
    /// A check that needs the API's settings (e.g. which event types it takes).
    fn admit(_event: &Self::Event, _state: &AppState) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The whole of a plain event endpoint: read and validate the body, check the caller may write for
/// the event's user, produce, answer 202.
pub(crate) async fn write_for_user<R: UserWrite>(
    req: HttpRequest,
    caller: crate::auth::Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<R>(body, &state.limits).await?.into_event()?;
    R::admit(&event, &state)?;
    if let Some(user) = R::user(&event) {
        caller.may_act_for(user)?;
    }
    produce(&state, &req, event).await
}

/// Responses of every event write, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum WriteResponses {
    /// Kafka acknowledged the event.
    #[response(status = 202)]
    Accepted(#[to_schema] Accepted),
    /// The body is not valid JSON for this endpoint, or a field failed validation.
    #[response(status = 400)]
    BadRequest(#[to_schema] crate::error::ErrorBody),
    /// No or invalid credentials.
    #[response(status = 401)]
    Unauthorized(crate::error::ErrorBody),
    /// A user writing another user's event.
    #[response(status = 403)]
    Forbidden(crate::error::ErrorBody),
    /// The body did not arrive within `API_BODY_TIMEOUT`.
    #[response(status = 408)]
    BodyTimeout(crate::error::ErrorBody),
    /// The body is over the size limit.
    #[response(status = 413)]
    TooLarge(crate::error::ErrorBody),
    /// The body's Content-Type is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(crate::error::ErrorBody),
    /// The caller's rate limit is exceeded; see Retry-After.
    #[response(status = 429)]
    TooManyRequests(crate::error::ErrorBody),
    /// Kafka could not take the write in time; retry after Retry-After seconds.
    #[response(status = 503)]
    Unavailable(crate::error::ErrorBody),
}
