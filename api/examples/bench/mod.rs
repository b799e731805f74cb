//! What the `make bench` examples share: percentiles, timing a read endpoint through the API, and
//! writing a section that scripts/bench.sh assembles into docs/benchmarks.md.

#![allow(dead_code)] // each example uses part of it

use std::time::Instant;

use api::configuration::Settings;
use api::startup::Application;

pub mod youtube;

/// The request path of the i-th request to an endpoint.
pub type PathFor<'a> = Box<dyn Fn(usize) -> String + 'a>;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Starts the API on a free port with the bench API key `bench-key`; returns its base URL and a
/// sender that stops it.
pub async fn start_api(
    adjust: impl FnOnce(&mut Settings),
) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let mut settings = Settings::from_env()?;
    settings.port = 0;
    settings.rate_limit.per_second = 0;
    settings.auth = api::auth::AuthConfig::new("bench:bench-key", "x", None)?;
    adjust(&mut settings);
    let app = Application::build(&settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Ok((base, stop))
}

/// `requests` sequential GETs per endpoint; one markdown table row per endpoint with p50 / p99.
pub async fn time_reads(
    base: &str,
    endpoints: &[(&str, PathFor<'_>)],
    requests: usize,
    goal: fn(&str) -> &'static str,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let mut rows = String::new();
    for (name, path) in endpoints {
        let mut times = Vec::new();
        for i in 0..requests {
            let started = Instant::now();
            let resp = http
                .get(format!("{base}{}", path(i)))
                .header("x-api-key", "bench-key")
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "{name}: {}", resp.status());
            resp.bytes().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        eprintln!("[bench] {name}: p99 {:.1} ms", percentile(&times, 0.99));
        rows.push_str(&format!(
            "| {name} | {:.1} / {:.1} ms | {} |\n",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            goal(name)
        ));
    }
    Ok(rows)
}

/// Writes one section of docs/benchmarks.md to target/bench/`name`.md; scripts/bench.sh puts the
/// sections after the API section, in name order.
pub fn write_section(name: &str, markdown: &str) -> anyhow::Result<()> {
    print!("{markdown}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.md")), markdown)?;
    Ok(())
}

/// Events per millisecond of the benches' event times: the batch endpoint's goal (250,000
/// events/s), as if the events had come in through it.
const EVENTS_PER_MS: i64 = 250;

/// The i-th playback event of the sink benches: 10,000 users, 500 movies; the events occurred
/// one after another, [`EVENTS_PER_MS`] a millisecond, from an hour before the first was made.
/// (Made as fast as the loop runs, they would all occur in the same few milliseconds: a rate no
/// source has, and one that depends on the machine.)
pub fn playback(i: usize) -> schemas::events::PlaybackEvent {
    use schemas::domain::*;
    static START_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START_MS.get_or_init(|| Timestamp::now().millis() - 3_600_000);
    schemas::events::PlaybackEvent {
        event_id: EventId::new_random(),
        user_id: UserId::from_uuid(uuid::Uuid::from_u128(i as u128 % 10_000)),
        movie_id: MovieId::from_uuid(uuid::Uuid::from_u128(1 + i as u128 % 500)),
        event_type: schemas::events::PlaybackEventType::ALL[i % 5],
        position_ms: PositionMs::parse((i % 7_200_000) as i64).unwrap(),
        occurred_at: Timestamp::from_millis("occurred_at", start + i as i64 / EVENTS_PER_MS)
            .expect("an hour ago is a valid time"),
    }
}

/// Produces `events` to `topic` (10,000 in flight at a time); returns their encoded payloads.
pub async fn seed<E: schemas::Event>(
    codec: &schemas::Codec,
    producer: &producers::RawProducer,
    topic: &str,
    events: &[E],
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut payloads = Vec::with_capacity(events.len());
    for chunk in events.chunks(10_000) {
        let sends = chunk.iter().map(|e| async move {
            let bytes = codec.encode(e).await?;
            producer
                .send(topic, Some(e.key().as_bytes()), Some(&bytes), &[])
                .await?;
            anyhow::Ok(bytes)
        });
        for r in futures::future::join_all(sends).await {
            payloads.push(r?);
        }
    }
    Ok(payloads)
}

