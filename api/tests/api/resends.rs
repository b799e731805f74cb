//! A resend counts once: every analytics and video-statistics answer is the same after 1,000
//! already-written events are written again through the ClickHouse sink, in the same batch as the
//! originals and in later batches (the crash-and-restart case, through Kafka and the sink binary,
//! is in consumers/tests/clickhouse_sink.rs).

use std::collections::HashMap;

use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink, Table};
use consumers::{Record, Sink};
use schemas::domain::*;
use schemas::events::*;
use serde_json::Value;

use crate::helpers::{fresh_clickhouse, spawn_app_with, test_settings, TestApp};

const T0: i64 = 1_795_169_700_000; // 2026-11-20T10:15:00Z
const RANGE: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis("t", T0 + ms).unwrap()
}

/// Writes `events` through the sink in batches of `per_batch` and returns how many it left out
/// as already written.
async fn write<E: Table + Clone>(db: &str, events: &[E], per_batch: usize) -> usize {
    let ch = ClickHouseConfig::from_env().unwrap().with_database(db);
    let sink = ClickHouseSink::<E>::new(&ch);
    let records: Vec<Record<E>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Record {
            event: e.clone(),
            partition: 0,
            offset: i as i64,
        })
        .collect();
    let mut duplicates = 0;
    for chunk in records.chunks(per_batch) {
        duplicates += sink.write(chunk).await.unwrap().duplicates;
    }
    duplicates
}

struct Events {
    viewings: Vec<MovieViewing>,
    positions: Vec<PlaybackPosition>,
    user_events: Vec<UserEvent>,
    videos: Vec<VideoFetched>,
}

impl Events {
    fn len(&self) -> usize {
        self.viewings.len() + self.positions.len() + self.user_events.len() + self.videos.len()
    }

    /// Writes every event, `per_batch` to a batch; returns the duplicates the sink reported.
    async fn write(&self, db: &str, per_batch: usize) -> usize {
        write(db, &self.viewings, per_batch).await
            + write(db, &self.positions, per_batch).await
            + write(db, &self.user_events, per_batch).await
            + write(db, &self.videos, per_batch).await
    }

    /// The same events, each twice in a row (a client's retry inside one request).
    fn doubled(&self) -> Events {
        fn twice<E: Clone>(v: &[E]) -> Vec<E> {
            v.iter().flat_map(|e| [e.clone(), e.clone()]).collect()
        }
        Events {
            viewings: twice(&self.viewings),
            positions: twice(&self.positions),
            user_events: twice(&self.user_events),
            videos: twice(&self.videos),
        }
    }
}

fn events(users: &[UserId], movies: &[MovieId]) -> Events {
    let viewings = (0..400)
        .map(|i| MovieViewing {
            event_id: EventId::new_random(),
            user_id: users[i % users.len()],
            movie_id: movies[(i / users.len()) % movies.len()],
            viewed_seconds: (i % 7 + 1) as i64,
            occurred_at: at(i as i64 * 9_000),
        })
        .collect();
    let positions = (0..300)
        .map(|i| PlaybackPosition {
            event_id: EventId::new_random(),
            user_id: users[i % users.len()],
            movie_id: movies[(i / users.len()) % movies.len()],
            position_ms: PositionMs::parse((i as i64 * 997) % 100_000).unwrap(),
            duration_ms: Some(PositionMs::parse(100_000).unwrap()),
            occurred_at: at(i as i64 * 11_000),
        })
        .collect();
    let user_events = (0..250)
        .map(|i| UserEvent {
            event_id: EventId::new_random(),
            user_id: Some(users[i % users.len()]),
            anonymous_id: None,
            event_type: ["click", "page_view", "search"][i % 3].to_string(),
            properties: HashMap::new(),
            occurred_at: at(i as i64 * 29_000),
            properties_json: None,
        })
        .collect();
    let now = Timestamp::now().millis();
    let videos = (0..50)
        .map(|i| VideoFetched {
            event_id: EventId::new_random(),
            video_id: format!("vid{i}"),
            title: format!("travel diary {i}"),
            description: "a walk".to_string(),
            channel_id: format!("ch{}", i % 3),
            channel_title: "a channel".to_string(),
            published_at: Timestamp::from_millis("t", now - (i as i64 + 1) * 3_600_000).unwrap(),
            thumbnails: HashMap::new(),
            query: "travel".to_string(),
            fetched_at: Timestamp::from_millis("t", now - 60_000).unwrap(),
        })
        .collect();
    Events {
        viewings,
        positions,
        user_events,
        videos,
    }
}

