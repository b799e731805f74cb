//! The shared consumer runtime. A sink implements [`Sink`]; [`run`] does everything else:
//!
//! * consume the sink's topic in a consumer group, decode each record through the registry;
//! * batch by rows, bytes and time;
//! * write the batch, retrying transient failures with backoff (an offset never moves on a
//!   retriable error);
//! * send undecodable records and records the sink rejects to the dead-letter topic, with the cause
//!   in headers, and go on;
//! * commit, per partition, the offset after the last record of the batch — only once the batch is
//!   written and its dead letters acknowledged;
//! * on a rebalance, drop the pending records of revoked partitions (their new owner re-reads them
//!   from the committed offset), and on shutdown write the pending batch, commit and return.

mod consumer;
pub mod dead_letter;
mod metrics;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use schemas::{Codec, CodecError, Event};
use tracing::Instrument;

use crate::runtime::consumer::{build_consumer, RebalanceLog};
use crate::runtime::dead_letter::{header, DeadLetter, DeadLetters};
use crate::runtime::metrics::SinkMetrics;

/// What a sink says about a batch it could not fully write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Nothing is known to be written; the whole batch is retried (sinks are idempotent, so a batch
    /// that was in fact written is harmless to write again).
    #[error("retriable: {0}")]
    Retriable(String),
    /// These items (by index in the batch) can never be written; the rest were written.
    #[error("{} item(s) rejected", .0.len())]
    Rejected(Vec<(usize, String)>),
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
    /// Writes a batch; all of it, or says what to do about what failed.
    fn write(
        &self,
        batch: &[Record<Self::Event>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// The highest offset of `partition` already written, for sinks that store the offset with
    /// each row: the runtime skips records up to it when it (re)gains the partition, so a batch
    /// written just before a crash is not written again. `None`: nothing written, or not tracked.
    fn written_through(
        &self,
        partition: i32,
    ) -> impl Future<Output = Result<Option<i64>, SinkError>> + Send {
        let _ = partition;
        async { Ok(None) }
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
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    pub session_timeout_ms: u32,
    /// How often librdkafka reports statistics (the lag metric); zero turns them off.
    pub stats_interval: Duration,
}

impl RuntimeConfig {
    pub fn from_env(default_group: &str) -> Result<Self, common::config::ConfigError> {
        use common::config::{env_or, env_parse};
        Ok(Self {
            brokers: common::config::StackConfig::from_env().kafka_brokers,
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
        })
    }
}

/// Counters of one running consumer (the same figures go to the Prometheus metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub consumed: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Records skipped because the sink had already written them (see `Sink::written_through`).
    pub skipped: AtomicU64,
    pub batches: AtomicU64,
}

struct Pending<E> {
    events: Vec<Record<E>>,
    dead: Vec<DeadLetter>,
    bytes: usize,
    /// The next offset to commit per partition: after the last record seen in this batch.
    next_offsets: HashMap<i32, i64>,
    started: Option<Instant>,
}

impl<E> Pending<E> {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            dead: Vec::new(),
            bytes: 0,
            next_offsets: HashMap::new(),
            started: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }

    fn note(&mut self, partition: i32, offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += bytes;
        self.next_offsets.insert(partition, offset + 1);
    }

    /// Forgets everything from partitions this consumer no longer owns.
    fn drop_partitions(&mut self, revoked: &[i32]) {
        if revoked.is_empty() {
            return;
        }
        self.events.retain(|r| !revoked.contains(&r.partition));
        self.dead.retain(|d| !revoked.contains(&d.partition));
        self.next_offsets.retain(|p, _| !revoked.contains(p));
        if self.is_empty() {
            self.started = None;
        }
    }
}

