//! The image-resize worker: consumes ResizeRequested, loads the original from GridFS, resizes it
//! (see `resize`), stores the result and moves the job to SUCCESS or FAILURE (with the reason).
//! Idempotent on the task id: a redelivered job that already finished is skipped; one that was
//! STARTED when its worker died is done again (the result is the same). A job that cannot succeed
//! (an image that cannot be decoded, too large, gone) is permanent: the job is marked FAILURE with
//! the reason (what the client polls) and the request is dead-lettered with the same reason (what
//! the operator sees); the partition moves on. Storage errors are transient and retried.

pub mod resize;

use std::time::Duration;

use schemas::events::ResizeRequested;
use stores::images::{ImageJobs, JobStatus};

use crate::{Record, Sink, SinkError, Written};
pub use resize::{ImageLimits, ResizeError};

/// What became of one job.
enum Job {
    Done,
    /// Finished before: a redelivery or a resend.
    Before,
    /// Cannot succeed, for this reason (the job is marked FAILURE with it).
    Failed(String),
}

pub struct ResizeWorker {
    jobs: ImageJobs,
    limits: ImageLimits,
    result_ttl: Duration,
}

fn retriable(e: impl std::fmt::Display) -> SinkError {
    SinkError::Transient(e.to_string())
}

impl ResizeWorker {
    pub fn new(jobs: ImageJobs, limits: ImageLimits, result_ttl: Duration) -> Self {
        Self {
            jobs,
            limits,
            result_ttl,
        }
    }

    /// Does one job: `Ok(Done)`, or `Ok(Failed(reason))` when the job cannot succeed.
    async fn process(&self, job: &ResizeRequested) -> Result<Job, SinkError> {
        let task = job.task_id.to_string();
        let Some(doc) = self.jobs.get(&task).await.map_err(retriable)? else {
            tracing::warn!(task, "no job document (expired or never stored); skipped");
            return Ok(Job::Done);
        };
        if matches!(doc.status, JobStatus::Success | JobStatus::Failure) {
            tracing::info!(task, status = ?doc.status, "job already finished; redelivery skipped");
            return Ok(Job::Before);
        }
        self.jobs
            .mark(&task, JobStatus::Started, None)
            .await
            .map_err(retriable)?;
        let Some(source) = self.jobs.get_blob(&job.blob_id).await.map_err(retriable)? else {
            return self.fail(&task, "the uploaded image is gone").await;
        };
        let (w, h, fit, format, limits) = (
            job.width.max(0) as u32,
            job.height.max(0) as u32,
            job.fit,
            job.format,
            self.limits,
        );
        let outcome = tokio::task::spawn_blocking(move || {
            resize::resize(&source, w, h, fit, format, &limits)
        })
        .await
        .unwrap_or_else(|e| Err(ResizeError::Decode(format!("worker task failed: {e}"))));
        match outcome {
            Ok((bytes, content_type)) => {
                let blob = self
                    .jobs
                    .put_blob(&format!("{task}.result"), &bytes)
                    .await
                    .map_err(retriable)?;
                let expires =
                    schemas::domain::Timestamp::now().millis() + self.result_ttl.as_millis() as i64;
                self.jobs
                    .succeed(&task, &blob, content_type, expires)
                    .await
                    .map_err(retriable)?;
                Ok(Job::Done)
            }
            Err(e) => {
                tracing::info!(task, error = %e, "resize failed");
                self.fail(&task, &e.to_string()).await
            }
        }
    }

    /// Marks the job FAILURE with `reason`.
    async fn fail(&self, task: &str, reason: &str) -> Result<Job, SinkError> {
        self.jobs
            .mark(task, JobStatus::Failure, Some(reason))
            .await
            .map_err(retriable)?;
        Ok(Job::Failed(reason.to_string()))
    }
}

impl Sink for ResizeWorker {
    type Event = ResizeRequested;

    fn name(&self) -> &'static str {
        "image-resize"
    }

    async fn write(&self, batch: &[Record<ResizeRequested>]) -> Result<Written, SinkError> {
        let mut written = Written::default();
        let mut failed = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            match self.process(&r.event).await? {
                Job::Done => {}
                Job::Before => written.duplicates += 1,
                Job::Failed(reason) => failed.push((i, reason)),
            }
        }
        written.unless_refused(failed)
    }
}

static SWEPT: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "image_jobs_swept_total",
        "Image jobs whose blobs the sweeper deleted (swept), and job documents it deleted (forgotten)",
        &["what"]
    )
    .expect("metric definition")
});

/// Sweeps expired originals and results every `interval` (`IMAGE_SWEEP_INTERVAL_SECS`), forever:
/// see [`ImageJobs::sweep`]. A failed sweep is logged and tried again at the next interval; a sweep
/// cut short by a shutdown or a crash is finished by the next one.
pub async fn sweep_every(jobs: ImageJobs, ttl: Duration, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = schemas::domain::Timestamp::now().millis();
        match jobs.sweep(ttl.as_millis() as i64, now).await {
            Ok(swept) => {
                SWEPT.with_label_values(&["swept"]).inc_by(swept.jobs);
                SWEPT
                    .with_label_values(&["forgotten"])
                    .inc_by(swept.forgotten);
                if swept != Default::default() {
                    tracing::info!(?swept, "image sweep");
                }
            }
            Err(e) => tracing::warn!(error = %e, "image sweep failed; trying again next interval"),
        }
    }
}
