//! The initialiser: topics, schemas, ClickHouse tables, Mongo collections and indexes. Idempotent;
//! `make run` and the tests run it.

use common::config::{env_or, env_parse, StackConfig};
use producers::admin::{ensure_topics, TopicSpec};
use schemas::Codec;

use crate::sinks::clickhouse::{self, ClickHouseConfig};
use stores::mongo;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] common::config::ConfigError),
    #[error("creating topics: {0}")]
    Topics(#[from] producers::ProduceError),
    #[error("registering schemas: {0}")]
    Schemas(#[from] schemas::CodecError),
    #[error(transparent)]
    Mongo(#[from] mongo::MongoError),
    #[error("clickhouse: {statement}: {source}")]
    ClickHouse {
        statement: String,
        source: ::clickhouse::error::Error,
    },
}

/// What the initialiser did.
#[derive(Debug)]
pub struct Report {
    pub topics: usize,
    pub schemas: Vec<(String, u32)>,
    pub clickhouse_statements: usize,
    pub mongo_indexes: usize,
}

/// Topic settings: `TOPIC_PARTITIONS` overrides every topic's default partition count;
/// `TOPIC_RETENTION_MS` (default 7 days). The dead-letter topic (`DEAD_LETTER_TOPIC`) keeps its
/// records `DEAD_LETTER_RETENTION` (default 30 days): an operator has longer to fix and replay
/// than the sources keep the originals. It is last, and created on `DEAD_LETTER_BROKERS`.
pub fn topic_specs() -> Result<Vec<TopicSpec>, InitError> {
    let partitions: i32 = env_parse("TOPIC_PARTITIONS", 0)?;
    let retention_ms: i64 = env_parse("TOPIC_RETENTION_MS", 7 * 24 * 3600 * 1000)?;
    let dead_retention = common::config::env_duration(
        "DEAD_LETTER_RETENTION",
        std::time::Duration::from_secs(30 * 86_400),
    )?;
    let dead_topic = env_or("DEAD_LETTER_TOPIC", schemas::topics::DEAD_LETTER);
    let mut specs: Vec<TopicSpec> = schemas::topics::ALL
        .iter()
        .filter(|t| t.name != schemas::topics::DEAD_LETTER)
        .map(|t| {
            let n = if partitions > 0 {
                partitions
            } else {
                t.partitions
            };
            TopicSpec::new(t.name, n).with_config("retention.ms", &retention_ms.to_string())
        })
        .collect();
    let dead_partitions = schemas::topics::ALL
        .iter()
        .find(|t| t.name == schemas::topics::DEAD_LETTER)
        .map_or(1, |t| t.partitions);
    specs.push(
        TopicSpec::new(&dead_topic, dead_partitions)
            .with_config("retention.ms", &dead_retention.as_millis().to_string()),
    );
    Ok(specs)
}

pub async fn initialise(stack: &StackConfig, ch: &ClickHouseConfig) -> Result<Report, InitError> {
    let mut specs = topic_specs()?;
    let dead = specs.pop().expect("the dead-letter topic is last");
    ensure_topics(&stack.kafka_brokers, &specs).await?;
    let dead_brokers = env_or("DEAD_LETTER_BROKERS", &stack.kafka_brokers);
    ensure_topics(&dead_brokers, std::slice::from_ref(&dead)).await?;
    specs.push(dead);
    let schemas =
        Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?
            .register_all()
            .await?;
    let clickhouse_statements = migrate_clickhouse(ch).await?;
    let mongo_client = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .map_err(mongo::MongoError::from)?;
    let mongo_indexes = mongo::migrate(&mongo_client, &stack.mongo_database).await?;
    Ok(Report {
        topics: specs.len(),
        schemas,
        clickhouse_statements,
        mongo_indexes,
    })
}

/// Applies the ClickHouse DDL (connecting without a database, since it creates it). A view's
/// target table created by this run is filled from the view's source (`INSERT INTO target SELECT`),
/// so tables added in a later release also cover the rows written before it. Run it before the
/// sinks start, or those rows may be counted twice by the summing tables.
pub async fn migrate_clickhouse(ch: &ClickHouseConfig) -> Result<usize, InitError> {
    let client = ch.clone().with_database("default").client();
    let statements = clickhouse::migrations(&ch.database);
    let run = |statement: String| {
        let client = client.clone();
        async move {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|source| InitError::ClickHouse {
                    statement: statement.lines().next().unwrap_or_default().to_string(),
                    source,
                })
        }
    };
    let mut created = Vec::new();
    let mut ran = 0;
    for statement in &statements {
        if let Some(table) = created_table(statement) {
            let exists: u8 = client
                .query(&format!("EXISTS TABLE {table}"))
                .fetch_one()
                .await
                .map_err(|source| InitError::ClickHouse {
                    statement: format!("EXISTS TABLE {table}"),
                    source,
                })?;
            if exists == 0 {
                created.push(table.to_string());
            }
        }
        if let Some((table, column)) = added_column(statement) {
            let (database, table) = table.split_once('.').unwrap_or((&ch.database, table));
            // On a cluster the column is added to the shard-local table first.
            let table = match ch.cluster {
                Some(_) => clickhouse::cluster::local(table),
                None => table.to_string(),
            };
            let present: u64 = client
                .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
                .bind(database)
                .bind(&table)
                .bind(column)
                .fetch_one()
                .await
                .map_err(|source| InitError::ClickHouse {
                    statement: format!("system.columns for {table}.{column}"),
                    source,
                })?;
            if present > 0 {
                continue;
            }
            tracing::info!(table, column, "adding a column");
        }
        for form in ch.statements(statement) {
            run(form).await?;
            ran += 1;
        }
    }
    // Filled through the tables' own names: on a cluster those are the Distributed tables, so
    // the fill reads every shard and writes each row to the shard its key picks.
    for statement in &statements {
        if let Some((target, select)) = view_target(statement) {
            if created.iter().any(|t| t == target) {
                tracing::info!(table = target, "filling a new table from its view's source");
                run(format!("INSERT INTO {target} {select}")).await?;
            }
        }
    }
    Ok(ran)
}

/// `db.table` of a `CREATE TABLE IF NOT EXISTS db.table ...` statement.
fn created_table(statement: &str) -> Option<&str> {
    let rest = statement.strip_prefix("CREATE TABLE IF NOT EXISTS ")?;
    rest.split_whitespace().next()
}

/// `(db.table, column)` of an `ALTER TABLE db.table ADD COLUMN column ...` statement: 18.16 has no
/// `ADD COLUMN IF NOT EXISTS`, so the migration checks `system.columns` first.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("ALTER TABLE ")?;
    let mut words = rest.split_whitespace();
    let table = words.next()?;
    match (words.next()?, words.next()?, words.next()?) {
        ("ADD", "COLUMN", column) => Some((table, column)),
        _ => None,
    }
}

