//! The dead-letter topic: the original key and bytes, the original headers, and headers that say
//! where the record came from and why it was refused (for a sink's refusal, the database's own error
//! text, and when it was produced). `consumers replay` re-drives them. The topic may be on its own
//! cluster (`DEAD_LETTER_BROKERS`) and keeps its records longer than the sources
//! (`DEAD_LETTER_RETENTION`, set by `ugc-init`).

use producers::{ProducerConfig, RawProducer};
use rdkafka::message::{Headers, Message};

pub(crate) use super::pending::DeadLetter;
use super::{RuntimeConfig, RuntimeError};

pub const H_TOPIC: &str = "dlq.source.topic";
pub const H_PARTITION: &str = "dlq.source.partition";
pub const H_OFFSET: &str = "dlq.source.offset";
pub const H_ERROR: &str = "dlq.error";
pub const H_CONSUMER: &str = "dlq.consumer";
/// When the source record was produced (epoch ms): replay produces it again with this timestamp,
/// so the sinks' time bounds judge it as they did the first time.
pub const H_TIMESTAMP: &str = "dlq.source.timestamp";

/// A header's value as text, for any message (borrowed from a poll or owned).
pub fn header<M: Message>(msg: &M, name: &str) -> Option<String> {
    msg.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub(crate) struct DeadLetters {
    producer: RawProducer,
    topic: String,
    consumer_name: String,
}

impl DeadLetters {
    pub(crate) fn new(config: &RuntimeConfig, sink: &str) -> Result<Self, RuntimeError> {
        let pconf = ProducerConfig::from_env(&config.dead_letter_brokers)
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
            let s = &d.source;
            let partition = s.partition().to_string();
            let offset = s.offset().to_string();
            let produced = s.timestamp().to_millis().map(|ms| ms.to_string());
            let source = s.topic();
            async move {
                let original: Vec<(&str, String)> = s
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .filter(|h| !h.key.starts_with("dlq."))
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                                (h.key, value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut headers: Vec<(&str, &str)> =
                    original.iter().map(|(k, v)| (*k, v.as_str())).collect();
                headers.extend([
                    (H_TOPIC, source),
                    (H_PARTITION, partition.as_str()),
                    (H_OFFSET, offset.as_str()),
                    (H_ERROR, d.error.as_str()),
                    (H_CONSUMER, self.consumer_name.as_str()),
                ]);
                if let Some(produced) = &produced {
                    headers.push((H_TIMESTAMP, produced.as_str()));
                }
                tracing::warn!(topic = %source, partition = s.partition(), offset = s.offset(), error = %d.error, "dead-lettered");
                self.producer
                    .send(&self.topic, s.key(), s.payload(), &headers)
                    .await
            }
        });
        for r in futures::future::join_all(sends).await {
            r?;
        }
        Ok(())
    }
}
