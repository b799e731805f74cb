//! The dead-letter topic: the original key and bytes, the original headers, and headers that say
//! where the record came from and why it was refused. `consumers replay` re-drives them.

use producers::{ProducerConfig, RawProducer};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::{RuntimeConfig, RuntimeError};

pub const H_TOPIC: &str = "dlq.source.topic";
pub const H_PARTITION: &str = "dlq.source.partition";
pub const H_OFFSET: &str = "dlq.source.offset";
pub const H_ERROR: &str = "dlq.error";
pub const H_CONSUMER: &str = "dlq.consumer";

/// A header's value as text, for any message (borrowed from a poll or owned).
pub fn header<M: Message>(msg: &M, name: &str) -> Option<String> {
    msg.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub(crate) struct DeadLetter {
    pub partition: i32,
    offset: i64,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    error: String,
}

impl DeadLetter {
    pub(crate) fn from_message(msg: &BorrowedMessage<'_>, error: String) -> Self {
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            partition: msg.partition(),
            offset: msg.offset(),
            topic: msg.topic().to_string(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers,
            error,
        }
    }

    /// A decoded record the sink refused. Its bytes stay in the source topic; the headers say where.
    pub(crate) fn rejected(topic: &str, partition: i32, offset: i64, error: String) -> Self {
        Self {
            partition,
            offset,
            topic: topic.to_string(),
            key: None,
            payload: None,
            headers: Vec::new(),
            error,
        }
    }
}

pub(crate) struct DeadLetters {
    producer: RawProducer,
    topic: String,
    consumer_name: String,
}

impl DeadLetters {
    pub(crate) fn new(config: &RuntimeConfig, sink: &str) -> Result<Self, RuntimeError> {
        let pconf = ProducerConfig::from_env(&config.brokers)
            .map_err(|e| RuntimeError::Kafka(e.to_string()))?;
        Ok(Self {
            producer: RawProducer::new(&pconf).map_err(|e| RuntimeError::Kafka(e.to_string()))?,
            topic: config.dead_letter_topic.clone(),
            consumer_name: format!("{}/{}", config.group_id, sink),
        })
    }

    /// Sends every dead letter and waits for all acks.
    pub(crate) async fn send_all(
        &self,
        dead: &[DeadLetter],
    ) -> Result<(), producers::ProduceError> {
        let sends = dead.iter().map(|d| {
            let partition = d.partition.to_string();
            let offset = d.offset.to_string();
            let source = d.topic.as_str();
            async move {
                let mut headers: Vec<(&str, &str)> =
                    d.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                headers.extend([
                    (H_TOPIC, source),
                    (H_PARTITION, partition.as_str()),
                    (H_OFFSET, offset.as_str()),
                    (H_ERROR, d.error.as_str()),
                    (H_CONSUMER, self.consumer_name.as_str()),
                ]);
                tracing::warn!(topic = %source, partition = d.partition, offset = d.offset, error = %d.error, "dead-lettered");
                self.producer
                    .send(&self.topic, d.key.as_deref(), d.payload.as_deref(), &headers)
                    .await
            }
        });
        for r in futures::future::join_all(sends).await {
            r?;
        }
        Ok(())
    }
}
