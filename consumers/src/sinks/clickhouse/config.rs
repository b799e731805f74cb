use std::time::Duration;

use clickhouse::Client;
use common::config::ConfigError;

use super::cluster;
use super::lookup::Lookups;

/// Where the sink writes. From `CLICKHOUSE_URL`, `CLICKHOUSE_DATABASE`, `CLICKHOUSE_USER`,
/// `CLICKHOUSE_PASSWORD`, `CLICKHOUSE_CLUSTER`, `CLICKHOUSE_MAX_REPLICA_DELAY`.
#[derive(Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    password: String,
    /// `CLICKHOUSE_VALIDATION`.
    pub validation: bool,
    /// `CLICKHOUSE_CLUSTER`: the cluster (as the servers' `remote_servers` name it) whose
    /// Replicated and Distributed tables the initialiser creates and the sinks write through.
    pub cluster: Option<String>,
    /// `CLICKHOUSE_MAX_REPLICA_DELAY` (on a cluster; default 1 s): the sink reads `event_ids`
    /// only from replicas at most this far behind in replication (a replica restarted after a
    /// crash has not fetched what the other one took meanwhile); when every replica of a shard is
    /// further behind, the lookup fails and is retried, rather than miss an event and write it
    /// twice.
    pub max_replica_delay: Duration,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("cluster", &self.cluster)
            .field("max_replica_delay", &self.max_replica_delay)
            .finish()
    }
}

impl ClickHouseConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stack = common::config::StackConfig::from_env();
        let cluster = match common::config::env_or("CLICKHOUSE_CLUSTER", "") {
            c if c.is_empty() => None,
            c if c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') => Some(c),
            c => {
                return Err(ConfigError {
                    name: "CLICKHOUSE_CLUSTER".into(),
                    value: c,
                    reason: "a cluster name is letters, digits and _".into(),
                })
            }
        };
        let max_replica_delay =
            common::config::env_duration("CLICKHOUSE_MAX_REPLICA_DELAY", Duration::from_secs(1))?;
        if max_replica_delay.as_secs() == 0 || max_replica_delay.subsec_nanos() != 0 {
            return Err(ConfigError {
                name: "CLICKHOUSE_MAX_REPLICA_DELAY".into(),
                value: format!("{max_replica_delay:?}"),
                reason:
                    "whole seconds, at least 1s (ClickHouse counts replication delay in seconds)"
                        .into(),
            });
        }
        Ok(Self {
            cluster,
            max_replica_delay,
            url: stack.clickhouse_url,
            database: stack.clickhouse_database,
            user: common::config::env_or("CLICKHOUSE_USER", "default"),
            password: common::config::env_or("CLICKHOUSE_PASSWORD", ""),
            validation: common::config::clickhouse_validation()?,
        })
    }

    pub fn with_database(mut self, database: &str) -> Self {
        self.database = database.to_string();
        self
    }

    pub fn with_cluster(mut self, cluster: Option<&str>) -> Self {
        self.cluster = cluster.map(str::to_string);
        self
    }

    /// A client for the sink's database, validating row types when `CLICKHOUSE_VALIDATION=on`
    /// (18.16 has no RowBinaryWithNamesAndTypes; the current-engine tests run with it on). On a
    /// cluster its INSERTs into a Distributed table return once every shard has its rows
    /// (`insert_distributed_sync`), and it writes to and reads from the first live replica of
    /// each shard in the configured order (`load_balancing=in_order`), so what it reads is where
    /// it wrote.
    pub fn client(&self) -> Client {
        let client = Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_database(&self.database)
            .with_validation(self.validation);
        match &self.cluster {
            None => client,
            Some(_) => client
                .with_setting("insert_distributed_sync", "1")
                .with_setting("load_balancing", "in_order"),
        }
    }

    /// Settings of the sink's resend lookups: on a cluster, read only replicas at most
    /// `max_replica_delay` behind, and fail (to be retried) rather than fall back to a staler one.
    pub fn lookup_settings(&self) -> Vec<(&'static str, String)> {
        match &self.cluster {
            None => Vec::new(),
            Some(_) => vec![
                (
                    "max_replica_delay_for_distributed_queries",
                    self.max_replica_delay.as_secs().to_string(),
                ),
                (
                    "fallback_to_stale_replicas_for_distributed_queries",
                    "0".into(),
                ),
            ],
        }
    }

    /// The sink's `event_ids` lookups, with [`ClickHouseConfig::lookup_settings`] (and on a
    /// cluster, the client's replica order).
    pub(super) fn lookups(&self) -> Lookups {
        let mut settings = self.lookup_settings();
        if self.cluster.is_some() {
            settings.push(("load_balancing", "in_order".into()));
        }
        Lookups::new(
            &self.url,
            &self.user,
            &self.password,
            &self.database,
            settings,
        )
    }

    /// Every DDL statement of the sink's tables for this database: schema.sql as it is, or its
    /// cluster form.
    pub fn migrations(&self) -> Vec<String> {
        super::migrations(&self.database)
            .iter()
            .flat_map(|s| self.statements(s))
            .collect()
    }

    /// What runs for one statement of schema.sql: itself, or its `ON CLUSTER` forms.
    pub fn statements(&self, statement: &str) -> Vec<String> {
        match &self.cluster {
            None => vec![statement.to_string()],
            Some(c) => cluster::on_cluster(statement, &self.database, c)
                .expect("every statement of schema.sql has a cluster form (a unit test checks)"),
        }
    }
}
