//! The fetcher's walks past the page limit and its fetch requests on the consumer runtime, against
//! the local fake of the Data API (a process of their own: the fetcher's metrics are process-wide,
//! and youtube_fetcher.rs asserts exact values of them).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumers::RuntimeConfig;
use producers::youtube::{Fetcher, FetcherConfig, SharedState};
use producers::{EventProducer, ProducerConfig};
use schemas::events::VideoFetched;
use schemas::Event;

#[path = "support/youtube_fake.rs"]
mod youtube_fake;
use youtube_fake::{fetcher_config, iso, serve, Fake, Shared, K2};

fn fetcher(
    base_url: &str,
    db: mongodb::Database,
    codec: &schemas::Codec,
    max_pages: u32,
) -> Fetcher {
    let stack = common::config::StackConfig::from_env();
    Fetcher::new(
        FetcherConfig {
            max_pages,
            retries: 1,
            ..fetcher_config(base_url, &format!("second:{K2}"))
        },
        SharedState::new(db),
        EventProducer::new(
            &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
            codec.clone(),
        )
        .unwrap(),
    )
    .unwrap()
}

/// A fresh MongoDB database for the fetcher's shared state, and a codec with every schema.
async fn fresh_state(id: &str) -> (mongodb::Database, schemas::Codec) {
    let stack = common::config::StackConfig::from_env();
    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .unwrap();
    let db = mongo.database(&format!("test_yt_{id}"));
    stores::mongo::migrate(&mongo, db.name()).await.unwrap();
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    codec.register_all().await.unwrap();
    (db, codec)
}

/// The VideoFetched records on the topic whose video id ends in `-{id}`, as video ids.
async fn fetched_ids(id: &str, expected: usize) -> Vec<String> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let stack = common::config::StackConfig::from_env();
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", format!("test-yt-read-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[VideoFetched::TOPIC]).unwrap();
    let mut out = Vec::new();
    // Every record up to the end, then 2 s more in case a duplicate is still on its way.
    let mut quiet_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < quiet_until {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        else {
            continue;
        };
        let Ok(v) = codec
            .decode::<VideoFetched>(msg.payload().unwrap_or_default())
            .await
        else {
            continue;
        };
        if v.video_id.ends_with(&format!("-{id}")) {
            out.push(v.video_id);
            if out.len() >= expected {
                quiet_until = quiet_until.min(Instant::now() + Duration::from_secs(2));
            }
        }
    }
    out.sort();
    out
}

/// `YOUTUBE_MAX_PAGES` stops a walk of 7 videos (2 per page, 2 pages: 4 videos, two of them
/// published in the same second at the stop); the next run resumes it below the oldest video it
/// reached: every video of the fake API is fetched exactly once, and only then does the cursor move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_stopped_by_the_page_limit_is_resumed_every_video_once() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let query = format!("walk-{id}");
    let now = schemas::domain::Timestamp::now().millis() / 1000 * 1000;
    let fake: Shared = Arc::new(Mutex::new(Fake::default()));
    {
        let mut f = fake.lock().unwrap();
        f.quota.insert(K2.into(), 1_000_000);
        // Newest first; v3 and v4 share a second (v3 ends the first run's second page).
        let minutes = [1, 2, 3, 4, 4, 5, 6];
        f.videos.insert(
            query.clone(),
            minutes
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("v{i}-{id}"), iso(now - 60_000 * m)))
                .collect(),
        );
    }
    let base_url = serve(&fake);
    let (db, codec) = fresh_state(&id).await;
    let state = SharedState::new(db.clone());
    let f = fetcher(&base_url, db.clone(), &codec, 2);

    let first = f.fetch_query(&query).await.unwrap();
    assert_eq!((first.pages, first.videos), (2, 4));
    assert_eq!(
        state.cursor(&query).await.unwrap(),
        None,
        "the walk is not done"
    );
    let walk = state.walk(&query).await.unwrap().expect("the stopped walk");
    assert_eq!(walk.before_ms, now - 4 * 60_000);
    assert_eq!(walk.newest_ms, now - 60_000);

    let second = f.fetch_query(&query).await.unwrap();
    assert_eq!(second.videos, 3, "{second:?}");
    assert_eq!(state.walk(&query).await.unwrap(), None);
    assert_eq!(state.cursor(&query).await.unwrap(), Some(now - 60_000));
    let requests: Vec<String> = fake
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|(_, _, token)| token.clone())
        .collect();
    assert_eq!(
        requests,
        ["", "2", "", "2"],
        "two pages, then the resumed walk's two"
    );

    let ids = fetched_ids(&id, 7).await;
    let want: Vec<String> = (0..7).map(|i| format!("v{i}-{id}")).collect();
    assert_eq!(ids, want, "every video exactly once");
    db.drop().await.unwrap();
}

