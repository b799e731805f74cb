//! Issue 16, the parts built so far: one JSON error shape for unknown paths and wrong methods;
//! metrics that a client cannot inflate and an operator can close; tokens checked for `nbf`,
//! lifetime, issuer and audience; the development key refused off loopback.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, test_settings, JWT_SECRET};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token with these claims, signed with the tests' secret.
fn signed(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_wrong_methods_answer_the_json_error_shape() {
    let app = spawn_app().await;
    for (method, path, status) in [
        (reqwest::Method::GET, "/nothing/here", 404),
        (reqwest::Method::GET, "/api/v1/no-such-endpoint", 404),
        (reqwest::Method::DELETE, "/api/v1/events", 405),
        (reqwest::Method::GET, "/api/v1/movies/playback-event", 405),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
        assert!(
            body["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains(path),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_mint_no_series_and_metrics_can_be_closed() {
    let app = spawn_app().await;
    for i in 0..3 {
        let method = reqwest::Method::from_bytes(format!("ATK{i}X").as_bytes()).unwrap();
        let resp = app
            .client
            .request(method, app.url("/api/v1/events"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error());
    }
    let text = app.get_text("/metrics").await;
    assert!(
        !text.contains("ATK"),
        "a client-chosen method became a label"
    );
    assert!(text.contains("method=\"other\""), "{text}");

    // METRICS_TOKEN: only with the token.
    let mut settings = test_settings();
    settings.metrics.token = Some("metrics-secret".into());
    let closed = spawn_app_with(settings).await;
    let without = closed
        .client
        .get(closed.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
    let body: Value = without.json().await.unwrap();
    assert!(body["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("METRICS_TOKEN"));
    let wrong = closed
        .client
        .get(closed.url("/metrics"))
        .bearer_auth("metrics-secret-but-longer")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let with = closed
        .client
        .get(closed.url("/metrics"))
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    assert!(with.text().await.unwrap().contains("http_requests_total"));

    // API_METRICS=off: no such route.
    let mut settings = test_settings();
    settings.metrics.enabled = false;
    let off = spawn_app_with(settings).await;
    assert_eq!(
        off.client
            .get(off.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_for_nbf_lifetime_issuer_and_audience() {
    let user = uuid::Uuid::new_v4().to_string();
    let path = format!("/api/v1/favorites/users/{user}");
    let ask = |app: &crate::helpers::TestApp, token: String| {
        let req = app.client.get(app.url(&path)).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let app = spawn_app().await;
    let t = now();
    let ok = ask(
        &app,
        signed(serde_json::json!({"sub": user, "exp": t + 3600})),
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    for (claims, why) in [
        (
            serde_json::json!({"sub": user, "exp": t + 7200, "nbf": t + 3600}),
            "not yet valid",
        ),
        (
            serde_json::json!({"sub": user, "exp": 100_000_000_000i64}),
            "valid until the year 5138",
        ),
        (
            serde_json::json!({"sub": user, "exp": t + 2 * 86_400, "iat": t}),
            "a 48 h token",
        ),
        (
            serde_json::json!({"sub": user, "exp": t + 2 * 86_400, "iat": t + 86_400}),
            "a forged iat",
        ),
    ] {
        let resp = ask(&app, signed(claims)).await;
        assert_eq!(resp.status(), 401, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{why}: {body}");
    }

    // JWT_ISSUER / JWT_AUDIENCE configured: tokens must carry them.
    let mut settings = test_settings();
    settings.auth = settings
        .auth
        .clone()
        .with_issuer("https://auth.cinema.example")
        .with_audience("ugc-api");
    let strict = spawn_app_with(settings).await;
    let both = serde_json::json!({"sub": user, "exp": t + 3600,
        "iss": "https://auth.cinema.example", "aud": "ugc-api"});
    assert_eq!(ask(&strict, signed(both)).await.status(), 200);
    for claims in [
        serde_json::json!({"sub": user, "exp": t + 3600}),
        serde_json::json!({"sub": user, "exp": t + 3600, "iss": "https://evil.example", "aud": "ugc-api"}),
        serde_json::json!({"sub": user, "exp": t + 3600, "iss": "https://auth.cinema.example", "aud": "other"}),
    ] {
        assert_eq!(
            ask(&strict, signed(claims.clone())).await.status(),
            401,
            "{claims}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_key_is_refused_off_loopback() {
    let mut settings = test_settings();
    settings.auth = api::auth::AuthConfig::new(
        &format!("local:{}", api::auth::DEV_API_KEY),
        "a-real-secret",
        None,
    )
    .unwrap();
    settings.host = "0.0.0.0".into();
    let err = api::startup::Application::build(&settings)
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("API_KEYS") && message.contains("JWT_HS256_SECRET"),
        "{message}"
    );
    // The same secret, a real key, any address: starts.
    settings.auth = api::auth::AuthConfig::new("svc:a-real-key", "a-real-secret", None).unwrap();
    assert!(api::startup::Application::build(&settings).await.is_ok());
    // The development defaults on loopback: start (that is what they are for).
    settings.auth = api::auth::AuthConfig::new(
        &format!("local:{}", api::auth::DEV_API_KEY),
        api::auth::DEV_JWT_SECRET,
        None,
    )
    .unwrap();
    settings.host = "127.0.0.1".into();
    assert!(api::startup::Application::build(&settings).await.is_ok());
}

/// A post answers its id (and where its fan-out is followed); another author cannot take the id
/// (409); the same author sending it again is idempotent; the post's author and text are never
/// overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_id_cannot_be_taken_over_and_is_answered() {
    use reqwest::Method;
    let app = spawn_app().await;
    let (alice, mallory) = (crate::helpers::new_id(), crate::helpers::new_id());
    let resp = app
        .as_user(Method::POST, "/api/v1/posts", &alice)
        .json(&serde_json::json!({"text": "my review"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    let post_id = body["post_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&post_id).is_ok(), "{body}");
    assert_eq!(location, format!("/api/v1/posts/{post_id}/fanout"));
    let (_, event) = app
        .find::<schemas::events::PostCreated>(body["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        event.post_id.to_string(),
        post_id,
        "the id the feeds will show"
    );

    let hijack = app
        .as_user(Method::POST, "/api/v1/posts", &mallory)
        .json(&serde_json::json!({"text": "spam", "post_id": post_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(hijack.status(), 409);
    let err: Value = hijack.json().await.unwrap();
    assert!(
        err["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&post_id),
        "{err}"
    );

    let again = app
        .as_user(Method::POST, "/api/v1/posts", &alice)
        .json(&serde_json::json!({"text": "my review", "post_id": post_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202, "the author's resend");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["post_id"], post_id.as_str());
}

/// Writes take only their media types: a cross-site `text/plain` or form post of a perfectly good
/// event is 415 before anything is read; JSON (with a charset), NDJSON batches and bodiless writes
/// pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refuse_other_media_types() {
    let app = spawn_app().await;
    let event = serde_json::json!({"anonymous_id": "anon-csrf", "payload": {"event_type": "page_view", "page": "/x"}})
        .to_string();
    for media in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = app
            .client
            .post(app.url("/api/v1/anonymous-events"))
            .header("content-type", media)
            .body(event.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{media}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    let resp = app
        .client
        .post(app.url("/api/v1/anonymous-events"))
        .header("content-type", "application/json; charset=utf-8")
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let line = serde_json::json!({"type": "anonymous_event", "anonymous_id": "anon-nd",
        "payload": {"event_type": "page_view", "page": "/y"}});
    let resp = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .header("x-api-key", crate::helpers::API_KEY)
        .header("content-type", "application/x-ndjson")
        .body(format!("{line}\n{line}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let follow = app
        .as_user(
            reqwest::Method::POST,
            &format!("/api/v1/follows/{}", crate::helpers::new_id()),
            &crate::helpers::new_id(),
        )
        .send()
        .await
        .unwrap();
    assert_ne!(follow.status(), 415, "a bodiless write");
}

/// Page-numbered lists serve their first `LIST_MAX_DEPTH` (10,000) items: deeper pages are 400
/// naming the limit, before any store is asked to skip a million rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_bounded_in_depth() {
    // Its own database: the within-limit page must be answered by ClickHouse, not depend on a
    // `ugc` database some earlier run left behind (a fresh clone has none).
    let mut settings = test_settings();
    let (db, _admin) = crate::helpers::fresh_clickhouse(&settings, "test_depth").await;
    settings.stack.clickhouse_database = db;
    let app = spawn_app_with(settings).await;
    let user = crate::helpers::new_id();
    for (path, status) in [
        (
            "/api/v1/videos/search?q=travel&page=10000&limit=100".to_string(),
            400,
        ),
        ("/api/v1/videos?page=101&limit=100".to_string(), 400),
        (
            format!("/api/v1/favorites/users/{user}?page=1001&size=10"),
            400,
        ),
        (
            format!("/api/v1/analytics/users/{user}/continue-watching?page=501&size=20"),
            400,
        ),
        ("/api/v1/videos?page=100&limit=100".to_string(), 200),
        (
            format!("/api/v1/favorites/users/{user}?page=1000&size=10"),
            200,
        ),
    ] {
        let resp = app.get_as_service(&path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        if status == 400 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["details"][0]["field"], "page", "{path}: {body}");
            assert!(
                body["details"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("10000"),
                "{body}"
            );
        }
    }
}

/// `POST /api/v1/videos/fetch` spends the shared YouTube quota: a caller gets
/// `VIDEO_FETCH_PER_HOUR` of them (then 429 with Retry-After), and the same query asked again
/// within `VIDEO_FETCH_COALESCE` is answered `coalesced` without a second fetch request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_requests_are_bounded_per_caller_and_coalesced() {
    use reqwest::Method;
    let mut settings = test_settings();
    settings.limits.video_fetch_per_hour = 2;
    settings.limits.video_fetch_coalesce = std::time::Duration::from_secs(300);
    let app = spawn_app_with(settings).await;
    let (alice, bob) = (crate::helpers::new_id(), crate::helpers::new_id());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fetch = |user: &str, query: String| {
        app.as_user(Method::POST, "/api/v1/videos/fetch", user)
            .json(&serde_json::json!({"query": query}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..3 {
        let resp = fetch(&alice, format!("q{i} {tag}")).await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            let body: Value = resp.json().await.unwrap();
            assert!(
                body["details"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("VIDEO_FETCH_PER_HOUR"),
                "{body}"
            );
        }
    }
    assert_eq!(statuses, [202, 202, 429]);

    // Another caller asks alice's first query again (in other case): coalesced, not produced.
    let again = fetch(&bob, format!("Q0 {tag}")).await.unwrap();
    assert_eq!(again.status(), 202);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["status"], "coalesced");
    let fresh = fetch(&bob, format!("other {tag}")).await.unwrap();
    assert_eq!(fresh.status(), 202);
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(fresh["status"], "accepted");
    // On the topic: alice's two and bob's new one; the coalesced request is not.
    let codec = schemas::Codec::new(&app.settings.stack.schema_registry_url).unwrap();
    let mut queries = Vec::new();
    for msg in app.records(schemas::topics::VIDEO_FETCH_REQUESTS).await {
        use rdkafka::Message;
        if let Ok(e) = codec
            .decode::<schemas::events::VideoFetchRequested>(msg.payload().unwrap_or_default())
            .await
        {
            if e.query.ends_with(&tag) {
                queries.push(e.query);
            }
        }
    }
    queries.sort();
    assert_eq!(
        queries,
        [
            format!("other {tag}"),
            format!("q0 {tag}"),
            format!("q1 {tag}")
        ]
    );
}

/// CORS: by default no origin gets cross-origin access (a preflight fails, no answer carries
/// `Access-Control-Allow-Origin`); an origin in `CORS_ALLOWED_ORIGINS` passes its preflight and
/// reads answers, any other is refused with the JSON error naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_access_is_only_for_listed_origins() {
    use reqwest::Method;
    let preflight = |app: &crate::helpers::TestApp, origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/anonymous-events"))
            .header("origin", origin.to_string())
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allow = |resp: &reqwest::Response| {
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let event = serde_json::json!({"anonymous_id": "anon-cors",
        "payload": {"event_type": "page_view", "page": "/"}});
    let post_from = |app: &crate::helpers::TestApp, origin: &str| {
        app.client
            .post(app.url("/api/v1/anonymous-events"))
            .header("origin", origin.to_string())
            .json(&event)
            .send()
    };

    let app = spawn_app().await;
    let resp = preflight(&app, "https://cinema.example").await.unwrap();
    assert!(!resp.status().is_success(), "{}", resp.status());
    assert_eq!(allow(&resp), None);
    let resp = post_from(&app, "https://cinema.example").await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(allow(&resp), None, "the browser will not show the answer");

    let mut settings = test_settings();
    settings.cors = api::cors::CorsOrigins::parse("https://cinema.example").unwrap();
    let app = spawn_app_with(settings).await;
    let resp = preflight(&app, "https://cinema.example").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(allow(&resp).as_deref(), Some("https://cinema.example"));
    let methods = resp.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    let resp = post_from(&app, "https://cinema.example").await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(allow(&resp).as_deref(), Some("https://cinema.example"));
    let resp = preflight(&app, "https://evil.example").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(allow(&resp), None);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CORS_ALLOWED_ORIGINS"),
        "{body}"
    );
}

/// Failed authentications have their own, stricter bucket per client address
/// (`AUTH_FAILURES_PER_MINUTE`): past it, wrong keys and forged tokens get 429 with Retry-After
/// instead of 401, whatever the request rate limit; good credentials still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_address() {
    let mut settings = test_settings();
    settings.rate_limit.auth_failures_per_minute = 5;
    let app = spawn_app_with(settings).await;
    let user = crate::helpers::new_id();
    let read = |key: Option<String>, bearer: Option<String>| {
        let mut req = app
            .client
            .get(app.url(&format!("/api/v1/favorites/users/{user}")));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    for i in 0..5 {
        let resp = read(Some(format!("guess-{i}")), None).await.unwrap();
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    let resp = read(None, Some("forged.token.here".into())).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("AUTH_FAILURES_PER_MINUTE"),
        "{body}"
    );
    let resp = read(Some("guess-again".into()), None).await.unwrap();
    assert_eq!(resp.status(), 429);
    let resp = read(Some(crate::helpers::API_KEY.into()), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "good credentials are not locked out");
}
