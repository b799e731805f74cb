//! What every binary of the pipeline shares: telemetry, configuration from the environment, and the
//! shutdown signal. Nothing here knows about Kafka, HTTP or a database.

pub mod config;
pub mod shutdown;
pub mod telemetry;
