//! Builds the application: binds its own listener (port 0 in tests) and reports the real port.

use std::future::Future;
use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use producers::EventProducer;
use schemas::Codec;

use crate::configuration::Settings;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("schema registry client: {0}")]
    Codec(#[from] schemas::CodecError),
    #[error("kafka producer: {0}")]
    Producer(#[from] producers::ProduceError),
}

pub struct Application {
    port: u16,
    server: Server,
    producer: EventProducer,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, BuildError> {
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&addr).map_err(|source| BuildError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let codec = Codec::new(&settings.stack.schema_registry_url)?;
        let producer = EventProducer::new(&settings.producer, codec)?;
        let data = web::Data::new(producer.clone());
        let max_body = settings.max_body_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::Data::new(crate::routes::BodyLimit(max_body)))
                .configure(crate::routes::configure)
        })
        .workers(settings.workers)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            producer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then drains requests and flushes the producer.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
        self.server.await?;
        self.producer.raw().flush(std::time::Duration::from_secs(5));
        Ok(())
    }
}
