use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::ops::Range;

use clickhouse::Client;

use super::ahead::{BatchId, Key, KeySet, LookAhead};
use super::lookup::Lookups;
use super::rows::Table;
use super::service::classify;
use super::ClickHouseConfig;
use crate::{Record, Sink, SinkError, Written};

/// Current ClickHouse refuses an INSERT whose rows span more partitions than
/// `max_partitions_per_insert_block` (default 100): `CLICKHOUSE_MAX_PARTITIONS_PER_INSERT`.
pub const MAX_PARTITIONS_PER_INSERT: usize = 100;

/// Inserts batches of `E` into `E::TABLE`, each event once: the batch's events already in
/// `event_ids` (and repeats within the batch) are left out, the rest inserted as one RowBinary
/// INSERT per run of consecutive records that spans at most `max_partitions` of the table's
/// monthly partitions (one INSERT for a batch of recent events), so no INSERT is refused for its
/// partition count whatever the events' times.
pub struct ClickHouseSink<E> {
    client: Client,
    max_partitions: usize,
    lookup: bool,
    lookups: Lookups,
    ahead: LookAhead,
    _event: PhantomData<fn() -> E>,
}

impl<E: Table> ClickHouseSink<E> {
    /// A sink writing where `config` says, through its client ([`ClickHouseConfig::client`]),
    /// looking resends up with its lookup settings ([`ClickHouseConfig::lookup_settings`]).
    pub fn new(config: &ClickHouseConfig) -> Self {
        Self {
            client: config.client(),
            max_partitions: MAX_PARTITIONS_PER_INSERT,
            lookup: true,
            lookups: config.lookups(),
            ahead: LookAhead::default(),
            _event: PhantomData,
        }
    }

    pub fn with_max_partitions(mut self, max_partitions: usize) -> Self {
        self.max_partitions = max_partitions;
        self
    }

    /// Without the `event_ids` lookups (repeats within a batch are still left out): what the
    /// lookups cost, for `make bench`. Resends and re-reads are then counted again.
    pub fn without_lookups(mut self) -> Self {
        self.lookup = false;
        self
    }

    async fn insert(&self, batch: &[&Record<E>]) -> Result<(), SinkError> {
        let result = self.try_insert(batch).await;
        // Landed or not (a failed INSERT may have), a lookup made meanwhile may have missed it.
        if E::DEDUPLICATED && self.lookup {
            self.ahead
                .inserted(|| batch.iter().map(|r| key(r)).collect());
        }
        result
    }

    async fn try_insert(&self, batch: &[&Record<E>]) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<E::Row>(E::TABLE)
            .await
            .map_err(classify)?;
        for r in batch {
            insert
                .write(&r.event.row(r.partition, r.offset))
                .await
                .map_err(classify)?;
        }
        insert.end().await.map_err(classify)
    }
}

/// What a resend repeats: (occurred_at, event_id).
fn key<E: Table>(r: &Record<E>) -> Key {
    (
        r.event.occurred_at().millis() as u64,
        r.event.event_id().as_uuid(),
    )
}

/// The records of `batch` without repeats of an earlier one.
fn firsts<E: Table>(batch: &[Record<E>]) -> Vec<&Record<E>> {
    let mut seen = KeySet::default();
    batch.iter().filter(|r| seen.insert(key(r))).collect()
}

/// The keys of `records` in time order, so each lookup query covers a short span of the table (a
/// live batch: its last granules).
fn sorted_keys<E: Table>(records: &[&Record<E>]) -> Vec<Key> {
    let mut keys: Vec<Key> = records.iter().map(|r| key(r)).collect();
    keys.sort_unstable();
    keys
}

/// The month partitions (`toYYYYMM`) a time may fall in on a server in any time zone (UTC-12 to
/// UTC+14): one or two.
fn months(ms: i64) -> [u32; 2] {
    let month = |ms: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        t.year() as u32 * 100 + u8::from(t.month()) as u32
    };
    [month(ms - 12 * 3_600_000), month(ms + 14 * 3_600_000)]
}

/// Splits a batch into runs of consecutive records, each spanning at most `max` partitions.
pub fn insert_runs<E: Table, R: Borrow<Record<E>>>(batch: &[R], max: usize) -> Vec<Range<usize>> {
    if !E::PARTITIONED {
        #[allow(clippy::single_range_in_vec_init)] // one run: the whole batch
        return vec![0..batch.len()];
    }
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = BTreeSet::new();
    for (i, r) in batch.iter().enumerate() {
        let m = months(r.borrow().event.occurred_at().millis());
        let new = m.iter().filter(|m| !seen.contains(*m)).count();
        if seen.len() + new > max && i > start {
            runs.push(start..i);
            start = i;
            seen.clear();
        }
        seen.extend(m);
    }
    if start < batch.len() {
        runs.push(start..batch.len());
    }
    runs
}

