//! The shared consumer runtime. A sink implements [`Sink`]; [`run`] does everything else:
//!
//! * consume the sink's topic in a consumer group, decode each record through the registry (a
//!   registry outage is waited out: the record is fine, the registry is not);
//! * refuse records outside the time bounds ([`TimeBounds`], against when each was produced);
//! * batch by rows, bytes and time;
//! * dead-letter the batch's undecodable and out-of-bounds records *before* writing its rows, so
//!   a crash never leaves written rows after a record that was not dead-lettered;
//! * write the batch; a transient failure is retried with jittered backoff while the consumer keeps
//!   polling with its partitions paused (the group is never lost to `max.poll.interval.ms`); a
//!   permanent one is isolated by splitting the batch until the refused records are found, each
//!   dead-lettered with the sink's reason before anything after it is written;
//! * commit, per partition, the offset after the last record accounted for (written, dead-lettered,
//!   or left out by the sink as already written) — never past a record that is none of these;
//! * on a rebalance, drop the pending records of revoked partitions (their new owner re-reads them
//!   from the committed offset, and the sink, which is idempotent, leaves out what it already has);
//!   on shutdown, write the pending batch and commit; a final batch that
//!   cannot be written makes [`run`] return an error (and the binary exit non-zero).

mod consumer;
pub mod dead_letter;
mod flush;
mod metrics;
mod pending;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::shutdown::Shutdown;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use schemas::domain::{TimeBounds, Timestamp};
use schemas::{Codec, CodecError, Event};

use crate::runtime::consumer::{build_consumer, RebalanceLog, RuntimeConsumer};
use crate::runtime::dead_letter::{header, DeadLetters};
use crate::runtime::metrics::SinkMetrics;
use crate::runtime::pending::{DeadLetter, Pending};

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

/// Why a wait ended early: shutdown (for a batch being written: the shutdown flush timeout).
struct Stopped;

/// Runs `sink` until `shutdown` fires; then writes what is pending, commits and returns. An error
/// if the pending batch could not be written by `final_flush_timeout`.
pub async fn run<S: Sink>(
    config: RuntimeConfig,
    codec: Codec,
    sink: S,
    shutdown: Shutdown,
) -> Result<Arc<Stats>, RuntimeError> {
    let topic = config
        .topic
        .clone()
        .unwrap_or_else(|| S::Event::TOPIC.to_string());
    let metrics = SinkMetrics::new(sink.name());
    let rebalances = RebalanceLog::new(metrics.clone());
    let consumer = build_consumer(&config, rebalances.clone())?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| RuntimeError::Kafka(e.to_string()))?;
    let dead_letters = DeadLetters::new(&config, sink.name())?;
    tracing::info!(sink = sink.name(), %topic, group = %config.group_id, "consumer started");
    let mut runner = Runner {
        stats: Arc::new(Stats::default()),
        config,
        codec,
        sink,
        topic,
        consumer,
        rebalances,
        dead_letters,
        metrics,
        shutdown,
        deadline: None,
        early: VecDeque::new(),
        paused: false,
    };
    runner.run().await
}

struct Runner<S: Sink> {
    config: RuntimeConfig,
    codec: Codec,
    sink: S,
    topic: String,
    consumer: RuntimeConsumer,
    rebalances: RebalanceLog,
    dead_letters: DeadLetters,
    stats: Arc<Stats>,
    metrics: SinkMetrics,
    shutdown: Shutdown,
    /// Once shutdown fired: when the batch being written must be done.
    deadline: Option<Instant>,
    /// Records received while the partitions were paused, to be handled before polling again.
    early: VecDeque<OwnedMessage>,
    paused: bool,
}

impl<S: Sink> Runner<S> {
    async fn run(&mut self) -> Result<Arc<Stats>, RuntimeError> {
        let mut pending = Pending::<S::Event>::new();
        loop {
            let next = match self.early.pop_front() {
                Some(msg) => Some(msg),
                None => self.poll(&pending).await,
            };
            if self.shutdown.is_triggered() {
                // A record taken but not accounted for is simply not committed.
                break;
            }
            self.forget_revoked(&mut pending);
            if let Some(msg) = next {
                if self.accept(msg, &mut pending).await.is_err() {
                    break;
                }
            }
            self.forget_revoked(&mut pending);
            let full = pending.events.len() >= self.config.max_rows
                || pending.bytes >= self.config.max_bytes;
            let due = pending
                .started
                .is_some_and(|s| s.elapsed() >= self.config.max_wait);
            if !pending.is_empty() && (full || due) {
                self.flush_or_stop(std::mem::replace(&mut pending, Pending::new()))
                    .await?;
            }
        }
        if !pending.is_empty() {
            let timeout = self.config.final_flush_timeout;
            self.deadline
                .get_or_insert_with(|| Instant::now() + timeout);
            self.flush_or_stop(pending).await?;
        }
        tracing::info!(sink = self.sink.name(), "consumer stopped");
        Ok(self.stats.clone())
    }

