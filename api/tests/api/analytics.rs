//! Analytics reads: seeded through the ClickHouse sink's own writer into a fresh database, read over
//! HTTP.

use std::collections::HashMap;

use reqwest::Method;
use schemas::domain::*;
use schemas::events::*;
use serde_json::{json, Value};

use crate::helpers::{
    fresh_clickhouse, new_id, sink_write, spawn_app_with, test_settings, TestApp,
};

const T0: i64 = 1_795_169_700_000; // 2026-11-20T10:15:00Z

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis("t", T0 + offset_ms).unwrap()
}

struct Seeded {
    app: TestApp,
    user: UserId,
    movies: Vec<MovieId>,
    db: String,
}

async fn seeded() -> Seeded {
    let mut settings = test_settings();
    let (db, _admin) = fresh_clickhouse(&settings, "test_analytics").await;
    let user = UserId::from_uuid(uuid::Uuid::new_v4());
    let other = UserId::from_uuid(uuid::Uuid::new_v4());
    let movies: Vec<MovieId> = (0..4)
        .map(|_| MovieId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let pos = |movie: MovieId, position: i64, duration: Option<i64>, t: i64| PlaybackPosition {
        event_id: EventId::new_random(),
        user_id: user,
        movie_id: movie,
        position_ms: PositionMs::parse(position).unwrap(),
        duration_ms: duration.map(|d| PositionMs::parse(d).unwrap()),
        occurred_at: at(t),
    };
    sink_write(
        &db,
        vec![
            pos(movies[0], 50_000, Some(100_000), 0),
            pos(movies[0], 10_000, Some(100_000), 1_000), // newest for movie 0: 10%, in
            pos(movies[1], 95_000, Some(100_000), 2_000), // 95%: finished, out
            pos(movies[2], 2_000, Some(100_000), 3_000),  // 2%: barely started, out
            pos(movies[3], 7_000, None, 4_000),           // duration unknown: in, newest
        ],
        usize::MAX, // one insert
    )
    .await;
    let view = |u: UserId, m: MovieId, s: i64, t: i64| MovieViewing {
        event_id: EventId::new_random(),
        user_id: u,
        movie_id: m,
        viewed_seconds: s,
        occurred_at: at(t),
    };
    sink_write(
        &db,
        vec![
            view(user, movies[0], 100, 0),
            view(user, movies[0], 50, 10),
            view(other, movies[0], 30, 20),
            view(user, movies[1], 500, 30),
        ],
        usize::MAX, // one insert
    )
    .await;
    let ev = |kind: &str, t: i64| UserEvent {
        event_id: EventId::new_random(),
        user_id: Some(user),
        anonymous_id: None,
        event_type: kind.to_string(),
        properties: HashMap::new(),
        occurred_at: at(t),
        properties_json: None,
    };
    sink_write(
        &db,
        vec![
            ev("click", 0),
            ev("click", 60_000),
            ev("click", 120_000),
            ev("page_view", 0),
            ev("click", 3_600_000),
            ev("click", 3_700_000),
        ],
        usize::MAX, // one insert
    )
    .await;
    settings.stack.clickhouse_database = db.clone();
    Seeded {
        app: spawn_app_with(settings).await,
        user,
        movies,
        db,
    }
}

impl Seeded {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .app
            .client
            .get(self.app.url(path))
            .header("x-api-key", crate::helpers::API_KEY)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn drop(self) {
        let admin = clickhouse::Client::default().with_url(&self.app.settings.stack.clickhouse_url);
        let _ = admin
            .query(&format!("DROP DATABASE {}", self.db))
            .execute()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_time_and_continue_watching() {
    let s = seeded().await;
    let (u, m) = (s.user.to_string(), s.movies[0].to_string());
    let (status, body) = s
        .get(&format!(
            "/api/v1/analytics/users/{u}/movies/{m}/watch-time"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"user_id": u, "movie_id": m, "viewed_seconds": 150})
    );

    let (status, body) = s
        .get(&format!("/api/v1/analytics/users/{u}/continue-watching"))
        .await;
    assert_eq!(status, 200, "{body}");
    let items: Vec<(&str, u64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["movie_id"].as_str().unwrap(),
                i["position_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            (s.movies[3].to_string().as_str(), 7_000),
            (m.as_str(), 10_000)
        ]
    );
    assert_eq!(body["items"][1]["updated_at"], "2026-11-20T10:15:01Z");
    let (_, page2) = s
        .get(&format!(
            "/api/v1/analytics/users/{u}/continue-watching?page=2&size=1"
        ))
        .await;
    assert_eq!(page2["items"][0]["movie_id"], m);

    // A user reads only their own; bad parameters are 400s.
    let resp = s
        .app
        .as_user(
            Method::GET,
            &format!("/api/v1/analytics/users/{u}/continue-watching"),
            &new_id(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = s
        .app
        .as_user(
            Method::GET,
            &format!("/api/v1/analytics/users/{u}/continue-watching"),
            &u,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        s.get(&format!(
            "/api/v1/analytics/users/{u}/continue-watching?size=500"
        ))
        .await
        .0,
        400
    );
    assert_eq!(
        s.get(&format!(
            "/api/v1/analytics/users/{u}/continue-watching?page=0"
        ))
        .await
        .0,
        400
    );
    assert_eq!(
        s.get("/api/v1/analytics/users/nope/continue-watching")
            .await
            .0,
        400
    );
    s.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_movies_and_hourly_events() {
    let s = seeded().await;
    let range = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
    let (status, body) = s
        .get(&format!("/api/v1/analytics/movies/top?{range}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            {"movie_id": s.movies[1].to_string(), "value": 500},
            {"movie_id": s.movies[0].to_string(), "value": 180},
        ])
    );
    let (_, body) = s
        .get(&format!(
            "/api/v1/analytics/movies/top?{range}&by=viewers&limit=1"
        ))
        .await;
    assert_eq!(
        body,
        json!([{"movie_id": s.movies[0].to_string(), "value": 2}])
    );
    // Every movie watched in the period, most viewers first, ties by movie id.
    let (_, body) = s
        .get(&format!("/api/v1/analytics/movies/top?{range}&by=viewers"))
        .await;
    let rows: Vec<(u64, String)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["value"].as_u64().unwrap(), r["movie_id"].to_string()))
        .collect();
    assert_eq!(rows.len(), 2, "{body}");
    assert!(rows
        .windows(2)
        .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1)));
    let (_, body) = s
        .get("/api/v1/analytics/movies/top?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z")
        .await;
    assert_eq!(body, json!([]));

    let (status, body) = s
        .get(&format!("/api/v1/analytics/events/hourly?{range}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            {"hour": "2026-11-20T10:00:00Z", "event_type": "click", "events": 3},
            {"hour": "2026-11-20T10:00:00Z", "event_type": "page_view", "events": 1},
            {"hour": "2026-11-20T11:00:00Z", "event_type": "click", "events": 2},
        ])
    );

    for bad in [
        "/api/v1/analytics/movies/top?from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z",
        "/api/v1/analytics/movies/top?from=2025-01-01T00:00:00Z&to=2026-11-20T00:00:00Z",
        "/api/v1/analytics/movies/top?from=yesterday&to=2026-11-20T00:00:00Z",
        "/api/v1/analytics/movies/top?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&by=likes",
        "/api/v1/analytics/movies/top?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&limit=0",
        "/api/v1/analytics/events/hourly?from=2026-11-20T00:00:00Z",
    ] {
        assert_eq!(s.get(bad).await.0, 400, "{bad}");
    }
    let resp = s
        .app
        .client
        .get(s.app.url(&format!("/api/v1/analytics/movies/top?{range}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    s.drop().await;
}
