//! Configuration comes from environment variables, each with a local default documented in the
//! README's table. A value that is set but does not parse is an error, never silently the default.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// The variable's value, or `default` when it is unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

/// The variable parsed as `T`, or `default` when it is unset or empty.
pub fn env_parse<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e: T::Err| ConfigError {
            name: name.to_string(),
            value: v.clone(),
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// The variable as `on` / `off`, or `default` when it is unset or empty.
pub fn env_switch(name: &str, default: bool) -> Result<bool, ConfigError> {
    match std::env::var(name).unwrap_or_default().as_str() {
        "" => Ok(default),
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ConfigError {
            name: name.to_string(),
            value: other.to_string(),
            reason: "must be on or off".into(),
        }),
    }
}

/// `CLICKHOUSE_VALIDATION` (default `off`): whether the ClickHouse client checks each row's column
/// names and types against the Rust row type (`RowBinaryWithNamesAndTypes`). Turn it on with a
/// current ClickHouse (production, compose, the current-engine tests); 18.16 cannot answer in that
/// format, so the local stack runs with it off.
pub fn clickhouse_validation() -> Result<bool, ConfigError> {
    env_switch("CLICKHOUSE_VALIDATION", false)
}

/// The variable as a duration such as `30d`, `5m`, `90s` or `1h 30m` (humantime's format), or
/// `default` when it is unset or empty.
pub fn env_duration(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => humantime::parse_duration(&v).map_err(|e| ConfigError {
            name: name.to_string(),
            value: v.clone(),
            reason: format!("{e} (write e.g. 30d, 5m, 90s)"),
        }),
        _ => Ok(default),
    }
}

/// `EVENT_MAX_AGE` (default 30 days) and `EVENT_MAX_CLOCK_SKEW` (default 5 minutes): how far an
/// event's time may be behind or ahead of the receiver's clock (schemas' `TimeBounds`).
pub fn event_time_bounds() -> Result<(Duration, Duration), ConfigError> {
    Ok((
        env_duration("EVENT_MAX_AGE", Duration::from_secs(30 * 86_400))?,
        env_duration("EVENT_MAX_CLOCK_SKEW", Duration::from_secs(5 * 60))?,
    ))
}

/// The shared addresses of the local stack; every binary reads the ones it needs.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// `KAFKA_BROKERS`, comma-separated bootstrap servers.
    pub kafka_brokers: String,
    /// `SCHEMA_REGISTRY_URL`.
    pub schema_registry_url: String,
    /// `CLICKHOUSE_URL` (HTTP interface).
    pub clickhouse_url: String,
    /// `CLICKHOUSE_DATABASE`.
    pub clickhouse_database: String,
    /// `MONGO_URL`.
    pub mongo_url: String,
    /// `MONGO_DATABASE`.
    pub mongo_database: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `SCHEMA_REGISTRY_USER` / `SCHEMA_REGISTRY_PASSWORD`: basic-auth credentials our binaries send
    /// to the registry (its writes need them when it runs with `REGISTRY_AUTH`).
    pub schema_registry_auth: Option<Credentials>,
}

/// A user name and a password, the password never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

impl StackConfig {
    /// `(user, password)` for the registry client, if set.
    pub fn registry_credentials(&self) -> Option<(&str, &str)> {
        self.schema_registry_auth
            .as_ref()
            .map(|c| (c.user.as_str(), c.password.as_str()))
    }

    pub fn from_env() -> Self {
        Self {
            kafka_brokers: env_or("KAFKA_BROKERS", "127.0.0.1:9092"),
            schema_registry_url: env_or("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            clickhouse_url: env_or("CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            clickhouse_database: env_or("CLICKHOUSE_DATABASE", "ugc"),
            mongo_url: env_or(
                "MONGO_URL",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            ),
            mongo_database: env_or("MONGO_DATABASE", "ugc"),
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379"),
            schema_registry_auth: std::env::var("SCHEMA_REGISTRY_USER")
                .ok()
                .filter(|u| !u.is_empty())
                .map(|user| Credentials {
                    user,
                    password: std::env::var("SCHEMA_REGISTRY_PASSWORD").unwrap_or_default(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variable_gives_default_and_bad_value_is_an_error() {
        assert_eq!(env_parse::<u32>("COMMON_TEST_UNSET_VAR", 7).unwrap(), 7);
        std::env::set_var("COMMON_TEST_BAD_VAR", "seven");
        let err = env_parse::<u32>("COMMON_TEST_BAD_VAR", 7).unwrap_err();
        assert_eq!(err.name, "COMMON_TEST_BAD_VAR");
        assert!(err.to_string().contains("seven"));
    }

    #[test]
    fn durations_take_units_and_name_the_variable_when_bad() {
        let d = Duration::from_secs(1);
        assert_eq!(env_duration("COMMON_TEST_UNSET_DURATION", d).unwrap(), d);
        std::env::set_var("COMMON_TEST_DURATION", "30d");
        assert_eq!(
            env_duration("COMMON_TEST_DURATION", d).unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        std::env::set_var("COMMON_TEST_BAD_DURATION", "soon");
        let err = env_duration("COMMON_TEST_BAD_DURATION", d).unwrap_err();
        assert_eq!(err.name, "COMMON_TEST_BAD_DURATION");
    }
}
