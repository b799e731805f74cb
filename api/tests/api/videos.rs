//! Video reads over ClickHouse, seeded through the sink's own writer (including a re-fetch of the
//! same video, which must show once, with the latest fetch), and the on-demand fetch request.

use std::collections::HashMap;

use consumers::sinks::clickhouse::{migrations, ClickHouseSink};
use consumers::{Record, Sink};
use schemas::domain::*;
use schemas::events::*;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_settings, API_KEY};

fn video(
    id: &str,
    title: &str,
    description: &str,
    channel: &str,
    published_ms: i64,
    fetched_ms: i64,
) -> VideoFetched {
    VideoFetched {
        event_id: EventId::new_random(),
        video_id: id.to_string(),
        title: title.to_string(),
        description: description.to_string(),
        channel_id: channel.to_string(),
        channel_title: format!("{channel} title"),
        published_at: Timestamp::from_millis("t", published_ms).unwrap(),
        thumbnails: HashMap::from([(
            "default".to_string(),
            format!("https://i.ytimg.com/vi/{id}/default.jpg"),
        )]),
        query: "travel".to_string(),
        fetched_at: Timestamp::from_millis("t", fetched_ms).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_search_trending_and_channel_stats() {
    let mut settings = test_settings();
    let db = format!("test_videos_{}", uuid::Uuid::new_v4().simple());
    let admin = clickhouse::Client::default()
        .with_url(&settings.stack.clickhouse_url)
        .with_validation(false);
    for statement in migrations(&db) {
        admin.query(&statement).execute().await.unwrap();
    }
    let now = Timestamp::now().millis();
    let h = 3_600_000;
    let videos = vec![
        video(
            "v1",
            "Sri Lanka travel guide",
            "beaches and tea",
            "chA",
            now - 5 * h,
            now - h,
        ),
        video(
            "v2",
            "Tokyo night walk",
            "a walk through Shinjuku, then Sri Lanka food",
            "chA",
            now - 4 * h,
            now - h,
        ),
        video(
            "v3",
            "Iceland travel vlog",
            "glaciers",
            "chB",
            now - 3 * h,
            now - h,
        ),
        video(
            "v4",
            "Old travel film",
            "archive",
            "chB",
            now - 40 * 24 * h,
            now - h,
        ),
        // v1 fetched again later with a new title: one row, the latest.
        video(
            "v1",
            "Sri Lanka travel guide (updated)",
            "beaches and tea",
            "chA",
            now - 5 * h,
            now,
        ),
    ];
    let records: Vec<Record<VideoFetched>> = videos
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            event,
            partition: 0,
            offset: i as i64,
        })
        .collect();
    ClickHouseSink::<VideoFetched>::new(admin.clone().with_database(&db))
        .write(&records)
        .await
        .unwrap();
    settings.stack.clickhouse_database = db.clone();
    let app = spawn_app_with(settings).await;
    let get = |path: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .get(app.url(&path))
                .header("x-api-key", API_KEY)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["videoId"].as_str().unwrap().to_string())
            .collect()
    };

    let (status, list) = get("/api/v1/videos?page=1&limit=10".into()).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        ids(&list),
        ["v3", "v2", "v1", "v4"],
        "newest published first, v1 once"
    );
    let v1 = &list["items"][2];
    assert_eq!(v1["title"], "Sri Lanka travel guide (updated)");
    assert_eq!(v1["channelId"], "chA");
    assert_eq!(v1["channelTitle"], "chA title");
    assert_eq!(
        v1["thumbnails"]["default"]["url"],
        "https://i.ytimg.com/vi/v1/default.jpg"
    );
    assert!(v1["publishedAt"].as_str().unwrap().ends_with('Z'));
    let (_, page2) = get("/api/v1/videos?page=2&limit=3".into()).await;
    assert_eq!(ids(&page2), ["v4"]);

    // "lan" finds "Sri Lanka": title matches first, then description matches.
    let (_, found) = get("/api/v1/videos/search?q=LAN".into()).await;
    assert_eq!(ids(&found), ["v3", "v1", "v2"], "{found}");
    let (_, found) = get("/api/v1/videos/search?q=shinjuku".into()).await;
    assert_eq!(ids(&found), ["v2"]);
    let (_, none) = get("/api/v1/videos/search?q=zzzz".into()).await;
    assert_eq!(ids(&none), Vec::<String>::new());

    let (status, trending) =
        get("/api/v1/videos/trending-keywords?period=24h&limit=3".into()).await;
    assert_eq!(status, 200, "{trending}");
    assert_eq!(
        trending[0],
        json!({"keyword": "travel", "videos": 2}),
        "{trending}"
    );
    let words: Vec<&str> = trending
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyword"].as_str().unwrap())
        .collect();
    assert!(!words.contains(&"the"));

    let day = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .unwrap()
            .date()
            .to_string()
    };
    let from = time::OffsetDateTime::from_unix_timestamp((now - 60 * 24 * h) / 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = time::OffsetDateTime::from_unix_timestamp((now + h) / 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, stats) = get(format!("/api/v1/channels/chB/stats?from={from}&to={to}")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["channelId"], "chB");
    assert_eq!(
        stats["days"],
        json!([{"day": day(now - 40 * 24 * h), "videos": 1}, {"day": day(now - 3 * h), "videos": 1}])
    );

    for bad in [
        "/api/v1/videos?page=0".to_string(),
        "/api/v1/videos?limit=101".to_string(),
        "/api/v1/videos/search?q=".to_string(),
        "/api/v1/videos/search".to_string(),
        "/api/v1/videos/trending-keywords?period=5m".to_string(),
        format!("/api/v1/channels/chB/stats?from={to}&to={from}"),
    ] {
        let (status, body) = get(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // An on-demand fetch request reaches its topic.
    let resp = app
        .post_json("/api/v1/videos/fetch", &json!({"query": "  sri lanka  "}))
        .await;
    assert_eq!(resp.status(), 202);
    let event_id = resp.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, event) = app
        .find::<VideoFetchRequested>(&event_id)
        .await
        .expect("on the topic");
    assert_eq!(event.query, "sri lanka");
    assert_eq!(
        app.post_json("/api/v1/videos/fetch", &json!({"query": " "}))
            .await
            .status(),
        400
    );
    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
}
