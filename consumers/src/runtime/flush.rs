//! Writing one batch: dead letters first, then the rows with permanent refusals isolated, then the
//! commit. The order is what makes a crash at any point safe: a record's offset is committed only
//! once it is written or dead-lettered, and a refused record's dead letter is acknowledged before
//! anything after it is written (so a crash never leaves a written record after an unsent dead
//! letter whose offset a later commit would pass).

use std::sync::atomic::Ordering;
use std::time::Instant;

use common::backoff::Backoff;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::Instrument;

use super::pending::{DeadLetter, Pending};
use super::{Runner, Sink, SinkError, Stopped};

impl<S: Sink> Runner<S> {
    /// Writes one batch and commits it. `Err` if shutdown came while it could not be written (then
    /// nothing of it is committed).
    pub(super) async fn flush(&mut self, batch: Pending<S::Event>) -> Result<(), Stopped> {
        let span = tracing::info_span!("batch", sink = self.sink.name(), rows = batch.events.len());
        let done = async {
            let started = Instant::now();
            let mut dead = batch.dead.len() as u64;
            self.send_dead(&batch.dead).await?;
            let (refused, duplicates) = self.write_isolating(&batch).await?;
            dead += refused as u64;
            self.resume();
            let mut tpl = TopicPartitionList::new();
            for (p, next) in &batch.next_offsets {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*next));
            }
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                // Written and dead-lettered: a lost commit only means they are read again (and
                // left out by the sink, which already has them).
                tracing::warn!(error = %e, "offset commit failed");
            }
            let written = (batch.events.len() - refused - duplicates) as u64;
            self.stats.written.fetch_add(written, Ordering::Relaxed);
            self.stats
                .duplicates
                .fetch_add(duplicates as u64, Ordering::Relaxed);
            self.metrics.duplicates.inc_by(duplicates as u64);
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
                duplicates,
                dead,
                ms = started.elapsed().as_millis() as u64,
                "batch committed"
            );
            Ok(())
        };
        done.instrument(span).await
    }

    /// Sends dead letters and waits for every acknowledgement, retrying while the broker refuses.
    async fn send_dead(&mut self, dead: &[DeadLetter]) -> Result<(), Stopped> {
        if dead.is_empty() {
            return Ok(());
        }
        let mut backoff = Backoff::default();
        while let Err(e) = self.dead_letters.send_all(dead).await {
            tracing::warn!(error = %e, "dead-letter write failed; retrying");
            self.wait(backoff.next_delay(), true).await?;
        }
        Ok(())
    }

    /// Writes the batch's records in order. A transient failure retries the same slice; a
    /// permanent one splits it in halves (left first) until single records, which are
    /// dead-lettered before anything after them is written. Returns how many were refused and how
    /// many the sink left out as already written.
    async fn write_isolating(
        &mut self,
        batch: &Pending<S::Event>,
    ) -> Result<(usize, usize), Stopped> {
        let (mut refused, mut duplicates) = (0, 0);
        // Slices still to write, the next on top.
        let mut todo = Vec::new();
        todo.push(0..batch.events.len());
        while let Some(range) = todo.pop() {
            if range.is_empty() {
                continue;
            }
            let mut backoff = Backoff::default();
            loop {
                match self.sink.write(&batch.events[range.clone()]).await {
                    Ok(written) => {
                        duplicates += written.duplicates;
                        break;
                    }
                    Err(SinkError::Transient(e)) => {
                        tracing::warn!(error = %e, rows = range.len(), "write failed; retrying");
                        self.metrics.retries.inc();
                        self.wait(backoff.next_delay(), true).await?;
                    }
                    Err(SinkError::Permanent(e)) if range.len() == 1 => {
                        let i = range.start;
                        self.refuse(batch, &[(i, e)]).await?;
                        refused += 1;
                        break;
                    }
                    Err(SinkError::Permanent(e)) => {
                        tracing::info!(error = %e, rows = range.len(), "refused; isolating the record(s) at fault");
                        let mid = range.start + range.len() / 2;
                        todo.push(mid..range.end);
                        todo.push(range.start..mid);
                        break;
                    }
                    Err(SinkError::Rejected(items)) => {
                        let items: Vec<(usize, String)> = items
                            .into_iter()
                            .filter(|(i, _)| *i < range.len())
                            .map(|(i, reason)| (range.start + i, reason))
                            .collect();
                        refused += items.len();
                        self.refuse(batch, &items).await?;
                        break;
                    }
                }
            }
        }
        Ok((refused, duplicates))
    }

    /// Dead-letters records the sink refused, with its reason, and waits for the acknowledgement.
    async fn refuse(
        &mut self,
        batch: &Pending<S::Event>,
        items: &[(usize, String)],
    ) -> Result<(), Stopped> {
        let dead: Vec<DeadLetter> = items
            .iter()
            .map(|(i, reason)| DeadLetter {
                source: batch.sources[*i].clone(),
                error: format!("{}: {reason}", self.sink.name()),
            })
            .collect();
        self.send_dead(&dead).await
    }
}
