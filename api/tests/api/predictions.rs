//! Views prediction over Kafka request/reply, with the views predictor running in-process on the
//! shared consumer runtime: a request made before the first training waits for it (uncommitted)
//! and is answered after; "not enough data" while ClickHouse has too few snapshots (409, with
//! why); a model trained on snapshots written as the sink writes them answers within the wait
//! (200: 31 cumulative days and an interval, the model's version); a request that outlives the
//! wait is answered 202 and then found by polling; a request naming a foreign reply topic is
//! dead-lettered, not answered there.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::ClickHouseConfig;
use consumers::sinks::predictions::{train, ModelState, Predictions, PredictorConfig};
use consumers::RuntimeConfig;
use producers::{EventProducer, ProducerConfig};
use schemas::domain::{EventId, Timestamp};
use schemas::events::{ChannelStatisticsFetched, VideoStatisticsFetched};
use schemas::Event;
use serde_json::{json, Value};

use crate::helpers::{fresh_clickhouse, sink_write, spawn_app_with, test_settings, TestApp};

const DAY_MS: i64 = 86_400_000;

/// 60 synthetic videos observed daily for 31 days, uploaded about 40 days ago, as the sink writes
/// their snapshots; and their channels' subscriber counts.
async fn seed(db: &str) {
    let now = Timestamp::now().millis();
    let series = predictor::synthetic::series(11, 60, 31);
    let at = |ms: i64| Timestamp::from_millis("t", ms).unwrap();
    let mut snapshots = Vec::new();
    let mut channels: HashMap<String, u64> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        let upload = now - 40 * DAY_MS - i as i64 * 3_600_000;
        channels.insert(s.channel_id.clone(), s.video.subscribers);
        for (k, views) in s.views.iter().enumerate() {
            snapshots.push(VideoStatisticsFetched {
                event_id: EventId::new_random(),
                video_id: s.video_id.clone(),
                channel_id: s.channel_id.clone(),
                title: s.video.title.clone(),
                published_at: at(upload),
                view_count: views.unwrap() as i64,
                like_count: None,
                comment_count: None,
                duration: String::new(),
                duration_seconds: 0,
                fetched_at: at(upload + (k as i64 + 1) * DAY_MS),
                previous_view_count: None,
                previous_title: None,
            });
        }
    }
    sink_write(db, snapshots, usize::MAX).await;
    let channels = channels
        .into_iter()
        .map(|(channel_id, subs)| ChannelStatisticsFetched {
            event_id: EventId::new_random(),
            channel_id,
            title: "Synthetic".into(),
            description: String::new(),
            custom_url: String::new(),
            published_at: at(1_500_000_000_000),
            thumbnails: Default::default(),
            subscriber_count: Some(subs as i64),
            view_count: 0,
            video_count: 0,
            fetched_at: at(now - DAY_MS),
        })
        .collect();
    sink_write(db, channels, usize::MAX).await;
}

