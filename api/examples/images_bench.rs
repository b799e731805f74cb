//! `make bench`, the image part: 4928x3279 -> 852x567 Lanczos3 with fast_image_resize (what the
//! worker uses) against the `image` crate's own resize, in the same run; and jobs/s end to end
//! (multipart upload -> GridFS/files -> Kafka -> worker -> result). Writes its section of
//! docs/benchmarks.md (see scripts/bench.sh).
//!
//!     cargo run --release -p api --example images_bench   (with `make services` running)

use std::io::Cursor;
use std::time::{Duration, Instant};

use consumers::sinks::images::resize::resize;
use consumers::sinks::images::{ImageLimits, ResizeWorker};
use consumers::RuntimeConfig;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageFormat, RgbImage};
use schemas::events::{ImageFormat as OutFormat, ResizeFit, ResizeRequested};
use schemas::Event;
use stores::images::{BlobStore, ImageJobs};

mod bench;
use bench::{percentile, start_api, write_section};

fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x ^ y) & 0xff) as u8,
            ((x * 3 + y) % 251) as u8,
            ((x / 7 + y / 5) % 256) as u8,
        ])
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(&xs, 0.5)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. The resize itself, RGB8, Lanczos3, median of 5 runs each.
    let (sw, sh, dw, dh) = (4928, 3279, 852, 567);
    let src = photo(sw, sh);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let src_view = Image::from_vec_u8(sw, sh, src.as_raw().clone(), PixelType::U8x3)?;
    for _ in 0..5 {
        let mut dst = Image::new(dw, dh, PixelType::U8x3);
        let t = Instant::now();
        resizer.resize(&src_view, &mut dst, &options)?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let out = image::imageops::resize(&src, dw, dh, image::imageops::FilterType::Lanczos3);
        theirs.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(out.dimensions(), (dw, dh));
    }
    let (fir_ms, image_ms) = (median(ours), median(theirs));
    eprintln!("[bench] fast_image_resize {fir_ms:.1} ms, image {image_ms:.1} ms");

    // 2. The worker's whole job on one core: decode JPEG, resize, encode JPEG.
    let mut jpeg = Cursor::new(Vec::new());
    photo(1600, 1067).write_to(&mut jpeg, ImageFormat::Jpeg)?;
    let jpeg = jpeg.into_inner();
    let t = Instant::now();
    for _ in 0..10 {
        resize(
            &jpeg,
            400,
            267,
            ResizeFit::Exact,
            OutFormat::Jpeg,
            &ImageLimits::default(),
        )?;
    }
    let job_ms = t.elapsed().as_secs_f64() * 100.0;

    // 3. End to end: N uploads through the API, one worker, until the last SUCCESS.
    let n = 50;
    let stack = common::config::StackConfig::from_env();
    let db_name = format!("bench_img_{}", uuid::Uuid::new_v4().simple());
    let mongo = mongodb::Client::with_uri_str(&stack.mongo_url).await?;
    stores::mongo::migrate(&mongo, &db_name).await?;
    let db = mongo.database(&db_name);
    let (base, stop_api) = start_api(|s| s.stack.mongo_database = db_name.clone()).await?;
    let jobs = ImageJobs::new(db.clone(), BlobStore::from_env(&db)?);
    let mut runtime = RuntimeConfig::from_env("bench")?;
    runtime.group_id = format!("bench-img-{}", uuid::Uuid::new_v4());
    runtime.max_rows = 4;
    runtime.max_wait = Duration::from_millis(5);
    consumers::groups::commit_at_end(
        &stack.kafka_brokers,
        &runtime.group_id,
        ResizeRequested::TOPIC,
    )?;
    let codec = schemas::Codec::new(&stack.schema_registry_url)?;
    let worker = ResizeWorker::new(
        jobs.clone(),
        ImageLimits::default(),
        Duration::from_secs(3600),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(consumers::run(
        runtime,
        codec,
        worker,
        common::shutdown::Shutdown::when(async move {
            let _ = stopped.await;
        }),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await; // group join
    let http = reqwest::Client::new();
    let boundary = "bench-boundary";
    let mut body = Vec::new();
    for (k, v) in [("width", "400"), ("height", "267")] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n\r\n").as_bytes());
    body.extend_from_slice(&jpeg);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let resp = http
            .post(format!("{base}/api/v1/images/resize"))
            .header("x-api-key", "bench-key")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 202, "upload: {}", resp.status());
        let v: serde_json::Value = resp.json().await?;
        tasks.push(v["task_id"].as_str().unwrap_or_default().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for task in &tasks {
        loop {
            let job = jobs.get(task).await?;
            if job.is_some_and(|j| j.status == stores::images::JobStatus::Success) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "jobs did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let jobs_per_s = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("[bench] {jobs_per_s:.1} jobs/s end to end");
    let _ = stop.send(());
    consumer.await??;
    let _ = stop_api.send(());
    db.drop().await?;

    let md = format!(
        "\n## Image resizing\n\n\
| what | result | goal |\n|---|---|---|\n\
| {sw}x{sh} -> {dw}x{dh} RGB, Lanczos3, fast_image_resize (median of 5) | {fir_ms:.1} ms | |\n\
| the same with the `image` crate's `imageops::resize` | {image_ms:.1} ms | |\n\
| speed-up | {ratio:.1}x | >= 10x |\n\
| the worker's job on one core: decode a 1600x1067 JPEG, resize to 400x267, encode JPEG | {job_ms:.1} ms | |\n\
| end to end, {n} uploads of that JPEG through the API, one worker, until the last SUCCESS | {jobs_per_s:.1} jobs/s | |\n\n\
Command: `cargo run --release -p api --example images_bench`.\n",
        ratio = image_ms / fir_ms,
    );
    write_section("50-images", &md)
}
