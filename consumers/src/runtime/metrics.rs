//! The runtime's Prometheus metrics, in the process-wide registry (`common::metrics` serves it),
//! labelled by sink: records consumed, written, dead-lettered and left out as duplicates, write
//! retries, batch latency, and the lag per partition (librdkafka's statistics: the partition's end
//! minus the group's committed offset, i.e. records not yet written; on a broker that reports the
//! partition's end wrongly, as the local one does, the lag is wrong too: see the README).

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounter, IntCounterVec, IntGaugeVec,
};
use rdkafka::statistics::Statistics;

struct Families {
    consumed: IntCounterVec,
    written: IntCounterVec,
    dead_lettered: IntCounterVec,
    duplicates: IntCounterVec,
    retries: IntCounterVec,
    batch_seconds: HistogramVec,
    lag: IntGaugeVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    Families {
    consumed: register_int_counter_vec!(
        "consumer_records_consumed_total",
        "Records read from Kafka",
        &["sink"]
    )
    .expect("metric definition"),
    written: register_int_counter_vec!(
        "consumer_records_written_total",
        "Records written by the sink and committed",
        &["sink"]
    )
    .expect("metric definition"),
    dead_lettered: register_int_counter_vec!(
        "consumer_records_dead_lettered_total",
        "Records sent to the dead-letter topic (undecodable or rejected by the sink)",
        &["sink"]
    )
    .expect("metric definition"),
    duplicates: register_int_counter_vec!(
        "consumer_records_duplicates_total",
        "Records left out because the sink already had them (a resend, or read again after a crash)",
        &["sink"]
    )
    .expect("metric definition"),
    retries: register_int_counter_vec!(
        "consumer_write_retries_total",
        "Batch writes that failed with a retriable error and were retried",
        &["sink"]
    )
    .expect("metric definition"),
    batch_seconds: register_histogram_vec!(
        "consumer_batch_duration_seconds",
        "From a batch's first record to its commit",
        &["sink"],
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric definition"),
    lag: register_int_gauge_vec!(
        "consumer_lag",
        "Records between the group's committed offset and the partition's end",
        &["sink", "topic", "partition"]
    )
    .expect("metric definition"),
}
});

/// One runtime's handles, resolved once.
#[derive(Clone)]
pub(crate) struct SinkMetrics {
    sink: &'static str,
    pub consumed: IntCounter,
    pub written: IntCounter,
    pub dead_lettered: IntCounter,
    pub duplicates: IntCounter,
    pub retries: IntCounter,
    pub batch_seconds: prometheus::Histogram,
}

impl SinkMetrics {
    pub fn new(sink: &'static str) -> Self {
        let f = &*FAMILIES;
        Self {
            sink,
            consumed: f.consumed.with_label_values(&[sink]),
            written: f.written.with_label_values(&[sink]),
            dead_lettered: f.dead_lettered.with_label_values(&[sink]),
            duplicates: f.duplicates.with_label_values(&[sink]),
            retries: f.retries.with_label_values(&[sink]),
            batch_seconds: f.batch_seconds.with_label_values(&[sink]),
        }
    }

    /// Lag per partition from a statistics report: set for the partitions this consumer owns and
    /// whose lag librdkafka knows, removed for the others (revoked ones belong to another member).
    pub fn record_lag(&self, stats: &Statistics) {
        let lag = &FAMILIES.lag;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 {
                    continue; // librdkafka's internal "unassigned" partition
                }
                let id = partition.to_string();
                let labels = [self.sink, topic.as_str(), id.as_str()];
                if p.desired && p.consumer_lag >= 0 {
                    lag.with_label_values(&labels).set(p.consumer_lag);
                } else {
                    let _ = lag.remove_label_values(&labels);
                }
            }
        }
    }
}
