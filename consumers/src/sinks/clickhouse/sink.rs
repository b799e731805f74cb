use std::borrow::Borrow;
use std::collections::{BTreeSet, HashSet};
use std::marker::PhantomData;
use std::ops::Range;

use clickhouse::{Client, Row};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use uuid::Uuid;

use super::rows::Table;
use super::service::classify;
use crate::{Record, Sink, SinkError, Written};

/// Current ClickHouse refuses an INSERT whose rows span more partitions than
/// `max_partitions_per_insert_block` (default 100): `CLICKHOUSE_MAX_PARTITIONS_PER_INSERT`.
pub const MAX_PARTITIONS_PER_INSERT: usize = 100;

/// Events looked up in `event_ids` per query: the query carries their times and ids as text
/// (about 60 bytes each), well under the server's `max_query_size` (256 KiB by default).
pub const LOOKUP_CHUNK: usize = 2_000;
/// Lookups of one batch in flight at once.
const LOOKUPS_AT_ONCE: usize = 4;
/// A chunk whose events occurred within this span is looked up by time range, not by each time.
const SHORT_SPAN_MS: u64 = 600_000;

/// Inserts batches of `E` into `E::TABLE`, each event once: the batch's events already in
/// `event_ids` (and repeats within the batch) are left out, the rest inserted as one RowBinary
/// INSERT per run of consecutive records that spans at most `max_partitions` of the table's
/// monthly partitions (one INSERT for a batch of recent events), so no INSERT is refused for its
/// partition count whatever the events' times.
pub struct ClickHouseSink<E> {
    client: Client,
    max_partitions: usize,
    lookup: bool,
    /// Settings sent with each lookup ([`super::ClickHouseConfig::lookup_settings`]).
    lookup_settings: Vec<(&'static str, String)>,
    _event: PhantomData<fn() -> E>,
}

impl<E: Table> ClickHouseSink<E> {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            max_partitions: MAX_PARTITIONS_PER_INSERT,
            lookup: true,
            lookup_settings: Vec::new(),
            _event: PhantomData,
        }
    }

    pub fn with_max_partitions(mut self, max_partitions: usize) -> Self {
        self.max_partitions = max_partitions;
        self
    }

    /// Sends these settings with every `event_ids` lookup (on a cluster: which replicas may
    /// answer).
    pub fn with_lookup_settings(mut self, settings: Vec<(&'static str, String)>) -> Self {
        self.lookup_settings = settings;
        self
    }

    /// Without the `event_ids` lookups (repeats within a batch are still left out): what the
    /// lookups cost, for `make bench`. Resends and re-reads are then counted again.
    pub fn without_lookups(mut self) -> Self {
        self.lookup = false;
        self
    }

    async fn insert(&self, batch: &[&Record<E>]) -> Result<(), SinkError> {
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

/// One row of `event_ids` as a lookup returns it.
#[derive(Row, Deserialize)]
struct Seen {
    occurred_at_ms: u64,
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
}

impl<E: Table> ClickHouseSink<E> {
    /// The batch without the events `E::TABLE` already has and without repeats of an earlier
    /// record of the batch. An event is its (occurred_at, event_id): what a resend repeats.
    async fn unseen<'a>(&self, batch: &'a [Record<E>]) -> Result<Vec<&'a Record<E>>, SinkError> {
        let key = |r: &Record<E>| {
            (
                r.event.occurred_at().millis() as u64,
                r.event.event_id().as_uuid(),
            )
        };
        let mut firsts = HashSet::new();
        let fresh: Vec<&Record<E>> = batch.iter().filter(|r| firsts.insert(key(r))).collect();
        if !E::DEDUPLICATED || !self.lookup {
            return Ok(fresh);
        }
        // Looked up in time order, so each chunk covers a short span of the table (a live batch:
        // its last granules), a few chunks at a time.
        let mut keys: Vec<(u64, Uuid)> = fresh.iter().map(|r| key(r)).collect();
        keys.sort_unstable();
        let mut lookups = Vec::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            lookups.push(self.lookup_chunk(chunk));
        }
        let found: Vec<Vec<Seen>> = futures::stream::iter(lookups)
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .try_collect()
            .await?;
        let seen: HashSet<(u64, Uuid)> = found
            .into_iter()
            .flatten()
            .map(|s| (s.occurred_at_ms, s.event_id))
            .collect();
        Ok(fresh
            .into_iter()
            .filter(|r| !seen.contains(&key(r)))
            .collect())
    }
}

impl<E: Table> ClickHouseSink<E> {
    /// The rows of `event_ids` among these (time, id) keys, sorted by time.
    async fn lookup_chunk(&self, keys: &[(u64, Uuid)]) -> Result<Vec<Seen>, SinkError> {
        let (first, last) = (keys[0].0, keys[keys.len() - 1].0);
        let ids: Vec<String> = keys.iter().map(|k| k.1.to_string()).collect();
        // The month bounds let the server skip other partitions; the times pick the granules
        // (the table is ordered by stream, time, id): a short span as a range, a long one (a
        // backlog with stragglers) as the exact set; the ids pick the rows.
        let times = if last - first <= SHORT_SPAN_MS {
            "occurred_at_ms BETWEEN ? AND ?"
        } else {
            "occurred_at_ms IN (SELECT arrayJoin(?))"
        };
        let mut query = self
            .client
            .query(&format!(
                "SELECT occurred_at_ms, event_id FROM event_ids \
                 WHERE stream = ? AND occurred_at >= toDateTime(?) AND occurred_at <= toDateTime(?) \
                   AND {times} AND event_id IN (SELECT toUUID(arrayJoin(?)))"
            ))
            .bind(E::TABLE)
            .bind(first / 1000)
            .bind(last / 1000);
        for (name, value) in &self.lookup_settings {
            query = query.with_setting(*name, value.clone());
        }
        query = if last - first <= SHORT_SPAN_MS {
            query.bind(first).bind(last)
        } else {
            let mut set: Vec<u64> = keys.iter().map(|k| k.0).collect();
            set.dedup();
            query.bind(set)
        };
        query.bind(ids).fetch_all().await.map_err(classify)
    }
}

impl<E: Table> Sink for ClickHouseSink<E> {
    type Event = E;

    fn name(&self) -> &'static str {
        E::TABLE
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
