//! The fetcher's Prometheus metrics (process-wide registry): calls to search.list by key *name* and
//! outcome, how many keys are out of quota, whether all are (the fetcher is waiting), and the videos
//! produced.

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_counter_vec, register_int_gauge};
use prometheus::{IntCounter, IntCounterVec, IntGauge};

pub(crate) struct Metrics {
    /// outcome: ok, quota, transient, error.
    pub requests: IntCounterVec,
    pub keys_exhausted: IntGauge,
    pub all_exhausted: IntGauge,
    pub videos: IntCounter,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: register_int_counter_vec!(
        "youtube_requests_total",
        "search.list calls by API key name and outcome (ok, quota, transient, error)",
        &["key", "outcome"]
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
});
