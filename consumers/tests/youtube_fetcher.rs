//! The YouTube fetcher against a local fake of the Data API's `search.list` (paging, quota errors):
//! two keys, the first exhausted mid-run -> the second is used, by this instance and by a second
//! fetcher process that only sees the shared state; paging followed; re-fetched videos appear once in
//! the ClickHouse results; no key ever in the logs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink};
use consumers::RuntimeConfig;
use producers::youtube::{parse_keys, Fetcher, FetcherConfig, SharedState};
use producers::{EventProducer, ProducerConfig};
use schemas::events::VideoFetched;
use schemas::Event;

#[path = "support/youtube_fake.rs"]
mod youtube_fake;
use youtube_fake::{fetcher_config, iso, serve, Fake, Shared, K1, K2};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_quota_state_is_shared_paging_is_followed_results_are_unique() {
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (travel, food) = (format!("travel-{id}"), format!("food-{id}"));
    let now = schemas::domain::Timestamp::now().millis();
    let fake: Shared = Arc::new(Mutex::new(Fake::default()));
    {
        let mut f = fake.lock().unwrap();
        // Quota units: one search (100) and the statistics of its page (1).
        f.quota.insert(K1.into(), 101);
        f.quota.insert(K2.into(), 100_000);
        f.videos.insert(
            travel.clone(),
            (0..5)
                .map(|i| (format!("t{i}-{id}"), iso(now - 60_000 * (i + 1))))
                .collect(),
        );
        f.videos.insert(
            food.clone(),
            (0..3)
                .map(|i| (format!("f{i}-{id}"), iso(now - 60_000 * (i + 1))))
                .collect(),
        );
    }
    let base_url = serve(&fake);

    // Shared state in a fresh Mongo database; results through the real ClickHouse sink.
    let mongo_db = format!("test_yt_{id}");
    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .unwrap();
    stores::mongo::migrate(&mongo, &mongo_db).await.unwrap();
    let ch = ClickHouseConfig::from_env()
        .unwrap()
        .with_database(&format!("test_yt_{id}"));
    consumers::init::migrate_clickhouse(&ch).await.unwrap();
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-yt-{id}");
    runtime.max_wait = Duration::from_millis(50);
    let specs = consumers::init::topic_specs().unwrap();
    producers::admin::ensure_topics(&stack.kafka_brokers, &specs)
        .await
        .unwrap();
    consumers::groups::commit_at_end(&stack.kafka_brokers, &runtime.group_id, VideoFetched::TOPIC)
        .unwrap();
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    codec.register_all().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        ClickHouseSink::<VideoFetched>::new(&ch),
        common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        }),
    ));

    // Instance A: the first key runs out after one call; the second finishes the walk.
    let config = FetcherConfig {
        queries: vec![travel.clone()],
        ..fetcher_config(&base_url, &format!("first:{K1},second:{K2}"))
    };
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
        codec.clone(),
    )
    .unwrap();
    let fetcher = Fetcher::new(
        config,
        SharedState::new(mongo.database(&mongo_db)),
        producer,
    )
    .unwrap();
    let report = fetcher.fetch_query(&travel).await.unwrap();
    assert_eq!((report.pages, report.videos), (3, 5));
    let log = fake.lock().unwrap().log.clone();
    let calls: Vec<(&str, &str)> = log
        .iter()
        .map(|(k, _, t)| (k.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        calls,
        [(K1, ""), (K1, "2"), (K2, "2"), (K2, "4")],
        "paging followed, key rotated on quota"
    );
    let metrics = common::metrics::render();
    for line in [
        "youtube_requests_total{key=\"first\",method=\"search.list\",outcome=\"quota\"} 1",
        "youtube_requests_total{key=\"second\",method=\"search.list\",outcome=\"ok\"} 2",
        "youtube_quota_units_total{key=\"first\",method=\"search.list\"} 100",
        "youtube_quota_units_total{key=\"first\",method=\"videos.list\"} 1",
        "youtube_quota_units_total{key=\"second\",method=\"search.list\"} 200",
        "youtube_keys_exhausted 1",
        "youtube_all_keys_exhausted 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    // Instance B, another process, sees the exhausted key in the shared state and never uses it.
    let out = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/youtube-fetcher"
    ))
    .arg("--once")
    .env("METRICS_ADDR", "off")
    .env("YOUTUBE_BASE_URL", &base_url)
    .env("YOUTUBE_API_KEYS", format!("first:{K1},second:{K2}"))
    .env("YOUTUBE_QUERIES", &food)
    .env("MONGO_DATABASE", &mongo_db)
    .env("RUST_LOG", "debug,rdkafka=info,librdkafka=info")
    .output()
    .expect("the youtube-fetcher binary (make build)");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{logs}");
    let food_calls: Vec<String> = fake
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, q, _)| *q == food)
        .map(|(k, _, _)| k.clone())
        .collect();
    assert_eq!(food_calls, [K2, K2], "only the second key, two pages");
    assert!(
        !logs.contains(K1) && !logs.contains(K2),
        "a key leaked into the logs"
    );

    // A later run of A: the 90 s overlap re-fetches the two newest travel videos (the newest, and
    // the one 60 s older).
    let second_run_ms = schemas::domain::Timestamp::now().millis() as u64;
    let again = fetcher.fetch_query(&travel).await.unwrap();
    assert_eq!(
        again.videos, 2,
        "only what is newer than the cursor minus the overlap"
    );

    // An instance whose only key is the exhausted one: it says all keys are out, in the metric too.
    let mut only_first = fetcher.config().clone();
    only_first.keys = parse_keys(&format!("first:{K1}"));
    let lone = Fetcher::new(
        only_first,
        SharedState::new(mongo.database(&mongo_db)),
        EventProducer::new(
            &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
            codec.clone(),
        )
        .unwrap(),
    )
    .unwrap();
    let err = lone.fetch_query(&travel).await.unwrap_err();
    assert!(
        matches!(err, producers::youtube::FetchError::AllKeysExhausted { .. }),
        "{err}"
    );
    assert!(common::metrics::render().contains("youtube_all_keys_exhausted 1"));

    // Results: 8 distinct videos, each once, though 10 VideoFetched were produced.
    let client = ch.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Arrived: all 8 videos, and the 2 re-fetched ones in their second version (counting raw rows
    // would race with a background merge, which current ClickHouse runs soon).
    loop {
        let (videos, refetched): (u64, u64) = client
            .query(
                "SELECT uniqExact(video_id), countIf(fetched_at_ms >= ?) \
                 FROM videos WHERE endsWith(video_id, ?)",
            )
            .bind(second_run_ms)
            .bind(format!("-{id}"))
            .fetch_one()
            .await
            .unwrap();
        if videos == 8 && refetched == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows did not arrive: {videos} videos, {refetched} re-fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rows, distinct): (u64, u64) = client
        .query("SELECT count(), uniqExact(video_id) FROM videos FINAL WHERE endsWith(video_id, ?)")
        .bind(format!("-{id}"))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((rows, distinct), (8, 8));
    let _ = stop.send(());
    sink.await.unwrap().unwrap();
    let _ = ch
        .clone()
        .with_database("default")
        .client()
        .query(&format!("DROP DATABASE test_yt_{id}"))
        .execute()
        .await;
    mongo.database(&mongo_db).drop().await.unwrap();
}