/// Runs `sink` until `shutdown` resolves; then writes what is pending, commits and returns.
pub async fn run<S: Sink>(
    config: RuntimeConfig,
    codec: Codec,
    sink: S,
    shutdown: impl Future<Output = ()>,
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
    let stats = Arc::new(Stats::default());
    tracing::info!(sink = sink.name(), %topic, group = %config.group_id, "consumer started");

    let mut pending = Pending::<S::Event>::new();
    // Per partition, the offset the sink has already written through (see `Sink::written_through`).
    let mut marks: HashMap<i32, Option<i64>> = HashMap::new();
    tokio::pin!(shutdown);
    'run: loop {
        let deadline = pending
            .started
            .map(|s| s + config.max_wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(deadline.into()) => {}
            msg = consumer.recv() => match msg {
                Ok(msg) => {
                    forget_revoked(&rebalances, &mut pending, &mut marks);
                    stats.consumed.fetch_add(1, Ordering::Relaxed);
                    metrics.consumed.inc();
                    let partition = msg.partition();
                    if let Entry::Vacant(slot) = marks.entry(partition) {
                        match load_mark(&sink, &consumer, &topic, partition, &mut shutdown).await {
                            Some(mark) => slot.insert(mark),
                            None => break 'run,
                        };
                    }
                    if marks[&partition].is_some_and(|mark| msg.offset() <= mark) {
                        // Written before a crash or a rebalance: only its offset is left to commit.
                        pending.note(partition, msg.offset(), 0);
                        stats.skipped.fetch_add(1, Ordering::Relaxed);
                        metrics.skipped.inc();
                    } else {
                        accept(&codec, &msg, &mut pending, &mut shutdown).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        forget_revoked(&rebalances, &mut pending, &mut marks);
        let full = pending.events.len() >= config.max_rows || pending.bytes >= config.max_bytes;
        let due = pending
            .started
            .is_some_and(|s| s.elapsed() >= config.max_wait);
        if !pending.is_empty() && (full || due) {
            let batch = std::mem::replace(&mut pending, Pending::new());
            if !flush(
                &sink,
                &topic,
                &consumer,
                &dead_letters,
                (&stats, &metrics),
                batch,
                &mut shutdown,
            )
            .await
            {
                // Shut down while the batch could not be written: commit nothing of it.
                return Ok(stats);
            }
        }
    }
    if !pending.is_empty() {
        // Shutting down: write the pending batch (no retries beyond the first failure).
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            flush(
                &sink,
                &topic,
                &consumer,
                &dead_letters,
                (&stats, &metrics),
                pending,
                &mut never,
            ),
        )
        .await;
    }
    tracing::info!(sink = sink.name(), "consumer stopped");
    Ok(stats)
}

/// Drops what the consumer no longer owns: pending records and written-through marks.
fn forget_revoked<E>(
    rebalances: &RebalanceLog,
    pending: &mut Pending<E>,
    marks: &mut HashMap<i32, Option<i64>>,
) {
    let revoked = rebalances.take_revoked();
    pending.drop_partitions(&revoked);
    for p in revoked {
        marks.remove(&p);
    }
}

/// Asks the sink how far `partition` is written, retrying while the sink is unreachable.
/// `None` when shutdown came first.
async fn load_mark<S: Sink>(
    sink: &S,
    consumer: &consumer::RuntimeConsumer,
    topic: &str,
    partition: i32,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Option<i64>> {
    let mut backoff = Backoff::new();
    loop {
        match sink.written_through(partition).await {
            Ok(None) => return Some(None),
            Ok(Some(mark)) => {
                // A mark at or past the partition's end means the topic was created again (a local
                // memory broker restarted): its offsets start over and the mark says nothing.
                let high = consumer
                    .fetch_watermarks(topic, partition, Duration::from_secs(5))
                    .map(|(_, high)| high);
                if let Ok(high) = high {
                    if mark >= high {
                        tracing::warn!(
                            partition,
                            mark,
                            high,
                            "written-through mark is past the partition's end; ignoring it"
                        );
                        return Some(None);
                    }
                }
                tracing::info!(
                    partition,
                    mark,
                    "resuming after the sink's written-through mark"
                );
                return Some(Some(mark));
            }
            Err(e) => {
                tracing::warn!(partition, error = %e, "reading the sink's written-through mark; retrying");
                tokio::select! {
                    _ = &mut *shutdown => return None,
                    _ = backoff.wait() => {}
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Decodes one record into the pending batch, or into its dead letters. A registry outage is
/// waited out here (retry with backoff): the record is fine, the registry is not.
async fn accept<E: Event>(
    codec: &Codec,
    msg: &BorrowedMessage<'_>,
    pending: &mut Pending<E>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) {
    let payload = msg.payload().unwrap_or_default();
    pending.note(msg.partition(), msg.offset(), payload.len());
    let mut backoff = Backoff::new();
    loop {
        match codec.decode::<E>(payload).await {
            Ok(event) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let trace = header(msg, "traceparent");
                    tracing::debug!(event_id = %event.event_id(), traceparent = ?trace, "consumed");
                }
                pending.events.push(Record {
                    event,
                    partition: msg.partition(),
                    offset: msg.offset(),
                });
                return;
            }
            Err(CodecError::Unavailable(e)) => {
                tracing::warn!(error = %e, "schema registry unavailable; retrying");
                tokio::select! {
                    _ = &mut *shutdown => return,
                    _ = backoff.wait() => {}
                }
            }
            Err(e) => {
                pending
                    .dead
                    .push(DeadLetter::from_message(msg, e.to_string()));
                return;
            }
        }
    }
}

/// Writes one batch and commits it. Returns false if shutdown came while it could not be written.
async fn flush<S: Sink>(
    sink: &S,
    topic: &str,
    consumer: &consumer::RuntimeConsumer,
    dead_letters: &DeadLetters,
    (stats, metrics): (&Stats, &SinkMetrics),
    mut batch: Pending<S::Event>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> bool {
    let span = tracing::info_span!("batch", sink = sink.name(), rows = batch.events.len());
    async {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut rejected = 0;
        if !batch.events.is_empty() {
            loop {
                match sink.write(&batch.events).await {
                    Ok(()) => break,
                    Err(SinkError::Rejected(items)) => {
                        rejected = items.len();
                        for (i, reason) in items {
                            let (p, o) = (batch.events[i].partition, batch.events[i].offset);
                            batch.dead.push(DeadLetter::rejected(topic, p, o, reason));
                        }
                        break;
                    }
                    Err(SinkError::Retriable(e)) => {
                        tracing::warn!(error = %e, "write failed; retrying");
                        metrics.retries.inc();
                        tokio::select! {
                            _ = &mut *shutdown => return false,
                            _ = backoff.wait() => {}
                        }
                    }
                }
            }
        }
        let dead = batch.dead.len() as u64;
        let mut backoff = Backoff::new();
        while let Err(e) = dead_letters.send_all(&batch.dead).await {
            tracing::warn!(error = %e, "dead-letter write failed; retrying");
            tokio::select! {
                _ = &mut *shutdown => return false,
                _ = backoff.wait() => {}
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &batch.next_offsets {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*next));
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            // The rows are written; a lost commit only means they are read (and deduplicated) again.
            tracing::warn!(error = %e, "offset commit failed");
        }
        let written = (batch.events.len() - rejected) as u64;
        stats.written.fetch_add(written, Ordering::Relaxed);
        stats.dead_lettered.fetch_add(dead, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        metrics.written.inc_by(written);
        metrics.dead_lettered.inc_by(dead);
        if let Some(first) = batch.started {
            metrics.batch_seconds.observe(first.elapsed().as_secs_f64());
        }
        tracing::debug!(
            written,
            dead,
            ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        true
    }
    .instrument(span)
    .await
}

/// Exponential backoff with jitter: 100 ms doubling up to 5 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }

    async fn wait(&mut self) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = 0.5 + f64::from(nanos % 1000) / 1000.0;
        tokio::time::sleep(self.next.mul_f64(jitter)).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }
}
