use clickhouse::Client;

/// Where the sink writes. From `CLICKHOUSE_URL`, `CLICKHOUSE_DATABASE`, `CLICKHOUSE_USER`,
/// `CLICKHOUSE_PASSWORD`.
#[derive(Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    password: String,
    /// `CLICKHOUSE_VALIDATION`.
    pub validation: bool,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ClickHouseConfig {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        let stack = common::config::StackConfig::from_env();
        Ok(Self {
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

    /// A client for the sink's database, validating row types when `CLICKHOUSE_VALIDATION=on`
    /// (18.16 has no RowBinaryWithNamesAndTypes; the current-engine tests run with it on).
    pub fn client(&self) -> Client {
        Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_database(&self.database)
            .with_validation(self.validation)
    }
}
