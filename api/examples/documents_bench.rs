//! `make bench`, the MongoDB part: ratings applied per second by the Mongo sink (Kafka -> decode ->
//! conditional bulk upserts -> commit) against the driver used plainly (one upsert per rating, 64 in
//! flight) writing the same documents to the same server, and the p99 of the frontend's
//! Mongo-backed reads. Writes its section of docs/benchmarks.md (see scripts/bench.sh).
//!
//!     cargo run --release -p api --example documents_bench   (with `make services` running)

// The allocator of the binaries it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use consumers::sinks::mongo::MongoSink;
use consumers::RuntimeConfig;
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::doc;
use producers::{EventProducer, ProducerConfig};
use schemas::domain::*;
use schemas::events::{Favourite, FavouriteAction, Follow, FollowAction, Rating};
use schemas::{Codec, Event};

mod bench;
use bench::{start_api, time_reads, write_section, PathFor};

const USERS: u128 = 400;
const MOVIES: u128 = 10;

fn user(i: u128) -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(0x1000_0000 + i % USERS))
}
fn movie(i: u128) -> MovieId {
    MovieId::from_uuid(uuid::Uuid::from_u128(0x2000_0000 + i % MOVIES))
}

/// The i-th rating: one per (user, movie) pair.
fn rating(i: usize) -> Rating {
    let i = i as u128;
    Rating {
        event_id: EventId::new_random(),
        user_id: user(i),
        movie_id: movie(i / USERS),
        score: Score::parse((i * 7 % 11) as i64).unwrap(),
        occurred_at: Timestamp::now(),
    }
}

