//! The feed fan-out, on the shared runtime (stores::feeds has the Redis side):
//!
//! * [`FollowMirror`] mirrors follows into Redis (follower sets walked by cursor), newest per pair
//!   winning, like the Mongo sink does for the durable copy;
//! * [`Planner`] takes each PostCreated: a celebrity's post (followers >= `CELEBRITY_FOLLOWERS`) is
//!   kept for read-time merging; any other is walked in follower-id order, one FanoutBatch message
//!   per page of `FANOUT_PAGE_SIZE` followers, the cursor recorded after each page is acknowledged,
//!   so a planner that dies mid-walk resumes after the last acknowledged page (a page emitted but not
//!   recorded is emitted again, which the workers absorb);
//! * [`Worker`] (any number of instances in one consumer group) writes each page's post into the
//!   followers' home feeds. A page written twice changes nothing: a feed is a set of post ids.

mod progress;

use std::sync::Arc;

use producers::EventProducer;
use schemas::domain::{EventId, Timestamp};
use schemas::events::{FanoutBatch, Follow, FollowAction, PostCreated};
use stores::feeds::{FeedError, Feeds, FollowChange, Post};

use crate::{Record, Sink, SinkError, Written};
pub use progress::ProgressConfig;
use progress::Tracker;

/// Transient or permanent, as Redis's error says (see [`FeedError::is_permanent`]).
pub fn classify(e: FeedError) -> SinkError {
    if e.is_permanent() {
        SinkError::Permanent(e.to_string())
    } else {
        SinkError::Transient(e.to_string())
    }
}

/// Follows and unfollows into the Redis follower sets.
pub struct FollowMirror {
    feeds: Feeds,
}

impl FollowMirror {
    pub fn new(feeds: Feeds) -> Self {
        Self { feeds }
    }
}

/// A follow event as the change the mirror applies.
pub fn follow_change(f: &Follow) -> FollowChange {
    FollowChange {
        follower: f.follower_id.to_string(),
        followee: f.followee_id.to_string(),
        active: f.action == FollowAction::Follow,
        at_ms: f.occurred_at.millis(),
        event_id: f.event_id.to_string(),
    }
}

impl Sink for FollowMirror {
    type Event = Follow;

    fn name(&self) -> &'static str {
        "feed-follows"
    }

    async fn write(&self, batch: &[Record<Follow>]) -> Result<Written, SinkError> {
        let changes: Vec<FollowChange> = batch.iter().map(|r| follow_change(&r.event)).collect();
        self.feeds.apply_follows(&changes).await.map_err(classify)?;
        Ok(Written::default())
    }
}

/// Whether a post's fan-out was planned by this call or before it (a resend or a redelivery).
#[derive(Debug, PartialEq, Eq)]
enum Planned {
    Now,
    Before,
    /// Never planned: the post id is another author's.
    Refused(String),
}

/// Walks each post's followers into FanoutBatch pages.
pub struct Planner {
    feeds: Feeds,
    producer: EventProducer,
    tracker: Arc<Tracker>,
}

impl Planner {
    /// Must be called inside a Tokio runtime: it starts the task that publishes per-post progress.
    pub fn new(feeds: Feeds, producer: EventProducer, progress: ProgressConfig) -> Self {
        let tracker = Tracker::start(feeds.clone(), progress);
        Self {
            feeds,
            producer,
            tracker,
        }
    }

