//! A video's observed curve: its views at the end of each day after upload, interpolated between
//! the snapshots that bracket that moment (never extrapolated).

use crate::{VideoInput, DAY_MS, HORIZON_DAYS};

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub video_id: String,
    pub channel_id: String,
    pub video: VideoInput,
    /// `views[k - 1]`: cumulative views at the end of day k, where snapshots bracket it.
    pub views: [Option<f64>; HORIZON_DAYS],
}

impl Series {
    /// From snapshots `(fetched_at_ms, view_count)` in any order.
    pub fn from_snapshots(
        video_id: String,
        channel_id: String,
        video: VideoInput,
        snapshots: &[(i64, u64)],
    ) -> Self {
        let mut points: Vec<(i64, u64)> = snapshots.to_vec();
        points.sort_unstable();
        let mut views = [None; HORIZON_DAYS];
        for (k, slot) in views.iter_mut().enumerate() {
            let at = video.upload_ms + (k as i64 + 1) * DAY_MS;
            let after = points.partition_point(|(t, _)| *t < at);
            *slot = match (after.checked_sub(1).map(|i| points[i]), points.get(after)) {
                (_, Some(&(t, v))) if t == at => Some(v as f64),
                (Some((t0, v0)), Some(&(t1, v1))) => {
                    let w = (at - t0) as f64 / (t1 - t0) as f64;
                    Some(v0 as f64 + w * (v1 as f64 - v0 as f64))
                }
                _ => None,
            };
        }
        Series {
            video_id,
            channel_id,
            video,
            views,
        }
    }

    /// The last day (1-based) it was observed at, if any.
    pub fn last_day(&self) -> Option<usize> {
        self.views.iter().rposition(Option::is_some).map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_snapshots_and_never_beyond() {
        let video = VideoInput {
            title: "t".into(),
            subscribers: 1,
            upload_ms: 0,
        };
        // Snapshots at 12 h (100 views), 36 h (300), 60 h (500) and exactly day 3 (600).
        let h = DAY_MS / 24;
        let s = Series::from_snapshots(
            "v".into(),
            "c".into(),
            video,
            &[(72 * h, 600), (12 * h, 100), (60 * h, 500), (36 * h, 300)],
        );
        assert_eq!(s.views[0], Some(200.0), "day 1: halfway from 100 to 300");
        assert_eq!(s.views[1], Some(400.0), "day 2: halfway from 300 to 500");
        assert_eq!(s.views[2], Some(600.0), "day 3: a snapshot exactly then");
        assert!(s.views[3..].iter().all(Option::is_none), "nothing after");
        assert_eq!(s.last_day(), Some(3));
    }
}
