//! The model against two naive baselines on held-out videos: one video in five (by a hash of its
//! id) is held out; the model is fitted on the others, and so are the baselines:
//! - the median curve of the video's own channel (the median views at day k of the channel's
//!   training videos; of every training video when the channel has none). It knows the channel,
//!   which a prediction request does not carry: more information than the model gets;
//! - the median curve of channels of the same size (the same decade of subscribers): the same
//!   information the model gets.
//!
//! Reported per horizon: the median absolute percentage error of each, and how often the actual
//! views fall inside the model's 90 % interval.

use crate::model::{NotEnoughData, Requirements, ViewsModel};
use crate::Series;

/// The errors at one horizon (day k after upload).
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonError {
    pub day: usize,
    /// Held-out videos observed that day.
    pub videos: usize,
    /// Median |predicted − actual| / actual, in percent.
    pub model_mdape: f64,
    /// The channel's median curve.
    pub channel_mdape: f64,
    /// The median curve of channels of the same subscriber decade.
    pub size_mdape: f64,
    /// Share of actual views inside the model's 90 % interval, in percent.
    pub interval_coverage: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub trained_videos: usize,
    pub held_out_videos: usize,
    pub horizons: Vec<HorizonError>,
}

fn held_out(id: &str) -> bool {
    // FNV-1a: stable across runs and platforms.
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    h % 5 == 0
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Evaluates at the given days (1-based).
pub fn evaluate(series: &[Series], days: &[usize]) -> Result<Evaluation, NotEnoughData> {
    let (test, train): (Vec<&Series>, Vec<&Series>) =
        series.iter().partition(|s| held_out(&s.video_id));
    let train_owned: Vec<Series> = train.iter().map(|s| (*s).clone()).collect();
    let model = ViewsModel::fit(&train_owned, Requirements::default(), "evaluation")?;
    let predictions: Vec<_> = test.iter().map(|s| model.predict(&s.video)).collect();
    let decade = |s: &Series| (s.video.subscribers.max(1) as f64).log10().floor() as i32;
    let curve = |keep: &dyn Fn(&Series) -> bool, k: usize| {
        median(
            train
                .iter()
                .filter(|s| keep(s))
                .filter_map(|s| s.views[k - 1])
                .collect(),
        )
    };
    let horizons = days
        .iter()
        .map(|&k| {
            let (mut model_err, mut channel_err, mut size_err, mut inside) =
                (Vec::new(), Vec::new(), Vec::new(), 0usize);
            for (s, p) in test.iter().zip(&predictions) {
                let Some(actual) = s.views[k - 1].filter(|a| *a > 0.0) else {
                    continue;
                };
                let everyone = || curve(&|_| true, k).unwrap_or(0.0);
                let channel = curve(&|t| t.channel_id == s.channel_id, k).unwrap_or_else(everyone);
                let size = curve(&|t| decade(t) == decade(s), k).unwrap_or_else(everyone);
                let ape = |v: f64| (v - actual).abs() / actual * 100.0;
                model_err.push(ape(p.views[k - 1] as f64));
                channel_err.push(ape(channel));
                size_err.push(ape(size));
                inside += usize::from(
                    (p.lower[k - 1] as f64) <= actual && actual <= p.upper[k - 1] as f64,
                );
            }
            let n = model_err.len();
            HorizonError {
                day: k,
                videos: n,
                model_mdape: median(model_err).unwrap_or(f64::NAN),
                channel_mdape: median(channel_err).unwrap_or(f64::NAN),
                size_mdape: median(size_err).unwrap_or(f64::NAN),
                interval_coverage: inside as f64 * 100.0 / n.max(1) as f64,
            }
        })
        .collect();
    Ok(Evaluation {
        trained_videos: model.trained_videos,
        held_out_videos: test.len(),
        horizons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_beats_the_same_size_median_curve_on_held_out_synthetic_videos() {
        let series = crate::synthetic::series(42, 2_000, 31);
        let e = evaluate(&series, &[1, 7, 30]).unwrap();
        assert!(e.held_out_videos > 300, "{e:?}");
        for h in &e.horizons {
            assert!(h.model_mdape < h.size_mdape, "{h:?}");
            assert!((80.0..=97.0).contains(&h.interval_coverage), "{h:?}");
        }
    }
}
