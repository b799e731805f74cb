//! YouTube analytics end to end: a fake Data API -> the fetcher (search, videos.list,
//! channels.list; the first key runs out of quota on a statistics call) -> Kafka -> the ClickHouse
//! sinks -> every read: a video's details and daily views, channel search, a channel's details and
//! growth per day, a keyword's trend and related words, the top keywords by videos and by views.
//! A re-snapshot changes what the reads answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink, Table};
use consumers::RuntimeConfig;
use producers::youtube::{Fetcher, FetcherConfig, SharedState};
use producers::{EventProducer, ProducerConfig};
use schemas::domain::{EventId, Timestamp};
use schemas::events::{ChannelStatisticsFetched, VideoFetched, VideoStatisticsFetched};
use serde_json::{json, Value};

use crate::helpers::{fresh_clickhouse, sink_write, spawn_app_with, test_settings};

#[path = "../../../consumers/tests/support/youtube_fake.rs"]
mod youtube_fake;
use youtube_fake::{fetcher_config, iso, serve, ChannelStats, Fake, Shared, VideoStats, K1, K2};

const DAY_MS: i64 = 86_400_000;

fn day(ms: i64) -> String {
    api::routes::lists::iso_millis(ms)[..10].to_string()
}

/// Starts a ClickHouse sink for `E` on a fresh consumer group that starts at the topic's end.
fn start_sink<E: Table>(
    ch: &ClickHouseConfig,
    codec: &schemas::Codec,
    brokers: &str,
    shutdown: &common::shutdown::Shutdown,
) -> tokio::task::JoinHandle<Result<Arc<consumers::runtime::Stats>, consumers::runtime::RuntimeError>>
{
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-yt-{}-{}", E::TABLE, uuid::Uuid::new_v4().simple());
    runtime.max_wait = Duration::from_millis(50);
    consumers::groups::commit_at_end(brokers, &runtime.group_id, E::TOPIC).unwrap();
    tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        ClickHouseSink::<E>::new(ch),
        shutdown.clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_flow_from_the_data_api_to_every_read() {
    let mut settings = test_settings();
    let (db, admin) = fresh_clickhouse(&settings, "test_youtube").await;
    let stack = settings.stack.clone();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let query = format!("dune-{id}");
    let (ch_a, ch_b) = (format!("UCa{}", &id[..12]), format!("UCb{}", &id[..12]));
    // In the channels' names and the videos' keywords: the reads below see only this run's data
    // (the local broker reports a partition's end as its last batch's base offset + 1, so a group
    // that starts "at the end" may receive the rest of an earlier run's last batch).
    let tag = &id[..8];
    let now = Timestamp::now().millis();
    let h = 3_600_000;
    let fake: Shared = Arc::new(Mutex::new(Fake::default()));
    {
        let mut f = fake.lock().unwrap();
        // The first key pays for one search (100 units) and nothing more: its first videos.list
        // is refused for quota and the second key takes over.
        f.quota.insert(K1.into(), 100);
        f.quota.insert(K2.into(), 100_000);
        let videos = [
            (
                "v1",
                format!("Dune{tag} part two official trailer{tag}"),
                &ch_a,
                2,
                1_000,
                500,
            ),
            (
                "v2",
                format!("Dune{tag} trailer{tag} reaction"),
                &ch_a,
                3,
                200,
                100,
            ),
            ("v3", format!("Dune{tag} book review"), &ch_b, 4, 50, 0),
        ];
        f.videos.insert(
            query.clone(),
            videos
                .iter()
                .map(|(v, _, _, hours, _, _)| (format!("{v}-{id}"), iso(now - hours * h)))
                .collect(),
        );
        for (v, title, channel, _, views, growth) in videos {
            let vid = format!("{v}-{id}");
            f.video_meta
                .insert(vid.clone(), (channel.to_string(), title));
            f.stats.insert(
                vid,
                VideoStats {
                    views,
                    likes: (v != "v3").then_some(views / 10),
                    comments: Some(3),
                    duration: "PT2M35S".into(),
                    growth,
                },
            );
        }
        f.channels.insert(
            ch_a.clone(),
            ChannelStats {
                title: format!("Legendary Trailers {tag}"),
                custom_url: format!("@legendarytrailers{tag}"),
                published_at: "2015-03-01T00:00:00Z".into(),
                subscribers: Some(5_000),
                views: 900_000,
                videos: 120,
                growth: 25,
            },
        );
        f.channels.insert(
            ch_b.clone(),
            ChannelStats {
                title: format!("Book Reviews Daily {tag}"),
                custom_url: format!("@bookreviews{tag}"),
                published_at: "2018-06-01T00:00:00Z".into(),
                subscribers: None,
                views: 10_000,
                videos: 40,
                growth: 1,
            },
        );
    }
    let base_url = serve(&fake);

    // A snapshot of yesterday for v1 and channel A, written as the sink writes: the history and
    // the growth then span two days.
    let yesterday = now - DAY_MS;
    sink_write(
        &db,
        vec![VideoStatisticsFetched {
            event_id: EventId::new_random(),
            video_id: format!("v1-{id}"),
            channel_id: ch_a.clone(),
            title: format!("Dune{tag} part two official trailer{tag}"),
            published_at: Timestamp::from_millis("t", now - 2 * h).unwrap(),
            view_count: 400,
            like_count: Some(40),
            comment_count: Some(1),
            duration: "PT2M35S".into(),
            duration_seconds: 155,
            fetched_at: Timestamp::from_millis("t", yesterday).unwrap(),
            // Written by hand, as a producer that did not chain snapshots would: the keyword
            // views leave it out, and count the video from the fetcher's first snapshot.
            previous_view_count: None,
            previous_title: None,
        }],
        1,
    )
    .await;
    sink_write(
        &db,
        vec![ChannelStatisticsFetched {
            event_id: EventId::new_random(),
            channel_id: ch_a.clone(),
            title: format!("Legendary Trailers {tag}"),
            description: String::new(),
            custom_url: format!("@legendarytrailers{tag}"),
            published_at: Timestamp::from_millis("t", 1_425_168_000_000).unwrap(),
            thumbnails: Default::default(),
            subscriber_count: Some(4_900),
            view_count: 880_000,
            video_count: 119,
            fetched_at: Timestamp::from_millis("t", yesterday).unwrap(),
        }],
        1,
    )
    .await;

    // The sinks, in-process, into the fresh database.
    let ch = ClickHouseConfig::from_env().unwrap().with_database(&db);
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    let specs = consumers::init::topic_specs().unwrap();
    producers::admin::ensure_topics(&stack.kafka_brokers, &specs)
        .await
        .unwrap();
    codec.register_all().await.unwrap();
    let shutdown = common::shutdown::Shutdown::new();
    let sinks = [
        start_sink::<VideoFetched>(&ch, &codec, &stack.kafka_brokers, &shutdown),
        start_sink::<VideoStatisticsFetched>(&ch, &codec, &stack.kafka_brokers, &shutdown),
        start_sink::<ChannelStatisticsFetched>(&ch, &codec, &stack.kafka_brokers, &shutdown),
    ];

    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .unwrap();
    let mongo_db = format!("test_yt_{id}");
    stores::mongo::migrate(&mongo, &mongo_db).await.unwrap();
    let fetcher = Fetcher::new(
        FetcherConfig {
            queries: vec![query.clone()],
            stats_interval: Duration::from_secs(1),
            ..fetcher_config(&base_url, &format!("first:{K1},second:{K2}"))
        },
        SharedState::new(mongo.database(&mongo_db)),
        EventProducer::new(
            &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
            codec.clone(),
        )
        .unwrap(),
    )
    .unwrap();
    let report = fetcher.fetch_query(&query).await.unwrap();
    assert_eq!(
        (report.videos, report.statistics, report.channels),
        (3, 3, 2),
        "{report:?}"
    );
    let list_calls: Vec<(String, String)> = fake
        .lock()
        .unwrap()
        .list_log
        .iter()
        .map(|(k, m, _)| (k.clone(), m.clone()))
        .collect();
    assert_eq!(
        list_calls,
        [
            (K1.to_string(), "videos".to_string()),
            (K2.to_string(), "videos".to_string()),
            (K2.to_string(), "videos".to_string()),
            (K2.to_string(), "channels".to_string())
        ],
        "the fake pages 2 videos a page: a statistics call per page, the first rotated to the second key"
    );
    let metrics = common::metrics::render();
    for line in [
        "youtube_requests_total{key=\"first\",method=\"videos.list\",outcome=\"quota\"} 1",
        "youtube_quota_units_total{key=\"first\",method=\"search.list\"} 100",
        "youtube_quota_units_total{key=\"second\",method=\"search.list\"} 100",
        "youtube_quota_units_total{key=\"second\",method=\"videos.list\"} 2",
        "youtube_quota_units_total{key=\"second\",method=\"channels.list\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    settings.stack.clickhouse_database = db.clone();
    let app = spawn_app_with(settings).await;
    let get = |path: String| {
        let app = &app;
        async move {
            let (_, status, body) = app.get_all_as_service(vec![path]).await.remove(0);
            (status, body)
        }
    };
    // Until `check` holds of GET `path` (the sinks write asynchronously).
    let eventually = |path: String, check: fn(&Value) -> bool| {
        let get = &get;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (status, body) = get(path.clone()).await;
                if status == 200 && check(&body) {
                    return body;
                }
                assert!(Instant::now() < deadline, "{path}: {status} {body}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    // A video: snippet, latest statistics, duration, and views per day (yesterday's seeded
    // snapshot, then today's from the API).
    let v1 = eventually(format!("/api/v1/videos/v1-{id}"), |b| {
        b["statistics"]["viewCount"] == 1_000
    })
    .await;
    assert_eq!(v1["videoId"], format!("v1-{id}"));
    assert_eq!(
        v1["title"],
        format!("Dune{tag} part two official trailer{tag}")
    );
    assert_eq!(v1["channelId"], ch_a);
    assert_eq!(v1["statistics"]["likeCount"], 100);
    assert_eq!(v1["statistics"]["commentCount"], 3);
    assert_eq!(
        v1["contentDetails"],
        json!({"duration": "PT2M35S", "durationSeconds": 155})
    );
    assert_eq!(
        v1["history"],
        json!([{"day": day(yesterday), "viewCount": 400},
               {"day": day(now), "viewCount": 1_000, "viewsGained": 600}])
    );
    let v3 = eventually(format!("/api/v1/videos/v3-{id}"), |b| {
        b["statistics"]["viewCount"] == 50
    })
    .await;
    assert!(v3["statistics"].get("likeCount").is_none(), "hidden: {v3}");

    // Channels by name, most subscribers first; hidden subscriber counts last.
    // (The seeded snapshot of yesterday is there first: until today's arrives, it is the latest.)
    let found = eventually(format!("/api/v1/channels?q=TRAILERS%20{tag}"), |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 1)
            && b["items"][0]["statistics"]["subscriberCount"] == 5_000
    })
    .await;
    assert_eq!(found["items"][0]["channelId"], ch_a);
    assert_eq!(
        found["items"][0]["customUrl"],
        format!("@legendarytrailers{tag}")
    );
    assert_eq!(found["items"][0]["statistics"]["subscriberCount"], 5_000);
    let by_handle = eventually(format!("/api/v1/channels?q=%40BOOKREVIEWS{tag}"), |b| {
        b["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    assert_eq!(by_handle["items"][0]["channelId"], ch_b);
    assert_eq!(
        by_handle["items"][0]["statistics"]["hiddenSubscriberCount"],
        true
    );
    let (_, all) = get(format!("/api/v1/channels?q={tag}&limit=1&page=2")).await;
    assert_eq!(
        all["items"][0]["channelId"], ch_b,
        "page 2 of 1: the hidden count sorts after 5,000: {all}"
    );

    // A channel: details, latest statistics, latest videos newest first with their views.
    let a = eventually(format!("/api/v1/channels/{ch_a}"), |b| {
        b["latestVideos"].as_array().is_some_and(|v| v.len() == 2)
            && b["latestVideos"][0]["viewCount"] == 1_000
            && b["statistics"]["subscriberCount"] == 5_000
    })
    .await;
    assert_eq!(a["title"], format!("Legendary Trailers {tag}"));
    assert_eq!(a["statistics"]["subscriberCount"], 5_000);
    assert_eq!(a["statistics"]["videoCount"], 120);
    assert_eq!(a["latestVideos"][0]["videoId"], format!("v1-{id}"));
    assert_eq!(a["latestVideos"][1]["videoId"], format!("v2-{id}"));
    assert_eq!(a["latestVideos"][1]["viewCount"], 200);

    // Its growth per day: yesterday's seeded snapshot, today's from the API.
    let (from, to) = (
        api::routes::lists::iso_millis(now - 2 * DAY_MS),
        api::routes::lists::iso_millis(now + h),
    );
    let (status, stats) = get(format!("/api/v1/channels/{ch_a}/stats?from={from}&to={to}")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["growth"],
        json!([{"day": day(yesterday), "viewCount": 880_000, "subscriberCount": 4_900},
               {"day": day(now), "viewCount": 900_000, "viewsGained": 20_000,
                "subscriberCount": 5_000, "subscribersGained": 100}])
    );

    // A keyword: videos per day with their views, and the related words of its titles.
    let dune = eventually(format!("/api/v1/keywords/DUNE{tag}?period=7d"), |b| {
        b["viewCount"] == 1_250
    })
    .await;
    assert_eq!(dune["keyword"], format!("dune{tag}"));
    assert_eq!(dune["videos"], 3);
    let days: u64 = dune["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["videos"].as_u64().unwrap())
        .sum();
    assert_eq!(days, 3);
    assert_eq!(
        dune["related"][0],
        json!({"name": format!("trailer{tag}"), "value": 2}),
        "{dune}"
    );
    // The top lists, as far as this run's words go (other tests' videos may share the database's
    // tables only through stray records, and rank by their own figures).
    let ours = |top: &Value| -> Vec<(String, u64)> {
        top["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["name"].as_str().unwrap().ends_with(tag))
            .map(|w| {
                (
                    w["name"].as_str().unwrap().to_string(),
                    w["value"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (_, top) = get("/api/v1/keywords/top?period=7d&by=views&limit=100".into()).await;
    assert_eq!(
        ours(&top),
        [
            (format!("dune{tag}"), 1_250),
            (format!("trailer{tag}"), 1_200)
        ],
        "{top}"
    );
    let (_, top) = get("/api/v1/keywords/top?period=7d&by=videos&limit=100".into()).await;
    assert_eq!(
        ours(&top),
        [(format!("dune{tag}"), 3), (format!("trailer{tag}"), 2)],
        "{top}"
    );

    // A run that stopped between sending a snapshot of v1 and recording it: the snapshot (200
    // views more) is in Kafka and in the fetcher's outbox, while v1's state still names the one
    // before. The next run must send it again (written once: same event id) and chain from it;
    // chaining from the one before would count its 200 views twice in the keyword views below.
    let state = SharedState::new(mongo.database(&mongo_db));
    let last =
        state.last_snapshots(&[&format!("v1-{id}")]).await.unwrap()[&format!("v1-{id}")].clone();
    let stopped = VideoStatisticsFetched {
        event_id: EventId::new_random(),
        video_id: format!("v1-{id}"),
        channel_id: ch_a.clone(),
        title: last.title.clone(),
        published_at: Timestamp::parse_rfc3339("t", v1["publishedAt"].as_str().unwrap()).unwrap(),
        view_count: last.view_count + 200,
        like_count: None,
        comment_count: None,
        duration: String::new(),
        duration_seconds: 0,
        fetched_at: Timestamp::now(),
        previous_view_count: Some(last.view_count),
        previous_title: Some(last.title),
    };
    state
        .keep_pending(std::slice::from_ref(&stopped))
        .await
        .unwrap();
    EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
        codec.clone(),
    )
    .unwrap()
    .send(&stopped, &[])
    .await
    .unwrap();

    // A re-snapshot: every answer moves with it (v1 grew by 500, channel A by 25 subscribers).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = fetcher.refresh_statistics().await.unwrap();
    assert_eq!((again.videos, again.channels), (3, 2));
    // Sent again and recorded: the outbox is empty (else the next run would record the stopped
    // snapshot as v1's last over the newer one).
    assert_eq!(state.pending_snapshots().await.unwrap(), []);
    let v1 = eventually(format!("/api/v1/videos/v1-{id}"), |b| {
        b["statistics"]["viewCount"] == 1_500
    })
    .await;
    assert_eq!(
        v1["history"][1],
        json!({"day": day(now), "viewCount": 1_500, "viewsGained": 1_100})
    );
    eventually(
        "/api/v1/keywords/top?period=7d&by=views&limit=1".into(),
        |b| b["items"][0]["value"] == 1_850,
    )
    .await;
    let (_, stats) = get(format!("/api/v1/channels/{ch_a}/stats?from={from}&to={to}")).await;
    assert_eq!(stats["growth"][1]["subscriberCount"], 5_025, "{stats}");

    // Bad input is a 400 naming the field; an unknown video or channel a 404.
    for bad in [
        "/api/v1/videos/a%20b".to_string(),
        "/api/v1/channels?q=".to_string(),
        "/api/v1/channels?q=x&limit=0".to_string(),
        "/api/v1/channels/a.b".to_string(),
        "/api/v1/keywords/two%20words".to_string(),
        "/api/v1/keywords/dune?period=1y".to_string(),
        "/api/v1/keywords/top?by=likes".to_string(),
    ] {
        let (status, body) = get(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    for missing in [
        format!("/api/v1/videos/nope-{id}"),
        format!("/api/v1/channels/UCnope{id}"),
    ] {
        let (status, body) = get(missing.clone()).await;
        assert_eq!(status, 404, "{missing}: {body}");
    }

    shutdown.trigger();
    for sink in sinks {
        sink.await.unwrap().unwrap();
    }
    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
    mongo.database(&mongo_db).drop().await.unwrap();
}
