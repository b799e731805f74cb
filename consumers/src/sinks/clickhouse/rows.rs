//! Event -> row conversion, one row type per table. Every row carries the Kafka partition and offset
//! it was read from (see `schema.sql`).

use clickhouse::Row;
use schemas::events::{
    ChannelStatisticsFetched, MovieViewing, PlaybackEvent, PlaybackEventType, PlaybackPosition,
    Rating, UserEvent, VideoFetched, VideoStatisticsFetched,
};
use schemas::Event;
use serde::Serialize;
use uuid::Uuid;

/// An event that has a table.
pub trait Table: Event {
    type Row: Row + for<'a> clickhouse::RowWrite<Value<'a> = Self::Row> + Serialize + Send + Sync;
    const TABLE: &'static str;
    /// Whether the table is partitioned by month of [`Event::occurred_at`] (the sink then keeps
    /// every INSERT within the server's partition limit).
    const PARTITIONED: bool = true;
    /// Whether the sink looks each event up in `event_ids` and leaves out the ones the table
    /// already has (tables whose views sum or count on insert). Tables without it must be
    /// idempotent by themselves.
    const DEDUPLICATED: bool = true;
    fn row(&self, partition: i32, offset: i64) -> Self::Row;
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct PlaybackRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub movie_id: Uuid,
    /// Enum8: play = 1 .. rewind = 5.
    pub event_type: i8,
    pub position_ms: u64,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for PlaybackEvent {
    type Row = PlaybackRow;
    const TABLE: &'static str = "playback_events";

    fn row(&self, partition: i32, offset: i64) -> PlaybackRow {
        PlaybackRow {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.as_uuid(),
            movie_id: self.movie_id.as_uuid(),
            event_type: match self.event_type {
                PlaybackEventType::Play => 1,
                PlaybackEventType::Pause => 2,
                PlaybackEventType::Stop => 3,
                PlaybackEventType::FastForward => 4,
                PlaybackEventType::Rewind => 5,
            },
            position_ms: self.position_ms.get(),
            occurred_at: self.occurred_at.seconds(),
            occurred_at_ms: self.occurred_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct MovieViewingRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub movie_id: Uuid,
    pub viewed_seconds: u32,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for MovieViewing {
    type Row = MovieViewingRow;
    const TABLE: &'static str = "movie_viewings";

    fn row(&self, partition: i32, offset: i64) -> MovieViewingRow {
        MovieViewingRow {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.as_uuid(),
            movie_id: self.movie_id.as_uuid(),
            // The API bounds it to a day; a record from elsewhere is clamped, not wrapped.
            viewed_seconds: self.viewed_seconds.clamp(0, i64::from(u32::MAX)) as u32,
            occurred_at: self.occurred_at.seconds(),
            occurred_at_ms: self.occurred_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct PlaybackPositionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub movie_id: Uuid,
    pub position_ms: u64,
    pub duration_ms: Option<u64>,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for PlaybackPosition {
    type Row = PlaybackPositionRow;
    const TABLE: &'static str = "playback_positions";

    fn row(&self, partition: i32, offset: i64) -> PlaybackPositionRow {
        PlaybackPositionRow {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.as_uuid(),
            movie_id: self.movie_id.as_uuid(),
            position_ms: self.position_ms.get(),
            duration_ms: self.duration_ms.map(|d| d.get()),
            occurred_at: self.occurred_at.seconds(),
            occurred_at_ms: self.occurred_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct RatingRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub movie_id: Uuid,
    pub score: u8,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for Rating {
    type Row = RatingRow;
    const TABLE: &'static str = "ratings";

    fn row(&self, partition: i32, offset: i64) -> RatingRow {
        RatingRow {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.as_uuid(),
            movie_id: self.movie_id.as_uuid(),
            score: self.score.get(),
            occurred_at: self.occurred_at.seconds(),
            occurred_at_ms: self.occurred_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct UserEventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub user_id: Option<Uuid>,
    pub anonymous_id: String,
    pub event_type: String,
    pub properties_keys: Vec<String>,
    pub properties_values: Vec<String>,
    /// The payload as one JSON object with its types; '' for first-version records.
    pub properties_json: String,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for UserEvent {
    type Row = UserEventRow;
    const TABLE: &'static str = "user_events";

    fn row(&self, partition: i32, offset: i64) -> UserEventRow {
        let mut properties: Vec<(&String, &String)> = self.properties.iter().collect();
        properties.sort();
        UserEventRow {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.map(|u| u.as_uuid()),
            anonymous_id: self
                .anonymous_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            event_type: self.event_type.clone(),
            properties_keys: properties.iter().map(|(k, _)| (*k).clone()).collect(),
            properties_values: properties.iter().map(|(_, v)| (*v).clone()).collect(),
            properties_json: self.properties_json.clone().unwrap_or_default(),
            occurred_at: self.occurred_at.seconds(),
            occurred_at_ms: self.occurred_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct VideoRow {
    pub video_id: String,
    pub title: String,
    pub description: String,
    pub channel_id: String,
    pub channel_title: String,
    pub published_at: u32,
    pub published_at_ms: u64,
    pub thumbnails_keys: Vec<String>,
    pub thumbnails_urls: Vec<String>,
    pub query: String,
    pub fetched_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for VideoFetched {
    type Row = VideoRow;
    const TABLE: &'static str = "videos";
    const PARTITIONED: bool = false;
    /// A re-fetch is a new version of the video, and reads count distinct video ids.
    const DEDUPLICATED: bool = false;

    fn row(&self, partition: i32, offset: i64) -> VideoRow {
        let mut thumbnails: Vec<(&String, &String)> = self.thumbnails.iter().collect();
        thumbnails.sort();
        VideoRow {
            video_id: self.video_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            channel_id: self.channel_id.clone(),
            channel_title: self.channel_title.clone(),
            published_at: self.published_at.seconds(),
            published_at_ms: self.published_at.millis() as u64,
            thumbnails_keys: thumbnails.iter().map(|(k, _)| (*k).clone()).collect(),
            thumbnails_urls: thumbnails.iter().map(|(_, v)| (*v).clone()).collect(),
            query: self.query.clone(),
            fetched_at_ms: self.fetched_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

/// A count from the API (never negative there; a negative one from a buggy producer reads as 0).
fn count(n: i64) -> u64 {
    n.max(0) as u64
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct VideoStatisticsRow {
    pub video_id: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub channel_id: String,
    pub title: String,
    pub published_at_ms: u64,
    pub view_count: u64,
    pub like_count: Option<u64>,
    pub comment_count: Option<u64>,
    pub duration: String,
    pub duration_seconds: u32,
    pub fetched_at: u32,
    pub fetched_at_ms: u64,
    pub previous_view_count: Option<u64>,
    pub previous_title: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for VideoStatisticsFetched {
    type Row = VideoStatisticsRow;
    const TABLE: &'static str = "video_statistics";
    /// The keyword views sum each snapshot's change on insert: a snapshot sent again (the
    /// fetcher's outbox, a batch read again after a crash) must not be written twice.
    const DEDUPLICATED: bool = true;

    fn row(&self, partition: i32, offset: i64) -> VideoStatisticsRow {
        VideoStatisticsRow {
            video_id: self.video_id.clone(),
            event_id: self.event_id.as_uuid(),
            channel_id: self.channel_id.clone(),
            title: self.title.clone(),
            published_at_ms: self.published_at.millis().max(0) as u64,
            view_count: count(self.view_count),
            like_count: self.like_count.map(count),
            comment_count: self.comment_count.map(count),
            duration: self.duration.clone(),
            duration_seconds: self.duration_seconds.clamp(0, i64::from(u32::MAX)) as u32,
            fetched_at: self.fetched_at.seconds(),
            fetched_at_ms: self.fetched_at.millis() as u64,
            previous_view_count: self.previous_view_count.map(count),
            previous_title: self.previous_title.clone().unwrap_or_default(),
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct ChannelStatisticsRow {
    pub channel_id: String,
    pub title: String,
    pub description: String,
    pub custom_url: String,
    pub published_at_ms: u64,
    pub thumbnails_keys: Vec<String>,
    pub thumbnails_urls: Vec<String>,
    pub subscriber_count: Option<u64>,
    pub view_count: u64,
    pub video_count: u64,
    pub fetched_at: u32,
    pub fetched_at_ms: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl Table for ChannelStatisticsFetched {
    type Row = ChannelStatisticsRow;
    const TABLE: &'static str = "channel_statistics";
    /// As for video statistics: a duplicate snapshot collapses and changes no read.
    const DEDUPLICATED: bool = false;

    fn row(&self, partition: i32, offset: i64) -> ChannelStatisticsRow {
        let mut thumbnails: Vec<(&String, &String)> = self.thumbnails.iter().collect();
        thumbnails.sort();
        ChannelStatisticsRow {
            channel_id: self.channel_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            custom_url: self.custom_url.clone(),
            published_at_ms: self.published_at.millis().max(0) as u64,
            thumbnails_keys: thumbnails.iter().map(|(k, _)| (*k).clone()).collect(),
            thumbnails_urls: thumbnails.iter().map(|(_, v)| (*v).clone()).collect(),
            subscriber_count: self.subscriber_count.map(count),
            view_count: count(self.view_count),
            video_count: count(self.video_count),
            fetched_at: self.fetched_at.seconds(),
            fetched_at_ms: self.fetched_at.millis() as u64,
            kafka_partition: partition as u32,
            kafka_offset: offset as u64,
        }
    }
}
