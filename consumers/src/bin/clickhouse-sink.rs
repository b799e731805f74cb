//! The ClickHouse analytics sink: playback events, watch time, positions, ratings, generic user
//! events and fetched videos, each topic consumed by its own runtime (consumer group `<CONSUMER_GROUP>.<table>`).
//! `CLICKHOUSE_SINKS` picks tables (comma-separated; default all).

use anyhow::{bail, Context};
use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink, Table};
use consumers::RuntimeConfig;
use schemas::events::{
    MovieViewing, PlaybackEvent, PlaybackPosition, Rating, UserEvent, VideoFetched,
};
use tokio::sync::watch;

const ALL: [&str; 6] = [
    PlaybackEvent::TABLE,
    MovieViewing::TABLE,
    PlaybackPosition::TABLE,
    Rating::TABLE,
    UserEvent::TABLE,
    VideoFetched::TABLE,
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("clickhouse-sink");
    common::metrics::serve_from_env("127.0.0.1:9101").await?;
    let stack = common::config::StackConfig::from_env();
    let codec = schemas::Codec::new(&stack.schema_registry_url)?;
    let base = RuntimeConfig::from_env("clickhouse-sink")?;
    let selected = common::config::env_or("CLICKHOUSE_SINKS", &ALL.join(","));
    let tables: Vec<&str> = selected
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(unknown) = tables.iter().find(|t| !ALL.contains(t)) {
        bail!(
            "CLICKHOUSE_SINKS: unknown table {unknown} (known: {})",
            ALL.join(", ")
        );
    }
    if base.topic.is_some() && tables.len() != 1 {
        bail!("CONSUMER_TOPIC needs exactly one table in CLICKHOUSE_SINKS");
    }
    let client = ClickHouseConfig::from_env().client();

    // One shutdown signal, fanned out to every runtime.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        common::shutdown::signal().await;
        let _ = stop_tx.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    for table in tables {
        let mut config = base.clone();
        config.group_id = format!("{}.{table}", base.group_id);
        let codec = codec.clone();
        let client = client.clone();
        let mut stop = stop_rx.clone();
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match table {
            "playback_events" => tasks.spawn(run::<PlaybackEvent>(config, codec, client, shutdown)),
            "movie_viewings" => tasks.spawn(run::<MovieViewing>(config, codec, client, shutdown)),
            "playback_positions" => {
                tasks.spawn(run::<PlaybackPosition>(config, codec, client, shutdown))
            }
            "ratings" => tasks.spawn(run::<Rating>(config, codec, client, shutdown)),
            "videos" => tasks.spawn(run::<VideoFetched>(config, codec, client, shutdown)),
            _ => tasks.spawn(run::<UserEvent>(config, codec, client, shutdown)),
        };
    }
    while let Some(done) = tasks.join_next().await {
        done.context("sink task")??;
    }
    Ok(())
}

async fn run<E: Table>(
    config: RuntimeConfig,
    codec: schemas::Codec,
    client: clickhouse::Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let stats = consumers::run(config, codec, ClickHouseSink::<E>::new(client), shutdown).await?;
    tracing::info!(table = E::TABLE, ?stats, "sink stopped");
    Ok(())
}
