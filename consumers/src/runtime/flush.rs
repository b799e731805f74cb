//! Writing one batch: dead letters first, then the rows with permanent refusals isolated; the
//! runner commits afterwards. The order is what makes a crash at any point safe: a record's offset
//! is committed only once it is written or dead-lettered, and a refused record's dead letter is
//! acknowledged before anything after it is written (so a crash never leaves a written record
//! after an unsent dead letter whose offset a later commit would pass).
//!
//! A batch is written by a task of its own while the runner reads and decodes the next one (one
//! batch in flight: the next is written only after this one is committed, so batches are written
//! and committed in order).

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::shutdown::Shutdown;
use tracing::Instrument;

use super::dead_letter::DeadLetters;
use super::metrics::SinkMetrics;
use super::pending::{DeadLetter, Pending};
use super::{Sink, SinkError, Stopped};

/// What writing a batch needs, shared with the task that writes it.
pub(super) struct Writer<S> {
    pub sink: S,
    pub dead_letters: DeadLetters,
    pub metrics: SinkMetrics,
    pub shutdown: Shutdown,
    /// How long a batch may still take once shutdown fired (`SHUTDOWN_FLUSH_TIMEOUT`).
    pub final_flush_timeout: Duration,
}

/// A batch written (or dead-lettered), ready to be committed.
pub(super) struct Written<E> {
    pub batch: Pending<E>,
    pub refused: usize,
    pub duplicates: usize,
    pub started: Instant,
}

impl<S: Sink> Writer<S> {
    /// Writes one batch. `Err` if shutdown came while it could not be written (then nothing of it
    /// may be committed).
    pub(super) async fn write(
        self: Arc<Self>,
        batch: Pending<S::Event>,
    ) -> Result<Written<S::Event>, Stopped> {
        let span = tracing::info_span!("batch", sink = self.sink.name(), rows = batch.events.len());
        async {
            let started = Instant::now();
            let mut deadline = None;
            self.send_dead(&batch.dead, &mut deadline).await?;
            let (refused, duplicates) = self.write_isolating(&batch, &mut deadline).await?;
            Ok(Written {
                batch,
                refused,
                duplicates,
                started,
            })
        }
        .instrument(span)
        .await
    }

    /// Sleeps `delay` before a retry. `Err` once shutdown fired and `final_flush_timeout` has
    /// passed since this batch first noticed it.
    async fn backoff(
        &self,
        delay: Duration,
        deadline: &mut Option<Instant>,
    ) -> Result<(), Stopped> {
        let until = Instant::now() + delay;
        loop {
            if self.shutdown.is_triggered() {
                let timeout = self.final_flush_timeout;
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                if Instant::now() >= at {
                    return Err(Stopped);
                }
            }
            let wake = deadline.map_or(until, |d| d.min(until));
            tokio::select! {
                biased;
                _ = self.shutdown.wait(), if !self.shutdown.is_triggered() => {}
                _ = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= until {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sends dead letters and waits for every acknowledgement, retrying while the broker refuses.
    async fn send_dead(
        &self,
        dead: &[DeadLetter],
        deadline: &mut Option<Instant>,
    ) -> Result<(), Stopped> {
        if dead.is_empty() {
            return Ok(());
        }
        let mut backoff = Backoff::default();
        while let Err(e) = self.dead_letters.send_all(dead).await {
            tracing::warn!(error = %e, "dead-letter write failed; retrying");
            self.backoff(backoff.next_delay(), deadline).await?;
        }
        Ok(())
    }

    /// Writes the batch's records in order. A transient failure retries the same slice; a
    /// permanent one splits it in halves (left first) until single records, which are
    /// dead-lettered before anything after them is written. Returns how many were refused and how
    /// many the sink left out as already written.
    async fn write_isolating(
        &self,
        batch: &Pending<S::Event>,
        deadline: &mut Option<Instant>,
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
                        self.backoff(backoff.next_delay(), deadline).await?;
                    }
                    Err(SinkError::Permanent(e)) if range.len() == 1 => {
                        let i = range.start;
                        self.refuse(batch, &[(i, e)], deadline).await?;
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
                        self.refuse(batch, &items, deadline).await?;
                        break;
                    }
                }
            }
        }
        Ok((refused, duplicates))
    }

    /// Dead-letters records the sink refused, with its reason, and waits for the acknowledgement.
    async fn refuse(
        &self,
        batch: &Pending<S::Event>,
        items: &[(usize, String)],
        deadline: &mut Option<Instant>,
    ) -> Result<(), Stopped> {
        let dead: Vec<DeadLetter> = items
            .iter()
            .map(|(i, reason)| DeadLetter {
                source: batch.sources.owned(*i),
                error: format!("{}: {reason}", self.sink.name()),
            })
            .collect();
        self.send_dead(&dead, deadline).await
    }
}
