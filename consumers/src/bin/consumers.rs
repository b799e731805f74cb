//! Operator commands for the consumers.
//!
//!     consumers replay [--from TOPIC] [--only-source TOPIC] [--group GROUP]
//!
//! re-drives the dead-letter topic (default `DEAD_LETTER_TOPIC`, `ugc.dead-letter`) into the topics
//! its records came from; see `consumers::replay`.

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
    let mut config = ReplayConfig {
        brokers: common::config::StackConfig::from_env().kafka_brokers,
        dead_letter_topic: common::config::env_or(
            "DEAD_LETTER_TOPIC",
            schemas::topics::DEAD_LETTER,
        ),
        group_id: "dead-letter-replay".into(),
        only_source: None,
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
    let report = replay(&config).await?;
    tracing::info!(
        replayed = report.replayed,
        skipped = report.skipped,
        "dead letters replayed"
    );
    println!(
        "replayed {} record(s), skipped {}",
        report.replayed, report.skipped
    );
    Ok(())
}
