//! MongoDB: the collections the Mongo sink writes and the API reads — ratings (likes are scores of
//! 10, dislikes 0), favourites and follows — their documents and indexes.
//!
//! Every document is the newest state of one pair (user+movie, follower+followee) and carries the
//! version that produced it: `updated_at` (the event's occurred_at, epoch milliseconds) and
//! `event_id`. The sink only replaces a document with a strictly newer (updated_at, event_id), so a
//! replay, a duplicate or a late older event changes nothing. Removal marks (`active: false`) instead
//! of deleting, so a late "added" older than the removal cannot bring the document back.
//!
//! Ids are stored as strings (the local MongoDB-wire server cannot store every BSON type),
//! and every unique key is a compound of the two ids that identify a document.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, Database, IndexModel};
use serde::{Deserialize, Serialize};

pub const RATINGS: &str = "ratings";
pub const FAVOURITES: &str = "favourites";
pub const FOLLOWS: &str = "follows";
/// The YouTube fetchers' shared state: API keys' quota (`{name, exhausted_until}`, epoch ms; the
/// key itself is never stored) and each query's newest published time seen (`{query, last_published_at}`).
pub const YOUTUBE_KEYS: &str = "youtube_keys";
pub const YOUTUBE_QUERIES: &str = "youtube_queries";
/// The videos and channels whose statistics the fetchers snapshot: `{video_id, channel_id,
/// published_at_ms, snapshot_at_ms, last_view_count, last_title}` and `{channel_id,
/// snapshot_at_ms}` (epoch ms; 0: never).
pub const YOUTUBE_VIDEOS: &str = "youtube_videos";
pub const YOUTUBE_CHANNELS: &str = "youtube_channels";
/// The fetchers' outbox of video snapshots (`{_id: video_id, event}`): kept before a snapshot is
/// sent, deleted once it is recorded in `youtube_videos`, so a run that stops in between sends it
/// again unchanged. A handful of documents at any time: read whole, no index.
pub const YOUTUBE_PENDING_SNAPSHOTS: &str = "youtube_pending_snapshots";

/// The version fields every document carries.
pub const UPDATED_AT: &str = "updated_at";
pub const EVENT_ID: &str = "event_id";
/// Favourites and follows: false once removed / unfollowed.
pub const ACTIVE: &str = "active";

/// A user's current score for a movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingDoc {
    pub user_id: String,
    pub movie_id: String,
    pub score: i32,
    pub updated_at: i64,
    pub event_id: String,
}

/// A movie in (or removed from) a user's favourites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FavouriteDoc {
    pub user_id: String,
    pub movie_id: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub active: bool,
    pub updated_at: i64,
    pub event_id: String,
}

/// A follow (or a former one) of `followee_id` by `follower_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowDoc {
    pub follower_id: String,
    pub followee_id: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub active: bool,
    pub updated_at: i64,
    pub event_id: String,
}

/// A boolean, also when the server hands it back as 0/1: the local MongoDB-wire server turns a
/// boolean `$set` on an existing document into an integer (it still matches `{field: true}`).
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    })
}

/// (collection, index keys, unique, index name) for every index the sink and the reads rely on.
pub fn indexes() -> Vec<(&'static str, Document, bool, &'static str)> {
    vec![
        (
            RATINGS,
            doc! {"user_id": 1, "movie_id": 1},
            true,
            "ratings_user_movie",
        ),
        (RATINGS, doc! {"movie_id": 1}, false, "ratings_movie"),
        (
            RATINGS,
            doc! {"user_id": 1, UPDATED_AT: -1},
            false,
            "ratings_user_updated",
        ),
        (
            FAVOURITES,
            doc! {"user_id": 1, "movie_id": 1},
            true,
            "favourites_user_movie",
        ),
        (
            FAVOURITES,
            doc! {"user_id": 1, ACTIVE: 1, UPDATED_AT: -1},
            false,
            "favourites_user_active_updated",
        ),
        (
            FOLLOWS,
            doc! {"follower_id": 1, "followee_id": 1},
            true,
            "follows_follower_followee",
        ),
        (
            FOLLOWS,
            doc! {"followee_id": 1, "follower_id": 1},
            false,
            "follows_followee_follower",
        ),
        (YOUTUBE_KEYS, doc! {"name": 1}, true, "youtube_keys_name"),
        (
            YOUTUBE_QUERIES,
            doc! {"query": 1},
            true,
            "youtube_queries_query",
        ),
        (
            YOUTUBE_VIDEOS,
            doc! {"video_id": 1},
            true,
            "youtube_videos_video",
        ),
        (
            YOUTUBE_VIDEOS,
            doc! {"snapshot_at_ms": 1},
            false,
            "youtube_videos_snapshot",
        ),
        (
            YOUTUBE_CHANNELS,
            doc! {"channel_id": 1},
            true,
            "youtube_channels_channel",
        ),
        (
            YOUTUBE_CHANNELS,
            doc! {"snapshot_at_ms": 1},
            false,
            "youtube_channels_snapshot",
        ),
        (
            crate::images::RESIZE_JOBS,
            doc! {"task_id": 1},
            true,
            "resize_jobs_task",
        ),
    ]
}

/// A numeric field, whichever BSON number type the server returned (the local MongoDB-wire server
/// may hand an Int64 back as Int32, and aggregates as Double).
pub fn number(doc: &Document, key: &str) -> Option<f64> {
    match doc.get(key)? {
        mongodb::bson::Bson::Int32(n) => Some(f64::from(*n)),
        mongodb::bson::Bson::Int64(n) => Some(*n as f64),
        mongodb::bson::Bson::Double(n) => Some(*n),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("mongodb: {0}")]
pub struct MongoError(#[from] mongodb::error::Error);

/// Connects (lazily: the driver connects on first use) and picks the database.
pub async fn connect(url: &str, database: &str) -> Result<Database, MongoError> {
    Ok(Client::with_uri_str(url).await?.database(database))
}

/// Creates the collections and indexes in `database` (idempotent: existing ones are left alone).
pub async fn migrate(client: &Client, database: &str) -> Result<usize, MongoError> {
    let db = client.database(database);
    let existing = db.list_collection_names().await?;
    for name in [
        RATINGS,
        FAVOURITES,
        FOLLOWS,
        YOUTUBE_KEYS,
        YOUTUBE_QUERIES,
        YOUTUBE_VIDEOS,
        YOUTUBE_CHANNELS,
        crate::images::RESIZE_JOBS,
    ] {
        if !existing.iter().any(|c| c == name) {
            db.create_collection(name).await?;
        }
    }
    let all = indexes();
    for (collection, keys, unique, name) in &all {
        let model = IndexModel::builder()
            .keys(keys.clone())
            .options(
                IndexOptions::builder()
                    .unique(*unique)
                    .name(name.to_string())
                    .build(),
            )
            .build();
        db.collection::<Document>(collection)
            .create_index(model)
            .await?;
    }
    Ok(all.len())
}
