//! The regression's features of a video at day k: ln(1 + subscribers); the day itself, one-hot
//! (day 1 the baseline: each day its own level, so the curve takes whatever shape the data has);
//! ln(1 + subscribers) · ln k (a larger channel's views grow on a different curve); the title's
//! word count; the upload's weekday, one-hot (Sunday the baseline). The thumbnail is not used.

use time::OffsetDateTime;

use crate::{VideoInput, HORIZON_DAYS};

const DAYS: usize = 1;
const SLOPE: usize = DAYS + HORIZON_DAYS - 1;
const WORDS: usize = SLOPE + 1;
const WEEKDAYS: usize = WORDS + 1;
pub const COUNT: usize = WEEKDAYS + 6;

/// The features of `video` at the end of day `day` (1 to 31).
pub fn of(video: &VideoInput, day: usize) -> [f64; COUNT] {
    let subs = (video.subscribers as f64).ln_1p();
    let weekday = OffsetDateTime::from_unix_timestamp(video.upload_ms.div_euclid(1000))
        .map(|t| t.weekday().number_days_from_sunday())
        .unwrap_or(0);
    let mut f = [0.0; COUNT];
    f[0] = subs;
    if (2..=HORIZON_DAYS).contains(&day) {
        f[DAYS + day - 2] = 1.0;
    }
    f[SLOPE] = subs * (day as f64).ln();
    f[WORDS] = video.title.split_whitespace().count().min(30) as f64;
    if weekday > 0 {
        f[WEEKDAYS + weekday as usize - 1] = 1.0;
    }
    f
}