/// Polls `location` until it answers other than 202 (30 s at most).
async fn answer_of(app: &TestApp, location: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = app.get_as_service(location).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        if status != 202 {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "no answer to poll at {location}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prediction_travels_over_kafka_and_back_or_says_there_is_not_enough_data() {
    let mut settings = test_settings();
    let stack = settings.stack.clone();
    let (db, admin) = fresh_clickhouse(&settings, "test_predict").await;
    let ch = ClickHouseConfig::from_env()
        .unwrap()
        .with_database(&db)
        .client();

    // The predictor, in-process, on a group of its own that starts at the end of the requests.
    let config = PredictorConfig::from_env().unwrap();
    let model = Arc::new(RwLock::new(ModelState::Untrained));
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-predictor-{}", uuid::Uuid::new_v4());
    runtime.max_wait = Duration::from_millis(20);
    let dlq = format!("test-predict-dlq-{}", uuid::Uuid::new_v4().simple());
    runtime.dead_letter_topic = dlq.clone();
    settings.limits.prediction_wait = Duration::from_secs(10);
    let app = spawn_app_with(settings.clone()).await;
    let mut quick = settings.clone();
    quick.limits.prediction_wait = Duration::ZERO;
    let impatient = spawn_app_with(quick).await;
    consumers::groups::commit_at_end(
        &stack.kafka_brokers,
        &runtime.group_id,
        schemas::events::ViewsPredictionRequested::TOPIC,
    )
    .unwrap();
    let shutdown = common::shutdown::Shutdown::new();
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
        codec.clone(),
    )
    .unwrap();
    let predictor = tokio::spawn(consumers::run(
        runtime,
        codec,
        Predictions::new(model.clone(), producer.clone(), config.reply_topics.clone()),
        shutdown.clone(),
    ));
    let ask = |subscribers: u64| {
        json!({"title": "Dune part three official trailer", "channel_subscribers": subscribers,
               "upload_date": "2026-11-27", "thumbnail_url": "https://i.ytimg.com/vi/x/hqdefault.jpg"})
    };

    // Before the first training: the request waits, uncommitted (the predictor retries it), and is
    // answered once the model state is known: here, not enough data.
    let resp = impatient
        .post_json("/api/v1/videos/views-prediction", &ask(50_000))
        .await;
    assert_eq!(resp.status(), 202);
    let early = resp.headers()["location"].to_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.get_as_service(&early).await.status(),
        202,
        "unanswered while untrained"
    );

    // No snapshots yet: trained, and not enough data, which the answer says plainly.
    let state = train(&ch, &config).await.unwrap();
    assert!(matches!(state, ModelState::NotEnough(_)), "{state:?}");
    *model.write().unwrap() = state;
    let (status, body) = answer_of(&app, &early).await;
    assert_eq!(status, 409, "{body}");
    let resp = app
        .post_json("/api/v1/videos/views-prediction", &ask(50_000))
        .await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not enough data to predict views", "{body}");
    let why = body["details"][0]["message"].as_str().unwrap();
    assert!(why.contains("0 videos with statistics snapshots"), "{why}");

    // Snapshots of 60 videos: a model, and a prediction within the wait.
    seed(&db).await;
    let state = train(&ch, &config).await.unwrap();
    let ModelState::Ready(m) = &state else {
        panic!("{state:?}")
    };
    let version = m.version.clone();
    assert!(
        version.starts_with("ols-") && version.ends_with("-60v"),
        "{version}"
    );
    *model.write().unwrap() = state;
    let predict = |subscribers: u64| {
        let app = &app;
        async move {
            let resp = app
                .post_json("/api/v1/videos/views-prediction", &ask(subscribers))
                .await;
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let started = Instant::now();
    let (status, big) = predict(2_000_000).await;
    assert_eq!(status, 200, "{big}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(big["status"], "predicted");
    assert_eq!(big["model_version"], version);
    assert_eq!(big["training_videos"], 60);
    let days = big["days"].as_array().unwrap();
    assert_eq!(days.len(), 31);
    assert_eq!(days[0]["day"], 1);
    assert_eq!(days[30]["day"], 31);
    let views = |b: &Value, k: usize| b["days"][k]["views"].as_i64().unwrap();
    for (k, d) in days.iter().enumerate() {
        assert!(d["lower"].as_i64() <= d["views"].as_i64(), "{d}");
        assert!(d["views"].as_i64() <= d["upper"].as_i64(), "{d}");
        if k > 0 {
            assert!(views(&big, k - 1) <= views(&big, k), "cumulative: {big}");
        }
    }
    let (_, small) = predict(2_000).await;
    assert!(
        views(&big, 30) > 10 * views(&small, 30),
        "a channel 1,000 times larger: {} vs {}",
        views(&big, 30),
        views(&small, 30)
    );

    // A request that outlives the wait: 202 with where to poll, then the answer there.
    let resp = impatient
        .post_json("/api/v1/videos/views-prediction", &ask(2_000_000))
        .await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let pending: Value = resp.json().await.unwrap();
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["poll"], location);
    // The other instance serves the poll: the reply is in Redis.
    let (status, polled) = answer_of(&app, &location).await;
    assert_eq!(status, 200, "{polled}");
    assert_eq!(polled["request_id"], pending["request_id"]);
    assert_eq!(
        polled["days"], big["days"],
        "the same model, the same answer"
    );

    // Bad input: every field named; a poll of an unknown or malformed id.
    let resp = app
        .post_json(
            "/api/v1/videos/views-prediction",
            &json!({"title": "", "channel_subscribers": -1, "upload_date": "yesterday",
                    "thumbnail_url": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "title",
            "channel_subscribers",
            "upload_date",
            "thumbnail_url"
        ]
    );
    let resp = app
        .get_as_service(&format!(
            "/api/v1/videos/views-prediction/{}",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = app
        .get_as_service("/api/v1/videos/views-prediction/not-a-uuid")
        .await;
    assert_eq!(resp.status(), 400);

    // A request naming a reply topic the predictor does not answer on: dead-lettered with why.
    producer
        .send(
            &schemas::events::ViewsPredictionRequested {
                event_id: EventId::new_random(),
                title: "Elsewhere".into(),
                channel_subscribers: 1,
                upload_date: Timestamp::now(),
                thumbnail_url: None,
                reply_topic: "ugc.not-ours".into(),
                occurred_at: Timestamp::now(),
            },
            &[],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        let reasons: Vec<String> = app
            .records(&dlq)
            .await
            .iter()
            .filter_map(|m| consumers::runtime::dead_letter::header(m, "dlq.error"))
            .collect();
        if let Some(r) = reasons.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        reason.contains("\"ugc.not-ours\" is not one the predictor answers on"),
        "{reason}"
    );

    shutdown.trigger();
    predictor.await.unwrap().unwrap();
    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
}
