//! The ClickHouse analytics sink.
//!
//! Exactly-once effect without transactions: the runtime commits offsets only after an insert
//! succeeded, so a crash can only make it insert a batch again; the tables are ReplacingMergeTree
//! ordered by keys that end in `event_id`, so a re-inserted event collapses into the first on merge,
//! and reads that must be exact use `FINAL` (or count `uniqExact(event_id)`). See docs/clickhouse.md.

mod config;
mod rows;
mod service;
mod sink;

pub use config::ClickHouseConfig;
pub use rows::Table;
pub use sink::{insert_runs, ClickHouseSink, MAX_PARTITIONS_PER_INSERT};

/// The DDL of every table this sink owns, for database `db`, in order. Works on ClickHouse 18.16
/// and on current releases.
pub fn migrations(db: &str) -> Vec<String> {
    let without_comments: String = include_str!("schema.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("{db}", db))
        .collect()
}
