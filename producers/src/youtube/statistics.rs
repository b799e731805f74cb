//! Statistics snapshots: `videos.list` (part=snippet,statistics,contentDetails, up to 50 ids a
//! call, 1 quota unit) for the videos a search found, right after it, and again every
//! `YOUTUBE_STATS_INTERVAL_SECS` while they are younger than `YOUTUBE_STATS_MAX_AGE_DAYS`;
//! `channels.list` (part=snippet,statistics, up to 50 ids, 1 unit) for every channel seen, at once
//! and then at the same interval. Each snapshot is a VideoStatisticsFetched or a
//! ChannelStatisticsFetched event; the shared state records when each video and channel was last
//! snapshotted only after its events are acknowledged, so a crash in between never skips one. A
//! video snapshot names the one before it (the chain the keyword views sum) and waits in the
//! outbox until recorded: after a crash the same snapshot is sent again before any new one.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::try_join_all;
use schemas::domain::{EventId, Timestamp};
use schemas::events::{ChannelStatisticsFetched, VideoStatisticsFetched};
use serde::{Deserialize, Deserializer};

use super::{metrics, FetchError, Fetcher, Method, Thumbnail, TrackedVideo};

/// The most ids one `videos.list` or `channels.list` call takes.
const IDS_PER_CALL: usize = 50;

/// What one statistics refresh did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatisticsReport {
    /// VideoStatisticsFetched produced.
    pub videos: usize,
    /// ChannelStatisticsFetched produced.
    pub channels: usize,
}

