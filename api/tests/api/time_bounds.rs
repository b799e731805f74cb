//! Event times outside `EVENT_MAX_AGE` / `EVENT_MAX_CLOCK_SKEW` are refused with 400 and a reason,
//! single or batched, whichever endpoint carries them.

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{new_id, spawn_app};

/// 1,000 events over 500 distinct months (1970 to 2012), as an attacker would send them to stall a
/// month-partitioned table.
fn old_times() -> Vec<i64> {
    let month_ms = 31 * 86_400_000i64;
    (0..1000)
        .map(|i| ((i * 37) % 500) as i64 * month_ms)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_500_months_ago_are_refused_single_and_batched() {
    let app = spawn_app().await;
    let (user, movie) = (new_id(), new_id());

    // Single requests: half playback events, half anonymous events.
    let answers: Vec<(usize, u16, Value)> = futures::stream::iter(old_times().into_iter().enumerate().map(|(i, at)| {
        let body = if i % 2 == 0 {
            json!({"user_id": user, "movie_id": movie, "event_type": "play", "position_ms": 1, "occurred_at": at})
        } else {
            json!({"anonymous_id": "anon-1", "timestamp": at, "payload": {"event_type": "page_view", "page": "/"}})
        };
        let path = if i % 2 == 0 {
            "/api/v1/movies/playback-event"
        } else {
            "/api/v1/anonymous-events"
        };
        let app = &app;
        async move {
            let resp = app.post_json(path, &body).await;
            (i, resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    }))
    .buffer_unordered(32)
    .collect()
    .await;
    for (i, status, body) in answers {
        assert_eq!(status, 400, "{body}");
        let detail = &body["details"][0];
        let field = if i % 2 == 0 {
            "occurred_at"
        } else {
            "timestamp"
        };
        assert_eq!(detail["field"], field, "{body}");
        assert!(
            detail["message"]
                .as_str()
                .unwrap()
                .contains("EVENT_MAX_AGE"),
            "{body}"
        );
    }

    // One batch of the same 1,000.
    let items: Vec<Value> = old_times()
        .into_iter()
        .map(|at| json!({"type": "playback_event", "user_id": user, "movie_id": movie, "event_type": "play", "position_ms": 1, "occurred_at": at}))
        .collect();
    let resp = app.post_json("/api/v1/events/batch", &json!(items)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let details = body["details"].as_array().unwrap();
    assert_eq!(details.len(), 1000);
    assert!(details.iter().all(|d| d["status"] == "rejected"
        && d["details"][0]["field"] == "occurred_at"
        && d["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("30 days")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_ahead_of_the_clock_is_refused_and_a_recent_one_accepted() {
    let app = spawn_app().await;
    let (user, movie) = (new_id(), new_id());
    let now = schemas::domain::Timestamp::now().millis();
    let post = |at: i64| {
        let body = json!({"user_id": user, "movie_id": movie, "event_type": "play", "position_ms": 1, "occurred_at": at});
        let app = &app;
        async move { app.post_json("/api/v1/movies/playback-event", &body).await }
    };
    // Ten minutes ahead: more than the 5-minute skew allowed.
    let resp = post(now + 600_000).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("EVENT_MAX_CLOCK_SKEW"));
    // A minute ahead and 29 days ago are fine.
    assert_eq!(post(now + 60_000).await.status(), 202);
    assert_eq!(post(now - 29 * 86_400_000).await.status(), 202);
}
