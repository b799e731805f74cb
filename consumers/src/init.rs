//! The initialiser: topics, schemas, ClickHouse tables, Mongo collections and indexes. Idempotent;
//! `make run` and the tests run it.

use common::config::{env_parse, StackConfig};
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
/// `TOPIC_RETENTION_MS` (default 7 days).
pub fn topic_specs() -> Result<Vec<TopicSpec>, InitError> {
    let partitions: i32 = env_parse("TOPIC_PARTITIONS", 0)?;
    let retention_ms: i64 = env_parse("TOPIC_RETENTION_MS", 7 * 24 * 3600 * 1000)?;
    Ok(schemas::topics::ALL
        .iter()
        .map(|t| {
            let n = if partitions > 0 {
                partitions
            } else {
                t.partitions
            };
            TopicSpec::new(t.name, n).with_config("retention.ms", &retention_ms.to_string())
        })
        .collect())
}

pub async fn initialise(stack: &StackConfig, ch: &ClickHouseConfig) -> Result<Report, InitError> {
    let specs = topic_specs()?;
    ensure_topics(&stack.kafka_brokers, &specs).await?;
    let schemas = Codec::new(&stack.schema_registry_url)?
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

/// Applies the ClickHouse DDL (connecting without a database, since it creates it).
pub async fn migrate_clickhouse(ch: &ClickHouseConfig) -> Result<usize, InitError> {
    let client = ch.clone().with_database("default").client();
    let statements = clickhouse::migrations(&ch.database);
    for statement in &statements {
        client
            .query(statement)
            .execute()
            .await
            .map_err(|source| InitError::ClickHouse {
                statement: statement.lines().next().unwrap_or_default().to_string(),
                source,
            })?;
    }
    Ok(statements.len())
}