#[derive(Debug, Deserialize)]
struct ListResponse<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoResource {
    id: String,
    snippet: VideoSnippet,
    #[serde(default)]
    statistics: Statistics,
    #[serde(default)]
    content_details: ContentDetails,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoSnippet {
    published_at: String,
    channel_id: String,
    #[serde(default)]
    title: String,
}

#[derive(Debug, Default, Deserialize)]
struct ContentDetails {
    #[serde(default)]
    duration: String,
}

/// The counts of `statistics`; the API sends them as decimal strings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statistics {
    #[serde(default, deserialize_with = "count")]
    view_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    like_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    comment_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    subscriber_count: Option<i64>,
    #[serde(default)]
    hidden_subscriber_count: bool,
    #[serde(default, deserialize_with = "count")]
    video_count: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelResource {
    id: String,
    snippet: ChannelSnippet,
    #[serde(default)]
    statistics: Statistics,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelSnippet {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    custom_url: String,
    published_at: String,
    #[serde(default)]
    thumbnails: BTreeMap<String, Thumbnail>,
}

/// A count sent as a string (`"123"`) or a number; anything else (negative, garbage) is absent.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .filter(|n| *n >= 0))
}

/// Seconds of an ISO 8601 duration as `contentDetails.duration` gives it (`PT4M13S`, `P1DT2H`,
/// `P0D` for a live stream); `None` if it does not read.
pub fn parse_duration(raw: &str) -> Option<i64> {
    let rest = raw.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if rest.is_empty() || rest.ends_with('T') {
        return None;
    }
    let mut total: i64 = 0;
    for (part, units) in [
        (date, &[('W', 604_800), ('D', 86_400)][..]),
        (time, &[('H', 3600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Designators come in their order, each at most once, each after a number.
            let (_, secs) = allowed.by_ref().find(|(u, _)| *u == c)?;
            let n: i64 = number.parse().ok()?;
            total = total.checked_add(n.checked_mul(*secs)?)?;
            number.clear();
        }
        if !number.is_empty() {
            return None;
        }
    }
    Some(total)
}

impl Fetcher {
    /// Snapshots `videos` (`videos.list`, 50 ids a call) and records it in the shared state with
    /// the channels they belong to; the number of snapshots produced. Videos the API does not
    /// return (deleted, private) produce nothing and are recorded as snapshotted all the same.
    pub(crate) async fn snapshot_videos(
        &self,
        videos: &[TrackedVideo],
    ) -> Result<usize, FetchError> {
        self.send_pending().await?;
        let mut produced = 0;
        for chunk in videos.chunks(IDS_PER_CALL) {
            let ids: Vec<&str> = chunk.iter().map(|v| v.video_id.as_str()).collect();
            let previous = self.state.last_snapshots(&ids).await?;
            let joined = ids.join(",");
            let page: ListResponse<VideoResource> = self
                .call(
                    Method::Videos,
                    &[
                        ("part", "snippet,statistics,contentDetails"),
                        ("id", &joined),
                        ("maxResults", "50"),
                    ],
                )
                .await?;
            let fetched_at = Timestamp::now();
            let asked: HashSet<&str> = ids.iter().copied().collect();
            let events: Vec<VideoStatisticsFetched> = page
                .items
                .into_iter()
                .filter(|v| asked.contains(v.id.as_str()))
                .filter_map(|v| {
                    let published_at =
                        Timestamp::parse_rfc3339("publishedAt", &v.snippet.published_at).ok()?;
                    let duration = v.content_details.duration;
                    let last = previous.get(&v.id);
                    Some(VideoStatisticsFetched {
                        event_id: EventId::new_random(),
                        video_id: v.id,
                        channel_id: v.snippet.channel_id,
                        title: v.snippet.title,
                        published_at,
                        view_count: v.statistics.view_count.unwrap_or(0),
                        like_count: v.statistics.like_count,
                        comment_count: v.statistics.comment_count,
                        duration_seconds: parse_duration(&duration).unwrap_or(0),
                        duration,
                        fetched_at,
                        // A first snapshot replaces nothing: 0 views under no words.
                        previous_view_count: Some(last.map_or(0, |l| l.view_count)),
                        previous_title: Some(last.map(|l| l.title.clone()).unwrap_or_default()),
                    })
                })
                .collect();
            self.state.keep_pending(&events).await?;
            produced += self.send_and_record(chunk, fetched_at, &events).await?;
        }
        Ok(produced)
    }

    /// Sends `events` (snapshots of `videos` taken at `fetched_at`), tracks their channels and
    /// records them as the videos' last snapshots, leaving the outbox.
    async fn send_and_record(
        &self,
        videos: &[TrackedVideo],
        fetched_at: Timestamp,
        events: &[VideoStatisticsFetched],
    ) -> Result<usize, FetchError> {
        try_join_all(events.iter().map(|e| self.producer.send(e, &[]))).await?;
        metrics::METRICS
            .snapshots
            .with_label_values(&["video"])
            .inc_by(events.len() as u64);
        let channels: Vec<&str> = {
            let mut seen = HashSet::new();
            events
                .iter()
                .map(|e| e.channel_id.as_str())
                .chain(videos.iter().map(|v| v.channel_id.as_str()))
                .filter(|c| !c.is_empty() && seen.insert(*c))
                .collect()
        };
        self.state.track_channels(&channels).await?;
        self.state
            .snapshotted_videos(videos, fetched_at.millis(), events)
            .await?;
        Ok(events.len())
    }

    /// Sends again, unchanged, the snapshots a run kept in the outbox and stopped before recording
    /// (it may or may not have sent them: the sink writes an event id once), and records them, so
    /// the next snapshot of each video follows the one the tables have.
    async fn send_pending(&self) -> Result<(), FetchError> {
        let pending = self.state.pending_snapshots().await?;
        if pending.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            snapshots = pending.len(),
            "sending again the snapshots a stopped run did not record"
        );
        let mut by_time: HashMap<i64, Vec<VideoStatisticsFetched>> = HashMap::new();
        for e in pending {
            by_time.entry(e.fetched_at.millis()).or_default().push(e);
        }
        for events in by_time.into_values() {
            let videos: Vec<TrackedVideo> = events
                .iter()
                .map(|e| TrackedVideo::new(&e.video_id, &e.channel_id, e.published_at))
                .collect();
            self.send_and_record(&videos, events[0].fetched_at, &events)
                .await?;
        }
        Ok(())
    }

    /// Snapshots again every tracked video younger than `YOUTUBE_STATS_MAX_AGE_DAYS` whose last
    /// snapshot is at least `YOUTUBE_STATS_INTERVAL_SECS` old, then every channel due likewise.
    pub async fn refresh_statistics(&self) -> Result<StatisticsReport, FetchError> {
        let started = Timestamp::now().millis();
        let due = started - self.config.stats_interval.as_millis() as i64;
        let young = started - self.config.stats_max_age.as_millis() as i64;
        let mut report = StatisticsReport::default();
        loop {
            let batch = self
                .state
                .due_videos(young, due, IDS_PER_CALL as i64)
                .await?;
            if batch.is_empty() {
                break;
            }
            report.videos += self.snapshot_videos(&batch).await?;
        }
        report.channels = self.refresh_channels().await?;
        tracing::info!(
            videos = report.videos,
            channels = report.channels,
            "statistics snapshotted"
        );
        Ok(report)
    }

    /// Snapshots every tracked channel not snapshotted for `YOUTUBE_STATS_INTERVAL_SECS` (a
    /// channel just seen is due at once); the number of snapshots produced.
    pub(crate) async fn refresh_channels(&self) -> Result<usize, FetchError> {
        let due = Timestamp::now().millis() - self.config.stats_interval.as_millis() as i64;
        let mut produced = 0;
        loop {
            let ids = self.state.due_channels(due, IDS_PER_CALL as i64).await?;
            if ids.is_empty() {
                return Ok(produced);
            }
            let joined = ids.join(",");
            let page: ListResponse<ChannelResource> = self
                .call(
                    Method::Channels,
                    &[
                        ("part", "snippet,statistics"),
                        ("id", &joined),
                        ("maxResults", "50"),
                    ],
                )
                .await?;
            let fetched_at = Timestamp::now();
            let events: Vec<ChannelStatisticsFetched> = page
                .items
                .into_iter()
                .filter(|c| ids.contains(&c.id))
                .filter_map(|c| {
                    let published_at =
                        Timestamp::parse_rfc3339("publishedAt", &c.snippet.published_at).ok()?;
                    let s = c.statistics;
                    Some(ChannelStatisticsFetched {
                        event_id: EventId::new_random(),
                        channel_id: c.id,
                        title: c.snippet.title,
                        description: c.snippet.description,
                        custom_url: c.snippet.custom_url,
                        published_at,
                        thumbnails: c
                            .snippet
                            .thumbnails
                            .into_iter()
                            .map(|(k, t)| (k, t.url))
                            .collect(),
                        subscriber_count: s.subscriber_count.filter(|_| !s.hidden_subscriber_count),
                        view_count: s.view_count.unwrap_or(0),
                        video_count: s.video_count.unwrap_or(0),
                        fetched_at,
                    })
                })
                .collect();
            try_join_all(events.iter().map(|e| self.producer.send(e, &[]))).await?;
            metrics::METRICS
                .snapshots
                .with_label_values(&["channel"])
                .inc_by(events.len() as u64);
            produced += events.len();
            self.state
                .snapshotted_channels(&ids, fetched_at.millis())
                .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn iso_8601_durations() {
        for (raw, secs) in [
            ("PT4M13S", 253),
            ("PT15S", 15),
            ("PT1H", 3600),
            ("PT1H2M3S", 3723),
            ("P1DT2H", 93_600),
            ("P0D", 0),
            ("P1W", 604_800),
        ] {
            assert_eq!(parse_duration(raw), Some(secs), "{raw}");
        }
        for bad in [
            "",
            "P",
            "PT",
            "4M13S",
            "PT4S13M",
            "PT13",
            "PTM",
            "PT1H1H",
            "P1DT",
            "PT99999999999999999999S",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
