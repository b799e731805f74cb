//! The fetchers' shared state in MongoDB (`stores::mongo::YOUTUBE_KEYS`, `YOUTUBE_QUERIES`,
//! `YOUTUBE_VIDEOS`, `YOUTUBE_CHANNELS`): which keys are out of quota until when, how far each
//! query has been fetched, and when each video's and channel's statistics were last snapshotted.
//! Every fetcher instance reads it before each call, so a key exhausted by one is skipped by all.

use std::collections::HashMap;
use std::future::IntoFuture;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::UpdateOptions;
use mongodb::Database;
use schemas::domain::Timestamp;
use schemas::events::VideoStatisticsFetched;
use stores::mongo::{
    YOUTUBE_CHANNELS, YOUTUBE_KEYS, YOUTUBE_PENDING_SNAPSHOTS, YOUTUBE_QUERIES, YOUTUBE_VIDEOS,
};

#[derive(Clone)]
pub struct SharedState {
    db: Database,
}

/// An integer field (epoch ms, a count), however the server typed it.
fn integer(d: &Document, key: &str) -> Option<i64> {
    stores::mongo::number(d, key).map(|n| n as i64)
}

impl SharedState {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// (key name, exhausted until) of every key still out of quota at `now_ms`.
    pub async fn exhausted_keys(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(String, i64)>, mongodb::error::Error> {
        let docs = self
            .find_all(YOUTUBE_KEYS, doc! {"exhausted_until": {"$gt": now_ms}})
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("name").ok()?.to_string(),
                    integer(d, "exhausted_until")?,
                ))
            })
            .collect())
    }

    pub async fn mark_exhausted(
        &self,
        name: &str,
        until_ms: i64,
    ) -> Result<(), mongodb::error::Error> {
        self.db
            .collection::<Document>(YOUTUBE_KEYS)
            .update_one(
                doc! {"name": name},
                doc! {"$set": {"name": name, "exhausted_until": until_ms}},
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        Ok(())
    }

    /// The newest published time fetched for `query` (epoch ms).
    pub async fn cursor(&self, query: &str) -> Result<Option<i64>, mongodb::error::Error> {
        Ok(self
            .db
            .collection::<Document>(YOUTUBE_QUERIES)
            .find_one(doc! {"query": query})
            .await?
            .and_then(|d| integer(&d, "last_published_at")))
    }

    /// Moves the query's cursor forward (never back).
    pub async fn advance_cursor(
        &self,
        query: &str,
        published_ms: i64,
    ) -> Result<(), mongodb::error::Error> {
        let collection = self.db.collection::<Document>(YOUTUBE_QUERIES);
        let current = self.cursor(query).await?;
        if current.is_some_and(|c| c >= published_ms) {
            return Ok(());
        }
        collection
            .update_one(
                doc! {"query": query},
                doc! {"$set": {"query": query, "last_published_at": published_ms}},
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        Ok(())
    }

    /// The query's walk stopped by the page limit, if any.
    pub async fn walk(&self, query: &str) -> Result<Option<Walk>, mongodb::error::Error> {
        let Some(d) = self
            .db
            .collection::<Document>(YOUTUBE_QUERIES)
            .find_one(doc! {"query": query})
            .await?
        else {
            return Ok(None);
        };
        let Ok(w) = d.get_document("walk") else {
            return Ok(None);
        };
        Ok((|| {
            Some(Walk {
                after_ms: integer(w, "after_ms")?,
                before_ms: integer(w, "before_ms")?,
                newest_ms: integer(w, "newest_ms")?,
                boundary_ids: w
                    .get_array("boundary_ids")
                    .ok()?
                    .iter()
                    .filter_map(|b| b.as_str().map(str::to_string))
                    .collect(),
            })
        })())
    }

    /// Records where a walk stopped (the cursor does not move until the walk is done).
    pub async fn save_walk(&self, query: &str, walk: &Walk) -> Result<(), mongodb::error::Error> {
        self.db
            .collection::<Document>(YOUTUBE_QUERIES)
            .update_one(
                doc! {"query": query},
                doc! {"$set": {"query": query, "walk": {
                    "after_ms": walk.after_ms,
                    "before_ms": walk.before_ms,
                    "newest_ms": walk.newest_ms,
                    "boundary_ids": &walk.boundary_ids,
                }}},
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        Ok(())
    }

    /// Ends the query's walk: the cursor moves to `newest_ms` (never back), the walk is forgotten.
    pub async fn finish_walk(
        &self,
        query: &str,
        newest_ms: Option<i64>,
    ) -> Result<(), mongodb::error::Error> {
        if let Some(newest) = newest_ms {
            self.advance_cursor(query, newest).await?;
        }
        self.db
            .collection::<Document>(YOUTUBE_QUERIES)
            .update_one(doc! {"query": query}, doc! {"$unset": {"walk": ""}})
            .await?;
        Ok(())
    }
}

/// A video whose statistics are snapshotted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedVideo {
    pub video_id: String,
    pub channel_id: String,
    pub published_at_ms: i64,
}

impl TrackedVideo {
    pub fn new(video_id: &str, channel_id: &str, published_at: Timestamp) -> Self {
        Self {
            video_id: video_id.to_string(),
            channel_id: channel_id.to_string(),
            published_at_ms: published_at.millis(),
        }
    }
}

/// What a video's last recorded snapshot said: the next one's `previous_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSnapshot {
    pub view_count: i64,
    pub title: String,
}

