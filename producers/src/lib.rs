//! Kafka producing for the pipeline: an idempotent producer that encodes events as Avro through the
//! schema registry, topic administration, and the producers that fetch from outside (YouTube).

pub mod admin;
pub mod youtube;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;
use schemas::{Codec, CodecError, Event};

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("encoding the event: {0}")]
    Encode(#[from] CodecError),
    /// The local queue is full: the broker is not keeping up or not reachable.
    #[error("the producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge within the delivery bound.
    #[error("kafka did not acknowledge in time: {0}")]
    Delivery(KafkaError),
    #[error("kafka client: {0}")]
    Client(KafkaError),
    #[error("creating topic {topic}: {code}")]
    Admin {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl ProduceError {
    /// True when the write may succeed later (callers answer 503 / retry), false for a broken
    /// contract or configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            ProduceError::Encode(e) => e.is_retriable(),
            ProduceError::QueueFull | ProduceError::Delivery(_) => true,
            ProduceError::Client(_) | ProduceError::Admin { .. } => false,
        }
    }
}

/// Producer settings; `from_env` documents the variables.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub brokers: String,
    /// `KAFKA_DELIVERY_TIMEOUT_MS`: how long a write may wait for the broker's ack before it fails
    /// (the API then answers 503). librdkafka retries within this bound.
    pub delivery_timeout: Duration,
    /// `KAFKA_LINGER_MS`: how long the producer waits to fill a batch.
    pub linger_ms: u32,
    /// `KAFKA_QUEUE_MAX_MESSAGES`: the local queue bound; beyond it writes fail fast.
    pub queue_max_messages: u32,
}

