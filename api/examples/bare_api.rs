//! The bare path of `make bench`: what the API's single-event POST costs without the API.
//!
//! The same actix-web server (workers from `API_WORKERS`, the same backlog) and the same producer
//! (`ProducerConfig::from_env`: idempotent, `acks=all`) answer `POST /bare` by producing one fixed
//! payload (a playback event encoded once at start) to the playback topic, keyed by one of 64
//! users in turn as the bench's requests are, awaiting the broker's acknowledgement and answering
//! 202. No JSON, authentication, validation, Avro encoding, headers or middleware: the difference
//! to the full path is the API's own work.
//!
//!     BARE_PORT=18101 cargo run --release -p api --example bare_api   (with `make services`)

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{web, App, HttpResponse, HttpServer};
use producers::{ProducerConfig, RawProducer};
use schemas::Event;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    producer: RawProducer,
    payload: Vec<u8>,
    keys: Vec<String>,
    next: AtomicUsize,
}

async fn bare(state: web::Data<Bare>) -> HttpResponse {
    let n = state.next.fetch_add(1, Ordering::Relaxed);
    let key = state.keys[n % state.keys.len()].as_bytes();
    match state
        .producer
        .send(
            schemas::events::PlaybackEvent::TOPIC,
            Some(key),
            Some(&state.payload),
            &[],
        )
        .await
    {
        Ok(_) => HttpResponse::Accepted().finish(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("bare_api");
    let stack = common::config::StackConfig::from_env();
    let port: u16 = common::config::env_parse("BARE_PORT", 18101)?;
    // The API's default: one worker per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: usize = common::config::env_parse("API_WORKERS", cores)?;
    let codec = schemas::Codec::new(&stack.schema_registry_url)?;
    let event = {
        use schemas::domain::*;
        schemas::events::PlaybackEvent {
            event_id: EventId::new_random(),
            user_id: UserId::from_uuid(uuid::Uuid::from_u128(1)),
            movie_id: MovieId::from_uuid(uuid::Uuid::from_u128(2)),
            event_type: schemas::events::PlaybackEventType::Play,
            position_ms: PositionMs::parse(1).unwrap(),
            occurred_at: Timestamp::now(),
        }
    };
    let state = web::Data::new(Bare {
        producer: RawProducer::new(&ProducerConfig::from_env(&stack.kafka_brokers)?)?,
        payload: codec.encode(&event).await?,
        keys: (1..=64u128)
            .map(|i| uuid::Uuid::from_u128(i).to_string())
            .collect(),
        next: AtomicUsize::new(0),
    });
    tracing::info!(port, workers, "bare path listening");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/bare", web::post().to(bare))
    })
    .workers(workers)
    .backlog(4096)
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}
