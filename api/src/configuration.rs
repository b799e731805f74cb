//! The API's settings, from environment variables with local defaults (README table).

use common::config::{env_or, env_parse, ConfigError, StackConfig};
use producers::ProducerConfig;

use crate::auth::{AuthConfig, AuthConfigError};
use crate::ratelimit::RateLimit;
use crate::state::Limits;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `API_HOST`.
    pub host: String,
    /// `API_PORT`; 0 picks a free port (tests).
    pub port: u16,
    /// `API_WORKERS`: actix worker threads (default: one per core).
    pub workers: usize,
    pub limits: Limits,
    /// `USER_EVENT_TYPES`: generic event types taken beyond the known ones (`a,b`, or `*` for any).
    pub user_event_types: crate::routes::events::EventTypes,
    pub rate_limit: RateLimit,
    pub auth: AuthConfig,
    pub stack: StackConfig,
    pub producer: ProducerConfig,
    pub feeds: stores::feeds::FeedConfig,
    /// `IMAGE_MAX_UPLOAD_BYTES` (default 20 MiB).
    pub image_max_upload_bytes: usize,
    pub image_limits: stores::images::ImageLimits,
    /// `API_METRICS`, `METRICS_TOKEN`.
    pub metrics: crate::metrics::MetricsAccess,
    /// `CORS_ALLOWED_ORIGINS` (default none).
    pub cors: crate::cors::CorsOrigins,
    /// `CLICKHOUSE_VALIDATION` (default off): check read rows' types against ours.
    pub clickhouse_validation: bool,
    /// `PREDICTION_RESULT_TTL_SECS`: how long a views prediction's reply can be polled.
    pub prediction_ttl: std::time::Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        let stack = StackConfig::from_env();
        Ok(Self {
            host: env_or("API_HOST", "127.0.0.1"),
            port: env_parse("API_PORT", 8000)?,
            workers: env_parse(
                "API_WORKERS",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            limits: Limits {
                max_body_bytes: env_parse("API_MAX_BODY_BYTES", 64 * 1024)?,
                body_timeout: common::config::env_duration(
                    "API_BODY_TIMEOUT",
                    std::time::Duration::from_secs(30),
                )?,
                batch_max_events: env_parse("BATCH_MAX_EVENTS", 1000)?,
                batch_max_body_bytes: env_parse("BATCH_MAX_BODY_BYTES", 4 * 1024 * 1024)?,
                video_search_walk_budget: env_parse(
                    "VIDEO_SEARCH_WALK_BUDGET",
                    crate::routes::video_search::WALK_BUDGET,
                )?,
                time_bounds: common::config::event_time_bounds()?.into(),
                list_max_depth: env_parse("LIST_MAX_DEPTH", crate::routes::LIST_MAX_DEPTH)?,
                video_fetch_per_hour: env_parse("VIDEO_FETCH_PER_HOUR", 10)?,
                prediction_wait: std::time::Duration::from_millis(env_parse(
                    "PREDICTION_WAIT_MS",
                    2_000,
                )?),
                video_fetch_coalesce: common::config::env_duration(
                    "VIDEO_FETCH_COALESCE",
                    std::time::Duration::from_secs(300),
                )?,
            },
            user_event_types: {
                let raw = env_or("USER_EVENT_TYPES", "");
                crate::routes::events::EventTypes::parse(&raw).map_err(|reason| ConfigError {
                    name: "USER_EVENT_TYPES".into(),
                    value: raw.clone(),
                    reason,
                })?
            },
            rate_limit: RateLimit {
                per_second: env_parse("RATE_LIMIT_PER_SECOND", 1000)?,
                burst: env_parse("RATE_LIMIT_BURST", 2000)?,
                auth_failures_per_minute: env_parse("AUTH_FAILURES_PER_MINUTE", 30)?,
                trust_forwarded: match env_or("TRUST_FORWARDED_FOR", "off").as_str() {
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(ConfigError {
                            name: "TRUST_FORWARDED_FOR".into(),
                            value: other.into(),
                            reason: "must be on or off".into(),
                        }
                        .into())
                    }
                },
            },
            auth: AuthConfig::from_env()?,
            producer: ProducerConfig::from_env(&stack.kafka_brokers)?,
            feeds: stores::feeds::FeedConfig::from_env()?,
            image_max_upload_bytes: env_parse("IMAGE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)?,
            image_limits: stores::images::ImageLimits::from_env()?,
            metrics: crate::metrics::MetricsAccess::from_env()?,
            cors: crate::cors::CorsOrigins::from_env()?,
            clickhouse_validation: common::config::clickhouse_validation()?,
            prediction_ttl: std::time::Duration::from_secs(env_parse(
                "PREDICTION_RESULT_TTL_SECS",
                3_600,
            )?),
            stack,
        })
    }
}
