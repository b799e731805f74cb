//! A broker restart loses no acknowledged event (`make test-durability`, not part of `make test`:
//! it needs the durable broker build, see scripts/test-durability.sh). Events flow API -> Kafka ->
//! ClickHouse sink while the broker is SIGKILLed and restarted on its data: every event answered
//! 202 is in ClickHouse exactly once, the API answered 503 (never 202) while the broker was down,
//! and the API and the sink recover without a restart.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::ClickHouseConfig;
use consumers::RuntimeConfig;
use serde_json::json;

use crate::helpers::{free_port, spawn_app_with, tansu, test_settings, Process};

/// The durable broker (`TANSU_DURABLE_BIN`) on `port`, its SQLite data in `dir`, once it listens.
/// Right after a SIGKILL the port can still be held by the dead broker's closing connections, so a
/// start that exits is tried again (for up to two minutes); its output goes to `dir/broker.log`.
async fn broker(bin: &str, dir: &std::path::Path, port: u16) -> Process {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("broker.log"))
            .unwrap();
        let mut child = Process(
            tansu(std::path::Path::new(bin), port, "sqlite://tansu.db")
                .current_dir(dir)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("the durable broker"),
        );
        for _ in 0..40 {
            if port_open(port).await {
                return child;
            }
            if child.0.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(child);
        assert!(
            Instant::now() < deadline,
            "the broker did not start: {}",
            std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the durable broker build: make test-durability"]
async fn a_broker_restart_loses_no_acknowledged_event() {
    let bin = std::env::var("TANSU_DURABLE_BIN").expect("TANSU_DURABLE_BIN");
    let registry_bin = std::env::var("REGISTRY_BIN").expect("REGISTRY_BIN");
    let dir = std::env::temp_dir().join(format!("durability-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (broker_port, registry_port) = (free_port(), free_port());
    let brokers = format!("127.0.0.1:{broker_port}");
    let mut kafka = broker(&bin, &dir, broker_port).await;
    let _registry = Process(
        Command::new(&registry_bin)
            .env("KAFKA_BROKERS", &brokers)
            .env("REGISTRY_PORT", registry_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the schema registry"),
    );
    while !port_open(registry_port).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut settings = test_settings();
    settings.stack.kafka_brokers = brokers.clone();
    settings.producer.brokers = brokers.clone();
    settings.stack.schema_registry_url = format!("http://127.0.0.1:{registry_port}");
    settings.producer.delivery_timeout = Duration::from_secs(2);
    let db = format!("test_durable_{}", uuid::Uuid::new_v4().simple());
    let ch = ClickHouseConfig::from_env().unwrap().with_database(&db);
    consumers::init::migrate_clickhouse(&ch).await.unwrap();
    producers::admin::ensure_topics(&brokers, &consumers::init::topic_specs().unwrap())
        .await
        .unwrap();
    schemas::Codec::new(&settings.stack.schema_registry_url)
        .unwrap()
        .register_all()
        .await
        .unwrap();
    let app = spawn_app_with(settings.clone()).await;

    let mut runtime = RuntimeConfig::local(
        &brokers,
        &format!("durable-{}", uuid::Uuid::new_v4().simple()),
        schemas::topics::PLAYBACK_EVENTS,
        schemas::topics::DEAD_LETTER,
    );
    runtime.max_wait = Duration::from_millis(100);
    let codec = schemas::Codec::new(&settings.stack.schema_registry_url).unwrap();
    let (stop, sink) = crate::helpers::playback_sink(runtime, codec, &ch);

    // A steady client: 8 at a time, each event once (a 503 is not retried, so it must not land).
    let movie = uuid::Uuid::new_v4().to_string();
    let post = |i: usize| {
        let app = &app;
        let movie = movie.clone();
        async move {
            let resp = app
                .post_json(
                    "/api/v1/movies/playback-event",
                    &json!({"user_id": uuid::Uuid::new_v4().to_string(), "movie_id": movie,
                            "event_type": "play", "position_ms": i}),
                )
                .await;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, body["event_id"].as_str().map(str::to_string))
        }
    };
    let (mut accepted, mut refused_while_down, mut other) = (Vec::new(), 0, Vec::new());
    let mut accepted_after_restart = 0;
    let mut i = 0;
    let mut phase = 0; // 0 up, 1 down, 2 restarted
    let started = Instant::now();
    let mut down_at = None;
    while phase < 2 || accepted_after_restart < 500 {
        let wave = futures::future::join_all((0..8).map(|k| post(i + k))).await;
        i += 8;
        for (status, id) in wave {
            match (status, id) {
                (202, Some(id)) => {
                    assert_ne!(phase, 1, "a 202 while the broker was down");
                    if phase == 2 {
                        accepted_after_restart += 1;
                    }
                    accepted.push(id);
                }
                (503, _) if phase >= 1 => refused_while_down += 1,
                other_answer => other.push(other_answer),
            }
        }
        if phase == 0 && accepted.len() >= 1500 {
            kafka.0.kill().unwrap(); // SIGKILL, mid-stream
            kafka.0.wait().unwrap();
            phase = 1;
            down_at = Some(Instant::now());
        } else if phase == 1 && down_at.unwrap().elapsed() > Duration::from_secs(5) {
            kafka = broker(&bin, &dir, broker_port).await;
            phase = 2;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the API did not recover: {accepted_after_restart} accepted after the restart"
        );
    }
    assert!(
        other.is_empty(),
        "answers other than 202 and 503: {other:?}"
    );
    assert!(
        refused_while_down > 0,
        "nothing was sent while the broker was down"
    );

    // Every acknowledged event lands once, the sink recovering on its own.
    let client = ch.client();
    let n = accepted.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rows = 0;
    while Instant::now() < deadline {
        rows = client
            .query("SELECT count() FROM playback_events")
            .fetch_one::<u64>()
            .await
            .unwrap();
        if rows >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = client
        .query("SELECT toString(event_id) FROM playback_events")
        .fetch_all()
        .await
        .unwrap();
    let stored: std::collections::HashSet<&String> = ids.iter().collect();
    let missing = accepted.iter().filter(|id| !stored.contains(id)).count();
    assert_eq!(
        missing, 0,
        "acknowledged events missing from ClickHouse ({rows} rows)"
    );
    assert_eq!(ids.len(), stored.len(), "an event stored twice");
    assert!(
        ids.len() as u64 >= n,
        "every acknowledged event is stored (a 503'd one may land too: the client was told to retry)"
    );
    eprintln!(
        "durability: {n} acknowledged ({accepted_after_restart} after the restart), {refused_while_down} answered 503 while the broker was down, {} rows, 0 missing, 0 twice",
        ids.len()
    );
    let _ = stop.send(());
    let _ = sink.await;
    drop(kafka);
    let _ = std::fs::remove_dir_all(&dir);
}
