//! The YouTube fetcher: every `YOUTUBE_INTERVAL_SECS`, each of `YOUTUBE_QUERIES`, then the
//! statistics snapshots that are due; and on demand, each VideoFetchRequested (from
//! `POST /api/v1/videos/fetch`), on the shared consumer runtime (consumer group
//! `<CONSUMER_GROUP>.requests`; see `consumers::sinks::youtube`). `youtube-fetcher --once` fetches
//! every query once, snapshots what is due and exits. It lives with the consumers because it is one (the fetcher
//! library itself is in producers/).

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::shutdown::Shutdown;
use consumers::sinks::youtube::FetchRequests;
use consumers::RuntimeConfig;
use producers::youtube::{FetchError, Fetcher, FetcherConfig, SharedState};
use producers::{EventProducer, ProducerConfig};
use schemas::Codec;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("youtube-fetcher");
    common::metrics::serve_from_env("127.0.0.1:9105").await?;
    let once = std::env::args().any(|a| a == "--once");
    let stack = common::config::StackConfig::from_env();
    let config = FetcherConfig::from_env()?;
    let mut runtime = RuntimeConfig::from_env("youtube-fetcher")?;
    runtime.group_id = format!("{}.requests", runtime.group_id);
    let codec = Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers)?,
        codec.clone(),
    )?;
    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url).await?;
    stores::mongo::migrate(&mongo, &stack.mongo_database).await?;
    let state = SharedState::new(mongo.database(&stack.mongo_database));
    let fetcher = Arc::new(Fetcher::new(config, state, producer).context("fetcher")?);
    tracing::info!(
        keys = ?fetcher.config().keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        queries = ?fetcher.config().queries,
        "youtube fetcher started"
    );
    if once {
        for query in fetcher.config().queries.clone() {
            fetch_until_done(&fetcher, &query).await?;
        }
        refresh_until_done(&fetcher).await?;
        return Ok(());
    }
    let shutdown = Shutdown::on_signal();
    let periodic = {
        let (fetcher, shutdown) = (fetcher.clone(), shutdown.clone());
        async move {
            let mut tick = tokio::time::interval(fetcher.config().interval);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tick.tick() => {}
                }
                for query in fetcher.config().queries.clone() {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        r = fetch_until_done(&fetcher, &query) => if let Err(e) = r {
                            tracing::error!(query, error = %e, "fetch failed; the next tick tries again");
                        },
                    }
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    r = refresh_until_done(&fetcher) => if let Err(e) = r {
                        tracing::error!(error = %e, "statistics snapshots failed; the next tick tries again");
                    },
                }
            }
        }
    };
    let requests = consumers::run(
        runtime,
        codec,
        FetchRequests::new(fetcher),
        shutdown.clone(),
    );
    let ((), requests) = tokio::join!(periodic, async {
        let r = requests.await;
        // The request consumer stopping (an error) stops the periodic fetch too.
        shutdown.trigger();
        r
    });
    requests?;
    Ok(())
}

/// Fetches a query; when every key is out of quota, says so and waits for the earliest reset.
async fn fetch_until_done(fetcher: &Fetcher, query: &str) -> Result<(), FetchError> {
    until_quota(query, || fetcher.fetch_query(query)).await
}

/// Snapshots the statistics that are due, waiting for a quota reset likewise.
async fn refresh_until_done(fetcher: &Fetcher) -> Result<(), FetchError> {
    until_quota("statistics", || fetcher.refresh_statistics()).await
}

async fn until_quota<T, F: std::future::Future<Output = Result<T, FetchError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> Result<(), FetchError> {
    loop {
        match call().await {
            Err(FetchError::AllKeysExhausted { until_ms }) => {
                let wait_ms =
                    (until_ms - schemas::domain::Timestamp::now().millis()).clamp(1_000, 3_600_000);
                tracing::warn!(
                    what,
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
