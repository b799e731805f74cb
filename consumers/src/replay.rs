//! Re-drives the dead-letter topic into the topics its records came from, after a fix (a schema
//! registered again, a sink bug fixed). Each record goes back to `dlq.source.topic` with its original
//! key, bytes and headers (the `dlq.*` ones dropped, `dlq.replayed` added); a record a sink rejected
//! after decoding carries no bytes, so its original is read back from the source position.
//! Progress is committed in a consumer group, so running it twice does not replay twice; it stops
//! at the end the topic had when it started.

use std::collections::HashMap;
use std::time::Duration;

use producers::{ProducerConfig, RawProducer};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::runtime::dead_letter::{header, H_OFFSET, H_PARTITION, H_TOPIC};

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub brokers: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    /// Replay only records that came from this topic (others are left for a later run).
    pub only_source: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: u64,
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Produce(#[from] producers::ProduceError),
    #[error("record at offset {0} has no dlq.source.topic header")]
    NoSource(i64),
    #[error("the original of offset {0} could not be read back from its source")]
    OriginalGone(i64),
    #[error(transparent)]
    Config(#[from] common::config::ConfigError),
}

pub async fn replay(config: &ReplayConfig) -> Result<ReplayReport, ReplayError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let producer = RawProducer::new(&ProducerConfig::from_env(&config.brokers)?)?;
    let topic = &config.dead_letter_topic;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions())
        .unwrap_or_default();
    let mut asked = TopicPartitionList::new();
    for p in partitions {
        asked.add_partition(topic, p.id());
    }
    let committed = consumer.committed_offsets(asked, Duration::from_secs(10))?;
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        let start = committed
            .find_partition(topic, p.id())
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(low)
            .max(low);
        if start < high {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(start))?;
            ends.insert(p.id(), high);
        }
    }
    let mut report = ReplayReport::default();
    if ends.is_empty() {
        return Ok(report);
    }
    consumer.assign(&tpl)?;
    while !ends.is_empty() {
        let msg = consumer.recv().await?.detach();
        let (partition, offset) = (msg.partition(), msg.offset());
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if offset < end {
            if replay_one(config, &producer, &msg).await? {
                report.replayed += 1;
            } else {
                report.skipped += 1;
            }
            let mut done = TopicPartitionList::new();
            done.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
            consumer.commit(&done, CommitMode::Sync)?;
        }
        if offset + 1 >= end {
            ends.remove(&partition);
        }
    }
    Ok(report)
}

/// Sends one dead letter back to its source; false when `only_source` excludes it.
async fn replay_one(
    config: &ReplayConfig,
    producer: &RawProducer,
    msg: &OwnedMessage,
) -> Result<bool, ReplayError> {
    let source = header(msg, H_TOPIC).ok_or(ReplayError::NoSource(msg.offset()))?;
    if config
        .only_source
        .as_ref()
        .is_some_and(|only| *only != source)
    {
        return Ok(false);
    }
    let original;
    let (key, payload, headers_of) = match msg.payload() {
        Some(p) => (msg.key(), Some(p), msg),
        None => {
            original = read_original(config, msg, &source)?;
            (original.key(), original.payload(), &original)
        }
    };
    let replayed = format!("{}:{}", msg.topic(), msg.offset());
    let mut headers: Vec<(String, String)> = headers_of
        .headers()
        .map(|hs| {
            hs.iter()
                .filter(|h| !h.key.starts_with("dlq."))
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    headers.push(("dlq.replayed".into(), replayed));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    producer.send(&source, key, payload, &refs).await?;
    Ok(true)
}

/// The record at the source position a dead letter names.
fn read_original(
    config: &ReplayConfig,
    msg: &OwnedMessage,
    source: &str,
) -> Result<OwnedMessage, ReplayError> {
    let gone = || ReplayError::OriginalGone(msg.offset());
    let partition: i32 = header(msg, H_PARTITION)
        .and_then(|p| p.parse().ok())
        .ok_or_else(gone)?;
    let offset: i64 = header(msg, H_OFFSET)
        .and_then(|o| o.parse().ok())
        .ok_or_else(gone)?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", format!("{}-reader", config.group_id))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(source, partition, Offset::Offset(offset))?;
    reader.assign(&tpl)?;
    for _ in 0..50 {
        if let Some(result) = reader.poll(Duration::from_millis(200)) {
            let m = result?;
            if m.offset() == offset {
                return Ok(m.detach());
            }
        }
    }
    Err(gone())
}
