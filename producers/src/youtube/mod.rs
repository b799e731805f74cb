//! The YouTube fetcher: for each query, `search.list` (type=video, order=date, publishedAfter = the
//! newest video seen for the query minus an overlap, 50 per page, following nextPageToken up to a
//! page limit), one VideoFetched event per video. A walk the page limit stops is recorded
//! ([`Walk`]) and resumed by the next fetch of the query (publishedBefore = the oldest video it
//! reached); the query's cursor moves only once a walk reached its end, so no video is skipped.
//!
//! Several API keys: on a quota error (403 `quotaExceeded` / `dailyLimitExceeded`) the key is marked
//! exhausted until the next reset (midnight Pacific) in MongoDB, where every fetcher instance sees it,
//! and the call is retried with the next key. When all are exhausted the fetcher says so and waits.
//! Other failures (5xx, 429, network) back off with jitter. Keys never reach logs: they are named
//! (`YOUTUBE_API_KEYS=name:key,...`), errors are stripped of URLs, and only names are stored.

mod call;
mod metrics;
mod quota;
mod state;
mod statistics;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::future::try_join_all;
use schemas::domain::{EventId, Timestamp};
use schemas::events::VideoFetched;
use serde::Deserialize;

pub use call::Method;
pub use quota::next_reset_ms;
pub use state::{LastSnapshot, SharedState, TrackedVideo, Walk};
pub use statistics::{parse_duration, StatisticsReport};

use crate::{EventProducer, ProduceError};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Every key is out of quota until `until_ms`.
    #[error("all API keys are out of quota until {until_ms} (epoch ms)")]
    AllKeysExhausted { until_ms: i64 },
    #[error("YouTube API answered {status} ({reason}): {message}")]
    Api {
        status: u16,
        /// The first `errors[].reason` (`invalidParameter`, `keyInvalid`, ...), or empty.
        reason: String,
        message: String,
    },
    #[error("YouTube API unreachable after retries: {0}")]
    Unreachable(String),
    #[error("shared state (MongoDB): {0}")]
    State(#[from] mongodb::error::Error),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error("configuration: {0}")]
    Config(String),
}

impl FetchError {
    /// Whether the same request fails again whatever happens to the API, its keys or the network:
    /// the API refused the query itself (`400` other than a bad key, `404`). Quota, a bad or
    /// expired key (an operator's fix), `429`, `5xx`, the network, MongoDB and Kafka pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            FetchError::Api { status, reason, .. } => {
                matches!(status, 400 | 404)
                    && !matches!(reason.as_str(), "keyInvalid" | "keyExpired")
            }
            _ => false,
        }
    }
}

/// A named API key; the name is what logs and the shared state see.
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.name)
    }
}

/// `name:key,name:key` (a bare `key` is named by its position: `key1`, `key2`, ...).
pub fn parse_keys(raw: &str) -> Vec<ApiKey> {
    raw.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| match k.split_once(':') {
            Some((name, secret)) => ApiKey {
                name: name.to_string(),
                secret: secret.to_string(),
            },
            None => ApiKey {
                name: format!("key{}", i + 1),
                secret: k.to_string(),
            },
        })
        .collect()
}

/// See the README's table (`YOUTUBE_*`).
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    pub base_url: String,
    pub keys: Vec<ApiKey>,
    pub queries: Vec<String>,
    pub interval: Duration,
    pub max_pages: u32,
    pub overlap: Duration,
    /// How far back the first fetch of a query looks.
    pub initial_lookback: Duration,
    pub retries: u32,
    /// Videos published longer ago than this are no longer re-snapshotted.
    pub stats_max_age: Duration,
    /// How often a video's and a channel's statistics are snapshotted again.
    pub stats_interval: Duration,
}

impl FetcherConfig {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        use common::config::{env_or, env_parse};
        Ok(Self {
            base_url: env_or("YOUTUBE_BASE_URL", "https://www.googleapis.com/youtube/v3"),
            keys: parse_keys(&std::env::var("YOUTUBE_API_KEYS").unwrap_or_default()),
            queries: env_or("YOUTUBE_QUERIES", "movie trailer")
                .split(',')
                .map(|q| q.trim().to_string())
                .filter(|q| !q.is_empty())
                .collect(),
            interval: Duration::from_secs(env_parse("YOUTUBE_INTERVAL_SECS", 300)?),
            max_pages: env_parse("YOUTUBE_MAX_PAGES", 5)?,
            overlap: Duration::from_secs(env_parse("YOUTUBE_OVERLAP_SECS", 300)?),
            initial_lookback: Duration::from_secs(env_parse("YOUTUBE_LOOKBACK_SECS", 86_400)?),
            retries: env_parse("YOUTUBE_RETRIES", 4)?,
            stats_max_age: Duration::from_secs(
                86_400
                    * at_least_one(
                        "YOUTUBE_STATS_MAX_AGE_DAYS",
                        env_parse::<u32>("YOUTUBE_STATS_MAX_AGE_DAYS", 30)?.into(),
                    )?,
            ),
            stats_interval: Duration::from_secs(at_least_one(
                "YOUTUBE_STATS_INTERVAL_SECS",
                env_parse("YOUTUBE_STATS_INTERVAL_SECS", 21_600)?,
            )?),
        })
    }
}

