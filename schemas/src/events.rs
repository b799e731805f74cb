//! The typed events, one per `.avsc` file. Their serde form matches the Avro schema field for field;
//! the round-trip tests in `tests/registry_roundtrip.rs` hold them to it through a real registry.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AnonymousId, EventId, MovieId, PositionMs, PostId, Score, TaskId, Timestamp, UserId,
};
use crate::topics;

/// An event of the pipeline: its topic, its Avro schema, its id and its partition key.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic that carries it.
    const TOPIC: &'static str;
    /// The Avro schema (JSON) of its values.
    const SCHEMA: &'static str;
    fn event_id(&self) -> EventId;
    /// The Kafka key: events with the same key stay in order on one partition.
    fn key(&self) -> String;
    /// When it happened, by the producer's clock: what the time bounds ([`crate::domain::TimeBounds`])
    /// check and what time-partitioned tables are partitioned by.
    fn occurred_at(&self) -> Timestamp;
}

macro_rules! event {
    ($ty:ty, $topic:expr, $file:literal, |$s:ident| $key:expr) => {
        event!($ty, $topic, $file, |$s| $key, occurred_at);
    };
    ($ty:ty, $topic:expr, $file:literal, |$s:ident| $key:expr, $time:ident) => {
        impl Event for $ty {
            const TOPIC: &'static str = $topic;
            const SCHEMA: &'static str = include_str!(concat!("../avro/", $file));
            fn event_id(&self) -> EventId {
                self.event_id
            }
            fn key(&self) -> String {
                let $s = self;
                $key
            }
            fn occurred_at(&self) -> Timestamp {
                self.$time
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackEventType {
    Play,
    Pause,
    Stop,
    FastForward,
    Rewind,
}

impl PlaybackEventType {
    pub const ALL: [Self; 5] = [
        Self::Play,
        Self::Pause,
        Self::Stop,
        Self::FastForward,
        Self::Rewind,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Play => "play",
            Self::Pause => "pause",
            Self::Stop => "stop",
            Self::FastForward => "fast_forward",
            Self::Rewind => "rewind",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackEvent {
    pub event_id: EventId,
    pub user_id: UserId,
    pub movie_id: MovieId,
    pub event_type: PlaybackEventType,
    pub position_ms: PositionMs,
    pub occurred_at: Timestamp,
}
event!(
    PlaybackEvent,
    topics::PLAYBACK_EVENTS,
    "playback_event.avsc",
    |e| e.user_id.to_string()
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackPosition {
    pub event_id: EventId,
    pub user_id: UserId,
    pub movie_id: MovieId,
    pub position_ms: PositionMs,
    pub duration_ms: Option<PositionMs>,
    pub occurred_at: Timestamp,
}
event!(
    PlaybackPosition,
    topics::PLAYBACK_POSITIONS,
    "playback_position.avsc",
    |e| e.user_id.to_string()
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovieViewing {
    pub event_id: EventId,
    pub user_id: UserId,
    pub movie_id: MovieId,
    pub viewed_seconds: i64,
    pub occurred_at: Timestamp,
}
event!(
    MovieViewing,
    topics::MOVIE_VIEWINGS,
    "movie_viewing.avsc",
    |e| e.user_id.to_string()
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub event_id: EventId,
    pub user_id: UserId,
    pub movie_id: MovieId,
    pub score: Score,
    pub occurred_at: Timestamp,
}
event!(Rating, topics::RATINGS, "rating.avsc", |e| e
    .user_id
    .to_string());

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FavouriteAction {
    Added,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Favourite {
    pub event_id: EventId,
    pub user_id: UserId,
    pub movie_id: MovieId,
    pub action: FavouriteAction,
    pub occurred_at: Timestamp,
}
event!(Favourite, topics::FAVOURITES, "favourite.avsc", |e| e
    .user_id
    .to_string());

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowAction {
    Follow,
    Unfollow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    pub event_id: EventId,
    pub follower_id: UserId,
    pub followee_id: UserId,
    pub action: FollowAction,
    pub occurred_at: Timestamp,
}
event!(Follow, topics::FOLLOWS, "follow.avsc", |e| e
    .follower_id
    .to_string());

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostCreated {
    pub event_id: EventId,
    pub post_id: PostId,
    pub author_id: UserId,
    pub text: String,
    pub occurred_at: Timestamp,
}
event!(PostCreated, topics::POSTS, "post_created.avsc", |e| e
    .author_id
    .to_string());

/// One page of a post's fan-out (see consumers' feed sinks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutBatch {
    pub event_id: EventId,
    pub post_id: PostId,
    pub author_id: UserId,
    pub created_at: Timestamp,
    pub page: i32,
    /// User ids (UUID text), as the planner read them from the follower set.
    pub follower_ids: Vec<String>,
    pub occurred_at: Timestamp,
}
event!(
    FanoutBatch,
    topics::FANOUT_BATCHES,
    "fanout_batch.avsc",
    |e| format!("{}:{}", e.post_id, e.page)
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    pub event_id: EventId,
    pub user_id: Option<UserId>,
    pub anonymous_id: Option<AnonymousId>,
    pub event_type: String,
    pub properties: HashMap<String, String>,
    pub occurred_at: Timestamp,
    /// The same properties as one JSON object text, with their JSON types (added in the second
    /// version of the contract; `None` in records of the first).
    #[serde(default)]
    pub properties_json: Option<String>,
}
event!(
    UserEvent,
    topics::USER_EVENTS,
    "user_event.avsc",
    |e| match (&e.user_id, &e.anonymous_id) {
        (Some(u), _) => u.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => e.event_id.to_string(),
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoFetchRequested {
    pub event_id: EventId,
    pub query: String,
    pub requested_by: Option<UserId>,
    pub occurred_at: Timestamp,
}
event!(
    VideoFetchRequested,
    topics::VIDEO_FETCH_REQUESTS,
    "video_fetch_requested.avsc",
    |e| e.query.clone()
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoFetched {
    pub event_id: EventId,
    pub video_id: String,
    pub title: String,
    pub description: String,
    pub channel_id: String,
    pub channel_title: String,
    pub published_at: Timestamp,
    pub thumbnails: HashMap<String, String>,
    pub query: String,
    pub fetched_at: Timestamp,
}
event!(
    VideoFetched,
    topics::VIDEOS_FETCHED,
    "video_fetched.avsc",
    |e| e.video_id.clone(),
    fetched_at
);

/// A snapshot of a video's statistics (`videos.list`); snapshots of one video over time form its
/// series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoStatisticsFetched {
    pub event_id: EventId,
    pub video_id: String,
    pub channel_id: String,
    pub title: String,
    pub published_at: Timestamp,
    pub view_count: i64,
    /// `None` when the owner hides it.
    pub like_count: Option<i64>,
    /// `None` when comments are off.
    pub comment_count: Option<i64>,
    /// ISO 8601, as the API gives it (`PT4M13S`); empty if absent.
    pub duration: String,
    pub duration_seconds: i64,
    pub fetched_at: Timestamp,
    /// The view count of the video's previous snapshot (0 for its first): each snapshot says what
    /// it replaces, so summing tables add `view_count` and take this away. `None` from producers
    /// that did not chain snapshots.
    #[serde(default)]
    pub previous_view_count: Option<i64>,
    /// The title of that previous snapshot (empty for the first): its words lose
    /// `previous_view_count`.
    #[serde(default)]
    pub previous_title: Option<String>,
}
event!(
    VideoStatisticsFetched,
    topics::VIDEO_STATISTICS,
    "video_statistics_fetched.avsc",
    |e| e.video_id.clone(),
    fetched_at
);

/// A snapshot of a channel (`channels.list`): its details and statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatisticsFetched {
    pub event_id: EventId,
    pub channel_id: String,
    pub title: String,
    pub description: String,
    /// The `@handle`, empty if none.
    pub custom_url: String,
    pub published_at: Timestamp,
    pub thumbnails: HashMap<String, String>,
    /// `None` when the channel hides it.
    pub subscriber_count: Option<i64>,
    pub view_count: i64,
    pub video_count: i64,
    pub fetched_at: Timestamp,
}
event!(
    ChannelStatisticsFetched,
    topics::CHANNEL_STATISTICS,
    "channel_statistics_fetched.avsc",
    |e| e.channel_id.clone(),
    fetched_at
);

/// A views prediction request (request/reply over Kafka: the reply is a [`ViewsPredicted`] on
/// `reply_topic` whose `request_id` is this `event_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewsPredictionRequested {
    pub event_id: EventId,
    pub title: String,
    pub channel_subscribers: i64,
    pub upload_date: Timestamp,
    pub thumbnail_url: Option<String>,
    pub reply_topic: String,
    pub occurred_at: Timestamp,
}
event!(
    ViewsPredictionRequested,
    topics::VIEWS_PREDICTION_REQUESTS,
    "views_prediction_requested.avsc",
    |e| e.event_id.to_string()
);

/// The predictor's reply to a [`ViewsPredictionRequested`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewsPredicted {
    pub event_id: EventId,
    pub request_id: String,
    /// `predicted` or `not_enough_data`.
    pub status: String,
    pub message: String,
    pub model_version: String,
    /// Cumulative views at the end of days 1..31 after upload.
    pub views: Vec<i64>,
    pub lower: Vec<i64>,
    pub upper: Vec<i64>,
    pub training_videos: i64,
    pub occurred_at: Timestamp,
}
event!(
    ViewsPredicted,
    topics::VIEWS_PREDICTIONS,
    "views_predicted.avsc",
    |e| e.request_id.clone()
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFit {
    Exact,
    Contain,
    Cover,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeRequested {
    pub event_id: EventId,
    pub task_id: TaskId,
    pub blob_id: String,
    pub width: i32,
    pub height: i32,
    pub fit: ResizeFit,
    pub format: ImageFormat,
    pub occurred_at: Timestamp,
}
event!(
    ResizeRequested,
    topics::RESIZE_REQUESTS,
    "resize_requested.avsc",
    |e| e.task_id.to_string()
);
