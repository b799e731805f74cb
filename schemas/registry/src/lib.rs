//! A schema registry that speaks the Confluent Schema Registry REST API and keeps its state in a
//! compacted Kafka topic (`_schemas`), rebuilt at start, so that several instances agree. Local
//! development and CI use it; production points the pipeline at Confluent's registry or Karapace.
//!
//! Limits, on purpose: Avro only, no schema references, no contexts or modes. Ids are allocated by
//! the instance that writes, after catching up with the log; run one writer (as Confluent's leader
//! election does) when several instances serve.

pub mod auth;
pub mod error;
pub mod http;
pub mod log;
pub mod store;

use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix_web::{web, App, HttpServer};

pub use error::RegistryError;

/// Settings from the environment (see the README's table).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `KAFKA_BROKERS`.
    pub brokers: String,
    /// `REGISTRY_TOPIC` (default `_schemas`).
    pub topic: String,
    /// `REGISTRY_AUTH`: credentials the writes need (none: writes are open).
    pub auth: auth::WriteAuth,
}

impl Settings {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        let raw = std::env::var("REGISTRY_AUTH").unwrap_or_default();
        let auth = auth::WriteAuth::parse(&raw).map_err(|reason| common::config::ConfigError {
            name: "REGISTRY_AUTH".into(),
            // Never the secrets themselves.
            value: "(hidden)".into(),
            reason,
        })?;
        Ok(Self {
            brokers: common::config::StackConfig::from_env().kafka_brokers,
            topic: common::config::env_or("REGISTRY_TOPIC", "_schemas"),
            auth,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the log, then serves on `listener` until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let store = Arc::new(RwLock::new(store::Store::default()));
    let log = log::SchemaLog::open(&settings.brokers, &settings.topic, store.clone()).await?;
    let registry = web::Data::new(http::Registry {
        store,
        log,
        writer: tokio::sync::Mutex::new(()),
    });
    tracing::info!(addr = %listener.local_addr()?, topic = %settings.topic,
        writes = if settings.auth.is_open() { "open" } else { "need REGISTRY_AUTH credentials" },
        "schema registry serving");
    let write_auth = web::Data::new(settings.auth.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .app_data(write_auth.clone())
            .wrap(actix_web::middleware::from_fn(auth::guard_writes))
            .configure(http::routes)
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
