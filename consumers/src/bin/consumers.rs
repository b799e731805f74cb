//! Operator commands for the consumers.
//!
//!     consumers replay [--from TOPIC] [--only-source TOPIC] [--group GROUP]
//!
//! re-drives the dead-letter topic (default `DEAD_LETTER_TOPIC`, `ugc.dead-letter`) into the topics
//! its records came from; see `consumers::replay`. Progress goes to stderr every 2 s, a summary per
//! source topic (re-driven, replayed before, left for another run) to stdout. Progress is kept per
//! source topic in the groups `<GROUP>.<source topic>` (default group `dead-letter-replay`).

// glibc's allocator returns and re-faults pages batch after batch; mimalloc keeps them (the
// sink's per-record allocations are a large part of its CPU, perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use anyhow::bail;
use consumers::replay::{replay, ReplayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("consumers");
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        bail!("usage: consumers replay [--from TOPIC] [--only-source TOPIC] [--group GROUP]");
    };
    if command != "replay" {
        bail!("unknown command {command:?}; known: replay");
    }
    let brokers = common::config::StackConfig::from_env().kafka_brokers;
    let mut config = ReplayConfig {
        dead_letter_brokers: common::config::env_or("DEAD_LETTER_BROKERS", &brokers),
        brokers,
        dead_letter_topic: common::config::env_or(
            "DEAD_LETTER_TOPIC",
            schemas::topics::DEAD_LETTER,
        ),
        group_id: "dead-letter-replay".into(),
        only_source: None,
        idle: Duration::from_secs(3),
    };
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            bail!("{flag} needs a value")
        };
        match flag.as_str() {
            "--from" => config.dead_letter_topic = value,
            "--only-source" => config.only_source = Some(value),
            "--group" => config.group_id = value,
            other => bail!("unknown option {other}"),
        }
    }
    let report = replay(&config, |r| {
        eprintln!(
            "replay: {} read, {} re-driven, {} left for another run",
            r.read(),
            r.replayed(),
            r.left()
        )
    })
    .await?;
    tracing::info!(
        replayed = report.replayed(),
        left = report.left(),
        "dead letters replayed"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "source topic", "re-driven", "before", "left"
    );
    for (source, s) in &report.sources {
        println!(
            "{source:<40} {:>10} {:>10} {:>10}",
            s.replayed, s.before, s.left
        );
    }
    println!(
        "replayed {} record(s); {} left for another run",
        report.replayed(),
        report.left()
    );
    Ok(())
}
