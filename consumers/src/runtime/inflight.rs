//! The batch in flight: written by a task of its own while the runner reads and decodes the next
//! one, then committed by the runner. One at a time: the next batch is started only once this one
//! is committed, so batches are written and committed in order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::pending::Pending;
use super::{flush, Runner, RuntimeError, Sink, Stopped};

/// How long a batch may take to be written, while the next batch's worth of records waits, before
/// the partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

impl<S: Sink> Runner<S> {
    /// Starts writing `batch` in a task of its own.
    pub(super) fn start(&mut self, batch: Pending<S::Event>) {
        let rows = batch.events.len() + batch.dead.len();
        let task = tokio::spawn(self.writer.clone().write(batch));
        self.inflight = Some((task, rows));
    }

    /// Waits for the batch in flight and commits it. Meanwhile the consumer keeps polling (records
    /// wait in `next`, the batch to be filled; the partitions are paused once a batch's worth
    /// waits there), so a long retry never costs the group. `Err` if shutdown's flush timeout
    /// passed before it could be written: nothing of it is committed.
    pub(super) async fn finish_inflight(
        &mut self,
        next: &mut Pending<S::Event>,
    ) -> Result<(), RuntimeError> {
        let Some((mut task, rows)) = self.inflight.take() else {
            return Ok(());
        };
        let outcome = loop {
            // A batch's worth waiting: take no more, and leave the rest in librdkafka's queue
            // (bounded by its own settings). Only a write that takes longer than `PAUSE_AFTER`
            // pauses the partitions (then the consumer polls on, so the group keeps it): a resume
            // costs a fetch started afresh, which stalled the stream for 400-500 ms every few
            // batches when every batch paused.
            let full = next.sources.waiting() >= self.config.max_rows;
            tokio::select! {
                biased;
                done = &mut task => break done,
                _ = tokio::time::sleep(PAUSE_AFTER), if full && !self.is_paused() => self.pause(),
                msg = self.consumer.recv(), if !self.shutdown.is_triggered() && (!full || self.is_paused()) => match msg {
                    Ok(msg) => {
                        self.revoked.forget(next, true, true);
                        next.sources.receive(&msg);
                    }
                    Err(e) => tracing::debug!(error = %e, "kafka consumer error while writing"),
                },
            }
        };
        self.complete(outcome, rows)
    }

    /// What a batch's task came to: committed, or the runtime stops (`rows` not written).
    pub(super) fn complete(
        &mut self,
        outcome: Result<Result<flush::Written<S::Event>, Stopped>, tokio::task::JoinError>,
        rows: usize,
    ) -> Result<(), RuntimeError> {
        let written = match outcome {
            Ok(Ok(written)) => written,
            Ok(Err(Stopped)) => {
                tracing::error!(
                    sink = self.writer.sink.name(),
                    rows,
                    "shut down while a batch could not be written; nothing of it committed"
                );
                return Err(RuntimeError::Unflushed(rows));
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(RuntimeError::Kafka(format!("batch task: {e}"))),
        };
        self.commit(written);
        Ok(())
    }

    /// Commits a written batch's offsets (not those of partitions revoked meanwhile: their new
    /// owner reads the records again and the sink leaves out what it has) and counts it.
    fn commit(&mut self, done: flush::Written<S::Event>) {
        let batch = &done.batch;
        let revoked = std::mem::take(&mut self.revoked.in_flight);
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &batch.next_offsets {
            if !revoked.contains(p) {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*next));
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                // Written and dead-lettered: a lost commit only means they are read again (and
                // left out by the sink, which already has them).
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
        *self.stats.last_commit.lock().expect("stats lock") = Some(std::time::Instant::now());
        let dead = (batch.dead.len() + done.refused) as u64;
        let written = (batch.events.len() - done.refused - done.duplicates) as u64;
        self.stats.written.fetch_add(written, Ordering::Relaxed);
        self.stats
            .duplicates
            .fetch_add(done.duplicates as u64, Ordering::Relaxed);
        self.metrics.duplicates.inc_by(done.duplicates as u64);
        self.stats.dead_lettered.fetch_add(dead, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.metrics.written.inc_by(written);
        self.metrics.dead_lettered.inc_by(dead);
        if let Some(first) = batch.started {
            self.metrics
                .batch_seconds
                .observe(first.elapsed().as_secs_f64());
        }
        tracing::debug!(
            written,
            duplicates = done.duplicates,
            dead,
            ms = done.started.elapsed().as_millis() as u64,
            "batch committed"
        );
        // Its lists and buffer, emptied, take the batch after next.
        self.spare = Some(done.batch.recycle());
    }
}
