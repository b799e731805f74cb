//! The feed fan-out: `feed-fanout [all|planner|worker|follows|rebuild-followers]`.
//!
//! * `planner` walks each new post's followers into FanoutBatch pages (group `<CONSUMER_GROUP>.planner`);
//! * `worker` writes pages into home feeds (group `<CONSUMER_GROUP>.worker`; run as many as needed);
//! * `follows` mirrors follows into the Redis follower sets (group `<CONSUMER_GROUP>.follows`);
//! * `all` (default) runs the three in one process;
//! * `rebuild-followers` rewrites the Redis follow graph from MongoDB (after Redis was lost) and exits.

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context};
use common::shutdown::Shutdown;
use consumers::sinks::feed::{FollowMirror, Planner, ProgressConfig, Worker};
use consumers::{RuntimeConfig, Sink};
use futures::TryStreamExt;
use producers::{EventProducer, ProducerConfig};
use stores::feeds::{FeedConfig, Feeds, FollowChange};
use stores::mongo::{FollowDoc, FOLLOWS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("feed-fanout");
    common::metrics::serve_from_env("127.0.0.1:9103").await?;
    let role = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let stack = common::config::StackConfig::from_env();
    let feeds = Feeds::connect(FeedConfig::from_env()?)
        .await
        .context("connecting to Redis")?;
    if role == "rebuild-followers" {
        return rebuild_followers(&stack, &feeds).await;
    }
    let roles: &[&str] = match role.as_str() {
        "all" => &["planner", "worker", "follows"],
        "planner" => &["planner"],
        "worker" => &["worker"],
        "follows" => &["follows"],
        other => bail!("unknown role {other}: all, planner, worker, follows or rebuild-followers"),
    };
    let codec =
        schemas::Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
    let base = RuntimeConfig::from_env("feed-fanout")?;
    let shutdown = Shutdown::on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for role in roles {
        let mut config = base.clone();
        config.group_id = format!("{}.{role}", base.group_id);
        let shutdown = shutdown.clone();
        let codec = codec.clone();
        // Each role on a connection of its own: the workers' bulk pipelines would hold the
        // planner's small steps (see `Feeds::with_own_connection`).
        let feeds = feeds
            .with_own_connection()
            .await
            .context("connecting to Redis")?;
        match *role {
            "planner" => {
                let producer = EventProducer::new(
                    &ProducerConfig::from_env(&stack.kafka_brokers)?,
                    codec.clone(),
                )?;
                let sink = Planner::new(feeds, producer, ProgressConfig::from_env()?);
                tasks.spawn(run(config, codec, sink, shutdown));
            }
            "worker" => {
                tasks.spawn(run(config, codec, Worker::new(feeds), shutdown));
            }
            _ => {
                tasks.spawn(run(config, codec, FollowMirror::new(feeds), shutdown));
            }
        }
    }
    common::shutdown::join_all(tasks, &shutdown).await
}

async fn run<S: Sink>(
    config: RuntimeConfig,
    codec: schemas::Codec,
    sink: S,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let name = sink.name();
    let stats = consumers::run(config, codec, sink, shutdown).await?;
    tracing::info!(role = name, ?stats, "stopped");
    Ok(())
}

/// Every follow document in MongoDB (active or not, with its version) into Redis.
async fn rebuild_followers(
    stack: &common::config::StackConfig,
    feeds: &Feeds,
) -> anyhow::Result<()> {
    let db = stores::mongo::connect(&stack.mongo_url, &stack.mongo_database).await?;
    let mut cursor = db
        .collection::<FollowDoc>(FOLLOWS)
        .find(mongodb::bson::doc! {})
        .await?;
    let (mut batch, mut total) = (Vec::new(), 0usize);
    while let Some(d) = cursor.try_next().await? {
        batch.push(FollowChange {
            follower: d.follower_id,
            followee: d.followee_id,
            active: d.active,
            at_ms: d.updated_at,
            event_id: d.event_id,
        });
        if batch.len() == 10_000 {
            feeds.apply_follows(&batch).await?;
            total += batch.len();
            batch.clear();
        }
    }
    feeds.apply_follows(&batch).await?;
    total += batch.len();
    tracing::info!(follows = total, "Redis follow graph rebuilt from MongoDB");
    Ok(())
}
