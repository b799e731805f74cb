//! Limits that protect the service: per-caller rate limits (429) and a bounded wait for Kafka (503
//! with Retry-After, never an unbounded queue), recovering when the broker is back.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{free_port, memory_broker, new_id, spawn_app_with, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_a_429_with_retry_after() {
    let mut settings = test_settings();
    settings.rate_limit.per_second = 1;
    settings.rate_limit.burst = 3;
    let app = spawn_app_with(settings).await;
    let body = json!({"anonymous_id": "rl", "payload": {"event_type": "click", "element_id": "b", "element_type": "button"}});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let resp = app
            .client
            .post(app.url("/api/v1/anonymous-events"))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            let json: Value = resp.json().await.unwrap();
            assert_eq!(json["error"], "too many requests");
        }
    }
    assert_eq!(&statuses[..3], [202, 202, 202]);
    assert_eq!(&statuses[3..], [429, 429]);
}

/// The limiter keys on verified identity: inventing an API key or a token per request buys no new
/// bucket (all are the one address's), extra spaces in `Bearer` do not give a user a second one, and
/// one user's exhausted bucket does not limit another user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_cannot_be_dodged_with_invented_credentials() {
    let mut settings = test_settings();
    settings.rate_limit.per_second = 1;
    settings.rate_limit.burst = 3;
    let app = spawn_app_with(settings).await;
    let body = json!({"anonymous_id": "rl2", "payload": {"event_type": "click", "element_id": "b", "element_type": "button"}});
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = app
            .client
            .post(app.url("/api/v1/anonymous-events"))
            .header("x-api-key", format!("invented-{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(&statuses[3..], [429, 429], "{statuses:?}");

    // A user: the same bucket however the header is spelled; another user is not limited by it.
    let (alice, bob) = (crate::helpers::new_id(), crate::helpers::new_id());
    let token = crate::helpers::token(&alice, 3600);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let spaces = " ".repeat(1 + i % 3);
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/favorites/users/{alice}")))
            .header("authorization", format!("Bearer{spaces}{token}"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let other = app
        .client
        .get(app.url(&format!("/api/v1/favorites/users/{bob}")))
        .bearer_auth(crate::helpers::token(&bob, 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_is_a_bounded_503_and_the_api_recovers() {
    let port = free_port();
    let mut settings = test_settings();
    settings.producer.brokers = format!("127.0.0.1:{port}");
    settings.producer.delivery_timeout = Duration::from_millis(1500);
    let app = spawn_app_with(settings).await;
    let path = "/api/v1/movies/playback-event";
    let body =
        json!({"user_id": new_id(), "movie_id": new_id(), "event_type": "play", "position_ms": 0});

    let started = Instant::now();
    let resp = app.post_json(path, &body).await;
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the delivery timeout"
    );
    assert_eq!(resp.headers()["retry-after"], "1");
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["error"], "the event store is unavailable, retry later");
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    let _broker = memory_broker(port);
    let mut status = 0;
    for _ in 0..40 {
        status = app.post_json(path, &body).await.status().as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 202, "accepted again once the broker is back");
}

/// A fetch request Kafka did not take (503) leaves no coalescing mark: asked again, the query is
/// tried again (503 again here), not answered "coalesced" with nothing requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_request_kafka_refused_is_not_coalesced_away() {
    let port = free_port();
    let mut settings = test_settings();
    settings.producer.brokers = format!("127.0.0.1:{port}");
    settings.producer.delivery_timeout = Duration::from_millis(1000);
    settings.limits.video_fetch_coalesce = Duration::from_secs(300);
    let app = spawn_app_with(settings).await;
    let body = json!({"query": format!("down {}", new_id())});
    for attempt in 0..2 {
        let resp = app.post_json("/api/v1/videos/fetch", &body).await;
        assert_eq!(resp.status(), 503, "attempt {attempt}");
    }
}

/// A producer that delivered and then lost every broker produces with a new producer (a new
/// producer id) once the broker is back: a broker that restarted without the old producer's state
/// takes it (Tansu's SQLite storage panicked on the old id and sequence, docs/durability.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_losing_every_broker_the_producer_starts_a_new_session() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut config = producers::ProducerConfig::from_env(&brokers).unwrap();
    config.delivery_timeout = Duration::from_millis(1500);
    let producer = producers::RawProducer::new(&config).unwrap();
    let topic = format!("test-session-{}", uuid::Uuid::new_v4().simple());
    let send = || producer.send(&topic, Some(b"k"), Some(b"v"), &[]);
    let mut broker = memory_broker(port);
    producers::admin::ensure_topics(&brokers, &[producers::admin::TopicSpec::new(&topic, 1)])
        .await
        .unwrap();
    send().await.expect("delivered to the first broker");
    assert_eq!(producer.replaced(), 0);

    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    // Sends while every broker is down fail within the delivery bound.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(send().await.is_err(), "delivered with no broker");
    }
    let _broker = memory_broker(port);
    producers::admin::ensure_topics(&brokers, &[producers::admin::TopicSpec::new(&topic, 1)])
        .await
        .unwrap();
    let mut delivered = false;
    for _ in 0..40 {
        if send().await.is_ok() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(delivered, "delivered again once the broker is back");
    assert_eq!(
        producer.replaced(),
        1,
        "one new producer session, not one per send"
    );
}
