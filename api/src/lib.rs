//! The cinema's HTTP API: validates events, produces them to Kafka as Avro, answers 202 only once
//! Kafka acknowledged. `startup::Application` is the entry point of `main` and of the tests.

pub mod configuration;
pub mod error;
pub mod routes;
pub mod startup;
pub mod telemetry;
