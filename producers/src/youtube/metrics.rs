//! The fetcher's Prometheus metrics (process-wide registry): Data API calls by key *name*, method
//! and outcome, the quota units they spent, how many keys are out of quota, whether all are (the
//! fetcher is waiting), and the videos and statistics snapshots produced.

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_counter_vec, register_int_gauge};
use prometheus::{IntCounter, IntCounterVec, IntGauge};

pub(crate) struct Metrics {
    /// key, method (search.list, videos.list, channels.list), outcome: ok, quota, transient, error.
    pub requests: IntCounterVec,
    /// key, method: the API's documented units per call.
    pub quota_units: IntCounterVec,
    /// kind: video, channel.
    pub snapshots: IntCounterVec,
    pub keys_exhausted: IntGauge,
    pub all_exhausted: IntGauge,
    pub videos: IntCounter,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    requests: register_int_counter_vec!(
        "youtube_requests_total",
        "YouTube Data API calls by API key name, method and outcome (ok, quota, transient, error)",
        &["key", "method", "outcome"]
    )
    .expect("metric definition"),
    quota_units: register_int_counter_vec!(
        "youtube_quota_units_total",
        "Quota units spent by API key name and method (search.list 100, videos.list 1, channels.list 1 per call)",
        &["key", "method"]
    )
    .expect("metric definition"),
    snapshots: register_int_counter_vec!(
        "youtube_statistics_snapshots_total",
        "Statistics snapshots produced (VideoStatisticsFetched, ChannelStatisticsFetched) by kind (video, channel)",
        &["kind"]
    )
    .expect("metric definition"),
    keys_exhausted: register_int_gauge!(
        "youtube_keys_exhausted",
        "Configured API keys out of quota until the next reset"
    )
    .expect("metric definition"),
    all_exhausted: register_int_gauge!(
        "youtube_all_keys_exhausted",
        "1 while every API key is out of quota and the fetcher waits for the reset"
    )
    .expect("metric definition"),
    videos: register_int_counter!(
        "youtube_videos_produced_total",
        "VideoFetched events produced"
    )
    .expect("metric definition"),
}
});