/// Every read the API answers from these tables, as (path, status, body).
async fn answers(
    app: &TestApp,
    users: &[UserId],
    movies: &[MovieId],
    now: i64,
) -> Vec<(String, u16, Value)> {
    let iso = |ms: i64| api::routes::lists::iso_millis(ms);
    let mut paths = Vec::new();
    for u in users {
        for m in movies {
            paths.push(format!("/api/v1/analytics/users/{u}/movies/{m}/watch-time"));
        }
        paths.push(format!("/api/v1/analytics/users/{u}/continue-watching"));
    }
    paths.push(format!("/api/v1/analytics/movies/top?{RANGE}&limit=100"));
    paths.push(format!(
        "/api/v1/analytics/movies/top?{RANGE}&by=viewers&limit=100"
    ));
    paths.push(format!("/api/v1/analytics/events/hourly?{RANGE}"));
    paths.push("/api/v1/videos/trending-keywords?period=7d&limit=10".to_string());
    paths.push("/api/v1/videos?limit=100".to_string());
    for ch in 0..3 {
        paths.push(format!(
            "/api/v1/channels/ch{ch}/stats?from={}&to={}",
            iso(now - 10 * 86_400_000),
            iso(now + 3_600_000)
        ));
    }
    app.get_all_as_service(paths).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_1000_written_events_changes_no_answer() {
    let mut settings = test_settings();
    let (db, admin) = fresh_clickhouse(&settings, "test_resends").await;
    let client = admin.clone().with_database(&db);
    settings.stack.clickhouse_database = db.clone();
    let app = spawn_app_with(settings).await;
    let users: Vec<UserId> = (0..5)
        .map(|_| UserId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let movies: Vec<MovieId> = (0..4)
        .map(|_| MovieId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let events = events(&users, &movies);
    assert_eq!(events.len(), 1000);

    // The originals, each in a batch with its own resend: half of every batch is left out.
    assert_eq!(events.doubled().write(&db, 200).await, 1000);
    let now = Timestamp::now().millis();
    let before = answers(&app, &users, &movies, now).await;
    let unchanged = |after: Vec<(String, u16, Value)>| {
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(a, b, "{} changed", b.0);
        }
    };
    for (path, status, body) in &before {
        assert_eq!(*status, 200, "{path}: {body}");
    }
    // The answers are about these events (a test that reads nothing would pass below).
    let watched: u64 = before
        .iter()
        .filter(|(p, _, _)| p.ends_with("/watch-time"))
        .map(|(_, _, b)| b["viewed_seconds"].as_u64().unwrap())
        .sum();
    let expected: u64 = events
        .viewings
        .iter()
        .map(|v| v.viewed_seconds as u64)
        .sum();
    assert_eq!(watched, expected);
    let hourly = crate::helpers::hourly_total(&before);
    assert_eq!(hourly, 250);

    // Later batches, of other sizes: every event is left out (but the video fetches: `videos`
    // keeps the latest fetch per video, so writing one again is an idempotent new version, and
    // is not looked up), no answer moves.
    let looked_up = events.len() - events.videos.len();
    assert_eq!(events.write(&db, 1000).await, looked_up);
    unchanged(answers(&app, &users, &movies, now).await);
    assert_eq!(events.write(&db, 7).await, looked_up);
    unchanged(answers(&app, &users, &movies, now).await);

    // The raw tables hold each event once without FINAL or a merge.
    for (table, n) in [
        ("movie_viewings", 400u64),
        ("playback_positions", 300),
        ("user_events", 250),
    ] {
        let rows: u64 = client
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(rows, n, "{table}");
    }
    let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
}
