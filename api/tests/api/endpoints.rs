//! Every write endpoint: the Avro record on its topic decodes to what was posted, keyed by the user
//! (or anonymous) id, and each endpoint's validation errors are 400s.

use rdkafka::Message;
use reqwest::Method;
use schemas::events::*;
use serde_json::{json, Value};

use crate::helpers::{new_id, spawn_app, spawn_app_with, test_settings};

async fn accepted(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    body["event_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movie_viewing_and_playback_position() {
    let app = spawn_app().await;
    let (user, movie) = (new_id(), new_id());
    let (at_ms, _) = crate::helpers::an_hour_ago();
    let id = accepted(
        app.post_json("/api/v1/movies/movie-viewing", &json!({"user_id": user, "movie_id": movie, "viewed_seconds": 42, "occurred_at": at_ms + 123}))
            .await,
    )
    .await;
    let (msg, e) = app.find::<MovieViewing>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(user.as_bytes()));
    assert_eq!(
        (
            e.movie_id.to_string(),
            e.viewed_seconds,
            e.occurred_at.millis()
        ),
        (movie.clone(), 42, at_ms + 123)
    );

    let id = accepted(
        app.post_json("/api/v1/movies/playback-position", &json!({"user_id": user, "movie_id": movie, "position_ms": 60_000, "duration_ms": 5_400_000}))
            .await,
    )
    .await;
    let (_, e) = app.find::<PlaybackPosition>(&id).await.unwrap();
    assert_eq!(
        (e.position_ms.get(), e.duration_ms.map(|d| d.get())),
        (60_000, Some(5_400_000))
    );

    for bad in [
        json!({"user_id": user, "movie_id": movie, "viewed_seconds": -1}),
        json!({"user_id": user, "movie_id": movie, "viewed_seconds": 90_000}),
    ] {
        assert_eq!(
            app.post_json("/api/v1/movies/movie-viewing", &bad)
                .await
                .status(),
            400
        );
    }
    let bad = json!({"user_id": user, "movie_id": movie, "position_ms": 1, "duration_ms": -5});
    assert_eq!(
        app.post_json("/api/v1/movies/playback-position", &bad)
            .await
            .status(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_and_favourites() {
    let app = spawn_app().await;
    let removed_at = crate::helpers::an_hour_ago();
    let (user, movie) = (new_id(), new_id());
    let path = format!("/api/v1/likes/users/{user}/movies/{movie}");
    let id = accepted(app.post_json(&path, &json!({"score": 10})).await).await;
    let (msg, e) = app.find::<Rating>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(user.as_bytes()));
    assert_eq!(
        (e.user_id.to_string(), e.movie_id.to_string(), e.score.get()),
        (user.clone(), movie.clone(), 10)
    );
    for bad in [json!({"score": 11}), json!({"score": -1}), json!({})] {
        assert_eq!(app.post_json(&path, &bad).await.status(), 400, "{bad}");
    }
    assert_eq!(
        app.post_json(
            &format!("/api/v1/likes/users/nope/movies/{movie}"),
            &json!({"score": 1})
        )
        .await
        .status(),
        400
    );

    let path = format!("/api/v1/favorites/users/{user}/movies/{movie}");
    let add = accepted(
        app.client
            .post(app.url(&path))
            .header("x-api-key", crate::helpers::API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let remove = accepted(
        app.client
            .delete(app.url(&path))
            .header("x-api-key", crate::helpers::API_KEY)
            .json(&json!({"occurred_at": removed_at.1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        app.find::<Favourite>(&add).await.unwrap().1.action,
        FavouriteAction::Added
    );
    let (_, e) = app.find::<Favourite>(&remove).await.unwrap();
    assert_eq!(e.action, FavouriteAction::Removed);
    assert_eq!(e.occurred_at.millis(), removed_at.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_and_posts_take_the_caller_as_the_actor() {
    let app = spawn_app().await;
    let (me, star) = (new_id(), new_id());
    let id = accepted(
        app.as_user(Method::POST, &format!("/api/v1/follows/{star}"), &me)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (msg, e) = app.find::<Follow>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(me.as_bytes()));
    assert_eq!(
        (
            e.follower_id.to_string(),
            e.followee_id.to_string(),
            e.action
        ),
        (me.clone(), star.clone(), FollowAction::Follow)
    );
    let id = accepted(
        app.as_user(Method::DELETE, &format!("/api/v1/follows/{star}"), &me)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        app.find::<Follow>(&id).await.unwrap().1.action,
        FollowAction::Unfollow
    );
    // A service names the follower; a user cannot follow themselves; a service must name someone.
    let id = accepted(
        app.post_json(
            &format!("/api/v1/follows/{star}"),
            &json!({"follower_id": me}),
        )
        .await,
    )
    .await;
    assert_eq!(
        app.find::<Follow>(&id)
            .await
            .unwrap()
            .1
            .follower_id
            .to_string(),
        me
    );
    assert_eq!(
        app.as_user(Method::POST, &format!("/api/v1/follows/{me}"), &me)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        app.post_json(&format!("/api/v1/follows/{star}"), &json!({}))
            .await
            .status(),
        400
    );

    let id = accepted(
        app.as_user(Method::POST, "/api/v1/posts", &me)
            .json(&json!({"text": "Loved it"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (msg, e) = app.find::<PostCreated>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(me.as_bytes()));
    assert_eq!(
        (e.author_id.to_string(), e.text.as_str()),
        (me.clone(), "Loved it")
    );
    for bad in [
        json!({"text": ""}),
        json!({"text": "x".repeat(5001)}),
        json!({}),
    ] {
        assert_eq!(
            app.as_user(Method::POST, "/api/v1/posts", &me)
                .json(&bad)
                .send()
                .await
                .unwrap()
                .status(),
            400
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_and_anonymous_events() {
    let app = spawn_app().await;
    let at = crate::helpers::an_hour_ago();
    let (user, movie) = (new_id(), new_id());
    let id = accepted(
        app.as_user(Method::POST, "/api/v1/events", &user)
            .json(&json!({"user_id": user, "timestamp": at.1,
                          "payload": {"event_type": "movie_quality_changed", "movie_id": movie, "previous_quality": "720p", "new_quality": "1080p", "auto": true}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (msg, e) = app.find::<UserEvent>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(user.as_bytes()));
    assert_eq!(e.event_type, "movie_quality_changed");
    assert_eq!(
        e.properties.get("new_quality").map(String::as_str),
        Some("1080p")
    );
    assert_eq!(e.properties.get("auto").map(String::as_str), Some("true"));
    assert_eq!(e.occurred_at.millis(), at.0);

    // Anonymous: no credentials at all.
    let resp = app
        .client
        .post(app.url("/api/v1/anonymous-events"))
        .json(&json!({"anonymous_id": "anon-7f3a", "payload": {"event_type": "page_view", "page": "/movies"}}))
        .send()
        .await
        .unwrap();
    let id = accepted(resp).await;
    let (msg, e) = app.find::<UserEvent>(&id).await.unwrap();
    assert_eq!(msg.key(), Some(&b"anon-7f3a"[..]));
    assert_eq!(
        (e.user_id, e.anonymous_id.map(|a| a.to_string())),
        (None, Some("anon-7f3a".to_string()))
    );

    for bad in [
        json!({"anonymous_id": "anon", "payload": {"event_type": "teleport"}}),
        json!({"anonymous_id": "has space", "payload": {"event_type": "click"}}),
        json!({"anonymous_id": "anon", "payload": {}}),
        json!({"anonymous_id": "anon", "timestamp": "tomorrow", "payload": {"event_type": "click"}}),
    ] {
        let resp = app
            .client
            .post(app.url("/api/v1/anonymous-events"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

/// A seed-style client's nested payload reaches Kafka with its JSON types (`properties_json`), the
/// first contract's text map beside it; each known type's required properties are checked (400
/// naming each missing one); an unknown type is 400 unless `USER_EVENT_TYPES` lists it (or is `*`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_events_keep_their_types_and_need_their_fields() {
    let app = spawn_app().await;
    let user = new_id();
    let payload = json!({"event_type": "search_filter_used",
        "filters": {"genre": "drama", "year_from": 2010, "rating_gte": 7.5, "hd": true,
                    "languages": ["en", "fr"], "cast": null},
        "results": 42});
    let id = accepted(
        app.as_user(Method::POST, "/api/v1/events", &user)
            .json(&json!({"user_id": user, "payload": payload}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, e) = app.find::<UserEvent>(&id).await.unwrap();
    let typed: Value = serde_json::from_str(e.properties_json.as_deref().unwrap()).unwrap();
    let mut expected = payload.clone();
    expected.as_object_mut().unwrap().remove("event_type");
    assert_eq!(typed, expected, "types kept end to end");
    assert_eq!(typed["filters"]["rating_gte"].as_f64(), Some(7.5));
    assert_eq!(typed["results"].as_u64(), Some(42));
    // Readers of the first contract still get text.
    assert_eq!(e.properties["results"], "42");

    for (payload, fields) in [
        (
            json!({"event_type": "click", "element_id": "play"}),
            vec!["payload.element_type"],
        ),
        (
            json!({"event_type": "click", "element_id": "", "element_type": "button"}),
            vec!["payload.element_id"],
        ),
        (
            json!({"event_type": "page_view", "path": "/x"}),
            vec!["payload.page"],
        ),
        (
            json!({"event_type": "movie_quality_changed", "movie_id": "not-a-uuid", "new_quality": "1080p"}),
            vec!["payload.movie_id", "payload.previous_quality"],
        ),
        (
            json!({"event_type": "movie_completed"}),
            vec!["payload.movie_id"],
        ),
        (
            json!({"event_type": "search_filter_used", "filters": "genre=drama"}),
            vec!["payload.filters"],
        ),
        (
            json!({"event_type": "teleport"}),
            vec!["payload.event_type"],
        ),
        (
            json!({"event_type": "Bad Type!"}),
            vec!["payload.event_type"],
        ),
    ] {
        let resp = app
            .client
            .post(app.url("/api/v1/anonymous-events"))
            .json(&json!({"anonymous_id": "anon-f", "payload": payload}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{payload}");
        let body: Value = resp.json().await.unwrap();
        let named: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{payload}: {body}");
    }
    // In a batch too: the item is rejected, the others go on.
    let resp = app
        .post_json(
            "/api/v1/events/batch",
            &json!([
                {"user_id": user, "payload": {"event_type": "click"}},
                {"user_id": user, "payload": {"event_type": "video_shared"}},
                {"user_id": user, "payload": {"event_type": "movie_completed", "movie_id": new_id()}},
            ]),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 1, "{body}");

    // Listed types are taken (with no required fields); `*` takes any well-formed name.
    for (types, shared, other) in [("video_shared", 202, 400), ("*", 202, 202)] {
        let mut settings = test_settings();
        settings.user_event_types = api::routes::events::EventTypes::parse(types).unwrap();
        let app = spawn_app_with(settings).await;
        for (event_type, status) in [("video_shared", shared), ("trailer_skipped", other)] {
            let resp = app
                .client
                .post(app.url("/api/v1/anonymous-events"))
                .json(&json!({"anonymous_id": "anon-t", "payload": {"event_type": event_type}}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{types}: {event_type}");
        }
    }
    assert!(api::routes::events::EventTypes::parse("ok,Not Ok").is_err());
}

/// A drop-in for the seed's clients: `playback_position` in seconds is taken for `position_ms` on
/// playback events and positions (one of the two, not both), and the likes and favourites writes
/// answer the seed's fields beside ours, still with 202.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_clients_fields_are_understood() {
    let app = spawn_app().await;
    let (user, movie) = (new_id(), new_id());
    let id = accepted(
        app.post_json(
            "/api/v1/movies/playback-event",
            &json!({"user_id": user, "movie_id": movie, "event_type": "pause", "playback_position": 61.5}),
        )
        .await,
    )
    .await;
    let (_, e) = app.find::<PlaybackEvent>(&id).await.unwrap();
    assert_eq!(e.position_ms.get(), 61_500);
    let id = accepted(
        app.post_json(
            "/api/v1/movies/playback-position",
            &json!({"user_id": user, "movie_id": movie, "playback_position": 120}),
        )
        .await,
    )
    .await;
    let (_, e) = app.find::<PlaybackPosition>(&id).await.unwrap();
    assert_eq!(e.position_ms.get(), 120_000);
    for (body, field) in [
        (
            json!({"position_ms": 5, "playback_position": 5}),
            "playback_position",
        ),
        (json!({}), "position_ms"),
        (json!({"playback_position": -1}), "playback_position"),
        (json!({"playback_position": 1e300}), "playback_position"),
    ] {
        let mut body = body;
        body["user_id"] = json!(user);
        body["movie_id"] = json!(movie);
        body["event_type"] = json!("play");
        let resp = app.post_json("/api/v1/movies/playback-event", &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["details"][0]["field"], field, "{body}: {answer}");
    }

    let resp = app
        .post_json(
            &format!("/api/v1/likes/users/{user}/movies/{movie}"),
            &json!({"score": 7}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        (&answer["user_id"], &answer["movie_id"], &answer["score"]),
        (&json!(user), &json!(movie), &json!(7)),
        "{answer}"
    );
    assert_eq!(answer["status"], "accepted");
    for (method, is_favorite) in [(Method::POST, true), (Method::DELETE, false)] {
        let resp = app
            .client
            .request(
                method,
                app.url(&format!("/api/v1/favorites/users/{user}/movies/{movie}")),
            )
            .header("x-api-key", crate::helpers::API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["is_favorite"], is_favorite, "{answer}");
        assert_eq!(answer["movie_id"], json!(movie));
        assert_eq!(answer["user_id"], json!(user));
        assert!(answer["event_id"].is_string());
    }
}
