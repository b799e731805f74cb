//! The image-resize worker (consumer group `<CONSUMER_GROUP>`, default `image-resize`): run as many
//! as the resize topic's partitions. Limits: `IMAGE_MAX_SOURCE_PIXELS`, `IMAGE_MAX_OUTPUT_SIDE`,
//! `IMAGE_MAX_OUTPUT_PIXELS`; results kept `IMAGE_RESULT_TTL_SECS`, then the sweeper (every
//! `IMAGE_SWEEP_INTERVAL_SECS`) deletes them and their originals.

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use consumers::sinks::images::{ImageLimits, ResizeWorker};
use consumers::RuntimeConfig;
use stores::images::{BlobStore, ImageJobs};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("image-resize");
    common::metrics::serve_from_env("127.0.0.1:9104").await?;
    let stack = common::config::StackConfig::from_env();
    let codec =
        schemas::Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
    let mut config = RuntimeConfig::from_env("image-resize")?;
    // One job is seconds of CPU: small batches keep a rebalance or a crash from redoing many.
    config.max_rows = common::config::env_parse("BATCH_MAX_ROWS", 4)?;
    let ttl = Duration::from_secs(common::config::env_parse("IMAGE_RESULT_TTL_SECS", 86_400)?);
    let db = stores::mongo::connect(&stack.mongo_url, &stack.mongo_database).await?;
    let jobs = ImageJobs::new(db.clone(), BlobStore::from_env(&db)?);
    let sweep_interval =
        Duration::from_secs(common::config::env_parse("IMAGE_SWEEP_INTERVAL_SECS", 300)?);
    if sweep_interval.is_zero() {
        anyhow::bail!("IMAGE_SWEEP_INTERVAL_SECS must be at least 1");
    }
    tokio::spawn(consumers::sinks::images::sweep_every(
        jobs.clone(),
        ttl,
        sweep_interval,
    ));
    let worker = ResizeWorker::new(jobs, ImageLimits::from_env()?, ttl);
    let stats = consumers::run(
        config,
        codec,
        worker,
        common::shutdown::Shutdown::on_signal(),
    )
    .await?;
    tracing::info!(?stats, "image-resize stopped");
    Ok(())
}
