//! The batch endpoint: arrays and NDJSON, per-item results, every accepted item on its topic.

use schemas::events::{PlaybackEvent, Rating, UserEvent};
use serde_json::{json, Value};

use crate::helpers::{new_id, spawn_app, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_says_per_item_and_acks_the_valid_ones() {
    let app = spawn_app().await;
    let (user, movie) = (new_id(), new_id());
    let items = json!([
        {"type": "playback_event", "user_id": user, "movie_id": movie, "event_type": "stop", "position_ms": 5},
        {"type": "rating", "user_id": user, "movie_id": movie, "score": 3},
        {"type": "rating", "user_id": user, "movie_id": movie, "score": 30},
        {"user_id": user, "payload": {"event_type": "click", "element_id": "play-button", "element_type": "button"}},
        {"type": "teleport"},
        {"type": "anonymous_event", "anonymous_id": "a-1", "payload": {"event_type": "page_view", "page": "/"}},
    ]);
    let resp = app.post_json("/api/v1/events/batch", &items).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["accepted"].as_u64(),
            body["rejected"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(4), Some(2), Some(0))
    );
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "accepted", "rejected", "accepted", "rejected", "accepted"]
    );
    assert_eq!(body["results"][2]["details"][0]["field"], "score");
    let id = |i: usize| body["results"][i]["event_id"].as_str().unwrap().to_string();
    assert!(app.find::<PlaybackEvent>(&id(0)).await.is_some());
    assert_eq!(app.find::<Rating>(&id(1)).await.unwrap().1.score.get(), 3);
    assert_eq!(
        app.find::<UserEvent>(&id(3)).await.unwrap().1.event_type,
        "click"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_limits_and_all_invalid() {
    let app = spawn_app().await;
    let user = new_id();
    let ndjson: String = (0..50)
        .map(|i| {
            json!({"user_id": user, "payload": {"event_type": "page_view", "page": "/", "n": i}})
                .to_string()
                + "\n"
        })
        .collect();
    let resp = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 50);

    let too_many: Vec<Value> = (0..app.settings.limits.batch_max_events + 1)
        .map(|_| json!({"user_id": user, "payload": {"event_type": "click", "element_id": "b", "element_type": "button"}}))
        .collect();
    let resp = app
        .post_json("/api/v1/events/batch", &Value::Array(too_many))
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app
        .post_json("/api/v1/events/batch", &json!([{"type": "nope"}]))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "no valid event in the batch");
    assert_eq!(
        app.post_raw("/api/v1/events/batch", "[".into())
            .await
            .status(),
        400
    );
    assert_eq!(
        app.post_raw("/api/v1/events/batch", "[]".into())
            .await
            .status(),
        400
    );
}
