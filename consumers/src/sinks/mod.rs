//! The sinks, one folder each: config, writer, error classification, table or index definitions.

pub mod clickhouse;
pub mod mongo;
