//! Re-drives the dead-letter topic into the topics its records came from, after a fix (a schema
//! registered again, a sink bug fixed). Each record goes back to `dlq.source.topic` with its original
//! key, bytes, headers (the `dlq.*` ones dropped, `dlq.replayed` added) and timestamp (so the sinks'
//! time bounds judge it as they did the first time); a record without bytes is read back from the
//! source position.
//!
//! Progress is kept per source topic, in the consumer group `<group>.<source topic>` on the
//! dead-letter topic: a run commits, for each source it replayed, the position after the last record
//! of that source it re-drove; a record its source's group is already past is not replayed again,
//! and the records of other sources (`--only-source`) are left uncommitted for their own run. Each
//! run reads the dead-letter topic from its beginning (it keeps `DEAD_LETTER_RETENTION`, 30 days by
//! default) up to the end it had when the run started, found without the broker's high watermark
//! (the local broker reports it wrongly): a partition ends at its first record produced after the
//! start (such as a replayed record refused again), or when nothing arrives for `idle`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use producers::{ProducerConfig, RawProducer};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::runtime::dead_letter::{header, H_OFFSET, H_PARTITION, H_TIMESTAMP, H_TOPIC};

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The cluster of the source topics.
    pub brokers: String,
    /// The cluster of the dead-letter topic (`DEAD_LETTER_BROKERS`).
    pub dead_letter_brokers: String,
    pub dead_letter_topic: String,
    /// Progress goes to `<group_id>.<source topic>`.
    pub group_id: String,
    /// Replay only records that came from this topic (the others are left for a later run).
    pub only_source: Option<String>,
    /// A partition with nothing new for this long is at its end.
    pub idle: Duration,
}

/// What a run did with one source topic's dead letters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// Produced again into the source.
    pub replayed: u64,
    /// Replayed by an earlier run (the source's group is past them).
    pub before: u64,
    /// Not this run's (`--only-source` another topic): left, uncommitted, for a later run.
    pub left: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub sources: BTreeMap<String, SourceReport>,
}

impl ReplayReport {
    pub fn replayed(&self) -> u64 {
        self.sources.values().map(|s| s.replayed).sum()
    }
    pub fn left(&self) -> u64 {
        self.sources.values().map(|s| s.left).sum()
    }
    pub fn read(&self) -> u64 {
        self.sources
            .values()
            .map(|s| s.replayed + s.before + s.left)
            .sum()
    }
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

/// One source topic's progress group: where it was, where this run got.
struct SourceGroup {
    consumer: BaseConsumer,
    committed: HashMap<i32, i64>,
    next: HashMap<i32, i64>,
}

impl SourceGroup {
    fn open(config: &ReplayConfig, source: &str, partitions: &[i32]) -> Result<Self, ReplayError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.dead_letter_brokers)
            .set("group.id", format!("{}.{source}", config.group_id))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut asked = TopicPartitionList::new();
        for p in partitions {
            asked.add_partition(&config.dead_letter_topic, *p);
        }
        let committed = consumer
            .committed_offsets(asked, Duration::from_secs(10))?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        Ok(Self {
            consumer,
            committed,
            next: HashMap::new(),
        })
    }

    fn commit(&mut self, topic: &str) -> Result<(), ReplayError> {
        if self.next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.next {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync)?;
        self.committed.extend(self.next.drain());
        Ok(())
    }
}

/// Replays the dead letters; `progress` is called every couple of seconds with the report so far.
pub async fn replay(
    config: &ReplayConfig,
    progress: impl Fn(&ReplayReport),
) -> Result<ReplayReport, ReplayError> {
    let started_ms = schemas::domain::Timestamp::now().millis();
    let topic = &config.dead_letter_topic;
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.dead_letter_brokers)
        .set("group.id", format!("{}.reader", config.group_id))
        .set("enable.auto.commit", "false")
        .create()?;
    let producer = RawProducer::new(&ProducerConfig::from_env(&config.brokers)?)?;
    let metadata = reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut report = ReplayReport::default();
    if partitions.is_empty() {
        return Ok(report);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    let mut open: HashSet<i32> = partitions.iter().copied().collect();
    let mut groups: HashMap<String, SourceGroup> = HashMap::new();
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        let msg = match tokio::time::timeout(config.idle, reader.recv()).await {
            Err(_) => break, // nothing for `idle`: every partition is at its end
            Ok(msg) => msg?.detach(),
        };
        let (partition, offset) = (msg.partition(), msg.offset());
        if !open.contains(&partition) {
            continue;
        }
        if msg.timestamp().to_millis().is_some_and(|t| t >= started_ms) {
            open.remove(&partition); // dead-lettered after this run started: the next run's
            continue;
        }
        let source = header(&msg, H_TOPIC).ok_or(ReplayError::NoSource(offset))?;
        let counts = report.sources.entry(source.clone()).or_default();
        if config
            .only_source
            .as_ref()
            .is_some_and(|only| *only != source)
        {
            counts.left += 1;
            continue;
        }
        if !groups.contains_key(&source) {
            groups.insert(
                source.clone(),
                SourceGroup::open(config, &source, &partitions)?,
            );
        }
        let group = groups.get_mut(&source).expect("just inserted");
        if group.committed.get(&partition).is_some_and(|c| offset < *c) {
            counts.before += 1;
            continue;
        }
        replay_one(config, &producer, &msg, &source).await?;
        counts.replayed += 1;
        group.next.insert(partition, offset + 1);
        if last_progress.elapsed() >= Duration::from_secs(2) {
            for g in groups.values_mut() {
                g.commit(topic)?;
            }
            progress(&report);
            last_progress = Instant::now();
        }
    }
    for g in groups.values_mut() {
        g.commit(topic)?;
    }
    Ok(report)
}

/// Sends one dead letter back to `source`, with the original's timestamp.
async fn replay_one(
    config: &ReplayConfig,
    producer: &RawProducer,
    msg: &OwnedMessage,
    source: &str,
) -> Result<(), ReplayError> {
    let original;
    let (key, payload, headers_of) = match msg.payload() {
        Some(p) => (msg.key(), Some(p), msg),
        None => {
            original = read_original(config, msg, source)?;
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
    let produced = header(msg, H_TIMESTAMP).and_then(|t| t.parse().ok());
    producer
        .send_at(source, key, payload, &refs, produced)
        .await?;
    Ok(())
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
