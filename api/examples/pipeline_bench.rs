//! `make bench`, part two (after the API load test): the end-to-end latency from the API's 202 to
//! the row being queryable in ClickHouse, and the analytics reads over 10M events (the sink's
//! throughput beside its limits is sink_bench's). Writes its section of docs/benchmarks.md (see
//! scripts/bench.sh).
//!
//!     cargo run --release --example pipeline_bench   (with `make services` running)

// The allocator of the binaries it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::{migrations, ClickHouseConfig, ClickHouseSink, Table};
use consumers::RuntimeConfig;
use schemas::domain::*;
use schemas::events::PlaybackEvent;
use schemas::Codec;

mod bench;
use bench::{percentile, start_api, time_reads, write_section, PathFor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let db = format!("bench_{id}");
    let ch = ClickHouseConfig::from_env()?.with_database(&db);
    let admin = ch.clone().with_database("default").client();
    for s in migrations(&db) {
        admin.query(&s).execute().await?;
    }
    let client = ch.client();
    let codec = Codec::new(&stack.schema_registry_url)?;

    // End to end: POST -> 202 -> sink -> queryable, at a steady ~500 events/s.
    let (base, stop_api) = start_api(|s| s.stack.clickhouse_database = db.clone()).await?;
    client
        .query("TRUNCATE TABLE playback_events")
        .execute()
        .await
        .ok();
    let mut runtime = RuntimeConfig::from_env("bench")?;
    runtime.group_id = format!("bench-e2e-{id}");
    consumers::groups::commit_at_end(
        &stack.kafka_brokers,
        &runtime.group_id,
        schemas::topics::PLAYBACK_EVENTS,
    )?;
    let (stop_sink, sink_stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        ClickHouseSink::<PlaybackEvent>::new(&ch),
        common::shutdown::Shutdown::when(async move {
            let _ = sink_stopped.await;
        }),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await; // group join
    let http = reqwest::Client::new();
    let total = 2_000;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashMap<String, f64> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for i in 0..total {
        tick.tick().await;
        let e = bench::playback(i);
        let body = serde_json::json!({"event_id": e.event_id.to_string(), "user_id": e.user_id.to_string(),
            "movie_id": e.movie_id.to_string(), "event_type": "play", "position_ms": 1});
        let resp = http
            .post(format!("{base}/api/v1/movies/playback-event"))
            .header("x-api-key", "bench-key")
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 202, "API answered {}", resp.status());
        sent.insert(e.event_id.to_string(), Instant::now());
        if i % 50 == 49 {
            poll(&client, &sent, &mut seen).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < total && Instant::now() < deadline {
        poll(&client, &sent, &mut seen).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_sink.send(());
    sink.await??;
    let mut latencies: Vec<f64> = seen.values().copied().collect();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!("[bench] end to end: {} of {total} seen", latencies.len());

    // 5. The analytics endpoints over 10M events (ANALYTICS_EVENTS): 4 parts watch time,
    //    3 parts positions, 3 parts generic events, spread over 30 days, 10,000 users, 500 movies.
    let analytics_n: usize = std::env::var("ANALYTICS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let seeded = Instant::now();
    seed_analytics(&client, analytics_n).await?;
    let seed_secs = seeded.elapsed().as_secs_f64();
    eprintln!("[bench] seeded {analytics_n} events in {seed_secs:.0} s");
    let now_s = Timestamp::now().seconds() as i64;
    let day = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (week_ago, today, yesterday) = (day(now_s - 7 * 86_400), day(now_s), day(now_s - 86_400));
    let endpoints: Vec<(&str, PathFor<'_>)> = vec![
        (
            "watch time of a user for a movie",
            Box::new(|i| {
                format!(
                    "/api/v1/analytics/users/{}/movies/{}/watch-time",
                    uuid::Uuid::from_u128((i % 10_000) as u128),
                    uuid::Uuid::from_u128(1 + (i % 500) as u128)
                )
            }),
        ),
        (
            "continue watching of a user",
            Box::new(|i| {
                format!(
                    "/api/v1/analytics/users/{}/continue-watching",
                    uuid::Uuid::from_u128((i * 7 % 10_000) as u128)
                )
            }),
        ),
        (
            "top 10 movies by watch time, last 7 days",
            Box::new(|_| format!("/api/v1/analytics/movies/top?from={week_ago}&to={today}")),
        ),
        (
            "top 10 movies by distinct viewers, last 7 days",
            Box::new(|_| {
                format!("/api/v1/analytics/movies/top?by=viewers&from={week_ago}&to={today}")
            }),
        ),
        (
            "events per type per hour, last 24 h",
            Box::new(|_| format!("/api/v1/analytics/events/hourly?from={yesterday}&to={today}")),
        ),
    ];
    let rows_md = time_reads(&base, &endpoints, 100, |_| "p99 < 50 ms").await?;
    let _ = stop_api.send(());

    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
    let md = format!(
        "\n## ClickHouse end to end\n\n\
| what | result | goal |\n|---|---|---|\n\
| end to end, API 202 -> row queryable in ClickHouse ({seen} of {total} events at ~500/s): p50 / p99 / max | {p50:.0} / {p99:.0} / {max:.0} ms | p99 < 2,000 ms |\n\n\
Command: `cargo run --release -p api --example pipeline_bench`.\n\n\
## Analytics reads\n\n\
{analytics_n} events seeded straight into ClickHouse ({seed_secs:.0} s): 40 % watch time, 30 % positions, \
30 % generic events, over 30 days, 10,000 users, 500 movies. 100 sequential requests per endpoint through the API.\n\n\
| endpoint | p50 / p99 | goal |\n|---|---|---|\n{rows_md}",
        seen = latencies.len(),
        p50 = percentile(&latencies, 0.5),
        p99 = percentile(&latencies, 0.99),
        max = latencies.last().copied().unwrap_or(f64::NAN),
    );
    write_section("20-clickhouse", &md)?;
    Ok(())
}

/// Records when each sent event first shows up in ClickHouse.
async fn poll(
    client: &clickhouse::Client,
    sent: &HashMap<String, Instant>,
    seen: &mut HashMap<String, f64>,
) {
    let ids: Vec<String> = client
        .query("SELECT toString(event_id) FROM playback_events")
        .fetch_all()
        .await
        .unwrap_or_default();
    let now = Instant::now();
    let present: HashSet<String> = ids.into_iter().collect();
    for (id, at) in sent {
        if !seen.contains_key(id) && present.contains(id) {
            seen.insert(id.clone(), now.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
}

/// Inserts `n` synthetic events into the analytics tables (the views fill their aggregates).
async fn seed_analytics(client: &clickhouse::Client, n: usize) -> anyhow::Result<()> {
    use schemas::events::{MovieViewing, PlaybackPosition, UserEvent};
    let now = Timestamp::now().millis();
    let at = |i: usize| {
        Timestamp::from_millis("t", now - ((i as i64 * 7_919) % (30 * 86_400_000))).unwrap()
    };
    let user = |i: usize| UserId::from_uuid(uuid::Uuid::from_u128((i % 10_000) as u128));
    let movie =
        |i: usize| MovieId::from_uuid(uuid::Uuid::from_u128(1 + (i / 10_000 % 500) as u128));
    let kinds = [
        "click",
        "page_view",
        "movie_quality_changed",
        "movie_completed",
        "search_filter_used",
    ];
    let chunk = 200_000;
    let mut done = 0;
    while done < n {
        let end = (done + chunk).min(n);
        let mut viewings = client
            .insert::<<MovieViewing as Table>::Row>(MovieViewing::TABLE)
            .await?;
        let mut positions = client
            .insert::<<PlaybackPosition as Table>::Row>(PlaybackPosition::TABLE)
            .await?;
        let mut generic = client
            .insert::<<UserEvent as Table>::Row>(UserEvent::TABLE)
            .await?;
        for i in done..end {
            match i % 10 {
                0..=3 => {
                    let e = MovieViewing {
                        event_id: EventId::new_random(),
                        user_id: user(i),
                        movie_id: movie(i),
                        viewed_seconds: (i % 600) as i64,
                        occurred_at: at(i),
                    };
                    viewings.write(&e.row(0, i as i64)).await?;
                }
                4..=6 => {
                    let e = PlaybackPosition {
                        event_id: EventId::new_random(),
                        user_id: user(i),
                        movie_id: movie(i),
                        position_ms: PositionMs::parse((i % 5_400_000) as i64)?,
                        duration_ms: Some(PositionMs::parse(5_400_000)?),
                        occurred_at: at(i),
                    };
                    positions.write(&e.row(0, i as i64)).await?;
                }
                _ => {
                    let e = UserEvent {
                        event_id: EventId::new_random(),
                        user_id: Some(user(i)),
                        anonymous_id: None,
                        event_type: kinds[i % kinds.len()].to_string(),
                        properties: HashMap::new(),
                        occurred_at: at(i),
                        properties_json: None,
                    };
                    generic.write(&e.row(0, i as i64)).await?;
                }
            }
        }
        viewings.end().await?;
        positions.end().await?;
        generic.end().await?;
        done = end;
    }
    Ok(())
}
