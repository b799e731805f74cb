//! `make bench`, the feed part: a post by an author with 1,000,000 followers (BENCH_FOLLOWERS),
//! from PostCreated on Kafka to the last follower's home feed written in Redis, through the planner
//! and two workers (in this process, on the shared runtime). Writes its section of
//! docs/benchmarks.md (see scripts/bench.sh).
//!
//!     cargo run --release -p api --example feed_bench   (with `make services` running)

// The allocator of the binaries it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use consumers::sinks::feed::{Planner, Worker};
use consumers::RuntimeConfig;
use producers::{EventProducer, ProducerConfig};
use schemas::domain::{EventId, PostId, Timestamp, UserId};
use schemas::events::{FanoutBatch, PostCreated};
use schemas::{Codec, Event};
use stores::feeds::{FeedConfig, Feeds, FollowChange};

mod bench;
use bench::write_section;

fn post(author: UserId) -> PostCreated {
    PostCreated {
        event_id: EventId::new_random(),
        post_id: PostId::from_uuid(uuid::Uuid::new_v4()),
        author_id: author,
        text: "a new trailer is out".into(),
        occurred_at: Timestamp::now(),
    }
}

/// The post's progress once every page is written, and when the planner's walk was first seen
/// over.
async fn wait_done(
    feeds: &Feeds,
    post: &str,
) -> anyhow::Result<(stores::feeds::Progress, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut planned_at = None;
    while Instant::now() < deadline {
        if let Some(p) = feeds.progress(post).await? {
            if p.planned {
                planned_at.get_or_insert_with(Instant::now);
            }
            if p.planned && p.pages_done >= p.pages_emitted {
                return Ok((p, planned_at.unwrap_or_else(Instant::now)));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("post {post} not fanned out in 300 s")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_FOLLOWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let workers = 2;
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut config = FeedConfig::from_env()?;
    // Short, as production keys are (`FEED_KEY_PREFIX` is empty by default): Redis hashes every
    // key it is given, and the run's own prefix only keeps it apart from other data.
    config.prefix = format!("b{}:", &id[..8]);
    config.celebrity_followers = n as u64 + 1;
    let page_size = config.page_size;
    let feeds = Feeds::connect(config).await?;

    // The follow graph, through the same mirror the follows consumer uses.
    let author = UserId::from_uuid(uuid::Uuid::new_v4());
    let started = Instant::now();
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..n {
        chunk.push(FollowChange {
            follower: uuid::Uuid::from_u128(0xF000_0000_0000 + i as u128).to_string(),
            followee: author.to_string(),
            active: true,
            at_ms: 1,
            event_id: uuid::Uuid::new_v4().to_string(),
        });
        if chunk.len() == 10_000 || i + 1 == n {
            feeds.apply_follows(&chunk).await?;
            chunk.clear();
        }
    }
    let mirror_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("[bench] {n} follows mirrored at {mirror_rate:.0}/s");

    let codec = Codec::new(&stack.schema_registry_url)?;
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers)?,
        codec.clone(),
    )?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Every group starts at the topics' ends (before any member joins: a group with members refuses
    // commits from outside).
    for (role, topic) in [
        ("planner", PostCreated::TOPIC),
        ("worker", FanoutBatch::TOPIC),
    ] {
        let group = format!("bench-feed-{id}.{role}");
        consumers::groups::commit_at_end(&stack.kafka_brokers, &group, topic)?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for role in std::iter::once("planner").chain(std::iter::repeat_n("worker", workers)) {
        let mut runtime = RuntimeConfig::from_env("bench")?;
        runtime.group_id = format!("bench-feed-{id}.{role}");
        runtime.max_wait = Duration::from_millis(5);
        let mut stop = stopped.clone();
        let shutdown = common::shutdown::Shutdown::when(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        let codec = codec.clone();
        // Each on a connection of its own, as the binary's roles are.
        let feeds = feeds.with_own_connection().await?;
        if role == "planner" {
            let sink = Planner::new(feeds, producer.clone(), Default::default());
            tasks.spawn(async move {
                consumers::run(runtime, codec, sink, shutdown)
                    .await
                    .map(drop)
            });
        } else {
            let sink = Worker::new(feeds);
            tasks.spawn(async move {
                consumers::run(runtime, codec, sink, shutdown)
                    .await
                    .map(drop)
            });
        }
    }
    // Warm up: every group joined and assigned (a post of an author with no followers).
    let warm = post(UserId::from_uuid(uuid::Uuid::new_v4()));
    producer.send(&warm, &[]).await?;
    wait_done(&feeds, &warm.post_id.to_string()).await?;
    tokio::time::sleep(Duration::from_secs(8)).await; // the second worker's join settles

    let p = post(author);
    let redis_before = bench::cpu_of("redis-server");
    let started = Instant::now();
    producer.send(&p, &[]).await?;
    let (progress, planned_at) = wait_done(&feeds, &p.post_id.to_string()).await?;
    let secs = started.elapsed().as_secs_f64();
    let walk_secs = planned_at.duration_since(started).as_secs_f64();
    eprintln!("[bench] the planner's walk over after {walk_secs:.2} s");
    let redis_busy = (bench::cpu_of("redis-server") - redis_before) / secs;
    let writes_per_s = n as f64 / secs;
    eprintln!("[bench] {n} feeds written in {secs:.2} s ({writes_per_s:.0}/s)");
    let sample = feeds
        .read(
            &uuid::Uuid::from_u128(0xF000_0000_0000 + n as u128 / 2).to_string(),
            None,
            10,
        )
        .await?;
    anyhow::ensure!(sample.len() == 1 && sample[0].post_id == p.post_id.to_string());

    let _ = stop.send(true);
    while let Some(t) = tasks.join_next().await {
        t??;
    }
    feeds.delete_all().await?;
    let (limit, limit_command) = redis_benchmark(&stack.redis_url, n)?;
    eprintln!("[bench] redis-benchmark: {limit:.0} ZADD/s");

    let md = format!(
        "\n## Feed fan-out\n\n\
One post by an author with {n} followers, from PostCreated produced to Kafka until the last \
follower's home feed is written in Redis: the planner walks the follower set ({pages} pages of \
{page_size}, one FanoutBatch message each, the next page read while the broker acknowledges the one before), \
{workers} workers in one consumer group write the pages, each role on a Redis connection of its own \
(one round trip of plain commands per batch of pages: ZADD per feed, a trim of each feed with one post in 8, the page marked done), progress read from `fanout:{{post}}` every 5 ms. \
Planner, workers, broker and Redis share the 2 cores.\n\n\
| what | result | goal |\n|---|---|---|\n\
| PostCreated -> last of {n} feeds written | {secs:.2} s | <= 3 s |\n\
| PostCreated -> the planner's walk over (every page acknowledged by the broker; first seen by the 5 ms poll) | {walk_secs:.2} s | |\n\
| feed writes/s | {writes_per_s:.0} | |\n\
| Redis's own limit for the shape: `redis-benchmark`, ZADD of one member to each of {n} new keys as long as ours, pipelined 1,000, in an empty database of the same server | {limit:.0} ZADD/s | |\n\
| feed writes / Redis's limit | {ratio:.2} | |\n\
| Redis busy during the fan-out (its CPU seconds / elapsed) | {redis_busy:.2} cores | |\n\
| follows mirrored into Redis (follower set + LWW version per pair, pipelined Lua) | {mirror_rate:.0}/s | |\n\n\
Command: `cargo run --release -p api --example feed_bench` (BENCH_FOLLOWERS={n}); Redis's limit: \
`{limit_command}`.\n",
        ratio = writes_per_s / limit,
        pages = progress.pages_emitted,
    );
    write_section("40-feed", &md)
}

/// Redis's own pipelined write rate for the fan-out's command shape: `redis-benchmark` writing one
/// member into each of `n` new sorted sets (keys as long as the feeds' keys), 1,000 commands per
/// round trip, in database 9 of the same server (emptied after). ZADD/s and the command.
fn redis_benchmark(redis_url: &str, n: usize) -> anyhow::Result<(f64, String)> {
    let url = reqwest::Url::parse(redis_url)?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(6379).to_string();
    let n = n.to_string();
    let args = [
        "-h",
        &host,
        "-p",
        &port,
        "--dbnum",
        "9",
        "-n",
        &n,
        "-P",
        "1000",
        "-r",
        "100000000",
        "--csv",
        "ZADD",
        "b0000000:feed:00000000-0000-0000-0000-__rand_int__",
        "1",
        "00000000-0000-0000-0000-000000000000",
    ];
    let out = std::process::Command::new("redis-benchmark")
        .args(args)
        .output()?;
    anyhow::ensure!(out.status.success(), "redis-benchmark failed");
    let flushed = std::process::Command::new("redis-cli")
        .args(["-h", &host, "-p", &port, "-n", "9", "FLUSHDB"])
        .output()?;
    anyhow::ensure!(flushed.status.success(), "redis-cli FLUSHDB failed");
    // CSV: a header, then "test","rps",...
    let csv = String::from_utf8(out.stdout)?;
    let rps = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("redis-benchmark printed {csv}"))?;
    Ok((rps, format!("redis-benchmark {}", args[4..].join(" "))))
}