    /// Flushes `batch`; if shutdown's flush timeout passes first, says so and stops the runtime.
    async fn flush_or_stop(&mut self, batch: Pending<S::Event>) -> Result<(), RuntimeError> {
        let rows = batch.events.len() + batch.dead.len();
        if self.flush(batch).await.is_err() {
            tracing::error!(
                sink = self.sink.name(),
                rows,
                "shut down while a batch could not be written; nothing of it committed"
            );
            return Err(RuntimeError::Unflushed(rows));
        }
        Ok(())
    }

    /// The next record, or `None` when the batch is due or shutdown fired.
    async fn poll(&mut self, pending: &Pending<S::Event>) -> Option<OwnedMessage> {
        // A wait for the registry may have paused the partitions.
        self.resume();
        let deadline = pending
            .started
            .map(|s| s + self.config.max_wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.wait() => return None,
                _ = tokio::time::sleep_until(deadline.into()) => return None,
                msg = self.consumer.recv() => match msg {
                    Ok(msg) => return Some(msg.detach()),
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// Decodes one record into the pending batch, or into its dead letters. The offset is noted
    /// only once the record is one or the other.
    async fn accept(
        &mut self,
        msg: OwnedMessage,
        pending: &mut Pending<S::Event>,
    ) -> Result<(), Stopped> {
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        self.metrics.consumed.inc();
        let payload = msg.payload().unwrap_or_default();
        let mut backoff = Backoff::default();
        let decoded = loop {
            match self.codec.decode::<S::Event>(payload).await {
                Err(CodecError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "schema registry unavailable; retrying");
                    self.wait(backoff.next_delay(), false).await?;
                }
                other => break other,
            }
        };
        let produced = msg
            .timestamp()
            .to_millis()
            .and_then(|ms| Timestamp::from_millis("timestamp", ms).ok())
            .unwrap_or_else(Timestamp::now);
        let checked = decoded.map_err(|e| e.to_string()).and_then(|event| {
            self.config
                .time_bounds
                .check("occurred_at", event.occurred_at(), produced)
                .map(|()| event)
                .map_err(|e| e.to_string())
        });
        pending.note(msg.partition(), msg.offset(), payload.len());
        match checked {
            Ok(event) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let trace = header(&msg, "traceparent");
                    tracing::debug!(event_id = %event.event_id(), traceparent = ?trace, "consumed");
                }
                pending.events.push(Record {
                    event,
                    partition: msg.partition(),
                    offset: msg.offset(),
                });
                pending.sources.push(msg);
            }
            Err(error) => pending.dead.push(DeadLetter { source: msg, error }),
        }
        Ok(())
    }

    /// Drops the pending records of partitions the consumer no longer owns.
    fn forget_revoked(&mut self, pending: &mut Pending<S::Event>) {
        let revoked = self.rebalances.take_revoked();
        if revoked.is_empty() {
            return;
        }
        pending.drop_partitions(&revoked);
        self.early.retain(|m| !revoked.contains(&m.partition()));
    }

    /// Waits `delay` before a retry while keeping the group: the assigned partitions are paused
    /// and the consumer keeps polling (a record that was already on its way is kept for later).
    /// `Err` once shutdown fired — at once for a record being decoded (it is read again on the next
    /// start), after `final_flush_timeout` for a batch being written (`flushing`).
    async fn wait(&mut self, delay: Duration, flushing: bool) -> Result<(), Stopped> {
        if !self.paused {
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.pause(&assigned) {
                    tracing::warn!(error = %e, "pausing partitions for a retry");
                }
            }
            self.paused = true;
        }
        let until = Instant::now() + delay;
        loop {
            if self.shutdown.is_triggered() {
                if !flushing {
                    return Err(Stopped);
                }
                let timeout = self.config.final_flush_timeout;
                let deadline = *self
                    .deadline
                    .get_or_insert_with(|| Instant::now() + timeout);
                if Instant::now() >= deadline {
                    return Err(Stopped);
                }
            }
            let wake = self.deadline.map_or(until, |d| d.min(until));
            tokio::select! {
                biased;
                _ = self.shutdown.wait(), if !self.shutdown.is_triggered() => {}
                _ = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= until {
                        return Ok(());
                    }
                }
                msg = self.consumer.recv() => match msg {
                    Ok(msg) => self.early.push_back(msg.detach()),
                    Err(e) => tracing::debug!(error = %e, "kafka consumer error while paused"),
                },
            }
        }
    }

    /// Resumes the partitions paused by [`Runner::wait`].
    fn resume(&mut self) {
        if std::mem::take(&mut self.paused) {
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.resume(&assigned) {
                    tracing::warn!(error = %e, "resuming partitions after a retry");
                }
            }
        }
    }
}
