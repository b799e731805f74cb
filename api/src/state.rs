//! What every handler shares.

use producers::EventProducer;

use crate::auth::AuthConfig;

/// Request size limits (`API_MAX_BODY_BYTES`, `BATCH_MAX_EVENTS`, `BATCH_MAX_BODY_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// `API_BODY_TIMEOUT`: a request's whole body (JSON or multipart) must arrive within this.
    pub body_timeout: std::time::Duration,
    pub batch_max_events: usize,
    pub batch_max_body_bytes: usize,
    /// `VIDEO_SEARCH_WALK_BUDGET`: most candidates a video search checks; past it, it reads the
    /// texts newest first instead.
    pub video_search_walk_budget: u64,
    /// `EVENT_MAX_AGE` / `EVENT_MAX_CLOCK_SKEW`: how far an event's time may be from the API's clock.
    pub time_bounds: schemas::domain::TimeBounds,
    /// `LIST_MAX_DEPTH`: page-numbered lists serve at most their first this many items.
    pub list_max_depth: u64,
    /// `VIDEO_FETCH_PER_HOUR`: fetch requests per caller per hour (each spends 100+ units of the
    /// shared YouTube quota); `0` turns the bound off.
    pub video_fetch_per_hour: u64,
    /// `VIDEO_FETCH_COALESCE`: the same query asked again within this is not fetched again.
    pub video_fetch_coalesce: std::time::Duration,
    /// `PREDICTION_WAIT_MS`: how long a views prediction request waits for its reply before it
    /// answers 202 with where to poll.
    pub prediction_wait: std::time::Duration,
}

pub struct AppState {
    pub producer: EventProducer,
    /// The analytics database (`CLICKHOUSE_URL`, `CLICKHOUSE_DATABASE`, `CLICKHOUSE_USER`,
    /// `CLICKHOUSE_PASSWORD`).
    pub clickhouse: clickhouse::Client,
    /// The document store the Mongo sink writes (`MONGO_URL`, `MONGO_DATABASE`).
    pub mongo: mongodb::Database,
    /// The home feeds (`REDIS_URL`, `FEED_KEY_PREFIX`, `FEED_MAX_ITEMS`, `CELEBRITY_FOLLOWERS`).
    pub feeds: stores::feeds::Feeds,
    pub images: crate::routes::images::Images,
    pub auth: AuthConfig,
    /// `AUTH_FAILURES_PER_MINUTE`: failed authentications per client address.
    pub auth_failures: crate::ratelimit::AuthFailures,
    pub limits: Limits,
    /// `USER_EVENT_TYPES`: which generic event types are taken.
    pub user_event_types: crate::routes::events::EventTypes,
    /// Per-caller counts and coalescing for `POST /api/v1/videos/fetch` (Redis).
    pub guard: stores::guard::RequestGuard,
    /// Views prediction replies (Kafka, kept in Redis for polls).
    pub replies: crate::predictions::Replies,
}