impl SharedState {
    /// Records that `videos` were snapshotted at `at_ms` (adding the ones not tracked yet): each
    /// one's snapshot in `sent` becomes its last and leaves the outbox; a video without one (the
    /// API did not return it) keeps its last.
    pub async fn snapshotted_videos(
        &self,
        videos: &[TrackedVideo],
        at_ms: i64,
        sent: &[VideoStatisticsFetched],
    ) -> Result<(), mongodb::error::Error> {
        let by_id: HashMap<&str, &VideoStatisticsFetched> =
            sent.iter().map(|e| (e.video_id.as_str(), e)).collect();
        self.upsert_each(
            YOUTUBE_VIDEOS,
            videos.iter().map(|v| {
                let mut set = doc! {
                    "video_id": &v.video_id,
                    "channel_id": &v.channel_id,
                    "published_at_ms": v.published_at_ms,
                    "snapshot_at_ms": at_ms,
                };
                if let Some(e) = by_id.get(v.video_id.as_str()) {
                    set.insert("last_view_count", e.view_count);
                    set.insert("last_title", &e.title);
                }
                (doc! {"video_id": &v.video_id}, doc! {"$set": set})
            }),
        )
        .await?;
        let ids: Vec<&str> = sent.iter().map(|e| e.video_id.as_str()).collect();
        self.db
            .collection::<Document>(YOUTUBE_PENDING_SNAPSHOTS)
            .delete_many(doc! {"_id": {"$in": ids}})
            .await?;
        Ok(())
    }

