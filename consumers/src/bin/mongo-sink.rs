//! The MongoDB sink: ratings, favourites and follows, each topic consumed by its own runtime
//! (consumer group `<CONSUMER_GROUP>.<collection>`). `MONGO_SINKS` picks collections
//! (comma-separated; default all).

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use common::shutdown::Shutdown;
use consumers::sinks::mongo::{MongoDoc, MongoSink};
use consumers::RuntimeConfig;
use schemas::events::{Favourite, Follow, Rating};

const ALL: [&str; 3] = [
    Rating::COLLECTION,
    Favourite::COLLECTION,
    Follow::COLLECTION,
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("mongo-sink");
    common::metrics::serve_from_env("127.0.0.1:9102").await?;
    let stack = common::config::StackConfig::from_env();
    let codec =
        schemas::Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
    let base = RuntimeConfig::from_env("mongo-sink")?;
    let selected = common::config::env_or("MONGO_SINKS", &ALL.join(","));
    let collections: Vec<&str> = selected
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(unknown) = collections.iter().find(|t| !ALL.contains(t)) {
        bail!(
            "MONGO_SINKS: unknown collection {unknown} (known: {})",
            ALL.join(", ")
        );
    }
    if base.topic.is_some() && collections.len() != 1 {
        bail!("CONSUMER_TOPIC needs exactly one collection in MONGO_SINKS");
    }
    let db = stores::mongo::connect(&stack.mongo_url, &stack.mongo_database).await?;

    let shutdown = Shutdown::on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for collection in collections {
        let mut config = base.clone();
        config.group_id = format!("{}.{collection}", base.group_id);
        let (codec, db, shutdown) = (codec.clone(), db.clone(), shutdown.clone());
        match collection {
            "ratings" => tasks.spawn(run::<Rating>(config, codec, db, shutdown)),
            "favourites" => tasks.spawn(run::<Favourite>(config, codec, db, shutdown)),
            _ => tasks.spawn(run::<Follow>(config, codec, db, shutdown)),
        };
    }
    // One runtime failing (its final batch not written) stops the others and the process.
    common::shutdown::join_all(tasks, &shutdown).await
}

async fn run<E: MongoDoc>(
    config: RuntimeConfig,
    codec: schemas::Codec,
    db: mongodb::Database,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stats = consumers::run(config, codec, MongoSink::<E>::new(db), shutdown).await?;
    tracing::info!(collection = E::COLLECTION, ?stats, "sink stopped");
    Ok(())
}
