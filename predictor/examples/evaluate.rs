//! The views model against naive baselines on held-out synthetic videos (docs/youtube.md):
//!
//!     cargo run --release -p predictor --example evaluate [videos] [seed]

use predictor::evaluation::evaluate;
use predictor::synthetic;

fn main() {
    let mut args = std::env::args().skip(1);
    let videos: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let series = synthetic::series(seed, videos, predictor::HORIZON_DAYS);
    let e = match evaluate(&series, &[1, 3, 7, 14, 30]) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "{videos} synthetic videos (seed {seed}): trained on {}, {} held out.\n",
        e.trained_videos, e.held_out_videos
    );
    println!("| day | held-out videos | model MdAPE | channel's median curve MdAPE | same-size median curve MdAPE | inside the model's 90 % interval |");
    println!("|---|---|---|---|---|---|");
    for h in &e.horizons {
        println!(
            "| {} | {} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            h.day, h.videos, h.model_mdape, h.channel_mdape, h.size_mdape, h.interval_coverage
        );
    }
}
