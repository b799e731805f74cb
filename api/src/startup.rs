//! Builds the application: binds its own listener (port 0 in tests) and reports the real port.

use std::future::Future;
use std::net::TcpListener;

use actix_governor::Governor;
use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Condition, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use producers::EventProducer;
use schemas::Codec;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::configuration::Settings;
use crate::openapi::ApiDoc;
use crate::state::AppState;

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
    #[error(transparent)]
    Mongo(#[from] stores::mongo::MongoError),
    #[error(transparent)]
    Config(#[from] common::config::ConfigError),
    #[error("redis: {0}")]
    Feeds(#[from] stores::feeds::FeedError),
    #[error(transparent)]
    Guard(#[from] stores::guard::GuardError),
    #[error("views prediction replies (redis): {0}")]
    ReplyStore(#[from] stores::replies::ReplyError),
    #[error("views prediction replies (kafka): {0}")]
    Replies(#[from] crate::predictions::RepliesError),
    #[error("kafka producer: {0}")]
    Producer(#[from] producers::ProduceError),
    #[error("refusing to serve {0} with the built-in development API key or JWT secret: set API_KEYS and JWT_HS256_SECRET (or JWT_RS256_PUBLIC_KEY), or bind a loopback address (API_HOST=127.0.0.1)")]
    DevDefaults(String),
}

/// Whether `host` is only reachable from this machine.
fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub struct Application {
    port: u16,
    server: Server,
    producer: EventProducer,
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, BuildError> {
        let addr = format!("{}:{}", settings.host, settings.port);
        if settings.auth.uses_dev_defaults() && !loopback(&settings.host) {
            return Err(BuildError::DevDefaults(addr));
        }
        let listener = TcpListener::bind(&addr).map_err(|source| BuildError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let codec = Codec::with_credentials(
            &settings.stack.schema_registry_url,
            settings.stack.registry_credentials(),
        )?;
        let producer = EventProducer::new(&settings.producer, codec)?;
        let clickhouse = clickhouse::Client::default()
            .with_url(&settings.stack.clickhouse_url)
            .with_user(common::config::env_or("CLICKHOUSE_USER", "default"))
            .with_password(common::config::env_or("CLICKHOUSE_PASSWORD", ""))
            .with_database(&settings.stack.clickhouse_database)
            .with_validation(settings.clickhouse_validation);
        let mongo =
            stores::mongo::connect(&settings.stack.mongo_url, &settings.stack.mongo_database)
                .await?;
        let feeds = stores::feeds::Feeds::connect(settings.feeds.clone()).await?;
        let guard = stores::guard::RequestGuard::connect(
            &settings.feeds.redis_url,
            &settings.feeds.prefix,
            settings.feeds.timeout,
        )
        .await?;
        let replies = crate::predictions::Replies::start(
            &settings.stack.kafka_brokers,
            schemas::topics::VIEWS_PREDICTIONS,
            producer.codec().clone(),
            stores::replies::ReplyStore::connect(
                &settings.feeds.redis_url,
                &settings.feeds.prefix,
                settings.prediction_ttl,
                settings.feeds.timeout,
            )
            .await?,
        )?;
        let images = crate::routes::images::Images {
            jobs: stores::images::ImageJobs::new(
                mongo.clone(),
                stores::images::BlobStore::from_env(&mongo)?,
            ),
            max_upload_bytes: settings.image_max_upload_bytes,
            limits: settings.image_limits,
        };
        let state = web::Data::new(AppState {
            producer: producer.clone(),
            clickhouse,
            mongo,
            feeds,
            images,
            auth: settings.auth.clone(),
            auth_failures: crate::ratelimit::AuthFailures::new(
                settings.rate_limit.auth_failures_per_minute,
                settings.rate_limit.trust_forwarded,
            ),
            limits: settings.limits,
            user_event_types: settings.user_event_types.clone(),
            guard,
            replies,
        });
        let governor = settings.rate_limit.config();
        if let Some(config) = &governor {
            crate::ratelimit::prune_every_minute(config);
        }
        let metrics = web::Data::new(settings.metrics.clone());
        let openapi = ApiDoc::openapi();
        let cors = settings.cors.clone();
        let server = HttpServer::new(move || {
            let limited = governor.clone();
            let app =
                App::new()
                    .app_data(state.clone())
                    .app_data(metrics.clone())
                    .app_data(web::QueryConfig::default().error_handler(|e, _| {
                        crate::error::ApiError::BadQuery(e.to_string()).into()
                    }))
                    .wrap(Condition::new(
                        limited.is_some(),
                        Governor::new(&limited.unwrap_or_else(fallback_governor)),
                    ))
                    // Inside the error handlers, so a refused preflight answers the JSON shape.
                    .wrap(Condition::new(!cors.is_empty(), cors.middleware()))
                    .wrap(
                        ErrorHandlers::new()
                            .handler(StatusCode::NOT_FOUND, crate::error::framework_errors)
                            .handler(
                                StatusCode::METHOD_NOT_ALLOWED,
                                crate::error::framework_errors,
                            )
                            .handler(StatusCode::BAD_REQUEST, crate::error::framework_errors),
                    )
                    .wrap(from_fn(crate::metrics::track))
                    // Before the /api/v1 scope, which would otherwise answer 404 for these paths.
                    .service(
                        SwaggerUi::new("/api/v1/docs/{_:.*}")
                            .url("/api/v1/openapi.json", openapi.clone()),
                    )
                    .configure(crate::routes::configure);
            app.configure(|c| {
                if metrics.enabled {
                    c.route("/metrics", web::get().to(crate::metrics::guarded));
                }
            })
        })
        .workers(settings.workers)
        .backlog(4096)
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

/// A governor that is never used: `Condition` needs a value of the same type when limits are off.
fn fallback_governor() -> actix_governor::GovernorConfig<
    crate::ratelimit::CallerKey,
    actix_governor::governor::middleware::NoOpMiddleware<
        actix_governor::governor::clock::QuantaInstant,
    >,
> {
    crate::ratelimit::RateLimit {
        per_second: 1,
        burst: 1,
        trust_forwarded: false,
        auth_failures_per_minute: 0,
    }
    .config()
    .expect("a positive rate is a valid config")
}