async fn count(db: &mongodb::Database, collection: &str) -> u64 {
    db.collection::<mongodb::bson::Document>(collection)
        .estimated_document_count()
        .await
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_MONGO_RATINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let stack = common::config::StackConfig::from_env();
    let client = mongodb::Client::with_uri_str(&stack.mongo_url).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (sink_db_name, raw_db_name) = (format!("bench_docs_{id}"), format!("bench_raw_{id}"));
    stores::mongo::migrate(&client, &sink_db_name).await?;
    stores::mongo::migrate(&client, &raw_db_name).await?;
    let (sink_db, raw_db) = (
        client.database(&sink_db_name),
        client.database(&raw_db_name),
    );
    let events: Vec<Rating> = (0..n).map(rating).collect();
    let codec = Codec::new(&stack.schema_registry_url)?;
    let mut runtime = RuntimeConfig::from_env("bench")?;
    runtime.group_id = format!("bench-docs-{id}");

    // 1. The raw driver, written plainly as a user would: one `update_one` upsert per rating
    //    (newer wins, as the sink's), 64 in flight; nothing of the sink's code.
    let ratings = raw_db.collection::<mongodb::bson::Document>(stores::mongo::RATINGS);
    let started = Instant::now();
    futures::stream::iter(events.iter().map(|r| {
        let ratings = ratings.clone();
        async move {
            let (at, id) = (r.occurred_at.millis(), r.event_id.to_string());
            let (user, movie) = (r.user_id.to_string(), r.movie_id.to_string());
            let filter = doc! {"$and": [
                {"user_id": &user}, {"movie_id": &movie},
                {"$or": [{"updated_at": {"$lt": at}},
                         {"$and": [{"updated_at": at}, {"event_id": {"$lt": &id}}]}]},
            ]};
            let set = doc! {"$set": {
                "user_id": &user, "movie_id": &movie, "score": i32::from(r.score.get()),
                "updated_at": at, "event_id": &id,
            }};
            ratings.update_one(filter, set).upsert(true).await
        }
    }))
    .buffer_unordered(64)
    .try_collect::<Vec<_>>()
    .await?;
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("[bench] raw driver upserts: {raw_rate:.0}/s");

    // 2. The sink: the events already on the topic, from the first record it consumed to its
    //    last commit (the runtime's own instants; the group join is not the sink's speed).
    consumers::groups::commit_at_end(&stack.kafka_brokers, &runtime.group_id, Rating::TOPIC)?;
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers)?,
        codec.clone(),
    )?;
    for chunk in events.chunks(1_000) {
        try_join_all(chunk.iter().map(|e| producer.send(e, &[]))).await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = tokio::spawn(consumers::run(
        runtime,
        codec,
        MongoSink::<Rating>::new(sink_db.clone()),
        common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        }),
    ));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = 0;
    while Instant::now() < deadline {
        done = count(&sink_db, stores::mongo::RATINGS).await;
        if done >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let stats = sink.await??;
    anyhow::ensure!(done == n as u64, "the sink wrote {done} of {n}");
    let sink_rate = bench::rate(&stats, n);
    eprintln!("[bench] sink: {sink_rate:.0}/s");
    // Both wrote the same documents.
    let fields = |db: &mongodb::Database| {
        let ratings = db.collection::<mongodb::bson::Document>(stores::mongo::RATINGS);
        async move {
            let mut docs: Vec<(String, String, i32)> = ratings
                .find(doc! {})
                .await?
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .map(|d| {
                    (
                        d.get_str("user_id").unwrap_or_default().to_string(),
                        d.get_str("movie_id").unwrap_or_default().to_string(),
                        d.get_i32("score").unwrap_or(-1),
                    )
                })
                .collect();
            docs.sort();
            anyhow::Ok(docs)
        }
    };
    anyhow::ensure!(
        fields(&sink_db).await? == fields(&raw_db).await?,
        "the sink and the raw driver wrote different ratings"
    );

    // 3. The reads, over the sink's ratings plus favourites and follows written the raw way.
    let favourites: Vec<Favourite> = (0..n as u128 / 4)
        .map(|i| Favourite {
            event_id: EventId::new_random(),
            user_id: user(i),
            movie_id: movie(i / USERS),
            action: FavouriteAction::Added,
            occurred_at: Timestamp::now(),
        })
        .collect();
    MongoSink::<Favourite>::apply(&sink_db, MongoSink::<Favourite>::statements(&favourites))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let follows: Vec<Follow> = (0..n as u128 / 4)
        .map(|i| Follow {
            event_id: EventId::new_random(),
            follower_id: user(i),
            followee_id: user(i / USERS + i % 7 + 1),
            action: FollowAction::Follow,
            occurred_at: Timestamp::now(),
        })
        .filter(|f| f.follower_id != f.followee_id)
        .collect();
    MongoSink::<Follow>::apply(&sink_db, MongoSink::<Follow>::statements(&follows))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (base, stop_api) = start_api(|s| s.stack.mongo_database = sink_db_name.clone()).await?;
    let endpoints: Vec<(&str, PathFor<'_>)> = vec![
        (
            "a user's ratings (`/likes/users/{id}`, page of 20)",
            Box::new(|i| format!("/api/v1/likes/users/{}", user(i as u128 * 7))),
        ),
        (
            "a user's favourites (`/favorites/users/{id}`)",
            Box::new(|i| format!("/api/v1/favorites/users/{}", user(i as u128 * 7))),
        ),
        (
            "a movie's rating summary (`/movies/{id}/rating`)",
            Box::new(|i| format!("/api/v1/movies/{}/rating", movie(i as u128))),
        ),
        (
            "top-rated movies (`/movies/top-rated`)",
            Box::new(|_| "/api/v1/movies/top-rated?limit=10&min_votes=10".to_string()),
        ),
        (
            "a user's followers, first page (`/users/{id}/followers`)",
            Box::new(|i| {
                format!(
                    "/api/v1/users/{}/followers?limit=100",
                    user(1 + i as u128 % 7)
                )
            }),
        ),
    ];
    let rows = time_reads(&base, &endpoints, 50, |_| "").await?;
    let _ = stop_api.send(());
    sink_db.drop().await?;
    raw_db.drop().await?;

    let md = format!(
        "\n## MongoDB sink and reads\n\n\
The local MongoDB-wire server (nx-27017, Python over SQLite, no index use) \
is far slower than MongoDB, so the data is small ({n} ratings: {USERS} users x {MOVIES} movies, plus \
{fav} favourites and {fol} follows) and the sink is measured as a ratio to the driver writing the \
same documents to the same server in the same run (checked equal after both). These figures say nothing about production MongoDB.\n\n\
| what | result | goal |\n|---|---|---|\n\
| raw driver, written plainly: one `update_one` upsert per rating (newer wins), 64 in flight | {raw_rate:.0} ratings/s | |\n\
| the Mongo sink: ratings already on the topic, consumed, decoded, reduced, upserted (`update` commands of 1,000), committed; first record consumed to last commit | {sink_rate:.0} ratings/s | |\n\
| sink / raw | {ratio:.2} | >= 0.8 |\n\n\
Reads through the API (50 sequential requests each), p50 / p99:\n\n\
| endpoint | p50 / p99 | |\n|---|---|---|\n{rows}\n\
Command: `cargo run --release -p api --example documents_bench` (BENCH_MONGO_RATINGS={n}).\n",
        fav = favourites.len(),
        fol = follows.len(),
        ratio = sink_rate / raw_rate,
    );
    write_section("30-mongo", &md)
}
