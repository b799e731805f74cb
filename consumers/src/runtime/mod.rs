//! The shared consumer runtime. A sink implements [`Sink`]; [`run`] does everything else:
//!
//! * consume the sink's topic in a consumer group, decode each record through the registry (a
//!   registry outage is waited out: the record is fine, the registry is not);
//! * refuse records outside the time bounds ([`TimeBounds`], against when each was produced);
//! * batch by rows, bytes and time;
//! * dead-letter the batch's undecodable and out-of-bounds records *before* writing its rows, so
//!   a crash never leaves written rows after a record that was not dead-lettered;
//! * write the batch in a task of its own while the next one is read and decoded (one batch in
//!   flight; the next is written only once this one is committed); a transient failure is retried
//!   with jittered backoff while the consumer keeps polling, its partitions paused once a batch's
//!   worth is waiting (the group is never lost to `max.poll.interval.ms`); a permanent one is
//!   isolated by splitting the batch until the refused records are found, each dead-lettered with
//!   the sink's reason before anything after it is written;
//! * commit, per partition, the offset after the last record accounted for (written, dead-lettered,
//!   or left out by the sink as already written) — never past a record that is none of these;
//! * on a rebalance, drop the pending records of revoked partitions (their new owner re-reads them
//!   from the committed offset, and the sink, which is idempotent, leaves out what it already has);
//!   on shutdown, write the pending batch and commit; a final batch that
//!   cannot be written makes [`run`] return an error (and the binary exit non-zero).

mod consumer;
pub mod dead_letter;
mod flush;
mod inflight;
mod metrics;
mod pending;
mod types;

pub use types::{Record, RuntimeConfig, RuntimeError, Sink, SinkError, Stats, Written};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::shutdown::Shutdown;
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use schemas::domain::Timestamp;
use schemas::{Codec, CodecError, Event};

use crate::runtime::consumer::{build_consumer, RebalanceLog, Revoked, RuntimeConsumer};
use crate::runtime::dead_letter::DeadLetters;
use crate::runtime::flush::Writer;
use crate::runtime::metrics::SinkMetrics;
use crate::runtime::pending::{DeadLetter, Pending};

/// How often a consumer waiting for records looks at its queue again, should a wake-up from
/// librdkafka ever be missed (see [`Runner::poll`]).
const RECHECK: Duration = Duration::from_millis(100);

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
    let writer = Arc::new(Writer {
        sink,
        dead_letters,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        final_flush_timeout: config.final_flush_timeout,
    });
    let mut runner = Runner {
        stats: Arc::new(Stats::default()),
        config,
        codec,
        writer,
        topic,
        consumer,
        revoked: Revoked::new(rebalances.clone()),
        metrics,
        shutdown,
        inflight: None,
        spare: None,
        paused: rebalances.paused(),
    };
    runner.run().await
}

/// The batch being written by its task, and its size.
type InFlight<E> = (
    tokio::task::JoinHandle<Result<flush::Written<E>, Stopped>>,
    usize,
);

struct Runner<S: Sink> {
    config: RuntimeConfig,
    codec: Codec,
    writer: Arc<Writer<S>>,
    topic: String,
    consumer: RuntimeConsumer,
    revoked: Revoked,
    stats: Arc<Stats>,
    metrics: SinkMetrics,
    shutdown: Shutdown,
    /// The batch being written, if any.
    inflight: Option<InFlight<S::Event>>,
    /// A committed batch, emptied, to be filled again (its memory kept).
    spare: Option<Pending<S::Event>>,
    /// Whether the runner wants its partitions paused; shared with the rebalance callback, which
    /// pauses or resumes each new assignment to match (see [`RebalanceLog::paused`]).
    paused: Arc<AtomicBool>,
}

