//! The views model behind the `views-predictor`: from a video's title, its channel's subscribers
//! and its upload date, the cumulative views at the end of each of its first 31 days, with a 90 %
//! interval. It is trained on the statistics snapshots the YouTube fetcher takes (ClickHouse
//! `video_statistics`, `channel_statistics`): each video's snapshots give its views at the end of
//! day k by interpolation, and one ordinary least-squares regression (linfa) fits ln(1 + views)
//! on the features of [`features`]. It never extrapolates from nothing: too few videos, or none
//! observed near day 31, is [`NotEnoughData`].
//!
//! Nothing here knows Kafka or HTTP; [`training`] reads ClickHouse.

pub mod evaluation;
pub mod features;
pub mod model;
pub mod series;
pub mod synthetic;
pub mod training;

pub use model::{NotEnoughData, Prediction, ViewsModel};
pub use series::Series;

/// Days predicted: cumulative views at the end of days 1..=31 after upload.
pub const HORIZON_DAYS: usize = 31;

const DAY_MS: i64 = 86_400_000;

/// What a prediction is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInput {
    pub title: String,
    pub subscribers: u64,
    /// Epoch ms.
    pub upload_ms: i64,
}