    async fn plan(&self, p: &PostCreated) -> Result<Planned, SinkError> {
        let post = Post {
            post_id: p.post_id.to_string(),
            author_id: p.author_id.to_string(),
            text: p.text.clone(),
            created_at: p.occurred_at.millis(),
        };
        if let Some(owner) = self.feeds.save_post(&post).await.map_err(classify)? {
            // First writer wins: another author's post id is never taken over.
            return Ok(Planned::Refused(format!(
                "post {} belongs to author {owner}, not {}",
                post.post_id, post.author_id
            )));
        }
        let progress = self
            .feeds
            .progress(&post.post_id)
            .await
            .map_err(classify)?
            .unwrap_or_default();
        if progress.planned {
            return Ok(Planned::Before); // a resent or redelivered post whose walk is over
        }
        let followers = self
            .feeds
            .follower_count(&post.author_id)
            .await
            .map_err(classify)?;
        let config = self.feeds.config();
        if followers >= config.celebrity_followers {
            self.feeds
                .add_celebrity_post(&post, followers)
                .await
                .map_err(classify)?;
            progress::post_planned(true);
            return Ok(Planned::Now);
        }
        let (mut page, mut cursor) = (progress.pages_emitted, progress.next_cursor);
        if page > 0 {
            tracing::info!(post = %post.post_id, page, "resuming a fan-out walk");
        }
        self.feeds
            .record_progress(&post.post_id, followers, page, cursor.as_deref(), false)
            .await
            .map_err(classify)?;
        // One page is emitted while the next is read: the broker's acknowledgement of page k and
        // the follower read of page k + 1 overlap. Progress is still recorded in page order, each
        // page once acknowledged, so a walk resumed after a crash emits again at most the page
        // that was in flight (the workers absorb pages written twice). The walk ends at the
        // first empty read, which also waits for the last page's acknowledgement.
        let mut in_flight = None;
        loop {
            let read =
                self.feeds
                    .followers_page(&post.author_id, cursor.as_deref(), config.page_size);
            let (ids, acked) = match in_flight.take() {
                Some(ack) => {
                    let (ids, acked) = tokio::join!(read, ack);
                    (ids, Some(acked))
                }
                None => (read.await, None),
            };
            if let Some(acked) = acked {
                let (emitted, last, full): (u32, String, bool) = acked?;
                self.tracker.emitted(&post.post_id, emitted);
                self.feeds
                    .record_progress(&post.post_id, followers, emitted, Some(&last), !full)
                    .await
                    .map_err(classify)?;
            }
            let ids = ids.map_err(classify)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let full = ids.len() == config.page_size;
            let batch = FanoutBatch {
                event_id: EventId::new_random(),
                post_id: p.post_id,
                author_id: p.author_id,
                created_at: p.occurred_at,
                page: page as i32,
                follower_ids: ids,
                occurred_at: Timestamp::now(),
            };
            page += 1;
            cursor = Some(last.clone());
            let (producer, emitted) = (&self.producer, page);
            in_flight = Some(async move {
                producer
                    .send(&batch, &[])
                    .await
                    .map_err(|e| SinkError::Transient(format!("emitting a fan-out page: {e}")))?;
                Ok::<_, SinkError>((emitted, last, full))
            });
        }
        self.feeds
            .record_progress(&post.post_id, followers, page, cursor.as_deref(), true)
            .await
            .map_err(classify)?;
        progress::post_planned(false);
        tracing::info!(post = %post.post_id, followers, pages = page, "fan-out planned");
        Ok(Planned::Now)
    }
}

impl Sink for Planner {
    type Event = PostCreated;

    fn name(&self) -> &'static str {
        "feed-planner"
    }

    async fn write(&self, batch: &[Record<PostCreated>]) -> Result<Written, SinkError> {
        let mut written = Written::default();
        let mut refused = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            match self.plan(&r.event).await? {
                Planned::Now => {}
                Planned::Before => written.duplicates += 1,
                Planned::Refused(reason) => refused.push((i, reason)),
            }
        }
        written.unless_refused(refused)
    }
}

/// Writes fan-out pages into the followers' home feeds.
pub struct Worker {
    feeds: Feeds,
}

impl Worker {
    pub fn new(feeds: Feeds) -> Self {
        Self { feeds }
    }
}

impl Sink for Worker {
    type Event = FanoutBatch;

    fn name(&self) -> &'static str {
        "feed-worker"
    }

    async fn write(&self, batch: &[Record<FanoutBatch>]) -> Result<Written, SinkError> {
        let ids: Vec<String> = batch.iter().map(|r| r.event.post_id.to_string()).collect();
        let pages: Vec<(&str, i64, i32, &[String])> = batch
            .iter()
            .zip(&ids)
            .map(|(r, id)| {
                (
                    id.as_str(),
                    r.event.created_at.millis(),
                    r.event.page,
                    r.event.follower_ids.as_slice(),
                )
            })
            .collect();
        self.feeds.deliver(&pages).await.map_err(classify)?;
        let followers = pages.iter().map(|p| p.3.len()).sum();
        progress::pages_written(pages.len(), followers);
        Ok(Written::default())
    }
}