/// Records the runtimes of this process have written and committed so far (the
/// `consumer_records_written_total` counter of every sink).
fn written_total() -> u64 {
    prometheus::gather()
        .iter()
        .filter(|f| f.name() == "consumer_records_written_total")
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Runs `sink` until it has written and committed `n` records (watched on its own counter, so the
/// database answers no polls meanwhile), then checks that `playback_events` has `n` rows; rows/s
/// from the first record the runtime consumed to its last commit of offsets.
pub async fn drain(
    client: &clickhouse::Client,
    runtime: consumers::RuntimeConfig,
    codec: &schemas::Codec,
    sink: consumers::sinks::clickhouse::ClickHouseSink<schemas::events::PlaybackEvent>,
    n: usize,
) -> anyhow::Result<f64> {
    let before = written_total();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(consumers::run(
        runtime,
        codec.clone(),
        sink,
        common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        }),
    ));
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        let written = (written_total() - before) as usize;
        if written >= n || task.is_finished() {
            break;
        }
        if written != last {
            (last, moved) = (written, Instant::now());
        }
        anyhow::ensure!(
            moved.elapsed() < std::time::Duration::from_secs(120),
            "the sink wrote nothing for 2 minutes ({written} of {n}); see its log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    let stats = task.await??;
    let rows = client
        .query("SELECT count() FROM playback_events")
        .fetch_one::<u64>()
        .await?;
    anyhow::ensure!(
        rows as usize == n,
        "{rows} rows in playback_events, not {n}"
    );
    Ok(rate(&stats, n))
}

/// A runtime's rate over `n` records: from the first record it consumed to its last commit.
pub fn rate(stats: &consumers::runtime::Stats, n: usize) -> f64 {
    let first = *stats.first_consumed.get().expect("records consumed");
    let last = stats
        .last_commit
        .lock()
        .expect("stats lock")
        .expect("offsets committed");
    n as f64 / (last - first).as_secs_f64()
}

/// The clickhouse crate inserting the rows of `events` into `playback_events`, 50,000 per INSERT:
/// rows/s.
pub async fn raw_insert(
    client: &clickhouse::Client,
    events: &[schemas::events::PlaybackEvent],
) -> anyhow::Result<f64> {
    use consumers::sinks::clickhouse::Table;
    let rows: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| e.row(0, i as i64))
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(50_000) {
        let mut insert = client
            .insert::<<schemas::events::PlaybackEvent as Table>::Row>("playback_events")
            .await?;
        for row in chunk {
            insert.write(row).await?;
        }
        insert.end().await?;
    }
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// `BENCH_SINK_EVENTS` (default 500,000): how many events the sink benches drain.
pub fn sink_events() -> usize {
    std::env::var("BENCH_SINK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
}

/// CPU time (user + system, seconds) used so far by this process, the local ClickHouse server and
/// the local broker, read from /proc (Linux). Two readings around a run say what the run cost
/// each of them, whatever else shared the cores.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub this: f64,
    pub clickhouse: f64,
    pub broker: f64,
}

impl Cpu {
    pub fn now() -> Self {
        Self {
            this: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|stat| stat_cpu(&stat))
                .unwrap_or(0.0),
            clickhouse: cpu_of("clickhouse"),
            broker: cpu_of("tansu"),
        }
    }

    /// Microseconds of CPU per row since `earlier`: (this process, ClickHouse, broker).
    pub fn per_row_since(&self, earlier: &Cpu, rows: usize) -> (f64, f64, f64) {
        let us = |a: f64, b: f64| (a - b) * 1e6 / rows as f64;
        (
            us(self.this, earlier.this),
            us(self.clickhouse, earlier.clickhouse),
            us(self.broker, earlier.broker),
        )
    }
}

/// CPU seconds used so far by the processes whose name starts with `name` (Linux).
pub fn cpu_of(name: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat
            .split('(')
            .nth(1)
            .is_some_and(|rest| rest.starts_with(name))
        {
            total += stat_cpu(&stat).unwrap_or(0.0);
        }
    }
    total
}

/// utime + stime, in seconds, from the text of a process's `/proc/<pid>/stat`.
fn stat_cpu(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // After the name: state is field 0, utime 11, stime 12 (clock ticks).
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SC_CLK_TCK is 100 on every Linux this runs on; `getconf` says so if it ever is not.
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
