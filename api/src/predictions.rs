//! The API's side of the views prediction request/reply: every instance reads every partition of
//! the reply topic (assigned, no consumer group: each instance needs every reply), stores each
//! reply in Redis under its request id (first answer wins; any instance then serves the poll) and
//! hands it to the request waiting in this instance, if any. At start it reads the last
//! `REPLAY_ON_START` replies of each partition again, so replies that arrived while it was down
//! still reach Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::events::ViewsPredicted;
use schemas::Codec;
use stores::replies::ReplyStore;
use tokio::sync::oneshot;

const REPLAY_ON_START: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum RepliesError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} has no partitions: create the topics first (ugc-init)")]
    NoTopic(String),
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<ViewsPredicted>>>>;

#[derive(Clone)]
pub struct Replies {
    waiters: Waiters,
    pub store: ReplyStore,
}

impl Replies {
    /// Starts reading `topic` on `brokers`.
    pub fn start(
        brokers: &str,
        topic: &str,
        codec: Codec,
        store: ReplyStore,
    ) -> Result<Self, RepliesError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("api-replies-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            // A reply waits for the fetch in progress when it lands on a broker that does not
            // answer a long poll early (the local one): 10 ms, not librdkafka's 500.
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut assignment = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                let from = (high - REPLAY_ON_START).max(low);
                assignment.add_partition_offset(topic, p.id(), Offset::Offset(from))?;
            }
        }
        if assignment.count() == 0 {
            return Err(RepliesError::NoTopic(topic.to_string()));
        }
        consumer.assign(&assignment)?;
        let replies = Self {
            waiters: Arc::default(),
            store,
        };
        tokio::spawn(listen(consumer, codec, replies.clone()));
        Ok(replies)
    }

    /// Registers a wait for `request_id`'s reply (before the request is produced).
    pub fn wait_for(&self, request_id: &str) -> oneshot::Receiver<ViewsPredicted> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("not poisoned")
            .insert(request_id.to_string(), tx);
        rx
    }

    /// Stops waiting for `request_id` (answered, or the wait is over).
    pub fn forget(&self, request_id: &str) {
        self.waiters
            .lock()
            .expect("not poisoned")
            .remove(request_id);
    }
}

async fn listen(consumer: StreamConsumer, codec: Codec, replies: Replies) {
    loop {
        let msg = match consumer.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "views prediction replies: kafka");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let reply = match codec
            .decode::<ViewsPredicted>(msg.payload().unwrap_or_default())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, offset = msg.offset(), "an unreadable views prediction reply; skipped");
                continue;
            }
        };
        let json = match serde_json::to_string(&reply) {
            Ok(j) => j,
            Err(_) => continue,
        };
        // Redis down: the waiter below still gets it; a poll elsewhere answers 503 meanwhile.
        for attempt in 0..3 {
            match replies.store.answer(&reply.request_id, &json).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "could not store a views prediction reply");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let waiter = replies
            .waiters
            .lock()
            .expect("not poisoned")
            .remove(&reply.request_id);
        if let Some(tx) = waiter {
            let _ = tx.send(reply);
        }
    }
}
