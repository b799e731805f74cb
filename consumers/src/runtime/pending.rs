//! The batch being filled: decoded records, the bytes they came as (for a dead letter should the
//! sink refuse one), the dead letters found while decoding, and the offsets to commit.

use std::collections::HashMap;
use std::time::Instant;

use rdkafka::message::{Headers, Message};

use super::Record;

/// Where a record came from and what it was, so a refused record can be dead-lettered whole: its
/// key, bytes and headers, whatever the source topic's retention does later.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Source {
    pub(crate) fn of<M: Message>(msg: &M) -> Self {
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    pub source: Source,
    pub error: String,
}

pub(crate) struct Pending<E> {
    pub events: Vec<Record<E>>,
    /// `sources[i]` is where `events[i]` came from.
    pub sources: Vec<Source>,
    /// Records refused before the sink saw them (undecodable, outside the time bounds).
    pub dead: Vec<DeadLetter>,
    pub bytes: usize,
    /// The next offset to commit per partition: after the last record accounted for in this batch.
    pub next_offsets: HashMap<i32, i64>,
    pub started: Option<Instant>,
}

impl<E> Pending<E> {
    pub fn new() -> Self {
        Self {
            events: Vec::new(),
            sources: Vec::new(),
            dead: Vec::new(),
            bytes: 0,
            next_offsets: HashMap::new(),
            started: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }

    /// Counts a record as accounted for: decoded into the batch, dead-lettered, or skipped. Only
    /// then may its offset be committed.
    pub fn note(&mut self, partition: i32, offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += bytes;
        self.next_offsets.insert(partition, offset + 1);
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
        self.dead.retain(|d| !revoked.contains(&d.source.partition));
        self.next_offsets.retain(|p, _| !revoked.contains(p));
        if self.is_empty() {
            self.started = None;
        }
    }
}