/// Fetch requests on the runtime: one the API refuses (an invalid query) is dead-lettered with the
/// API's answer and committed; one whose fetch fails (the API down) stays uncommitted while it is
/// retried, and is fetched and committed once the API is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_request_is_not_committed_an_invalid_one_is_dead_lettered() {
    use consumers::sinks::youtube::FetchRequests;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use schemas::events::VideoFetchRequested;
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (bad, down) = (format!("bad-{id}"), format!("down-{id}"));
    let now = schemas::domain::Timestamp::now().millis();
    let fake: Shared = Arc::new(Mutex::new(Fake::default()));
    {
        let mut f = fake.lock().unwrap();
        f.quota.insert(K2.into(), 1_000_000);
        f.failing.insert(bad.clone(), 400);
        f.failing.insert(down.clone(), 503);
        f.videos
            .insert(down.clone(), vec![(format!("d0-{id}"), iso(now - 60_000))]);
    }
    let base_url = serve(&fake);
    let (db, codec) = fresh_state(&id).await;
    let (topic, dlq, group) = (
        format!("test-yt-requests-{id}"),
        format!("test-yt-dlq-{id}"),
        format!("test-yt-requests-{id}"),
    );
    producers::admin::ensure_topics(
        &stack.kafka_brokers,
        &[
            producers::admin::TopicSpec::new(&topic, 1),
            producers::admin::TopicSpec::new(&dlq, 1),
        ],
    )
    .await
    .unwrap();
    let raw = producers::RawProducer::new(&ProducerConfig::from_env(&stack.kafka_brokers).unwrap())
        .unwrap();
    for q in [&bad, &down] {
        let request = VideoFetchRequested {
            event_id: schemas::domain::EventId::new_random(),
            query: q.clone(),
            requested_by: None,
            occurred_at: schemas::domain::Timestamp::now(),
        };
        let bytes = codec.encode(&request).await.unwrap();
        raw.send(&topic, Some(q.as_bytes()), Some(&bytes), &[])
            .await
            .unwrap();
    }
    let sink = FetchRequests::new(Arc::new(fetcher(&base_url, db.clone(), &codec, 5)));
    let shutdown = common::shutdown::Shutdown::new();
    let runtime = RuntimeConfig::local(&stack.kafka_brokers, &group, &topic, &dlq);
    let run = tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        sink,
        shutdown.clone(),
    ));

    let committed = || {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        match consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()[0]
            .offset()
        {
            Offset::Offset(o) => o,
            _ => 0,
        }
    };
    let attempts = |q: &str| {
        fake.lock()
            .unwrap()
            .log
            .iter()
            .filter(|(_, query, _)| query == q)
            .count()
    };
    // The API down: the request is tried again and again (2 HTTP calls per fetch), never committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while attempts(&down) < 6 {
        assert!(
            Instant::now() < deadline,
            "the failing fetch was not retried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts(&bad), 1, "an invalid query is asked once");
    assert_eq!(committed(), 0, "nothing committed past the failing request");

    // The API back: fetched, produced, committed.
    fake.lock().unwrap().failing.remove(&down);
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed() < 2 {
        assert!(
            Instant::now() < deadline,
            "the request was not committed once fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fetched_ids(&id, 1).await, [format!("d0-{id}")]);
    shutdown.trigger();
    run.await.unwrap().unwrap();

    // The invalid one is in the dead-letter topic with the API's answer.
    let reader: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", format!("{group}-dlq"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[&dlq]).unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(30), reader.recv())
        .await
        .expect("a dead letter")
        .unwrap();
    assert_eq!(dead.key(), Some(bad.as_bytes()));
    let error = consumers::runtime::dead_letter::header(&dead, "dlq.error").unwrap();
    assert!(error.contains("invalidParameter"), "{error}");
    assert!(!error.contains(K2), "no key in a dead letter");
    db.drop().await.unwrap();
}
