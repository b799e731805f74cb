//! Creates every topic, registers every schema and creates every ClickHouse table. Idempotent.

use consumers::sinks::clickhouse::ClickHouseConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("ugc-init");
    let stack = common::config::StackConfig::from_env();
    let report = consumers::init::initialise(&stack, &ClickHouseConfig::from_env()?).await?;
    tracing::info!(
        topics = report.topics,
        schemas = report.schemas.len(),
        clickhouse_statements = report.clickhouse_statements,
        mongo_indexes = report.mongo_indexes,
        "initialised"
    );
    for (subject, id) in &report.schemas {
        tracing::debug!(%subject, id, "schema");
    }
    Ok(())
}
