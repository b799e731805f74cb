use rdkafka::message::Headers;
use rdkafka::Message;
use schemas::events::{PlaybackEvent, PlaybackEventType};
use serde_json::{json, Value};

use crate::helpers::spawn_app;

const PATH: &str = "/api/v1/movies/playback-event";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_pong() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(format!("{}/api/v1/healthcheck/ping", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!("pong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_event_is_acked_and_on_the_topic_as_posted() {
    let app = spawn_app().await;
    let at = crate::helpers::an_hour_ago();
    let event_id = uuid::Uuid::new_v4().to_string();
    let user_id = uuid::Uuid::new_v4().to_string();
    let movie_id = uuid::Uuid::new_v4().to_string();
    let resp = app
        .client
        .post(format!("{}{PATH}", app.address))
        .header("x-api-key", crate::helpers::API_KEY)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "req-42")
        .json(&json!({
            "event_id": event_id,
            "user_id": user_id,
            "movie_id": movie_id,
            "event_type": "rewind",
            "position_ms": 754_000,
            "occurred_at": at.1.replace('Z', ".123Z")
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"status": "accepted", "event_id": event_id}));

    let (msg, event) = app
        .find::<PlaybackEvent>(&event_id)
        .await
        .expect("on the topic");
    assert_eq!(msg.key(), Some(user_id.as_bytes()));
    assert_eq!(event.user_id.to_string(), user_id);
    assert_eq!(event.movie_id.to_string(), movie_id);
    assert_eq!(event.event_type, PlaybackEventType::Rewind);
    assert_eq!(event.position_ms.get(), 754_000);
    assert_eq!(event.occurred_at.millis(), at.0 + 123);
    let headers = msg.headers().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("x-request-id").as_deref(), Some("req-42"));
    let traceparent = header("traceparent").unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_with_a_json_body_and_nothing_reaches_kafka() {
    let app = spawn_app().await;
    let good_user = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(String, &str)> = vec![
        ("{\"user_id\": ".to_string(), "invalid JSON body"),
        ("[1, 2]".to_string(), "invalid JSON body"),
        (json!({"user_id": good_user, "movie_id": good_user, "event_type": "play"}).to_string(), "validation failed"),
        (json!({"user_id": good_user, "movie_id": good_user, "event_type": "play", "position_ms": "ten"}).to_string(), "invalid JSON body"),
        (json!({"user_id": "not-a-uuid", "movie_id": good_user, "event_type": "play", "position_ms": 1}).to_string(), "validation failed"),
        (json!({"user_id": good_user, "movie_id": good_user, "event_type": "jump", "position_ms": 1}).to_string(), "validation failed"),
        (json!({"user_id": good_user, "movie_id": good_user, "event_type": "play", "position_ms": -5}).to_string(), "validation failed"),
        (json!({"user_id": good_user, "movie_id": good_user, "event_type": "play", "position_ms": 1, "occurred_at": "soon"}).to_string(), "validation failed"),
        (json!({"event_id": "x", "user_id": good_user, "movie_id": good_user, "event_type": "play", "position_ms": 1}).to_string(), "validation failed"),
    ];
    for (body, error) in cases {
        let resp = app.post_raw(PATH, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["error"], error, "{body}");
        assert!(
            json["details"].as_array().is_some_and(|d| !d.is_empty()),
            "{json}"
        );
    }
    // One response names every bad field.
    let resp = app
        .post_json(
            PATH,
            &json!({"user_id": "u", "movie_id": "m", "event_type": "play", "position_ms": -1}),
        )
        .await;
    let json: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = json["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "movie_id", "position_ms"]);

    // None of the user's events reached the topic.
    let codec = schemas::Codec::new(&app.settings.stack.schema_registry_url).unwrap();
    for msg in app.records(schemas::topics::PLAYBACK_EVENTS).await {
        if let Ok(e) = codec
            .decode::<PlaybackEvent>(msg.payload().unwrap_or_default())
            .await
        {
            assert_ne!(e.user_id.to_string(), good_user);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_413_with_a_json_body() {
    let app = spawn_app().await;
    let big = format!(
        "{{\"pad\": \"{}\"}}",
        "x".repeat(app.settings.limits.max_body_bytes + 1)
    );
    let resp = app.post_raw(PATH, big).await;
    assert_eq!(resp.status(), 413);
    let json: Value = resp.json().await.unwrap();
    assert!(json["error"].as_str().unwrap().contains("larger than"));
}
