//! Synthetic series for tests, the evaluation and the benchmark: channels whose subscribers are
//! log-uniform from 100 to 10,000,000; each video's views at the end of day k follow
//! `a · subscribers^0.8 · (1 − e^(−k/τ))` with a channel factor (some channels do better than
//! their size says), a weekday factor, a title factor and log-normal noise per video and per day.
//! It is what the model is evaluated on until a deployment's own snapshots replace it; a model
//! of this shape fits data made in this shape, which is why docs/youtube.md also reports the
//! channel's median curve beside it.

use crate::{Series, VideoInput, DAY_MS, HORIZON_DAYS};

/// `videos` series over `videos / 8 + 1` channels, seeded; each observed for `days` days.
pub fn series(seed: u64, videos: usize, days: usize) -> Vec<Series> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let channels: Vec<(u64, f64)> = (0..videos / 8 + 1)
        .map(|_| {
            let subs = 10f64.powf(2.0 + 5.0 * rng.f64()) as u64;
            (subs, (0.6 * normal(&mut rng)).exp())
        })
        .collect();
    let words = [
        "official", "trailer", "review", "reaction", "teaser", "clip", "scene", "music",
    ];
    (0..videos)
        .map(|i| {
            let channel = i % channels.len();
            let (subs, factor) = channels[channel];
            let upload_ms = 1_780_000_000_000 + rng.i64(0..60) * DAY_MS + rng.i64(0..DAY_MS);
            let title_words = 2 + rng.usize(0..8);
            let title: Vec<&str> = (0..title_words)
                .map(|_| words[rng.usize(0..words.len())])
                .collect();
            let weekday = (upload_ms / DAY_MS + 4) % 7; // 1970-01-01 was a Thursday
            let weekday_factor = if weekday == 0 || weekday == 6 {
                1.3
            } else {
                1.0
            };
            let scale = 0.05
                * (subs as f64).powf(0.8)
                * factor
                * weekday_factor
                * (1.0 + 0.03 * title_words as f64)
                * (0.5 * normal(&mut rng)).exp();
            let tau = 2.0 + 6.0 * rng.f64();
            let mut views = [None; HORIZON_DAYS];
            let mut last = 0.0f64;
            for (k, slot) in views.iter_mut().enumerate().take(days.min(HORIZON_DAYS)) {
                let v = scale
                    * (1.0 - (-((k + 1) as f64) / tau).exp())
                    * (0.05 * normal(&mut rng)).exp();
                last = last.max(v.round());
                *slot = Some(last);
            }
            Series {
                video_id: format!("syn{seed}-{i}"),
                channel_id: format!("UCsyn{seed}-{channel}"),
                video: VideoInput {
                    title: title.join(" "),
                    subscribers: subs,
                    upload_ms,
                },
                views,
            }
        })
        .collect()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let (u1, u2) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
