//! The batch being filled: decoded records, the records they came as (key, bytes and headers, for a
//! dead letter should the sink refuse one, whatever the source topic's retention does later), the
//! dead letters found while decoding, and the offsets to commit.

use std::time::Instant;

use rdkafka::message::{Message, OwnedMessage};

use super::Record;

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    pub source: OwnedMessage,
    pub error: String,
}

pub(crate) struct Pending<E> {
    pub events: Vec<Record<E>>,
    /// `sources[i]` is where `events[i]` came from.
    pub sources: Vec<OwnedMessage>,
    /// Records refused before the sink saw them (undecodable, outside the time bounds).
    pub dead: Vec<DeadLetter>,
    pub bytes: usize,
    /// The next offset to commit per partition: after the last record accounted for in this batch
    /// (a few partitions: a list is quicker than a map).
    pub next_offsets: Vec<(i32, i64)>,
    pub started: Option<Instant>,
}

impl<E> Pending<E> {
    pub fn new() -> Self {
        Self {
            events: Vec::new(),
            sources: Vec::new(),
            dead: Vec::new(),
            bytes: 0,
            next_offsets: Vec::new(),
            started: None,
        }
    }

    /// A batch with room for `rows` events (up to 65,536) from the start: grown by doubling, the
    /// lists were copied and their new memory faulted in for every batch.
    pub fn with_capacity(rows: usize) -> Self {
        let rows = rows.min(1 << 16);
        let mut batch = Self::new();
        batch.events.reserve_exact(rows);
        batch.sources.reserve_exact(rows);
        batch
    }

    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }

    /// Counts a record as accounted for: decoded into the batch, dead-lettered, or skipped. Only
    /// then may its offset be committed.
    pub fn note(&mut self, partition: i32, offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += bytes;
        match self.next_offsets.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, next)) => *next = offset + 1,
            None => self.next_offsets.push((partition, offset + 1)),
        }
    }

    /// Forgets everything from partitions this consumer no longer owns.
    pub fn drop_partitions(&mut self, revoked: &[i32]) {
        if revoked.is_empty() {
            return;
        }
        let keep: Vec<bool> = self
            .events
            .iter()
            .map(|r| !revoked.contains(&r.partition))
            .collect();
        let mut k = keep.iter();
        self.events.retain(|_| *k.next().expect("aligned"));
        let mut k = keep.iter();
        self.sources.retain(|_| *k.next().expect("aligned"));
        self.dead
            .retain(|d| !revoked.contains(&d.source.partition()));
        self.next_offsets.retain(|(p, _)| !revoked.contains(p));
        if self.is_empty() {
            self.started = None;
        }
    }
}
