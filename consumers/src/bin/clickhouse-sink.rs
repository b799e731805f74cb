//! The ClickHouse analytics sink: playback events into `ugc.playback_events`.

use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink};
use consumers::RuntimeConfig;
use schemas::events::PlaybackEvent;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("clickhouse-sink");
    let stack = common::config::StackConfig::from_env();
    let codec = schemas::Codec::new(&stack.schema_registry_url)?;
    let runtime = RuntimeConfig::from_env("clickhouse-sink")?;
    let sink = ClickHouseSink::<PlaybackEvent>::new(ClickHouseConfig::from_env().client());
    let stats = consumers::run(runtime, codec, sink, common::shutdown::signal()).await?;
    tracing::info!(?stats, "clickhouse sink stopped");
    Ok(())
}
