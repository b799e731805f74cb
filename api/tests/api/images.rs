//! Image resize jobs end to end: multipart upload -> GridFS -> Kafka -> the resize worker (in
//! process, on the shared runtime) -> result bytes; hostile input; redelivery; unknown ids.

use std::io::Cursor;
use std::time::Duration;

use consumers::sinks::images::{ImageLimits, ResizeWorker};
use consumers::RuntimeConfig;
use image::{ImageFormat, RgbImage};
use schemas::events::ResizeRequested;
use schemas::Event;
use serde_json::Value;
use stores::images::{ImageJobs, JobStatus};

use crate::helpers::{spawn_app_with, test_settings, TestApp, API_KEY};

struct Resizing {
    app: TestApp,
    jobs: ImageJobs,
    db: mongodb::Database,
    stop: tokio::sync::oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<()>,
    /// The worker's own dead-letter topic.
    dlq: String,
}

async fn resizing(max_upload: usize) -> Resizing {
    let mut settings = test_settings();
    settings.stack.mongo_database = format!("test_img_{}", uuid::Uuid::new_v4().simple());
    settings.image_max_upload_bytes = max_upload;
    let client = mongodb::Client::with_uri_str(&settings.stack.mongo_url)
        .await
        .unwrap();
    stores::mongo::migrate(&client, &settings.stack.mongo_database)
        .await
        .unwrap();
    let db = client.database(&settings.stack.mongo_database);
    let app = spawn_app_with(settings).await;
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-img-{}", uuid::Uuid::new_v4());
    runtime.max_wait = Duration::from_millis(20);
    let dlq = format!("test-img-dlq-{}", uuid::Uuid::new_v4().simple());
    runtime.dead_letter_topic = dlq.clone();
    consumers::groups::commit_at_end(
        &app.settings.stack.kafka_brokers,
        &runtime.group_id,
        ResizeRequested::TOPIC,
    )
    .unwrap();
    let codec = schemas::Codec::new(&app.settings.stack.schema_registry_url).unwrap();
    // The blob store the API built from the same environment.
    let jobs = ImageJobs::new(
        db.clone(),
        stores::images::BlobStore::from_env(&db).unwrap(),
    );
    let sink = ResizeWorker::new(
        jobs.clone(),
        ImageLimits::default(),
        Duration::from_secs(3600),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        consumers::run(
            runtime,
            codec,
            sink,
            common::shutdown::Shutdown::when(async move {
                let _ = stopped.await;
            }),
        )
        .await
        .unwrap();
    });
    Resizing {
        app,
        jobs,
        db,
        stop,
        worker,
        dlq,
    }
}

