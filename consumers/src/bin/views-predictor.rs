//! The views predictor: trains the views model from ClickHouse's statistics snapshots at start and
//! every `PREDICTOR_RETRAIN_SECS`, and answers each ViewsPredictionRequested with a ViewsPredicted
//! on the shared consumer runtime (consumer group `<CONSUMER_GROUP>`, default `views-predictor`;
//! see `consumers::sinks::predictions`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::{Arc, RwLock};

use common::shutdown::Shutdown;
use consumers::sinks::clickhouse::ClickHouseConfig;
use consumers::sinks::predictions::{keep_training, ModelState, Predictions, PredictorConfig};
use consumers::RuntimeConfig;
use producers::{EventProducer, ProducerConfig};
use schemas::Codec;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("views-predictor");
    common::metrics::serve_from_env("127.0.0.1:9106").await?;
    let stack = common::config::StackConfig::from_env();
    let config = PredictorConfig::from_env()?;
    let runtime = RuntimeConfig::from_env("views-predictor")?;
    let ch = ClickHouseConfig::from_env()?.client();
    let codec = Codec::with_credentials(&stack.schema_registry_url, stack.registry_credentials())?;
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers)?,
        codec.clone(),
    )?;
    let shutdown = Shutdown::on_signal();
    let model = Arc::new(RwLock::new(ModelState::Untrained));
    let trainer = tokio::spawn(keep_training(
        model.clone(),
        ch,
        config.clone(),
        shutdown.clone(),
    ));
    let sink = Predictions::new(model, producer, config.reply_topics);
    let stats = consumers::run(runtime, codec, sink, shutdown.clone()).await;
    shutdown.trigger();
    trainer.await?;
    tracing::info!(?stats, "views predictor stopped");
    stats?;
    Ok(())
}