impl<S: Sink> Runner<S> {
    async fn run(&mut self) -> Result<Arc<Stats>, RuntimeError> {
        let mut pending = Pending::<S::Event>::with_capacity(self.config.max_rows);
        let mut taken = 0u32;
        loop {
            // While records keep coming, nothing here would yield to the scheduler (librdkafka's
            // queue is not a tokio resource), and the batch task spawned from this one would wait
            // for it in this worker's LIFO slot, where the other workers cannot steal it.
            tokio::task::consume_budget().await;
            // Records received while waiting come first; then the queue.
            let got = pending.sources.waiting() > 0 || self.poll(&mut pending).await?;
            if self.shutdown.is_triggered() {
                // A record received but not accounted for is simply not committed.
                break;
            }
            self.revoked
                .forget(&mut pending, self.inflight.is_some(), false);
            if got && pending.sources.waiting() > 0 && self.accept(&mut pending).await.is_err() {
                break;
            }
            self.revoked
                .forget(&mut pending, self.inflight.is_some(), false);
            let full = pending.events.len() >= self.config.max_rows
                || pending.bytes >= self.config.max_bytes;
            // The clock is read once per 64 records while they keep coming (it was a few per
            // cent of the sink's CPU read per record); a wait for records ends at the deadline.
            taken = taken.wrapping_add(1);
            let due = (!got || taken.is_multiple_of(64))
                && pending
                    .started
                    .is_some_and(|s| s.elapsed() >= self.config.max_wait);
            if !pending.is_empty() && (full || due) {
                let mut next = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Pending::with_capacity(self.config.max_rows));
                pending.sources.hand_over(&mut next.sources);
                if self.inflight.is_some() {
                    // The sink prepares this batch while the one before it is being written.
                    let writer = self.writer.clone();
                    let (finished, ()) = tokio::join!(
                        self.finish_inflight(&mut next),
                        writer.sink.prepare(&pending.events)
                    );
                    finished?;
                    self.revoked.forget_before_start(&mut pending);
                }
                let batch = std::mem::replace(&mut pending, next);
                if batch.is_empty() {
                    // All of it was of partitions revoked meanwhile.
                    self.spare = Some(batch.recycle());
                } else {
                    self.start(batch);
                }
            }
        }
        // Records received but not decoded are not committed: read again on the next start.
        let mut rest = Pending::new();
        self.finish_inflight(&mut rest).await?;
        self.revoked.forget_before_start(&mut pending);
        self.revoked.forget(&mut pending, false, false);
        if !pending.is_empty() {
            self.start(pending);
            self.finish_inflight(&mut rest).await?;
        }
        tracing::info!(sink = self.writer.sink.name(), "consumer stopped");
        Ok(self.stats.clone())
    }

    /// Receives the next record into `pending`'s waiting records (`true`), or `false` when the
    /// batch is due or shutdown fired. Commits the batch in flight as soon as its task is done,
    /// so its offsets do not wait for the next batch.
    async fn poll(&mut self, pending: &mut Pending<S::Event>) -> Result<bool, RuntimeError> {
        // A wait for the registry or for a batch may have paused the partitions.
        self.resume();
        // The fast path, while records keep coming: one look at the queue, without arming the
        // timers and wake-ups of the wait below (they cost more than decoding a record).
        if self
            .inflight
            .as_ref()
            .is_some_and(|(task, _)| task.is_finished())
        {
            let (task, rows) = self.inflight.take().expect("a batch was in flight");
            self.complete(task.await, rows)?;
        }
        if !self.shutdown.is_triggered() {
            match self.consumer.recv().now_or_never() {
                Some(Ok(msg)) => {
                    self.revoked.forget(pending, self.inflight.is_some(), false);
                    pending.sources.receive(&msg);
                    return Ok(true);
                }
                // Said as the wait below says it, not dropped unseen.
                Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                None => {}
            }
        }
        let deadline = pending
            .started
            .map(|s| s + self.config.max_wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        loop {
            let (shutdown, consumer) = (&self.shutdown, &self.consumer);
            let inflight = &mut self.inflight;
            let busy = inflight.is_some();
            let next = tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(false),
                _ = tokio::time::sleep_until(deadline.into()) => return Ok(false),
                done = async {
                    match inflight.as_mut() {
                        Some((task, _)) => task.await,
                        None => std::future::pending().await,
                    }
                }, if busy => Err(done),
                msg = consumer.recv() => Ok(Some(msg)),
                _ = tokio::time::sleep(RECHECK) => Ok(None),
            };
            match next {
                Ok(None) => {}
                Ok(Some(Ok(msg))) => {
                    self.revoked.forget(pending, self.inflight.is_some(), false);
                    pending.sources.receive(&msg);
                    return Ok(true);
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(done) => {
                    let (_, rows) = self.inflight.take().expect("a batch was in flight");
                    self.complete(done, rows)?;
                }
            }
        }
    }

    /// Decodes the next waiting record into the pending batch, or into its dead letters. The
    /// offset is noted only once the record is one or the other.
    async fn accept(&mut self, pending: &mut Pending<S::Event>) -> Result<(), Stopped> {
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        self.stats.first_consumed.get_or_init(Instant::now);
        self.metrics.consumed.inc();
        let mut backoff = Backoff::default();
        let decoded = loop {
            // A wait for the registry may have forgotten it (its partition was revoked).
            let Some(msg) = pending.sources.next() else {
                return Ok(());
            };
            let payload = pending.sources.payload(msg);
            match self.codec.decode::<S::Event>(payload).await {
                Err(CodecError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "schema registry unavailable; retrying");
                    self.wait(backoff.next_delay(), pending).await?;
                }
                other => break other,
            }
        };
        let msg = pending.sources.next().expect("a record waits");
        let (partition, offset, bytes) = (
            msg.partition,
            msg.offset,
            pending.sources.payload(msg).len(),
        );
        let produced = msg
            .timestamp
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
        if tracing::enabled!(tracing::Level::DEBUG) {
            if let Ok(event) = &checked {
                let trace = pending.sources.header(msg, "traceparent");
                tracing::debug!(event_id = %event.event_id(), traceparent = ?trace, "consumed");
            }
        }
        pending.note(partition, offset, bytes);
        match checked {
            Ok(event) => {
                pending.events.push(Record {
                    event,
                    partition,
                    offset,
                });
                pending.sources.accept_next();
            }
            Err(error) => {
                let source = pending.sources.refuse_next().expect("a record waits");
                pending.dead.push(DeadLetter { source, error });
            }
        }
        Ok(())
    }

    /// Waits `delay` before asking the registry again while keeping the group: the assigned
    /// partitions are paused and the consumer keeps polling (a record that was already on its way
    /// waits in `pending`). `Err` at once when shutdown fires (the record being decoded is read
    /// again on the next start).
    async fn wait(
        &mut self,
        delay: Duration,
        pending: &mut Pending<S::Event>,
    ) -> Result<(), Stopped> {
        self.pause();
        let until = Instant::now() + delay;
        loop {
            if self.shutdown.is_triggered() {
                return Err(Stopped);
            }
            tokio::select! {
                biased;
                _ = self.shutdown.wait() => {}
                _ = tokio::time::sleep_until(until.into()) => return Ok(()),
                msg = self.consumer.recv() => match msg {
                    Ok(msg) => {
                        self.revoked.forget(pending, self.inflight.is_some(), false);
                        pending.sources.receive(&msg);
                    }
                    Err(e) => tracing::debug!(error = %e, "kafka consumer error while paused"),
                },
            }
        }
    }

    fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pauses the assigned partitions (until [`Runner::resume`]).
    fn pause(&mut self) {
        if !self.paused.swap(true, Ordering::Relaxed) {
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.pause(&assigned) {
                    tracing::warn!(error = %e, "pausing partitions");
                }
            }
        }
    }

    /// Resumes the partitions paused by [`Runner::pause`].
    fn resume(&mut self) {
        if self.paused.swap(false, Ordering::Relaxed) {
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.resume(&assigned) {
                    tracing::warn!(error = %e, "resuming partitions after a retry");
                }
            }
        }
    }
}