/// The target and the SELECT of a `CREATE MATERIALIZED VIEW ... TO db.target AS SELECT ...`.
fn view_target(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("CREATE MATERIALIZED VIEW IF NOT EXISTS ")?;
    let after_to = &rest[rest.find(" TO ")? + 4..];
    let target = after_to.split_whitespace().next()?;
    let select = after_to[target.len()..].trim_start().strip_prefix("AS")?;
    Some((target, select.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_topic_outlives_the_sources() {
        let specs = topic_specs().unwrap();
        let retention = |s: &TopicSpec| -> i64 {
            s.config
                .iter()
                .find(|(k, _)| k == "retention.ms")
                .unwrap()
                .1
                .parse()
                .unwrap()
        };
        let dead = specs.last().unwrap();
        assert_eq!(dead.name, schemas::topics::DEAD_LETTER);
        assert_eq!(retention(dead), 30 * 86_400_000);
        assert!(specs[..specs.len() - 1]
            .iter()
            .all(|s| retention(s) < retention(dead)));
    }

    #[test]
    fn every_view_names_its_target_and_select() {
        let statements = clickhouse::migrations("db");
        // The client would take a `?` for a bind parameter.
        assert!(statements.iter().all(|s| !s.contains('?')));
        let views: Vec<_> = statements.iter().filter_map(|s| view_target(s)).collect();
        let count = statements
            .iter()
            .filter(|s| s.starts_with("CREATE MATERIALIZED VIEW"))
            .count();
        assert_eq!(views.len(), count);
        for (target, select) in views {
            assert!(target.starts_with("db."), "{target}");
            assert!(select.starts_with("SELECT"), "{select}");
            assert!(statements.iter().any(|s| created_table(s) == Some(target)));
        }
    }
}
