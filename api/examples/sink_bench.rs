//! The ClickHouse sink beside its limits, on the same events in one run (issue 18's levers are
//! measured with this; `make bench` reports the same figures):
//!
//! * consume ceiling: an rdkafka consumer alone reading every record of the topic;
//! * decode ceiling: the codec decoding every payload on one core;
//! * the sink: `clickhouse-sink`'s runtime from its first record to the last row written;
//! * raw insert: the clickhouse crate inserting the same rows in batches of 50,000.
//!
//!     BENCH_SINK_EVENTS=500000 cargo run --release --example sink_bench   (with `make services`)

use std::time::{Duration, Instant};

use consumers::sinks::clickhouse::{ClickHouseConfig, ClickHouseSink};
use consumers::RuntimeConfig;
use producers::admin::{ensure_topics, TopicSpec};
use producers::{ProducerConfig, RawProducer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use schemas::events::PlaybackEvent;
use schemas::Codec;

mod bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = bench::sink_events();
    common::telemetry::init("sink_bench");
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let ch = ClickHouseConfig::from_env()?.with_database(&format!("bench_{id}"));
    let admin = ch.clone().with_database("default").client();
    for s in ch.migrations() {
        admin.query(&s).execute().await?;
    }
    let client = ch.client();
    let codec = Codec::new(&stack.schema_registry_url)?;

    eprintln!("[bench] tables created");
    let topic = format!("bench-sink-{id}");
    ensure_topics(&stack.kafka_brokers, &[TopicSpec::new(&topic, 6)]).await?;
    let producer = RawProducer::new(&ProducerConfig::from_env(&stack.kafka_brokers)?)?;
    let events: Vec<PlaybackEvent> = (0..n).map(bench::playback).collect();
    let payloads = bench::seed(&codec, &producer, &topic, &events).await?;
    eprintln!("[bench] {n} events produced");
    // Consume ceiling: a consumer alone, first record to last (assigned, not subscribed: no
    // group join in the way).
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", format!("bench-consume-{id}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..6 {
        assignment.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (consume_rate, bytes) = tokio::task::spawn_blocking(move || {
        let (mut got, mut bytes, mut started) = (0usize, 0usize, None);
        while got < n {
            if let Some(m) = consumer.poll(Duration::from_secs(10)) {
                let m = m.expect("a record");
                started.get_or_insert_with(Instant::now);
                got += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            } else {
                panic!("no record for 10 s after {got}");
            }
        }
        let elapsed = started.expect("records").elapsed().as_secs_f64();
        ((n - 1) as f64 / elapsed, bytes)
    })
    .await?;
    eprintln!("[bench] consume ceiling: {consume_rate:.0} records/s ({bytes} bytes)");

    // Decode ceiling, one core.
    let started = Instant::now();
    for p in &payloads {
        let _: PlaybackEvent = codec.decode(p).await?;
    }
    let decode_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("[bench] decode ceiling: {decode_rate:.0} records/s");

    // The sink, first row to last.
    let mut runtime = RuntimeConfig::from_env("bench")?;
    runtime.group_id = format!("bench-sink-{id}");
    runtime.topic = Some(topic.clone());
    runtime.max_rows = 50_000;
    let sink = ClickHouseSink::<PlaybackEvent>::new(&ch);
    let sink_rate = bench::drain(&client, runtime, &codec, sink, n).await?;
    eprintln!("[bench] sink: {sink_rate:.0} rows/s");

    // Raw insert of the same rows.
    client
        .query("TRUNCATE TABLE playback_events")
        .execute()
        .await?;
    let raw_rate = bench::raw_insert(&client, &events).await?;
    eprintln!("[bench] raw insert: {raw_rate:.0} rows/s");
    eprintln!(
        "[bench] sink / raw insert {:.2}; sink / consume ceiling {:.2}; sink / decode ceiling {:.2}",
        sink_rate / raw_rate,
        sink_rate / consume_rate,
        sink_rate / decode_rate
    );
    admin
        .query(&format!("DROP DATABASE {}", ch.database))
        .execute()
        .await?;
    let md = format!(
        "## ClickHouse sink beside its limits\n\n\
         {n} playback events on a 6-partition topic, all measured in this run \
         (`BENCH_SINK_EVENTS={n} cargo run --release -p api --example sink_bench`):\n\n\
         | what | rate | sink / it |\n|---|---|---|\n\
         | consume ceiling: an rdkafka consumer alone (assigned, no group), first record to last | {consume_rate:.0} records/s | {:.2} |\n\
         | decode ceiling: the codec decoding every payload, one core | {decode_rate:.0} records/s | {:.2} |\n\
         | raw insert: the clickhouse crate, the same rows, batches of 50,000 (the table and its views) | {raw_rate:.0} rows/s | {:.2} |\n\
         | **the sink**: consume, decode, look up resends, insert, commit; first row to last | **{sink_rate:.0} rows/s** | |\n",
        sink_rate / consume_rate,
        sink_rate / decode_rate,
        sink_rate / raw_rate,
    );
    bench::write_section("21-sink-limits", &md)?;
    Ok(())
}
