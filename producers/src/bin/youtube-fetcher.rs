//! The YouTube fetcher: every `YOUTUBE_INTERVAL_SECS`, each of `YOUTUBE_QUERIES`; and on demand, each
//! VideoFetchRequested (from `POST /api/v1/videos/fetch`, consumer group
//! `<CONSUMER_GROUP>.requests`). `youtube-fetcher --once` fetches every query once and exits.

use std::time::Duration;

use anyhow::Context;
use producers::youtube::{FetchError, Fetcher, FetcherConfig, SharedState};
use producers::{EventProducer, ProducerConfig};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::events::VideoFetchRequested;
use schemas::{Codec, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("youtube-fetcher");
    common::metrics::serve_from_env("127.0.0.1:9105").await?;
    let once = std::env::args().any(|a| a == "--once");
    let stack = common::config::StackConfig::from_env();
    let config = FetcherConfig::from_env()?;
    let codec = Codec::new(&stack.schema_registry_url)?;
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers)?,
        codec.clone(),
    )?;
    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url).await?;
    stores::mongo::migrate(&mongo, &stack.mongo_database).await?;
    let state = SharedState::new(mongo.database(&stack.mongo_database));
    let fetcher = Fetcher::new(config, state, producer).context("fetcher")?;
    tracing::info!(
        keys = ?fetcher.config().keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        queries = ?fetcher.config().queries,
        "youtube fetcher started"
    );
    if once {
        for query in fetcher.config().queries.clone() {
            fetch_until_done(&fetcher, &query).await?;
        }
        return Ok(());
    }
    let requests = requests(&stack, &codec, &fetcher);
    let periodic = async {
        let mut tick = tokio::time::interval(fetcher.config().interval);
        loop {
            tick.tick().await;
            for query in fetcher.config().queries.clone() {
                if let Err(e) = fetch_until_done(&fetcher, &query).await {
                    tracing::error!(query, error = %e, "fetch failed");
                }
            }
        }
    };
    tokio::select! {
        _ = common::shutdown::signal() => {}
        r = requests => r?,
        _ = periodic => {}
    }
    Ok(())
}

/// Fetches a query; when every key is out of quota, says so and waits for the earliest reset.
async fn fetch_until_done(fetcher: &Fetcher, query: &str) -> Result<(), FetchError> {
    loop {
        match fetcher.fetch_query(query).await {
            Err(FetchError::AllKeysExhausted { until_ms }) => {
                let wait_ms =
                    (until_ms - schemas::domain::Timestamp::now().millis()).clamp(1_000, 3_600_000);
                tracing::warn!(
                    query,
                    until_ms,
                    wait_ms,
                    "all YouTube API keys are out of quota; waiting"
                );
                tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
            }
            other => return other.map(drop),
        }
    }
}

/// Fetch requests, committed after their fetch; undecodable ones go to the dead-letter topic.
async fn requests(
    stack: &common::config::StackConfig,
    codec: &Codec,
    fetcher: &Fetcher,
) -> anyhow::Result<()> {
    let group = format!(
        "{}.requests",
        common::config::env_or("CONSUMER_GROUP", "youtube-fetcher")
    );
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            common::config::env_or("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        )
        .create()?;
    consumer.subscribe(&[VideoFetchRequested::TOPIC])?;
    let dead: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    let dlq = common::config::env_or("DEAD_LETTER_TOPIC", schemas::topics::DEAD_LETTER);
    loop {
        let msg = consumer.recv().await?;
        match codec
            .decode::<VideoFetchRequested>(msg.payload().unwrap_or_default())
            .await
        {
            Ok(request) => {
                if let Err(e) = fetch_until_done(fetcher, &request.query).await {
                    tracing::error!(query = %request.query, error = %e, "requested fetch failed");
                }
            }
            Err(e) => {
                let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
                let error = e.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "dlq.source.topic",
                        value: Some(msg.topic()),
                    })
                    .insert(Header {
                        key: "dlq.source.partition",
                        value: Some(&partition),
                    })
                    .insert(Header {
                        key: "dlq.source.offset",
                        value: Some(&offset),
                    })
                    .insert(Header {
                        key: "dlq.error",
                        value: Some(&error),
                    })
                    .insert(Header {
                        key: "dlq.consumer",
                        value: Some("youtube-fetcher"),
                    });
                let mut record = FutureRecord::<[u8], [u8]>::to(&dlq).headers(headers);
                if let Some(p) = msg.payload() {
                    record = record.payload(p);
                }
                dead.send(record, Duration::from_secs(10))
                    .await
                    .map_err(|(e, _)| e)?;
                tracing::warn!(error, "undecodable fetch request dead-lettered");
            }
        }
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}
