//! What the runtime and a sink say to each other, the runtime's settings and its counters.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use schemas::domain::TimeBounds;
use schemas::Event;

/// What a sink says about a batch it could not fully write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The database or the network is in a state that passes (down, overloaded, timed out):
    /// nothing is known to be written; the same batch is retried after a backoff (sinks are
    /// idempotent, so a batch that was in fact written is harmless to write again).
    #[error("transient: {0}")]
    Transient(String),
    /// The data itself is refused and would be again (a type or range error, a constraint): the
    /// sink cannot tell which record, so the runtime splits the batch until it finds out; nothing
    /// of the batch was written.
    #[error("permanent: {0}")]
    Permanent(String),
    /// These items (by index in the batch) can never be written, with the database's reason; the
    /// rest were written.
    #[error("{} item(s) rejected", .0.len())]
    Rejected(Vec<(usize, String)>),
}

/// What a sink did with a batch it wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Records left out because the sink already had them: a client's resend, or a record read
    /// again after a crash or a rebalance.
    pub duplicates: usize,
}

impl Written {
    /// `Ok(self)`, or `Rejected` with `refused` (index in the batch, reason) when there are any:
    /// the end of a sink's write that handles its records one by one.
    pub fn unless_refused(self, refused: Vec<(usize, String)>) -> Result<Written, SinkError> {
        if refused.is_empty() {
            Ok(self)
        } else {
            Err(SinkError::Rejected(refused))
        }
    }
}

/// A decoded event and where it was read.
#[derive(Debug, Clone)]
pub struct Record<E> {
    pub event: E,
    pub partition: i32,
    pub offset: i64,
}

/// A destination for one event type.
pub trait Sink: Send + Sync + 'static {
    type Event: Event;
    /// A short name for logs, metrics and the dead-letter headers.
    fn name(&self) -> &'static str;
    /// Writes a batch; all of it, or says what to do about what failed. Writing a record the
    /// sink already has must change nothing (a batch is written again after a crash between the
    /// write and the commit, and clients resend).
    fn write(
        &self,
        batch: &[Record<Self::Event>],
    ) -> impl Future<Output = Result<Written, SinkError>> + Send;
    /// Runs while the batch before `batch` is still being written, before `batch`'s own `write`
    /// (the ClickHouse sink looks its resends up meanwhile). `write` must be correct whether or
    /// not this ran, finished or failed.
    fn prepare(&self, batch: &[Record<Self::Event>]) -> impl Future<Output = ()> + Send {
        let _ = batch;
        async {}
    }
}

/// Consumer and batching settings; see the README's table.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub brokers: String,
    pub group_id: String,
    /// The topic to read; defaults to the sink's event topic.
    pub topic: Option<String>,
    pub dead_letter_topic: String,
    /// The cluster the dead-letter topic is on (`DEAD_LETTER_BROKERS`, default `KAFKA_BROKERS`).
    pub dead_letter_brokers: String,
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    pub session_timeout_ms: u32,
    /// How often librdkafka reports statistics (the lag metric); zero turns them off.
    pub stats_interval: Duration,
    /// Events outside these are dead-lettered (`EVENT_MAX_AGE`, `EVENT_MAX_CLOCK_SKEW`).
    pub time_bounds: TimeBounds,
    /// How long the batch pending at shutdown may take to write (`SHUTDOWN_FLUSH_TIMEOUT`).
    pub final_flush_timeout: Duration,
}

impl RuntimeConfig {
    pub fn from_env(default_group: &str) -> Result<Self, common::config::ConfigError> {
        use common::config::{env_duration, env_or, env_parse};
        let brokers = common::config::StackConfig::from_env().kafka_brokers;
        Ok(Self {
            dead_letter_brokers: env_or("DEAD_LETTER_BROKERS", &brokers),
            brokers,
            group_id: env_or("CONSUMER_GROUP", default_group),
            topic: std::env::var("CONSUMER_TOPIC")
                .ok()
                .filter(|t| !t.is_empty()),
            dead_letter_topic: env_or("DEAD_LETTER_TOPIC", schemas::topics::DEAD_LETTER),
            max_rows: env_parse("BATCH_MAX_ROWS", 10_000)?,
            max_bytes: env_parse("BATCH_MAX_BYTES", 8 * 1024 * 1024)?,
            max_wait: Duration::from_millis(env_parse("BATCH_MAX_WAIT_MS", 200)?),
            session_timeout_ms: env_parse("KAFKA_SESSION_TIMEOUT_MS", 6000)?,
            stats_interval: Duration::from_millis(env_parse("CONSUMER_STATS_INTERVAL_MS", 5000)?),
            time_bounds: common::config::event_time_bounds()?.into(),
            final_flush_timeout: env_duration("SHUTDOWN_FLUSH_TIMEOUT", Duration::from_secs(30))?,
        })
    }

    /// Test and bench settings: the given topics and group, small batches, default bounds.
    pub fn local(brokers: &str, group_id: &str, topic: &str, dead_letter_topic: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            group_id: group_id.to_string(),
            topic: Some(topic.to_string()),
            dead_letter_topic: dead_letter_topic.to_string(),
            dead_letter_brokers: brokers.to_string(),
            max_rows: 100,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(100),
            session_timeout_ms: 6000,
            stats_interval: Duration::from_millis(500),
            time_bounds: TimeBounds::default(),
            final_flush_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of one running consumer (the same figures go to the Prometheus metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub consumed: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Records the sink left out because it already had them (see [`Written`]).
    pub duplicates: AtomicU64,
    pub batches: AtomicU64,
    /// When the first record was taken (benches time the runtime from here)...
    pub first_consumed: OnceLock<Instant>,
    /// ... to the last commit of offsets.
    pub last_commit: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(String),
    /// Shutdown came while a batch could not be written (nothing of it was committed; it is read
    /// again on the next start).
    #[error("stopped with {0} record(s) not written; they are read again on the next start")]
    Unflushed(usize),
}
