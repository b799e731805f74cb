//! Who may write: services with X-Api-Key, users with a bearer JWT for their own events only.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{new_id, spawn_app, token};

const PATH: &str = "/api/v1/movies/playback-event";

fn body(user: &str) -> Value {
    json!({"user_id": user, "movie_id": new_id(), "event_type": "play", "position_ms": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_bad_credentials_are_401_with_www_authenticate() {
    let app = spawn_app().await;
    let user = new_id();
    let requests = [
        app.client.post(app.url(PATH)).json(&body(&user)),
        app.client
            .post(app.url(PATH))
            .header("x-api-key", "wrong")
            .json(&body(&user)),
        app.client
            .post(app.url(PATH))
            .bearer_auth("not.a.jwt")
            .json(&body(&user)),
        app.client
            .post(app.url(PATH))
            .bearer_auth(token(&user, -3600))
            .json(&body(&user)),
        app.client
            .post(app.url(PATH))
            .header("authorization", "Basic Zm9vOmJhcg==")
            .json(&body(&user)),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["error"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_writes_only_their_own_events() {
    let app = spawn_app().await;
    let me = new_id();
    let resp = app
        .as_user(Method::POST, PATH, &me)
        .json(&body(&me))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = app
        .as_user(Method::POST, PATH, &me)
        .json(&body(&new_id()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["error"], "forbidden");
    // Path ids are checked the same way.
    let other = new_id();
    let resp = app
        .as_user(
            Method::POST,
            &format!("/api/v1/likes/users/{other}/movies/{}", new_id()),
            &me,
        )
        .json(&json!({"score": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_docs_are_open() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/healthcheck/ping",
        "/api/v1/openapi.json",
        "/api/v1/docs/",
        "/metrics",
        "/health/ready",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/movies/playback-event",
        "/api/v1/movies/movie-viewing",
        "/api/v1/movies/playback-position",
        "/api/v1/likes/users/{user_id}/movies/{movie_id}",
        "/api/v1/favorites/users/{user_id}/movies/{movie_id}",
        "/api/v1/follows/{followee_id}",
        "/api/v1/posts",
        "/api/v1/events",
        "/api/v1/anonymous-events",
        "/api/v1/events/batch",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every operation documents the generic answers; operations with a body also 408 and 415.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let statuses = operation["responses"].as_object().unwrap();
            let mut expected = vec!["405", "429"];
            if operation.get("requestBody").is_some() {
                expected.extend(["408", "415"]);
            }
            for status in expected {
                assert!(
                    statuses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    // The seed's fields and the typed payload are described.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["PlaybackEventRequest"]["properties"]
        .get("playback_position")
        .is_some());
    assert!(schemas["RatingAccepted"]["properties"]
        .get("score")
        .is_some());
    assert!(schemas["FavouriteAccepted"]["properties"]
        .get("is_favorite")
        .is_some());
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("http_requests_in_flight"));
}