fn at_least_one(name: &str, n: u64) -> Result<u64, common::config::ConfigError> {
    if n == 0 {
        return Err(common::config::ConfigError {
            name: name.to_string(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(n)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchListResponse {
    next_page_token: Option<String>,
    #[serde(default)]
    items: Vec<SearchResult>,
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    id: ResourceId,
    snippet: Snippet,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceId {
    video_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snippet {
    published_at: String,
    channel_id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    thumbnails: BTreeMap<String, Thumbnail>,
    #[serde(default)]
    channel_title: String,
}

#[derive(Debug, Deserialize)]
struct Thumbnail {
    url: String,
}

/// What one query's fetch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchReport {
    pub pages: u32,
    pub videos: usize,
    /// VideoStatisticsFetched produced for the videos found.
    pub statistics: usize,
    /// ChannelStatisticsFetched produced (channels seen for the first time, or due again).
    pub channels: usize,
}

pub struct Fetcher {
    http: reqwest::Client,
    config: FetcherConfig,
    state: SharedState,
    producer: EventProducer,
}

impl Fetcher {
    pub fn new(
        config: FetcherConfig,
        state: SharedState,
        producer: EventProducer,
    ) -> Result<Self, FetchError> {
        if config.keys.is_empty() {
            return Err(FetchError::Config("YOUTUBE_API_KEYS is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| FetchError::Config(e.without_url().to_string()))?;
        Ok(Self {
            http,
            config,
            state,
            producer,
        })
    }

    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// Fetches one query: resumes its stopped walk, or walks from its cursor; produces the videos;
    /// then records where the page limit stopped the walk, or moves the cursor if it is done.
    pub async fn fetch_query(&self, query: &str) -> Result<FetchReport, FetchError> {
        let now = Timestamp::now().millis();
        let mut walk = match self.state.walk(query).await? {
            Some(walk) => {
                tracing::info!(
                    query,
                    before_ms = walk.before_ms,
                    "resuming a walk the page limit stopped"
                );
                walk
            }
            None => {
                let after_ms = match self.state.cursor(query).await? {
                    Some(last) => last - self.config.overlap.as_millis() as i64,
                    None => now - self.config.initial_lookback.as_millis() as i64,
                };
                Walk {
                    after_ms,
                    before_ms: i64::MAX,
                    newest_ms: i64::MIN,
                    boundary_ids: Vec::new(),
                }
            }
        };
        let published_after = rfc3339(walk.after_ms);
        let published_before = (walk.before_ms != i64::MAX).then(|| rfc3339(walk.before_ms));
        let boundary: HashSet<String> = walk.boundary_ids.iter().cloned().collect();
        let boundary_ms = walk.before_ms;
        let mut report = FetchReport::default();
        let mut seen = HashSet::new();
        let mut token: Option<String> = None;
        while report.pages < self.config.max_pages {
            let page = self
                .search_page(
                    query,
                    &published_after,
                    published_before.as_deref(),
                    token.as_deref(),
                )
                .await?;
            report.pages += 1;
            let fetched_at = Timestamp::now();
            let events: Vec<VideoFetched> = page
                .items
                .into_iter()
                .filter_map(|item| {
                    let video_id = item.id.video_id?;
                    let published_at =
                        Timestamp::parse_rfc3339("publishedAt", &item.snippet.published_at).ok()?;
                    let fetched_before =
                        published_at.millis() == boundary_ms && boundary.contains(&video_id);
                    (!fetched_before && seen.insert(video_id.clone())).then(|| VideoFetched {
                        event_id: EventId::new_random(),
                        video_id,
                        title: item.snippet.title,
                        description: item.snippet.description,
                        channel_id: item.snippet.channel_id,
                        channel_title: item.snippet.channel_title,
                        published_at,
                        thumbnails: item
                            .snippet
                            .thumbnails
                            .into_iter()
                            .map(|(k, t)| (k, t.url))
                            .collect(),
                        query: query.to_string(),
                        fetched_at,
                    })
                })
                .collect();
            try_join_all(events.iter().map(|e| self.producer.send(e, &[]))).await?;
            report.videos += events.len();
            metrics::METRICS.videos.inc_by(events.len() as u64);
            // Their statistics now, before the walk records the page as done: a failure here
            // fetches the page again next time.
            let found: Vec<TrackedVideo> = events
                .iter()
                .map(|e| TrackedVideo::new(&e.video_id, &e.channel_id, e.published_at))
                .collect();
            report.statistics += self.snapshot_videos(&found).await?;
            for e in &events {
                let at = e.published_at.millis();
                walk.newest_ms = walk.newest_ms.max(at);
                if at < walk.before_ms {
                    walk.before_ms = at;
                    walk.boundary_ids.clear();
                }
                if at == walk.before_ms {
                    walk.boundary_ids.push(e.video_id.clone());
                }
            }
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        if token.is_some() && walk.before_ms != i64::MAX {
            // Stopped by the page limit: the rest of this walk comes next time.
            self.state.save_walk(query, &walk).await?;
        } else {
            let newest = (walk.newest_ms != i64::MIN).then_some(walk.newest_ms);
            self.state.finish_walk(query, newest).await?;
        }
        // The channels first seen in this fetch (every channel already due, too).
        report.channels = self.refresh_channels().await?;
        tracing::info!(
            query,
            pages = report.pages,
            videos = report.videos,
            statistics = report.statistics,
            channels = report.channels,
            done = token.is_none(),
            "query fetched"
        );
        Ok(report)
    }

    /// One `search.list` page.
    async fn search_page(
        &self,
        query: &str,
        published_after: &str,
        published_before: Option<&str>,
        token: Option<&str>,
    ) -> Result<SearchListResponse, FetchError> {
        let mut params = vec![
            ("part", "snippet"),
            ("type", "video"),
            ("order", "date"),
            ("maxResults", "50"),
            ("q", query),
            ("publishedAfter", published_after),
        ];
        if let Some(before) = published_before {
            params.push(("publishedBefore", before));
        }
        if let Some(t) = token {
            params.push(("pageToken", t));
        }
        self.call(Method::Search, &params).await
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
