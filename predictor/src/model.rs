//! Fitting and asking the model. One ordinary least-squares regression (linfa-linear) of
//! ln(1 + views at the end of day k) on the features of the video at day k, over every (video, k)
//! a video's snapshots bracket. The residuals' spread gives the interval: ±1.645 σ in log space,
//! a 90 % interval if the errors are about normal there. Cumulative views never fall, so each
//! day's estimate is at least the day before's.

use linfa::traits::{Fit, Predict};
use linfa::Dataset;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2};

use crate::{features, Series, VideoInput, HORIZON_DAYS};

/// The z of a two-sided 90 % interval.
const Z90: f64 = 1.645;

/// Why no model could be trained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not enough data to predict views: {reason}")]
pub struct NotEnoughData {
    /// Videos with at least one observed day.
    pub videos: usize,
    pub reason: String,
}

/// What a model needs to be trained (`PREDICTOR_MIN_VIDEOS`, `PREDICTOR_MIN_LATE_VIDEOS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    /// Videos with at least one observed day.
    pub min_videos: usize,
    /// Of them, videos observed at day 28 or later: the 31-day end of the curve rests on them.
    pub min_late_videos: usize,
}

impl Default for Requirements {
    fn default() -> Self {
        Self {
            min_videos: 20,
            min_late_videos: 3,
        }
    }
}

/// A fitted model, named by its version.
#[derive(Debug, Clone)]
pub struct ViewsModel {
    /// `ols-<trained at, RFC 3339>-<videos>v`: which model answered, in every answer.
    pub version: String,
    pub trained_videos: usize,
    /// The features used (a feature constant over the training data cannot be fitted).
    used: Vec<usize>,
    fitted: FittedLinearRegression<f64>,
    /// The residuals' standard deviation, in ln(1 + views).
    sigma: f64,
}

/// 31 cumulative estimates and their interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub views: Vec<i64>,
    pub lower: Vec<i64>,
    pub upper: Vec<i64>,
}

impl ViewsModel {
    /// Fits on `series`; `trained_at` (RFC 3339) names the version.
    pub fn fit(
        series: &[Series],
        needs: Requirements,
        trained_at: &str,
    ) -> Result<ViewsModel, NotEnoughData> {
        let observed: Vec<&Series> = series.iter().filter(|s| s.last_day().is_some()).collect();
        let late = observed
            .iter()
            .filter(|s| s.last_day().is_some_and(|d| d >= 28))
            .count();
        if observed.len() < needs.min_videos || late < needs.min_late_videos {
            return Err(NotEnoughData {
                videos: observed.len(),
                reason: format!(
                    "{} videos with statistics snapshots, {late} of them observed at day 28 or later; \
                     the model needs {} and {}",
                    observed.len(),
                    needs.min_videos,
                    needs.min_late_videos
                ),
            });
        }
        let mut rows: Vec<[f64; features::COUNT]> = Vec::new();
        let mut targets = Vec::new();
        for s in &observed {
            for (k, views) in s.views.iter().enumerate() {
                if let Some(v) = views {
                    rows.push(features::of(&s.video, k + 1));
                    targets.push(v.max(0.0).ln_1p());
                }
            }
        }
        let used: Vec<usize> = (0..features::COUNT)
            .filter(|&j| rows.iter().any(|r| r[j] != rows[0][j]))
            .collect();
        let x = matrix(&rows, &used);
        let y = Array1::from(targets);
        let fitted = LinearRegression::new()
            .fit(&Dataset::new(x.clone(), y.clone()))
            .map_err(|e| NotEnoughData {
                videos: observed.len(),
                reason: format!("the regression could not be solved: {e}"),
            })?;
        let residuals = &y - &fitted.predict(&x);
        let dof = (y.len() as f64 - used.len() as f64 - 1.0).max(1.0);
        let sigma = (residuals.mapv(|r| r * r).sum() / dof).sqrt();
        Ok(ViewsModel {
            version: format!("ols-{trained_at}-{}v", observed.len()),
            trained_videos: observed.len(),
            used,
            fitted,
            sigma,
        })
    }

    pub fn predict(&self, video: &VideoInput) -> Prediction {
        let rows: Vec<[f64; features::COUNT]> =
            (1..=HORIZON_DAYS).map(|k| features::of(video, k)).collect();
        let log = self.fitted.predict(&matrix(&rows, &self.used));
        let mut out = Prediction {
            views: Vec::with_capacity(HORIZON_DAYS),
            lower: Vec::with_capacity(HORIZON_DAYS),
            upper: Vec::with_capacity(HORIZON_DAYS),
        };
        let views = |l: f64| l.exp_m1().clamp(0.0, 1e15).round() as i64;
        for l in log {
            // Cumulative: never below the day before.
            let floor = |v: &[i64]| v.last().copied().unwrap_or(0);
            let (v, lo, hi) = (
                views(l).max(floor(&out.views)),
                views(l - Z90 * self.sigma).max(floor(&out.lower)),
                views(l + Z90 * self.sigma).max(floor(&out.upper)),
            );
            out.views.push(v);
            out.lower.push(lo);
            out.upper.push(hi);
        }
        out
    }
}

fn matrix(rows: &[[f64; features::COUNT]], used: &[usize]) -> Array2<f64> {
    Array2::from_shape_fn((rows.len(), used.len()), |(i, j)| rows[i][used[j]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn too_few_videos_is_not_enough_data_and_enough_fits_the_curve() {
        let few = synthetic::series(7, 10, 30);
        let err = ViewsModel::fit(&few, Requirements::default(), "t").unwrap_err();
        assert_eq!(err.videos, 10);
        let many = synthetic::series(7, 400, 30);
        let model = ViewsModel::fit(&many, Requirements::default(), "t").unwrap();
        assert_eq!(model.version, "ols-t-400v");
        // A channel of 1,000,000 subscribers gets many more views than one of 1,000.
        let at = |subs| {
            model.predict(&VideoInput {
                title: "Official trailer".into(),
                subscribers: subs,
                upload_ms: 1_790_000_000_000,
            })
        };
        let (big, small) = (at(1_000_000), at(1_000));
        assert_eq!(big.views.len(), 31);
        assert!(big.views[30] > 10 * small.views[30], "{big:?} {small:?}");
        for p in [&big, &small] {
            assert!(p.views.windows(2).all(|w| w[0] <= w[1]), "cumulative");
            assert!((0..31).all(|k| p.lower[k] <= p.views[k] && p.views[k] <= p.upper[k]));
        }
    }
}