    /// The last recorded snapshot of each of `ids` that has one.
    pub async fn last_snapshots(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, LastSnapshot>, mongodb::error::Error> {
        let docs = self
            .find_all(
                YOUTUBE_VIDEOS,
                doc! {"video_id": {"$in": ids}, "last_view_count": {"$exists": true}},
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("video_id").ok()?.to_string(),
                    LastSnapshot {
                        view_count: integer(d, "last_view_count")?,
                        title: d.get_str("last_title").unwrap_or_default().to_string(),
                    },
                ))
            })
            .collect())
    }

    /// Puts `events` in the outbox before they are sent: until [`Self::snapshotted_videos`]
    /// records them, [`Self::pending_snapshots`] returns them to be sent again unchanged. A crash
    /// between the send and the record then sends them twice with the same event ids (the sink
    /// writes them once), and no snapshot is ever chained from one the tables do not have.
    pub async fn keep_pending(
        &self,
        events: &[VideoStatisticsFetched],
    ) -> Result<(), mongodb::error::Error> {
        let docs = events
            .iter()
            .map(|e| Ok((e.video_id.as_str(), mongodb::bson::to_document(e)?)))
            .collect::<Result<Vec<_>, mongodb::bson::ser::Error>>()?;
        self.upsert_each(
            YOUTUBE_PENDING_SNAPSHOTS,
            docs.into_iter()
                .map(|(id, event)| (doc! {"_id": id}, doc! {"$set": {"event": event}})),
        )
        .await
    }

    /// The snapshots in the outbox (of a run that stopped between the send and the record).
    pub async fn pending_snapshots(
        &self,
    ) -> Result<Vec<VideoStatisticsFetched>, mongodb::error::Error> {
        let docs = self.find_all(YOUTUBE_PENDING_SNAPSHOTS, doc! {}).await?;
        Ok(docs
            .iter()
            .filter_map(|d| d.get_document("event").ok())
            .filter_map(|p| match mongodb::bson::from_document(p.clone()) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable pending snapshot left out");
                    None
                }
            })
            .collect())
    }

    /// Up to `limit` videos published at or after `published_after_ms` whose last snapshot is at or
    /// before `due_ms`, least recently snapshotted first.
    pub async fn due_videos(
        &self,
        published_after_ms: i64,
        due_ms: i64,
        limit: i64,
    ) -> Result<Vec<TrackedVideo>, mongodb::error::Error> {
        let docs = self
            .due(
                YOUTUBE_VIDEOS,
                doc! {
                    "snapshot_at_ms": {"$lte": due_ms},
                    "published_at_ms": {"$gte": published_after_ms},
                },
                limit,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(TrackedVideo {
                    video_id: d.get_str("video_id").ok()?.to_string(),
                    channel_id: d.get_str("channel_id").unwrap_or_default().to_string(),
                    published_at_ms: integer(d, "published_at_ms")?,
                })
            })
            .collect())
    }

    /// Tracks channels not tracked yet (due at once); the others keep their last snapshot time.
    pub async fn track_channels(&self, ids: &[&str]) -> Result<(), mongodb::error::Error> {
        self.upsert_each(
            YOUTUBE_CHANNELS,
            ids.iter().map(|id| {
                (
                    doc! {"channel_id": id},
                    doc! {"$setOnInsert": {"channel_id": id, "snapshot_at_ms": 0_i64}},
                )
            }),
        )
        .await
    }

    /// Up to `limit` channels whose last snapshot is at or before `due_ms`, oldest first.
    pub async fn due_channels(
        &self,
        due_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, mongodb::error::Error> {
        let docs = self
            .due(
                YOUTUBE_CHANNELS,
                doc! {"snapshot_at_ms": {"$lte": due_ms}},
                limit,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some(d.get_str("channel_id").ok()?.to_string()))
            .collect())
    }

    /// Every document of `collection` matching `filter`.
    async fn find_all(
        &self,
        collection: &str,
        filter: Document,
    ) -> Result<Vec<Document>, mongodb::error::Error> {
        self.db
            .collection::<Document>(collection)
            .find(filter)
            .await?
            .try_collect()
            .await
    }

    /// Up to `limit` documents of `collection` matching `filter`, least recently snapshotted first.
    async fn due(
        &self,
        collection: &str,
        filter: Document,
        limit: i64,
    ) -> Result<Vec<Document>, mongodb::error::Error> {
        self.db
            .collection::<Document>(collection)
            .find(filter)
            .sort(doc! {"snapshot_at_ms": 1})
            .limit(limit)
            .await?
            .try_collect()
            .await
    }

    /// Each `(filter, update)` as an upsert, concurrently.
    async fn upsert_each(
        &self,
        collection: &str,
        updates: impl Iterator<Item = (Document, Document)>,
    ) -> Result<(), mongodb::error::Error> {
        let collection = self.db.collection::<Document>(collection);
        futures::future::try_join_all(updates.map(|(filter, update)| {
            collection
                .update_one(filter, update)
                .with_options(UpdateOptions::builder().upsert(true).build())
                .into_future()
        }))
        .await?;
        Ok(())
    }

    /// Records that channels `ids` were snapshotted at `at_ms`.
    pub async fn snapshotted_channels(
        &self,
        ids: &[String],
        at_ms: i64,
    ) -> Result<(), mongodb::error::Error> {
        self.db
            .collection::<Document>(YOUTUBE_CHANNELS)
            .update_many(
                doc! {"channel_id": {"$in": ids}},
                doc! {"$set": {"snapshot_at_ms": at_ms}},
            )
            .await?;
        Ok(())
    }
}

/// A query's walk (newest first, page by page) that `YOUTUBE_MAX_PAGES` stopped before its end.
/// The next fetch of the query resumes it: the same `publishedAfter`, and `publishedBefore` the
/// oldest video fetched so far, so no video between the old cursor and the newest one is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The walk's `publishedAfter` (epoch ms).
    pub after_ms: i64,
    /// The oldest published time fetched so far: what is left is at or before it.
    pub before_ms: i64,
    /// The newest published time fetched: the cursor once the walk is done.
    pub newest_ms: i64,
    /// The videos published exactly at `before_ms` already fetched (`publishedBefore` includes
    /// its own second, so they come again and are left out).
    pub boundary_ids: Vec<String>,
}
