//! The API's settings, from environment variables with local defaults (README table).

use common::config::{env_or, env_parse, ConfigError, StackConfig};
use producers::ProducerConfig;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `API_HOST`.
    pub host: String,
    /// `API_PORT`; 0 picks a free port (tests).
    pub port: u16,
    /// `API_WORKERS`: actix worker threads (default: one per core).
    pub workers: usize,
    /// `API_MAX_BODY_BYTES`: larger bodies get 413.
    pub max_body_bytes: usize,
    pub stack: StackConfig,
    pub producer: ProducerConfig,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stack = StackConfig::from_env();
        Ok(Self {
            host: env_or("API_HOST", "127.0.0.1"),
            port: env_parse("API_PORT", 8000)?,
            workers: env_parse(
                "API_WORKERS",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            max_body_bytes: env_parse("API_MAX_BODY_BYTES", 1024 * 1024)?,
            producer: ProducerConfig::from_env(&stack.kafka_brokers)?,
            stack,
        })
    }
}
