//! What every binary of the pipeline shares: telemetry (logs, and the Prometheus endpoint of the
//! binaries that are not the API), configuration from the environment, and the shutdown signal.
//! Nothing here knows about Kafka or a database.

pub mod backoff;
pub mod config;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
