//! The consumer side of the pipeline: one runtime that owns delivery (poll, decode through the
//! registry, batch, write, dead-letter, commit only what was written, rebalance, shutdown), the sinks
//! that plug into it, and the initialiser that creates every topic, schema and table.

pub mod groups;
pub mod init;
pub mod replay;
pub mod runtime;
pub mod sinks;

pub use runtime::{run, Record, RuntimeConfig, Sink, SinkError, Written};
