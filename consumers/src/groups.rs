//! Consumer-group administration.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Commits `group`'s offsets at the current end of every partition of `topic`, so the group's next
/// consumer reads only what is produced from now on (a new sink that must not replay history,
/// benchmarks, tests).
pub fn commit_at_end(brokers: &str, group: &str, topic: &str) -> Result<(), KafkaError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
    }
    if tpl.count() == 0 {
        return Ok(()); // no partitions yet: the group will start at the beginning, which is the end
    }
    consumer.commit(&tpl, CommitMode::Sync)
}
