//! Event -> row conversion, one row type per table.

use clickhouse::Row;
use schemas::events::{PlaybackEvent, PlaybackEventType};
use schemas::Event;
use serde::Serialize;
use uuid::Uuid;

/// An event that has a table.
pub trait Table: Event {
    type Row: Row + for<'a> clickhouse::RowWrite<Value<'a> = Self::Row> + Serialize + Send + Sync;
    const TABLE: &'static str;
    fn row(&self) -> Self::Row;
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
}

impl Table for PlaybackEvent {
    type Row = PlaybackRow;
    const TABLE: &'static str = "playback_events";

    fn row(&self) -> PlaybackRow {
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
        }
    }
}