impl<E: Table> ClickHouseSink<E> {
    /// The batch without the events `E::TABLE` already has and without repeats of an earlier
    /// record of the batch. An event is its (occurred_at, event_id): what a resend repeats.
    async fn unseen<'a>(&self, batch: &'a [Record<E>]) -> Result<Vec<&'a Record<E>>, SinkError> {
        let fresh = firsts(batch);
        if !E::DEDUPLICATED || !self.lookup {
            return Ok(fresh);
        }
        let seen = match self.ahead.take(batch) {
            Some(seen) => seen,
            // No insert of this sink is running now: the answer has all of them.
            None => {
                tracing::debug!(rows = batch.len(), "no lookup ahead for this batch");
                self.lookups.seen(E::TABLE, &sorted_keys(&fresh)).await?
            }
        };
        Ok(fresh
            .into_iter()
            .filter(|r| !seen.contains(&key(r)))
            .collect())
    }
}

impl<E: Table> Sink for ClickHouseSink<E> {
    type Event = E;

    fn name(&self) -> &'static str {
        E::TABLE
    }

    /// Looks `batch`'s resends up while the batch before it is being inserted.
    async fn prepare(&self, batch: &[Record<E>]) {
        let Some(id) = BatchId::of(batch) else { return };
        if !E::DEDUPLICATED || !self.lookup {
            return;
        }
        let keys = sorted_keys(&firsts(batch));
        let sent_after = self.ahead.sending();
        let seen = self.lookups.seen(E::TABLE, &keys).await;
        // A failed lookup is only a lost head start: the write looks up again (and says why).
        self.ahead.done(id, sent_after, seen.ok());
    }

    async fn write(&self, batch: &[Record<E>]) -> Result<Written, SinkError> {
        let fresh = self.unseen(batch).await?;
        let runs = insert_runs(&fresh, self.max_partitions);
        if runs.len() > 1 {
            tracing::debug!(
                inserts = runs.len(),
                rows = fresh.len(),
                "batch spans many partitions"
            );
        }
        for run in runs {
            // If a later run fails, the retry finds this one's events in `event_ids`.
            self.insert(&fresh[run]).await?;
        }
        Ok(Written {
            duplicates: batch.len() - fresh.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::domain::*;
    use schemas::events::{PlaybackEvent, PlaybackEventType};

    fn at(ms: i64) -> Record<PlaybackEvent> {
        Record {
            event: PlaybackEvent {
                event_id: EventId::new_random(),
                user_id: UserId::from_uuid(uuid::Uuid::new_v4()),
                movie_id: MovieId::from_uuid(uuid::Uuid::new_v4()),
                event_type: PlaybackEventType::Play,
                position_ms: PositionMs::parse(0).unwrap(),
                occurred_at: Timestamp::from_millis("t", ms).unwrap(),
            },
            partition: 0,
            offset: 0,
        }
    }

    #[test]
    fn runs_never_span_more_partitions_than_allowed() {
        // 1,000 events over 500 distinct months, interleaved.
        let month_ms = 31 * 86_400_000i64;
        let batch: Vec<_> = (0..1000)
            .map(|i| at(((i * 37) % 500) as i64 * month_ms + 15 * 86_400_000))
            .collect();
        for max in [2, 10, 100] {
            let runs = insert_runs(&batch, max);
            assert_eq!(runs.first().unwrap().start, 0);
            assert_eq!(runs.last().unwrap().end, batch.len());
            for w in runs.windows(2) {
                assert_eq!(w[0].end, w[1].start, "consecutive runs");
            }
            for run in &runs {
                let parts: BTreeSet<u32> = batch[run.clone()]
                    .iter()
                    .flat_map(|r| months(r.event.occurred_at.millis()))
                    .collect();
                assert!(parts.len() <= max, "{} > {max}", parts.len());
            }
        }
        // Recent events: one INSERT.
        let now = Timestamp::now().millis();
        let recent: Vec<_> = (0..1000).map(|i| at(now - i * 1000)).collect();
        assert_eq!(insert_runs(&recent, 100).len(), 1);
    }
}
