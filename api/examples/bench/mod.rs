//! What the `make bench` examples share: percentiles, timing a read endpoint through the API, and
//! writing a section that scripts/bench.sh assembles into docs/benchmarks.md.

#![allow(dead_code)] // each example uses part of it

use std::time::Instant;

use api::configuration::Settings;
use api::startup::Application;

/// The request path of the i-th request to an endpoint.
pub type PathFor<'a> = Box<dyn Fn(usize) -> String + 'a>;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Starts the API on a free port with the bench API key `bench-key`; returns its base URL and a
/// sender that stops it.
pub async fn start_api(
    adjust: impl FnOnce(&mut Settings),
) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let mut settings = Settings::from_env()?;
    settings.port = 0;
    settings.rate_limit.per_second = 0;
    settings.auth = api::auth::AuthConfig::new("bench:bench-key", "x", None)?;
    adjust(&mut settings);
    let app = Application::build(&settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Ok((base, stop))
}

/// `requests` sequential GETs per endpoint; one markdown table row per endpoint with p50 / p99.
pub async fn time_reads(
    base: &str,
    endpoints: &[(&str, PathFor<'_>)],
    requests: usize,
    goal: fn(&str) -> &'static str,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let mut rows = String::new();
    for (name, path) in endpoints {
        let mut times = Vec::new();
        for i in 0..requests {
            let started = Instant::now();
            let resp = http
                .get(format!("{base}{}", path(i)))
                .header("x-api-key", "bench-key")
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "{name}: {}", resp.status());
            resp.bytes().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        eprintln!("[bench] {name}: p99 {:.1} ms", percentile(&times, 0.99));
        rows.push_str(&format!(
            "| {name} | {:.1} / {:.1} ms | {} |\n",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            goal(name)
        ));
    }
    Ok(rows)
}

/// Writes one section of docs/benchmarks.md to target/bench/`name`.md; scripts/bench.sh puts the
/// sections after the API section, in name order.
pub fn write_section(name: &str, markdown: &str) -> anyhow::Result<()> {
    print!("{markdown}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.md")), markdown)?;
    Ok(())
}
