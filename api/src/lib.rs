//! The cinema's HTTP API: authenticates callers, validates events, produces them to Kafka as Avro,
//! and answers 202 only once Kafka acknowledged. `startup::Application` is the entry point of `main`
//! and of the tests.

pub mod auth;
pub mod configuration;
pub mod cors;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod predictions;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
