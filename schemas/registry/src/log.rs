//! The `_schemas` topic as the registry's log: one reader task applies every record to the store in
//! order; writers append and wait until their record has been read back, so an answer given after a
//! write reflects the log, as on every other instance.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use producers::admin::{ensure_topics, TopicSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::error::RegistryError;
use crate::store::{LogRecord, Store};

const WAIT: Duration = Duration::from_secs(10);

pub struct SchemaLog {
    topic: String,
    producer: FutureProducer,
    consumer: Arc<StreamConsumer>,
    /// The offset after the last record applied.
    applied: watch::Receiver<i64>,
}

#[derive(Debug, thiserror::Error)]
#[error("kafka: {0}")]
pub struct LogError(String);

impl SchemaLog {
    /// Creates the topic if needed (compacted, one partition, as Confluent's), starts the reader and
    /// returns once the store holds everything the log held at start.
    pub async fn open(
        brokers: &str,
        topic: &str,
        store: Arc<RwLock<Store>>,
    ) -> Result<Self, LogError> {
        // Compacted and single-partition, as Confluent's: one total order of schema records.
        let spec = TopicSpec::new(topic, 1).with_config("cleanup.policy", "compact");
        ensure_topics(brokers, &[spec])
            .await
            .map_err(|e| LogError(e.to_string()))?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(|e| LogError(e.to_string()))?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "schema-registry-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| LogError(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .map_err(|e| LogError(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| LogError(e.to_string()))?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = watch::channel(0i64);
        tokio::spawn(read_loop(consumer.clone(), store, tx));
        let log = Self {
            topic: topic.to_string(),
            producer,
            consumer,
            applied: rx,
        };
        log.catch_up().await.map_err(|e| LogError(e.to_string()))?;
        Ok(log)
    }

    /// Waits until every record in the log at this moment has been applied.
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let (_, high) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5))
        })
        .await
        .map_err(|e| RegistryError::Store(e.to_string()))?
        .map_err(|e| RegistryError::Store(e.to_string()))?;
        self.wait_applied(high).await
    }

    /// Appends records in order and waits until the reader has applied them.
    pub async fn append(&self, records: Vec<LogRecord>) -> Result<(), RegistryError> {
        let mut last = -1;
        for (key, value) in records {
            let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic)
                .key(&key)
                .partition(0);
            if let Some(v) = value.as_ref() {
                record = record.payload(v);
            }
            let delivery = self
                .producer
                .send(record, WAIT)
                .await
                .map_err(|(e, _)| RegistryError::Store(e.to_string()))?;
            last = delivery.offset;
        }
        if last >= 0 {
            self.wait_applied(last + 1).await?;
        }
        Ok(())
    }

    async fn wait_applied(&self, next_offset: i64) -> Result<(), RegistryError> {
        let mut rx = self.applied.clone();
        tokio::time::timeout(WAIT, rx.wait_for(|applied| *applied >= next_offset))
            .await
            .map_err(|_| RegistryError::Timeout)?
            .map_err(|_| RegistryError::Store("log reader stopped".into()))?;
        Ok(())
    }
}

async fn read_loop(
    consumer: Arc<StreamConsumer>,
    store: Arc<RwLock<Store>>,
    tx: watch::Sender<i64>,
) {
    loop {
        match consumer.recv().await {
            Ok(msg) => {
                let key = msg.key().unwrap_or_default();
                if let Err(e) = store
                    .write()
                    .expect("store lock poisoned")
                    .apply(key, msg.payload())
                {
                    tracing::warn!(offset = msg.offset(), error = %e, "skipping malformed _schemas record");
                }
                tx.send_replace(msg.offset() + 1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading _schemas");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