/// A gradient, so a resized result can be checked for not being blank.
fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A valid PNG header claiming 20000x20000 (the data is one pixel: never decodable, never allocated).
fn png_bomb() -> Vec<u8> {
    let mut png = picture(1, 1, ImageFormat::Png);
    png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

impl Resizing {
    async fn upload(&self, file: &[u8], filename: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let boundary = "----test-boundary-7d1e";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .app
            .client
            .post(self.app.url("/api/v1/images/resize"))
            .header("x-api-key", API_KEY)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn status(&self, task: &str) -> (u16, Value) {
        let resp = self
            .app
            .client
            .get(self.app.url(&format!("/api/v1/status/{task}")))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Polls until the job finished; returns its final status body.
    async fn finished(&self, task: &str) -> Value {
        for _ in 0..300 {
            let (code, body) = self.status(task).await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == "SUCCESS" || body["status"] == "FAILURE" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("task {task} did not finish in 30 s");
    }

    async fn result(&self, task: &str) -> (u16, String, Vec<u8>) {
        let resp = self
            .app
            .client
            .get(self.app.url(&format!("/api/v1/images/result/{task}")))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            resp.status().as_u16(),
            ct,
            resp.bytes().await.unwrap().to_vec(),
        )
    }

    async fn drop(self) {
        let _ = self.stop.send(());
        let _ = self.worker.await;
        self.db.drop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_jpeg_and_webp_are_resized_to_the_requested_size() {
    let r = resizing(5 * 1024 * 1024).await;
    let cases = [
        (
            ImageFormat::Png,
            "a.png",
            vec![("width", "32"), ("height", "20")],
            "image/png",
            (32, 20),
        ),
        (
            ImageFormat::Jpeg,
            "b.jpg",
            vec![("width", "40"), ("height", "30")],
            "image/jpeg",
            (40, 30),
        ),
        (
            ImageFormat::WebP,
            "c.webp",
            vec![("width", "16"), ("height", "16"), ("fit", "cover")],
            "image/webp",
            (16, 16),
        ),
        // contain keeps the aspect ratio (64x48 into 32x32 -> 32x24); png -> webp.
        (
            ImageFormat::Png,
            "d.png",
            vec![
                ("width", "32"),
                ("height", "32"),
                ("fit", "contain"),
                ("format", "webp"),
            ],
            "image/webp",
            (32, 24),
        ),
    ];
    let mut tasks = Vec::new();
    for (format, name, fields, _, _) in &cases {
        let (code, body) = r.upload(&picture(64, 48, *format), name, fields).await;
        assert_eq!(code, 202, "{name}: {body}");
        assert_eq!(body["status"], "accepted");
        tasks.push(body["task_id"].as_str().unwrap().to_string());
    }
    for (task, (_, name, _, content_type, (w, h))) in tasks.iter().zip(&cases) {
        let done = r.finished(task).await;
        assert_eq!(done["status"], "SUCCESS", "{name}: {done}");
        let (code, ct, bytes) = r.result(task).await;
        assert_eq!((code, ct.as_str()), (200, *content_type), "{name}");
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (*w, *h), "{name}");
        let reds: Vec<u8> = img.pixels().map(|p| p[0]).collect();
        let (min, max) = (reds.iter().min().unwrap(), reds.iter().max().unwrap());
        assert!(
            max - min > 100,
            "{name}: the gradient survived ({min}..{max})"
        );
        // Results are kept: a second read gives the same bytes.
        assert_eq!(r.result(task).await.2, bytes);
    }
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_fails_cleanly() {
    let r = resizing(64 * 1024).await;
    let fields = [("width", "10"), ("height", "10")];
    // A 20000x20000 PNG is refused from its header, before anything is stored.
    let (code, body) = r.upload(&png_bomb(), "bomb.png", &fields).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("20000x20000"),
        "{body}"
    );
    // Text named .png: the format is sniffed from the bytes.
    let (code, body) = r
        .upload(b"hello, I am not an image at all", "cat.png", &fields)
        .await;
    assert_eq!(code, 400, "{body}");
    // Over the upload limit: 413.
    let (code, body) = r.upload(&vec![0u8; 100 * 1024], "big.png", &fields).await;
    assert_eq!(code, 413, "{body}");
    // Bad parameters.
    for bad in [
        vec![("width", "0"), ("height", "10")],
        vec![("width", "10")],
        vec![("width", "10"), ("height", "10"), ("fit", "stretch")],
        vec![("width", "99999"), ("height", "10")],
    ] {
        let (code, body) = r
            .upload(&picture(8, 8, ImageFormat::Png), "ok.png", &bad)
            .await;
        assert_eq!(code, 400, "{bad:?}: {body}");
    }
    // A truncated PNG passes the header check and fails in the worker, with a reason.
    let mut truncated = picture(200, 200, ImageFormat::Png);
    truncated.truncate(truncated.len() / 2);
    let (code, body) = r.upload(&truncated, "cut.png", &fields).await;
    assert_eq!(code, 202, "{body}");
    let task = body["task_id"].as_str().unwrap().to_string();
    let done = r.finished(&task).await;
    assert_eq!(done["status"], "FAILURE");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("corrupt or truncated"),
        "{done}"
    );
    assert_eq!(r.result(&task).await.0, 404);
    // The bomb queued straight to the worker (bypassing the API's check): FAILURE, no allocation.
    let blob = r.jobs.put_blob("bomb", &png_bomb()).await.unwrap();
    let task = schemas::domain::TaskId::from_uuid(uuid::Uuid::new_v4());
    r.jobs.create(&task.to_string(), &blob).await.unwrap();
    let producer = producers::EventProducer::new(
        &r.app.settings.producer,
        schemas::Codec::new(&r.app.settings.stack.schema_registry_url).unwrap(),
    )
    .unwrap();
    producer
        .send(
            &ResizeRequested {
                event_id: schemas::domain::EventId::new_random(),
                task_id: task,
                blob_id: blob,
                width: 10,
                height: 10,
                fit: schemas::events::ResizeFit::Exact,
                format: schemas::events::ImageFormat::Png,
                occurred_at: schemas::domain::Timestamp::now(),
            },
            &[],
        )
        .await
        .unwrap();
    let done = r.finished(&task.to_string()).await;
    assert_eq!(done["status"], "FAILURE");
    assert!(
        done["error"].as_str().unwrap().contains("over the limit"),
        "{done}"
    );
    // Both requests are dead-lettered with the same reason (the operator's view), once each.
    let mut reasons: Vec<String> = r
        .app
        .records(&r.dlq)
        .await
        .iter()
        .map(|m| consumers::runtime::dead_letter::header(m, "dlq.error").unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("corrupt or truncated"), "{reasons:?}");
    assert!(reasons[1].contains("over the limit"), "{reasons:?}");
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_job_is_not_redone_and_unknown_ids_are_404() {
    let r = resizing(1024 * 1024).await;
    let (code, body) = r
        .upload(
            &picture(30, 30, ImageFormat::Png),
            "x.png",
            &[("width", "12"), ("height", "12")],
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let task = body["task_id"].as_str().unwrap().to_string();
    assert_eq!(r.finished(&task).await["status"], "SUCCESS");
    let before = r.jobs.get(&task).await.unwrap().unwrap();
    let (_, _, bytes) = r.result(&task).await;
    // The same job again (as Kafka would redeliver it after a crash before the commit).
    let event = ResizeRequested {
        event_id: schemas::domain::EventId::new_random(),
        task_id: schemas::domain::TaskId::parse(&task).unwrap(),
        blob_id: before.source_blob.clone(),
        width: 12,
        height: 12,
        fit: schemas::events::ResizeFit::Exact,
        format: schemas::events::ImageFormat::Png,
        occurred_at: schemas::domain::Timestamp::now(),
    };
    let producer = producers::EventProducer::new(
        &r.app.settings.producer,
        schemas::Codec::new(&r.app.settings.stack.schema_registry_url).unwrap(),
    )
    .unwrap();
    producer.send(&event, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = r.jobs.get(&task).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Success);
    assert_eq!(
        after.result_blob, before.result_blob,
        "the result was not redone"
    );
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(r.result(&task).await.2, bytes);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(r.status(&unknown).await.0, 404);
    assert_eq!(r.result(&unknown).await.0, 404);
    assert_eq!(r.status("not-a-uuid").await.0, 400);
    r.drop().await;
}
