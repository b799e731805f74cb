//! The ClickHouse analytics sink.
//!
//! Exactly-once effect without transactions: the runtime commits offsets only after an insert
//! succeeded, so a crash can only make it write a batch again; the sink looks every batch up in
//! `event_ids` (filled by views in the same INSERT as the rows) and leaves out what is already
//! written, so neither that nor a client's resend adds a row or counts in an aggregate twice. See
//! docs/clickhouse.md.

mod ahead;
pub mod cluster;
mod config;
mod lookup;
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