impl ProducerConfig {
    pub fn from_env(brokers: &str) -> Result<Self, common::config::ConfigError> {
        use common::config::env_parse;
        Ok(Self {
            brokers: brokers.to_string(),
            delivery_timeout: Duration::from_millis(env_parse("KAFKA_DELIVERY_TIMEOUT_MS", 5000)?),
            linger_ms: env_parse("KAFKA_LINGER_MS", 2)?,
            queue_max_messages: env_parse("KAFKA_QUEUE_MAX_MESSAGES", 100_000)?,
        })
    }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent (acks=all, enable.idempotence) producer of Avro events. Cheap to clone.
#[derive(Clone)]
pub struct EventProducer {
    raw: RawProducer,
    codec: Codec,
}

impl EventProducer {
    pub fn new(config: &ProducerConfig, codec: Codec) -> Result<Self, ProduceError> {
        Ok(Self {
            raw: RawProducer::new(config)?,
            codec,
        })
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    pub fn raw(&self) -> &RawProducer {
        &self.raw
    }

    /// Encodes `event`, sends it keyed by `event.key()` and returns once the broker acknowledged.
    pub async fn send<E: Event>(
        &self,
        event: &E,
        headers: &[(&str, &str)],
    ) -> Result<Delivery, ProduceError> {
        self.send_to(E::TOPIC, event, headers).await
    }

    /// [`EventProducer::send`] to another topic than the event's own (a reply topic the request
    /// named), with the event's schema.
    pub async fn send_to<E: Event>(
        &self,
        topic: &str,
        event: &E,
        headers: &[(&str, &str)],
    ) -> Result<Delivery, ProduceError> {
        let payload = self.codec.encode(event).await?;
        let key = event.key();
        self.raw
            .send(topic, Some(key.as_bytes()), Some(&payload), headers)
            .await
    }
}

/// What one librdkafka producer has seen: whether it delivered anything (so it holds a producer
/// id and sequence numbers), and whether it then lost every broker.
#[derive(Default)]
struct Session {
    delivered: AtomicBool,
    lost_brokers: AtomicBool,
}

/// Watches a producer's global errors: all brokers down after a delivery marks the session lost.
struct SessionContext(Arc<Session>);

impl ClientContext for SessionContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
            && self.0.delivered.load(Ordering::Relaxed)
        {
            self.0.lost_brokers.store(true, Ordering::Relaxed);
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

struct Current {
    producer: FutureProducer<SessionContext>,
    session: Arc<Session>,
}

/// The idempotent producer underneath, for bytes that are already encoded (dead letters, replays).
///
/// When every broker was lost after this producer delivered, the next send first replaces the
/// librdkafka producer (what it still had queued or in flight fails now instead of being sent
/// later). The new one asks the broker for a new producer id, so no batch carrying the old id and
/// sequence numbers reaches a broker that restarted without that producer's state — which Tansu
/// 0.6's SQLite storage cannot take (docs/durability.md). Idempotence is per producer session
/// either way; a record the caller was told failed may still have landed, and the sinks leave out
/// a resend.
#[derive(Clone)]
pub struct RawProducer {
    config: Arc<ProducerConfig>,
    current: Arc<RwLock<Arc<Current>>>,
    replaced: Arc<AtomicU64>,
}

impl RawProducer {
    pub fn new(config: &ProducerConfig) -> Result<Self, ProduceError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(Self::connect(config)?))),
            config: Arc::new(config.clone()),
            replaced: Arc::new(AtomicU64::new(0)),
        })
    }

    fn connect(config: &ProducerConfig) -> Result<Current, ProduceError> {
        let session = Arc::new(Session::default());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", config.linger_ms.to_string())
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                config.queue_max_messages.to_string(),
            )
            .create_with_context(SessionContext(session.clone()))
            .map_err(ProduceError::Client)?;
        Ok(Current { producer, session })
    }

    /// How many times the producer was replaced after losing every broker.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<Current> {
        self.current.read().expect("producer lock").clone()
    }

    /// The producer to send with: a new one if the current one lost every broker after it
    /// delivered.
    fn producer(&self) -> Result<Arc<Current>, ProduceError> {
        let current = self.current();
        if !current.session.lost_brokers.load(Ordering::Relaxed) {
            return Ok(current);
        }
        let mut slot = self.current.write().expect("producer lock");
        if !Arc::ptr_eq(&slot, &current) {
            return Ok(slot.clone()); // another send replaced it meanwhile
        }
        let fresh = Arc::new(Self::connect(&self.config)?);
        let old = std::mem::replace(&mut *slot, fresh.clone());
        drop(slot);
        self.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("every broker was lost: producing with a new producer (new producer id)");
        // Fail what the old one still holds now; destroying a producer can block, so off the
        // async workers.
        std::thread::spawn(move || {
            old.producer
                .purge(PurgeConfig::default().queue().inflight());
            drop(old);
        });
        Ok(fresh)
    }

    /// Sends bytes as they are and waits for the ack.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Delivery, ProduceError> {
        self.send_at(topic, key, payload, headers, None).await
    }

    /// [`RawProducer::send`] with the record's timestamp (epoch ms) set, e.g. to the original's
    /// when a record is produced again; `None`: now.
    pub async fn send_at(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
        timestamp_ms: Option<i64>,
    ) -> Result<Delivery, ProduceError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(owned);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        let current = self.producer()?;
        // Never wait for room in a full local queue: fail fast so callers can shed load.
        match current
            .producer
            .send(record, Timeout::After(Duration::ZERO))
            .await
        {
            Ok(d) => {
                current.session.delivered.store(true, Ordering::Relaxed);
                Ok(Delivery {
                    partition: d.partition,
                    offset: d.offset,
                })
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(ProduceError::QueueFull)
            }
            Err((e, _)) => Err(ProduceError::Delivery(e)),
        }
    }

    /// Asks the brokers for metadata: Ok when the cluster answers within `timeout`.
    pub async fn check(&self, timeout: Duration) -> Result<(), ProduceError> {
        let current = self.current();
        tokio::task::spawn_blocking(move || {
            current
                .producer
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|_| ())
                .map_err(ProduceError::Delivery)
        })
        .await
        .map_err(|_| ProduceError::Delivery(KafkaError::Canceled))?
    }

    /// Waits for everything in flight (used at shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.current().producer.flush(timeout);
    }
}
