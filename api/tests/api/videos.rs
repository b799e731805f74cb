//! Video reads over ClickHouse, seeded through the sink's own writer (including a re-fetch of the
//! same video, which must show once, with the latest fetch), and the on-demand fetch request.

use std::collections::HashMap;

use schemas::domain::*;
use schemas::events::*;
use serde_json::{json, Value};

use crate::helpers::{
    fresh_clickhouse, sink_write, spawn_app_with, test_settings, TestApp, API_KEY,
};

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
    let (db, admin) = fresh_clickhouse(&settings, "test_videos").await;
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
    sink_write(&db, videos, usize::MAX).await;
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

/// The trigram-index search gives exactly what a scan of every video's latest fetch gives, page by
/// page — including videos whose latest fetch changed its title, sparse matches that make the walk
/// read more chunks, description-only matches, Cyrillic, and queries too short for a trigram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_matches_a_scan_of_the_latest_fetches() {
    let mut settings = test_settings();
    let (db, admin) = fresh_clickhouse(&settings, "test_vsearch").await;
    const WORDS: &[&str] = &[
        "Travel",
        "island",
        "Lanka",
        "trailer",
        "review",
        "Привет",
        "мир",
        "ocean",
        "Lantern",
        "plan",
        "cooking",
        "street",
    ];
    let now = Timestamp::now().millis();
    let mut latest: HashMap<String, VideoFetched> = HashMap::new();
    let mut events = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..3_000 {
        let id = format!("s{i:05}");
        let pick = |rng: &mut fastrand::Rng, n: usize| -> String {
            (0..n)
                .map(|_| WORDS[rng.usize(..WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Rare matches: "lan" only in some titles, "ocean plan" only once in a while.
        let title = pick(&mut rng, 2);
        let description = pick(&mut rng, 4);
        let published = now - rng.i64(0..30 * 86_400_000);
        let v = video(&id, &title, &description, "chS", published, now - 10_000);
        latest.insert(id.clone(), v.clone());
        events.push(v);
        if i % 7 == 0 {
            // A later fetch with another title: only this one counts.
            let v2 = video(&id, &pick(&mut rng, 2), &description, "chS", published, now);
            latest.insert(id.clone(), v2.clone());
            events.push(v2);
        }
    }
    // Several parts: versions not merged together.
    sink_write(&db, events, 500).await;
    settings.stack.clickhouse_database = db.clone();

    let expected = |q: &str| -> Vec<String> {
        let needle = q.to_lowercase();
        let mut hits: Vec<(bool, i64, String)> = latest
            .values()
            .filter_map(|v| {
                let in_title = v.title.to_lowercase().contains(&needle);
                let any = in_title || v.description.to_lowercase().contains(&needle);
                any.then(|| (in_title, v.published_at.millis(), v.video_id.clone()))
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        hits.into_iter().map(|h| h.2).collect()
    };
    // The default walk budget; one that gives up after the first chunks (walk, then the scan);
    // none (the scan alone).
    for budget in [settings.limits.video_search_walk_budget, 300, 0] {
        let mut settings = settings.clone();
        settings.limits.video_search_walk_budget = budget;
        let app = spawn_app_with(settings).await;
        // The newest list, read by publish-time slice, is every video once, newest first.
        let mut newest: Vec<(i64, String)> = latest
            .values()
            .map(|v| (v.published_at.millis(), v.video_id.clone()))
            .collect();
        newest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let newest: Vec<String> = newest.into_iter().map(|(_, id)| id).collect();
        for (page, limit) in [(1, 20), (7, 100), (40, 50), (61, 50)] {
            let got = page_ids(&app, &format!("/api/v1/videos?page={page}&limit={limit}")).await;
            assert_eq!(
                got,
                page_of(&newest, page, limit),
                "newest page={page} limit={limit}"
            );
        }
        for q in [
            "lan",
            "LANKA",
            "ocean plan",
            "вет м",
            "n t",
            "la",
            "x",
            "review trailer",
        ] {
            let all = expected(q);
            for (page, limit) in [(1, 20), (2, 20), (1, 100), (7, 100), (40, 50)] {
                let path = format!(
                    "/api/v1/videos/search?q={}&page={page}&limit={limit}",
                    urlencode(q)
                );
                assert_eq!(
                    page_ids(&app, &path).await,
                    page_of(&all, page, limit),
                    "q={q:?} page={page} limit={limit} budget={budget} ({} matches)",
                    all.len()
                );
            }
        }
    }
    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
}

/// The video ids of one page of a video list, in order (the request must answer 200).
async fn page_ids(app: &TestApp, path: &str) -> Vec<String> {
    let resp = app
        .client
        .get(app.url(path))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    ids(&resp.json().await.unwrap())
}

/// The video ids of a list answer's items, in order.
fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["videoId"].as_str().unwrap().to_string())
        .collect()
}

/// `page` (1-based) of `limit` items of `all`.
fn page_of(all: &[String], page: usize, limit: usize) -> Vec<String> {
    all.iter()
        .skip((page - 1) * limit)
        .take(limit)
        .cloned()
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
