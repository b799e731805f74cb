//! The YouTube analytics part of the videos bench: statistics snapshots for the seeded videos and
//! their channels, and the views prediction's latency through Kafka with the predictor in-process.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::{ClickHouseConfig, Table};
use consumers::sinks::predictions::{train, ModelState, Predictions, PredictorConfig};
use schemas::domain::{EventId, Timestamp};
use schemas::events::{ChannelStatisticsFetched, VideoStatisticsFetched};
use schemas::Event;

use super::percentile;

const DAY_MS: i64 = 86_400_000;

/// `snapshots` daily snapshots (the last one `now`) of each of `videos` videos (`vid00000000`..,
/// channel `UC<i % channels>`), and of each channel; rows per insert as given.
pub async fn seed_statistics(
    ch: &clickhouse::Client,
    videos: usize,
    channels: usize,
    snapshots: usize,
    now: i64,
    title: impl Fn(usize) -> String,
    published: impl Fn(usize) -> i64,
) -> anyhow::Result<u64> {
    let per_insert = 500_000;
    let total = videos * snapshots;
    let mut offset = 0u64;
    for start in (0..total).step_by(per_insert) {
        let mut insert = ch
            .insert::<<VideoStatisticsFetched as Table>::Row>(VideoStatisticsFetched::TABLE)
            .await?;
        for j in start..(start + per_insert).min(total) {
            let (i, k) = (j % videos, j / videos);
            let fetched = now - (snapshots - 1 - k) as i64 * DAY_MS;
            let base = (i * 7_919 % 100_000) as i64;
            let e = VideoStatisticsFetched {
                event_id: EventId::new_random(),
                video_id: format!("vid{i:08}"),
                channel_id: format!("UC{:04}", i % channels),
                title: title(i),
                published_at: Timestamp::from_millis("t", published(i))?,
                view_count: base * (k as i64 + 1),
                like_count: Some(base / 10),
                comment_count: Some(base / 100),
                duration: "PT4M13S".into(),
                duration_seconds: 253,
                fetched_at: Timestamp::from_millis("t", fetched)?,
                // Each snapshot names the one before it, as the fetcher's do.
                previous_view_count: Some(base * k as i64),
                previous_title: Some(if k == 0 { String::new() } else { title(i) }),
            };
            insert.write(&e.row(0, offset as i64)).await?;
            offset += 1;
        }
        insert.end().await?;
    }
    let mut insert = ch
        .insert::<<ChannelStatisticsFetched as Table>::Row>(ChannelStatisticsFetched::TABLE)
        .await?;
    for c in 0..channels {
        for k in 0..snapshots {
            let e = ChannelStatisticsFetched {
                event_id: EventId::new_random(),
                channel_id: format!("UC{c:04}"),
                title: format!("Channel {c}"),
                description: String::new(),
                custom_url: format!("@channel{c}"),
                published_at: Timestamp::from_millis("t", 1_500_000_000_000)?,
                thumbnails: Default::default(),
                subscriber_count: Some((c as i64 * 977 % 1_000_000) + k as i64 * 10),
                view_count: (c as i64 * 13_331) + k as i64 * 1_000,
                video_count: (videos / channels) as i64,
                fetched_at: Timestamp::from_millis("t", now - (snapshots - 1 - k) as i64 * DAY_MS)?,
            };
            insert.write(&e.row(0, offset as i64)).await?;
            offset += 1;
        }
    }
    insert.end().await?;
    Ok(offset)
}

/// Trains the model on `db`, runs the predictor in-process, and times `requests` sequential
/// predictions through the API at `base` (request produced, predictor's reply consumed): p50, p99
/// (ms), the model's version, and the in-process `predict` alone (µs, median).
pub async fn prediction_latency(
    base: &str,
    db: &str,
    requests: usize,
) -> anyhow::Result<(f64, f64, String, f64, f64)> {
    let stack = common::config::StackConfig::from_env();
    let mut config = PredictorConfig::from_env()?;
    // The bench publishes its videos over the last 30 days (with BENCH_VIDEOS under a million,
    // over less): not every run has videos seen at day 28.
    config.requirements.min_late_videos = 0;
    let ch = ClickHouseConfig::from_env()?.with_database(db).client();
    let trained = Instant::now();
    let state = train(&ch, &config).await?;
    let train_secs = trained.elapsed().as_secs_f64();
    let ModelState::Ready(model) = &state else {
        anyhow::bail!("no model: {state:?}");
    };
    let version = model.version.clone();
    let mut alone = Vec::new();
    for i in 0..1_000u64 {
        let input = predictor::VideoInput {
            title: "Official trailer".into(),
            subscribers: 1_000 + i * 997,
            upload_ms: 1_790_000_000_000,
        };
        let t = Instant::now();
        std::hint::black_box(model.predict(&input));
        alone.push(t.elapsed().as_secs_f64() * 1e6);
    }
    alone.sort_by(f64::total_cmp);
    let model = Arc::new(RwLock::new(state));
    let codec = schemas::Codec::new(&stack.schema_registry_url)?;
    let mut runtime = consumers::RuntimeConfig::from_env("unused")?;
    runtime.group_id = format!("bench-predictor-{}", uuid::Uuid::new_v4());
    runtime.max_wait = Duration::from_millis(1);
    consumers::groups::commit_at_end(
        &stack.kafka_brokers,
        &runtime.group_id,
        schemas::events::ViewsPredictionRequested::TOPIC,
    )?;
    let shutdown = common::shutdown::Shutdown::new();
    let predictor = tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        Predictions::new(
            model,
            producers::EventProducer::new(
                &producers::ProducerConfig::from_env(&stack.kafka_brokers)?,
                codec,
            )?,
            config.reply_topics.clone(),
        ),
        shutdown.clone(),
    ));
    // Until the predictor owns the partitions: the first answers.
    let http = reqwest::Client::new();
    let ask = |i: usize| {
        serde_json::json!({"title": format!("Official trailer {i}"), "channel_subscribers": 1_000 + i * 997,
                           "upload_date": "2026-11-27"})
    };
    let post = |i: usize| {
        http.post(format!("{base}/api/v1/videos/views-prediction"))
            .header("x-api-key", "bench-key")
            .json(&ask(i))
            .send()
    };
    let warm = Instant::now() + Duration::from_secs(60);
    while post(0).await?.status() != 200 {
        anyhow::ensure!(
            Instant::now() < warm,
            "the predictor did not answer within 60 s"
        );
    }
    let mut times = Vec::new();
    for i in 0..requests {
        let t = Instant::now();
        let resp = post(i).await?;
        anyhow::ensure!(resp.status() == 200, "prediction {i}: {}", resp.status());
        resp.bytes().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    shutdown.trigger();
    predictor.await??;
    Ok((
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        version,
        percentile(&alone, 0.5),
        train_secs,
    ))
}
