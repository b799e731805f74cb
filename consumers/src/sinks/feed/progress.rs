//! Fan-out progress as Prometheus metrics (process-wide registry). The planner tracks the posts it
//! walks and publishes, per post, the pages emitted (as it emits them) and done (read back from
//! Redis, where workers record them, every `FANOUT_PROGRESS_INTERVAL_MS`). A finished post keeps its
//! series for `FANOUT_PROGRESS_KEEP_SECS`, then they are removed, so the label set stays bounded by
//! the posts of the last few minutes. Workers count pages and feed writes.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGaugeVec,
};
use stores::feeds::Feeds;

struct Families {
    post_pages: IntGaugeVec,
    posts: IntCounterVec,
    pages_emitted: IntCounter,
    pages_written: IntCounter,
    feed_writes: IntCounter,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    Families {
    post_pages: register_int_gauge_vec!(
        "fanout_post_pages",
        "Pages of a recent post's fan-out: emitted by the planner, done by the workers, total once \
         the walk is over",
        &["post_id", "state"]
    )
    .expect("metric definition"),
    posts: register_int_counter_vec!(
        "fanout_posts_total",
        "Posts planned, by path (fanout: written to followers' feeds; celebrity: merged at read time)",
        &["path"]
    )
    .expect("metric definition"),
    pages_emitted: register_int_counter!(
        "fanout_pages_emitted_total",
        "FanoutBatch pages emitted by the planner"
    )
    .expect("metric definition"),
    pages_written: register_int_counter!(
        "fanout_pages_written_total",
        "FanoutBatch pages written into home feeds by the workers (a redelivered page counts again)"
    )
    .expect("metric definition"),
    feed_writes: register_int_counter!(
        "fanout_feed_writes_total",
        "Home-feed writes by the workers (one per follower of a written page)"
    )
    .expect("metric definition"),
}
});

pub(crate) fn post_planned(celebrity: bool) {
    let path = if celebrity { "celebrity" } else { "fanout" };
    FAMILIES.posts.with_label_values(&[path]).inc();
}

pub(crate) fn pages_written(pages: usize, followers: usize) {
    FAMILIES.pages_written.inc_by(pages as u64);
    FAMILIES.feed_writes.inc_by(followers as u64);
}

/// Settings of the per-post series.
#[derive(Debug, Clone)]
pub struct ProgressConfig {
    pub interval: Duration,
    pub keep: Duration,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            keep: Duration::from_secs(300),
        }
    }
}

impl ProgressConfig {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        use common::config::env_parse;
        let d = Self::default();
        Ok(Self {
            interval: Duration::from_millis(env_parse(
                "FANOUT_PROGRESS_INTERVAL_MS",
                d.interval.as_millis() as u64,
            )?),
            keep: Duration::from_secs(env_parse("FANOUT_PROGRESS_KEEP_SECS", d.keep.as_secs())?),
        })
    }
}

/// The posts whose progress the planner publishes; when each finished, if it has.
#[derive(Default)]
pub(crate) struct Tracker {
    posts: Mutex<HashMap<String, Option<Instant>>>,
}

impl Tracker {
    /// Starts tracking on a background task that refreshes from Redis until the tracker is dropped.
    pub fn start(feeds: Feeds, config: ProgressConfig) -> Arc<Self> {
        let tracker = Arc::new(Self::default());
        let weak = Arc::downgrade(&tracker);
        tokio::spawn(refresh(weak, feeds, config));
        tracker
    }

    pub fn emitted(&self, post_id: &str, pages: u32) {
        self.posts
            .lock()
            .expect("tracker lock")
            .entry(post_id.to_string())
            .or_insert(None);
        FAMILIES.pages_emitted.inc();
        set(post_id, "emitted", pages);
    }
}

fn set(post_id: &str, state: &str, value: u32) {
    FAMILIES
        .post_pages
        .with_label_values(&[post_id, state])
        .set(i64::from(value));
}

async fn refresh(tracker: Weak<Tracker>, feeds: Feeds, config: ProgressConfig) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tracker) = tracker.upgrade() else {
            return;
        };
        let open: Vec<String> = {
            let mut posts = tracker.posts.lock().expect("tracker lock");
            posts.retain(|post_id, finished| match finished {
                Some(at) if at.elapsed() >= config.keep => {
                    for state in ["emitted", "done", "total"] {
                        let _ = FAMILIES.post_pages.remove_label_values(&[post_id, state]);
                    }
                    false
                }
                _ => true,
            });
            posts
                .iter()
                .filter(|(_, finished)| finished.is_none())
                .map(|(p, _)| p.clone())
                .collect()
        };
        for post_id in open {
            match feeds.progress(&post_id).await {
                Ok(Some(p)) => {
                    set(&post_id, "emitted", p.pages_emitted);
                    set(&post_id, "done", p.pages_done);
                    if p.planned {
                        set(&post_id, "total", p.pages_emitted);
                    }
                    if p.planned && p.pages_done >= p.pages_emitted {
                        if let Some(slot) = tracker
                            .posts
                            .lock()
                            .expect("tracker lock")
                            .get_mut(&post_id)
                        {
                            *slot = Some(Instant::now());
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "reading fan-out progress for metrics");
                    break;
                }
            }
        }
    }
}
