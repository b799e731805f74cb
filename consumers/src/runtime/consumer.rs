//! The rdkafka consumer the runtime drives, and the rebalance bookkeeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};

use super::metrics::SinkMetrics;
use super::pending::Pending;
use super::{RuntimeConfig, RuntimeError};

/// Partitions revoked since the runtime last looked. librdkafka calls the context on its own thread
/// inside `recv`; the runtime drains this before it stores each received record and before it
/// adds to or flushes a batch (see [`Revoked::forget`]). The context also
/// receives librdkafka's statistics, which carry the lag per partition.
#[derive(Clone)]
pub(crate) struct RebalanceLog {
    revoked: Arc<Mutex<Vec<i32>>>,
    /// Set after partitions are added to `revoked`: the runtime looks at it for every record, and
    /// takes the lock only when it is set.
    any_revoked: Arc<AtomicBool>,
    /// Whether the runner has its partitions paused (see [`RebalanceLog::paused`]).
    paused: Arc<AtomicBool>,
    metrics: SinkMetrics,
}

impl RebalanceLog {
    pub(crate) fn new(metrics: SinkMetrics) -> Self {
        Self {
            revoked: Arc::default(),
            any_revoked: Arc::default(),
            paused: Arc::default(),
            metrics,
        }
    }

    /// The runner's paused state, which each new assignment is made to match: librdkafka keeps
    /// an application's pause on a partition through a revoke and a later assign, so a partition
    /// paused before a rebalance and assigned again after the runner resumed (its resume reached
    /// only what was assigned then) stayed paused for good: the consumer stalled with records
    /// left (`partitions_revoked_and_assigned_again_while_a_batch_is_written_lose_nothing`
    /// stalled that way under load). And a paused runner is not flooded by a new assignment.
    pub(crate) fn paused(&self) -> Arc<AtomicBool> {
        self.paused.clone()
    }

    pub(crate) fn take_revoked(&self) -> Vec<i32> {
        // A load first: this runs for every record received, and a swap would write the flag's
        // cache line each time.
        if !self.any_revoked.load(Ordering::Acquire)
            || !self.any_revoked.swap(false, Ordering::Acquire)
        {
            return Vec::new();
        }
        std::mem::take(&mut *self.revoked.lock().expect("rebalance lock"))
    }
}

/// What the runner does with revoked partitions: forgets what it holds of them, and keeps the
/// batch being written from committing them.
pub(crate) struct Revoked {
    log: RebalanceLog,
    /// Partitions revoked while a batch was in flight: its offsets for them are not committed.
    pub in_flight: Vec<i32>,
    /// Partitions revoked while a batch was written and the next one waited to start: forgotten
    /// in that one before it starts (everything in it came before the revoke).
    before_start: Vec<i32>,
}

impl Revoked {
    pub(crate) fn new(log: RebalanceLog) -> Self {
        Self {
            log,
            in_flight: Vec::new(),
            before_start: Vec::new(),
        }
    }

    /// Drops the records `pending` holds of partitions revoked since the last look, and keeps
    /// the batch in flight (if `in_flight`) from committing them; `waiting_to_start`: a batch
    /// is being written and another waits to start (see [`Revoked::forget_before_start`]).
    ///
    /// Called before every received record is stored, and that is what makes it exact:
    /// librdkafka calls the rebalance callback inside `recv`, before it returns any record of the
    /// new assignment, so what the consumer holds of a revoked partition at that point came
    /// before the revoke (its owner reads it again), and the record just received, and every
    /// later one, did not. Forgotten any later, the records of a partition revoked and assigned
    /// again (an eager rebalance revokes every partition) were dropped with the stale ones, and
    /// the offset of a later record of it was committed past them: events lost (test
    /// `partitions_revoked_and_assigned_again_while_a_batch_is_written_lose_nothing`).
    pub(crate) fn forget<E>(
        &mut self,
        pending: &mut Pending<E>,
        in_flight: bool,
        waiting_to_start: bool,
    ) {
        let revoked = self.log.take_revoked();
        if revoked.is_empty() {
            return;
        }
        pending.drop_partitions(&revoked);
        if waiting_to_start {
            self.before_start.extend(&revoked);
        }
        if in_flight {
            self.in_flight.extend(revoked);
        }
    }

    /// Drops from the batch about to start the records of partitions revoked while the batch
    /// before it was written: all of them came before the revoke.
    pub(crate) fn forget_before_start<E>(&mut self, pending: &mut Pending<E>) {
        let revoked = std::mem::take(&mut self.before_start);
        pending.drop_partitions(&revoked);
    }
}

impl ClientContext for RebalanceLog {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics.record_lag(&statistics);
    }
}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions revoked; dropping their pending records");
            self.revoked.lock().expect("rebalance lock").extend(parts);
            self.any_revoked.store(true, Ordering::Release);
        }
    }

    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let paused = self.paused.load(Ordering::Relaxed);
            tracing::info!(partitions = ?parts, paused, "partitions assigned");
            let matched = if paused {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            };
            if let Err(e) = matched {
                tracing::warn!(error = %e, paused, "matching the new assignment's pause");
            }
        }
    }
}

pub(crate) type RuntimeConsumer = StreamConsumer<RebalanceLog>;

pub(crate) fn build_consumer(
    config: &RuntimeConfig,
    context: RebalanceLog,
) -> Result<RuntimeConsumer, RuntimeError> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        // Offsets are committed by the runtime, and only for written records.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 6).max(100).to_string(),
        )
        .set("fetch.wait.max.ms", "50")
        // librdkafka stops fetching a partition once its local queue holds `queued.min.messages`
        // (100,000) and then waits this long before it looks again: with the default of 1 s the
        // sink drained the queue and sat idle for most of a second every 100,000 records.
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.partition.eof", "false")
        .set(
            "statistics.interval.ms",
            config.stats_interval.as_millis().to_string(),
        )
        .create_with_context(context)
        .map_err(|e| RuntimeError::Kafka(e.to_string()))
}
