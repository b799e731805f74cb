//! The sinks, one module each: config, writer, error classification, table or index definitions.

pub mod clickhouse;
pub mod feed;
pub mod images;
pub mod mongo;
pub mod predictions;
pub mod youtube;
