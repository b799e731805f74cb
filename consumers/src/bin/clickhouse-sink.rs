//! The ClickHouse analytics sink: playback events, watch time, positions, ratings, generic user
//! events, fetched videos and their statistics snapshots, each topic consumed by its own runtime (consumer group `<CONSUMER_GROUP>.<table>`).
//! `CLICKHOUSE_SINKS` picks tables (comma-separated; default all).

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use common::shutdown::Shutdown;
use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink, Table};
use consumers::RuntimeConfig;
use schemas::events::{
    ChannelStatisticsFetched, MovieViewing, PlaybackEvent, PlaybackPosition, Rating, UserEvent,
    VideoFetched, VideoStatisticsFetched,
};

const ALL: [&str; 8] = [
    PlaybackEvent::TABLE,
    MovieViewing::TABLE,
    PlaybackPosition::TABLE,
    Rating::TABLE,
    UserEvent::TABLE,
    VideoFetched::TABLE,
    VideoStatisticsFetched::TABLE,
    ChannelStatisticsFetched::TABLE,
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("clickhouse-sink");
    common::metrics::serve_from_env("127.0.0.1:9101").await?;
    let stack = common::config::StackConfig::from_env();
    let codec =
        schemas::Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
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
    let ch = ClickHouseConfig::from_env()?;
    let max_partitions = common::config::env_parse(
        "CLICKHOUSE_MAX_PARTITIONS_PER_INSERT",
        consumers::sinks::clickhouse::MAX_PARTITIONS_PER_INSERT,
    )?;

    let shutdown = Shutdown::on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for table in tables {
        let mut config = base.clone();
        config.group_id = format!("{}.{table}", base.group_id);
        let codec = codec.clone();
        let shutdown = shutdown.clone();
        let sink = (ch.clone(), max_partitions);
        match table {
            "playback_events" => tasks.spawn(run::<PlaybackEvent>(config, codec, sink, shutdown)),
            "movie_viewings" => tasks.spawn(run::<MovieViewing>(config, codec, sink, shutdown)),
            "playback_positions" => {
                tasks.spawn(run::<PlaybackPosition>(config, codec, sink, shutdown))
            }
            "ratings" => tasks.spawn(run::<Rating>(config, codec, sink, shutdown)),
            "videos" => tasks.spawn(run::<VideoFetched>(config, codec, sink, shutdown)),
            "video_statistics" => {
                tasks.spawn(run::<VideoStatisticsFetched>(config, codec, sink, shutdown))
            }
            "channel_statistics" => tasks.spawn(run::<ChannelStatisticsFetched>(
                config, codec, sink, shutdown,
            )),
            _ => tasks.spawn(run::<UserEvent>(config, codec, sink, shutdown)),
        };
    }
    // One runtime failing (its final batch not written) stops the others and the process.
    common::shutdown::join_all(tasks, &shutdown).await
}

async fn run<E: Table>(
    config: RuntimeConfig,
    codec: schemas::Codec,
    (ch, max_partitions): (ClickHouseConfig, usize),
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let sink = ClickHouseSink::<E>::new(&ch).with_max_partitions(max_partitions);
    let stats = consumers::run(config, codec, sink, shutdown).await?;
    tracing::info!(table = E::TABLE, ?stats, "sink stopped");
    Ok(())
}
