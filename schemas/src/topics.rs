//! Topic names, their partition counts, and which event each carries. Subjects follow Confluent's
//! TopicNameStrategy: the value schema of topic `t` is registered as `t-value`.

/// A topic of the pipeline and the Avro schema of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    /// Default partition count; the initialiser may scale it with `TOPIC_PARTITIONS`.
    pub partitions: i32,
    /// The value schema, or `None` for topics that carry raw bytes (the dead-letter topic).
    pub value_schema: Option<&'static str>,
}

impl Topic {
    /// The registry subject of this topic's values.
    pub fn value_subject(&self) -> String {
        value_subject(self.name)
    }
}

/// The registry subject for the values of `topic` (TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

pub const PLAYBACK_EVENTS: &str = "ugc.playback-events";
pub const PLAYBACK_POSITIONS: &str = "ugc.playback-positions";
pub const MOVIE_VIEWINGS: &str = "ugc.movie-viewings";
pub const RATINGS: &str = "ugc.ratings";
pub const FAVOURITES: &str = "ugc.favourites";
pub const FOLLOWS: &str = "ugc.follows";
pub const POSTS: &str = "ugc.posts";
/// Pages of followers per post, from the fan-out planner to the fan-out workers.
pub const FANOUT_BATCHES: &str = "ugc.fanout-batches";
pub const USER_EVENTS: &str = "ugc.user-events";
pub const VIDEO_FETCH_REQUESTS: &str = "ugc.video-fetch-requests";
pub const VIDEOS_FETCHED: &str = "ugc.videos-fetched";
/// Snapshots of videos' and channels' statistics from the YouTube fetcher.
pub const VIDEO_STATISTICS: &str = "ugc.video-statistics";
pub const CHANNEL_STATISTICS: &str = "ugc.channel-statistics";
/// Views prediction requests (from the API) and their replies (from the views predictor).
pub const VIEWS_PREDICTION_REQUESTS: &str = "ugc.views-prediction-requests";
pub const VIEWS_PREDICTIONS: &str = "ugc.views-predictions";
pub const RESIZE_REQUESTS: &str = "ugc.resize-requests";
/// Records no consumer could decode or apply, with the cause in headers (see consumers/).
pub const DEAD_LETTER: &str = "ugc.dead-letter";

use crate::events::*;
use crate::Event;

/// Every topic of the pipeline, in the order the initialiser creates them.
pub const ALL: &[Topic] = &[
    topic::<PlaybackEvent>(6),
    topic::<PlaybackPosition>(6),
    topic::<MovieViewing>(6),
    topic::<Rating>(3),
    topic::<Favourite>(3),
    topic::<Follow>(3),
    topic::<PostCreated>(3),
    topic::<FanoutBatch>(6),
    topic::<UserEvent>(6),
    topic::<VideoFetchRequested>(1),
    topic::<VideoFetched>(3),
    topic::<VideoStatisticsFetched>(3),
    topic::<ChannelStatisticsFetched>(1),
    topic::<ViewsPredictionRequested>(3),
    topic::<ViewsPredicted>(3),
    topic::<ResizeRequested>(3),
    Topic {
        name: DEAD_LETTER,
        partitions: 1,
        value_schema: None,
    },
];

const fn topic<E: Event>(partitions: i32) -> Topic {
    Topic {
        name: E::TOPIC,
        partitions,
        value_schema: Some(E::SCHEMA),
    }
}
