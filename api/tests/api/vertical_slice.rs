//! The foundation's vertical slice: POST -> Kafka (Avro) -> ClickHouse sink -> a row in
//! `playback_events`, queried from ClickHouse.

use std::time::Duration;

use consumers::sinks::clickhouse::ClickHouseConfig;
use consumers::RuntimeConfig;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_playback_event_becomes_a_clickhouse_row() {
    let app = spawn_app().await;
    // The sink, in-process, on its own database and consumer group.
    let db = format!("test_slice_{}", uuid::Uuid::new_v4().simple());
    let ch = ClickHouseConfig::from_env().unwrap().with_database(&db);
    consumers::init::migrate_clickhouse(&ch).await.unwrap();
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-slice-{}", uuid::Uuid::new_v4());
    consumers::groups::commit_at_end(
        &app.settings.stack.kafka_brokers,
        &runtime.group_id,
        schemas::topics::PLAYBACK_EVENTS,
    )
    .unwrap();
    let codec = schemas::Codec::new(&app.settings.stack.schema_registry_url).unwrap();
    let (stop, sink) = crate::helpers::playback_sink(runtime, codec, &ch);

    let user_id = uuid::Uuid::new_v4().to_string();
    let movie_id = uuid::Uuid::new_v4().to_string();
    let resp = app
        .post_json(
            "/api/v1/movies/playback-event",
            &json!({"user_id": user_id, "movie_id": movie_id, "event_type": "play", "position_ms": 1500}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let event_id = resp.json::<serde_json::Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();

    let client = ch.client();
    let mut row = None;
    for _ in 0..300 {
        let rows: Vec<(String, String, String, u64)> = client
            .query("SELECT toString(user_id), toString(movie_id), toString(event_type), position_ms FROM playback_events WHERE event_id = ?")
            .bind(&event_id)
            .fetch_all()
            .await
            .unwrap();
        if let Some(r) = rows.into_iter().next() {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = row.expect("the row within 30 s");
    assert_eq!(row, (user_id, movie_id, "play".to_string(), 1500));
    let _ = stop.send(());
    sink.await.unwrap().unwrap();
    let _ = ch
        .clone()
        .with_database("default")
        .client()
        .query(&format!("DROP DATABASE {db}"))
        .execute()
        .await;
}
