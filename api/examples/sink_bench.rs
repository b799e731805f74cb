//! The ClickHouse sink beside its limits, on the same events in one run (issue 18's levers are
//! measured with this; `make bench` reports the same figures):
//!
//! * consume ceiling: an rdkafka consumer alone reading every record of the topic;
//! * decode ceiling: the codec decoding every payload on one core;
//! * the sink: `clickhouse-sink`'s runtime from the first record it consumed to its last commit,
//!   and the same without the resend lookups;
//! * raw insert: the clickhouse crate inserting the same rows in batches of 50,000;
//! * the Python peer (scripts/bench/python_peer.py) over the same topic into the same table.
//!
//!     BENCH_SINK_EVENTS=500000 cargo run --release --example sink_bench   (with `make services`)

// The allocator of the binaries it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Rounds of the sink and the raw insert, alternated.
const ROUNDS: usize = 3;

/// The median of `rates` (an odd number of them).
fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

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

    // The sink and the raw insert, alternated over ROUNDS rounds (the raw rate alone varied by a
    // quarter from run to run on this shared machine); the medians are reported, and CPU per row
    // over all rounds. The sink runs from its first record consumed to its last commit, each run
    // in a group of its own, on emptied tables.
    let runtime = |group: &str| -> anyhow::Result<RuntimeConfig> {
        let mut runtime = RuntimeConfig::from_env("bench")?;
        runtime.group_id = format!("bench-sink-{id}{group}");
        runtime.topic = Some(topic.clone());
        runtime.max_rows = 50_000;
        Ok(runtime)
    };
    let empty = || async {
        for table in ["playback_events", "event_ids"] {
            client
                .query(&format!("TRUNCATE TABLE {table}"))
                .execute()
                .await?;
        }
        anyhow::Ok(())
    };
    let (mut sink_rates, mut raw_rates) = (Vec::new(), Vec::new());
    let (mut sink_cpu, mut raw_cpu) = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
    let add = |sum: &mut (f64, f64, f64), (a, b, c): (f64, f64, f64)| {
        *sum = (
            sum.0 + a / ROUNDS as f64,
            sum.1 + b / ROUNDS as f64,
            sum.2 + c / ROUNDS as f64,
        );
    };
    for round in 0..ROUNDS {
        empty().await?;
        let sink = ClickHouseSink::<PlaybackEvent>::new(&ch);
        let before = bench::Cpu::now();
        let rate = bench::drain(&client, runtime(&format!("-{round}"))?, &codec, sink, n).await?;
        add(&mut sink_cpu, bench::Cpu::now().per_row_since(&before, n));
        eprintln!("[bench] sink, round {round}: {rate:.0} rows/s");
        sink_rates.push(rate);
        empty().await?;
        let before = bench::Cpu::now();
        let rate = bench::raw_insert(&client, &events).await?;
        add(&mut raw_cpu, bench::Cpu::now().per_row_since(&before, n));
        eprintln!("[bench] raw insert, round {round}: {rate:.0} rows/s");
        raw_rates.push(rate);
    }
    let (sink_rate, raw_rate) = (median(&mut sink_rates), median(&mut raw_rates));

    // The sink without the resend lookups: what they cost (once).
    empty().await?;
    let sink = ClickHouseSink::<PlaybackEvent>::new(&ch).without_lookups();
    let before = bench::Cpu::now();
    let unchecked_rate = bench::drain(&client, runtime("-nolookup")?, &codec, sink, n).await?;
    let unchecked_cpu = bench::Cpu::now().per_row_since(&before, n);
    eprintln!("[bench] sink without the resend lookups: {unchecked_rate:.0} rows/s");

    // What a user would run instead: the Python consumer of scripts/bench/python_peer.py, on the
    // same topic into the same (emptied) table.
    empty().await?;
    let before = bench::Cpu::now();
    let (peer_rate, peer_cpu_seconds) = python_peer(&topic, &ch.database, n)?;
    let mut peer_cpu = bench::Cpu::now().per_row_since(&before, n);
    peer_cpu.0 = peer_cpu_seconds * 1e6 / n as f64;
    eprintln!("[bench] python peer: {peer_rate:.0} rows/s");
    admin
        .query(&format!("DROP DATABASE {}", ch.database))
        .execute()
        .await?;
    let all = |rates: &[f64]| {
        let rates: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        format!("runs: {}", rates.join(", "))
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let cpu_row = |what: &str, (this, ch, broker): (f64, f64, f64), rate: f64| {
        let total = this + ch + broker;
        format!(
            "| {what} | {this:.2} | {ch:.2} | {broker:.2} | {total:.2} | {:.0} rows/s | {rate:.0} rows/s |\n",
            cores * 1e6 / total
        )
    };
    let md = format!(
        "## ClickHouse sink beside its limits\n\n\
         {n} playback events on a 6-partition topic, all measured in this run \
         (`BENCH_SINK_EVENTS={n} cargo run --release -p api --example sink_bench`):\n\n\
         | what | rate | sink / it |\n|---|---|---|\n\
         | consume ceiling: an rdkafka consumer alone (assigned, no group), first record to last | {consume_rate:.0} records/s | {:.2} |\n\
         | decode ceiling: the codec decoding every payload, one core | {decode_rate:.0} records/s | {:.2} |\n\
         | raw insert: the clickhouse crate, the same rows, batches of 50,000 (the table and its views); median of {ROUNDS} | {raw_rate:.0} rows/s ({}) | {:.2} |\n\
         | Python peer: confluent-kafka + fastavro + clickhouse-driver, batches of 50,000, first record consumed to last commit | {peer_rate:.0} rows/s | {:.2} |\n\
         | **the sink**: consume, decode, look up resends, insert, commit; first record consumed to last commit; median of {ROUNDS}, alternated with the raw insert | **{sink_rate:.0} rows/s** ({}) | |\n\
         | the sink without the resend lookups in `event_ids` (what they cost; resends would then count twice) | {unchecked_rate:.0} rows/s | {:.2} |\n\n\
         CPU time per row in the same runs, microseconds (user + system, from /proc; the client is \
         this bench process for the sink and the raw insert, the Python process for the peer; the \
         sink's windows include its group join; the sink's and the raw insert's are the mean of \
         their {ROUNDS} rounds). \
         \"cores / total\" is the rate at which that work would keep all {cores:.0} cores of this \
         machine busy:\n\n\
         | run | client | ClickHouse | broker | total | cores / total | measured |\n|---|---|---|---|---|---|---|\n\
         {}{}{}{}",
        sink_rate / consume_rate,
        sink_rate / decode_rate,
        all(&raw_rates),
        sink_rate / raw_rate,
        sink_rate / peer_rate,
        all(&sink_rates),
        sink_rate / unchecked_rate,
        cpu_row("the sink", sink_cpu, sink_rate),
        cpu_row("the sink without lookups", unchecked_cpu, unchecked_rate),
        cpu_row("raw insert (reads nothing from the broker)", raw_cpu, raw_rate),
        cpu_row("Python peer", peer_cpu, peer_rate),
    );
    bench::write_section("21-sink-limits", &md)?;
    Ok(())
}

/// Runs scripts/bench/python_peer.py (with the project venv's Python) over `topic` into `database`;
/// its rows/s and the CPU seconds its process used meanwhile.
fn python_peer(topic: &str, database: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var("VENV").unwrap_or_else(|_| root.join(".venv").display().to_string());
    let out = std::process::Command::new(format!("{venv}/bin/python"))
        .arg(root.join("scripts/bench/python_peer.py"))
        .args([
            "--topic",
            topic,
            "--database",
            database,
            "--events",
            &n.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "python_peer.py failed");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    match (
        result["rows_per_second"].as_f64(),
        result["cpu_seconds"].as_f64(),
    ) {
        (Some(rate), Some(cpu)) => Ok((rate, cpu)),
        _ => anyhow::bail!("python_peer.py printed {result}"),
    }
}
