//! The views predictor's side of the request/reply (`views-predictor`): each ViewsPredictionRequested
//! is answered with a ViewsPredicted on its reply topic, `request_id` = the request's event id,
//! from the model trained last (see the `predictor` crate). A request is committed once its reply
//! is acknowledged; a crash in between answers it again, and the API takes the first answer of a
//! request id. Before the first training has finished (ClickHouse unreachable at start) requests
//! wait, uncommitted; a training that found too little data answers `not_enough_data` with why. A
//! reply topic other than the configured ones is dead-lettered: a client cannot make the
//! predictor write where it likes.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use futures::future::try_join_all;
use predictor::model::Requirements;
use predictor::{NotEnoughData, VideoInput, ViewsModel};
use producers::EventProducer;
use prometheus::{register_int_counter_vec, register_int_gauge, IntCounterVec, IntGauge};
use schemas::domain::{EventId, Timestamp};
use schemas::events::{ViewsPredicted, ViewsPredictionRequested};

use crate::{Record, Sink, SinkError, Written};

/// See the README's table (`PREDICTOR_*`).
#[derive(Debug, Clone)]
pub struct PredictorConfig {
    pub retrain_every: Duration,
    /// Videos published this far back train the model.
    pub training_window: Duration,
    pub max_training_videos: u64,
    pub requirements: Requirements,
    /// Topics replies may go to.
    pub reply_topics: Vec<String>,
}

impl PredictorConfig {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        use common::config::{env_or, env_parse};
        Ok(Self {
            retrain_every: Duration::from_secs(env_parse("PREDICTOR_RETRAIN_SECS", 3_600)?),
            training_window: Duration::from_secs(
                86_400 * u64::from(env_parse::<u16>("PREDICTOR_TRAINING_DAYS", 180)?),
            ),
            max_training_videos: env_parse("PREDICTOR_MAX_TRAINING_VIDEOS", 20_000)?,
            requirements: Requirements {
                min_videos: env_parse("PREDICTOR_MIN_VIDEOS", 20)?,
                min_late_videos: env_parse("PREDICTOR_MIN_LATE_VIDEOS", 3)?,
            },
            reply_topics: env_or("PREDICTOR_REPLY_TOPICS", schemas::topics::VIEWS_PREDICTIONS)
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
        })
    }
}

struct Metrics {
    answers: IntCounterVec,
    trained_videos: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    answers: register_int_counter_vec!(
        "views_predictions_total",
        "Views prediction replies by status (predicted, not_enough_data)",
        &["status"]
    )
    .expect("metric definition"),
    trained_videos: register_int_gauge!(
        "views_model_trained_videos",
        "Videos the current views model was trained on (0: none yet, or not enough data)"
    )
    .expect("metric definition"),
});

/// What the predictor can answer with.
#[derive(Debug, Clone)]
pub enum ModelState {
    /// No training has finished yet.
    Untrained,
    Ready(Arc<ViewsModel>),
    NotEnough(NotEnoughData),
}

pub type SharedModel = Arc<RwLock<ModelState>>;

/// Trains once from ClickHouse's snapshots; the new state, or the error that kept it from
/// finishing (the caller keeps the state it had).
pub async fn train(
    ch: &clickhouse::Client,
    config: &PredictorConfig,
) -> Result<ModelState, clickhouse::error::Error> {
    let trained_at = Timestamp::now();
    let now = trained_at.millis();
    let since = (now - config.training_window.as_millis() as i64).max(0) as u64;
    let series =
        predictor::training::load(ch, since, now as u64, config.max_training_videos).await?;
    let state = match ViewsModel::fit(&series, config.requirements, &trained_at.to_rfc3339()) {
        Ok(model) => {
            tracing::info!(version = %model.version, videos = model.trained_videos, "views model trained");
            METRICS.trained_videos.set(model.trained_videos as i64);
            ModelState::Ready(Arc::new(model))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no views model");
            METRICS.trained_videos.set(0);
            ModelState::NotEnough(e)
        }
    };
    Ok(state)
}

/// Trains now and then every `retrain_every` until `shutdown`; a failed training keeps the model
/// there was.
pub async fn keep_training(
    model: SharedModel,
    ch: clickhouse::Client,
    config: PredictorConfig,
    shutdown: common::shutdown::Shutdown,
) {
    loop {
        match train(&ch, &config).await {
            Ok(state) => *model.write().expect("not poisoned") = state,
            Err(e) => {
                tracing::error!(error = %e, "views model training failed; keeping the last model")
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(config.retrain_every) => {}
        }
    }
}

pub struct Predictions {
    model: SharedModel,
    producer: EventProducer,
    reply_topics: Vec<String>,
}

impl Predictions {
    pub fn new(model: SharedModel, producer: EventProducer, reply_topics: Vec<String>) -> Self {
        Self {
            model,
            producer,
            reply_topics,
        }
    }
}

/// The reply to `request` from `state`, or `None` before any training finished.
fn answer(state: &ModelState, request: &ViewsPredictionRequested) -> Option<ViewsPredicted> {
    let mut reply = ViewsPredicted {
        event_id: EventId::new_random(),
        request_id: request.event_id.to_string(),
        status: String::new(),
        message: String::new(),
        model_version: String::new(),
        views: Vec::new(),
        lower: Vec::new(),
        upper: Vec::new(),
        training_videos: 0,
        occurred_at: Timestamp::now(),
    };
    match state {
        ModelState::Untrained => return None,
        ModelState::NotEnough(e) => {
            reply.status = "not_enough_data".into();
            reply.message = e.to_string();
            reply.training_videos = e.videos as i64;
        }
        ModelState::Ready(model) => {
            let p = model.predict(&VideoInput {
                title: request.title.clone(),
                subscribers: request.channel_subscribers.max(0) as u64,
                upload_ms: request.upload_date.millis(),
            });
            reply.status = "predicted".into();
            reply.model_version = model.version.clone();
            reply.training_videos = model.trained_videos as i64;
            (reply.views, reply.lower, reply.upper) = (p.views, p.lower, p.upper);
        }
    }
    Some(reply)
}

impl Sink for Predictions {
    type Event = ViewsPredictionRequested;

    fn name(&self) -> &'static str {
        "views-predictor"
    }

    async fn write(
        &self,
        batch: &[Record<ViewsPredictionRequested>],
    ) -> Result<Written, SinkError> {
        let state = self.model.read().expect("not poisoned").clone();
        let mut refused = Vec::new();
        let mut replies = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            if !self.reply_topics.contains(&r.event.reply_topic) {
                refused.push((
                    i,
                    format!(
                        "reply_topic {:?} is not one the predictor answers on (PREDICTOR_REPLY_TOPICS)",
                        r.event.reply_topic
                    ),
                ));
                continue;
            }
            let Some(reply) = answer(&state, &r.event) else {
                return Err(SinkError::Transient(
                    "no views model yet: the first training has not finished".into(),
                ));
            };
            replies.push((r.event.reply_topic.as_str(), reply));
        }
        try_join_all(
            replies
                .iter()
                .map(|(topic, reply)| self.producer.send_to(topic, reply, &[])),
        )
        .await
        .map_err(|e| SinkError::Transient(e.to_string()))?;
        for (_, reply) in &replies {
            METRICS
                .answers
                .with_label_values(&[reply.status.as_str()])
                .inc();
        }
        Written::default().unless_refused(refused)
    }
}
