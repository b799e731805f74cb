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
        self.upload_as(None, file, filename, fields).await
    }

    /// A request with the service key, or with `user`'s token.
    fn authed(
        &self,
        builder: reqwest::RequestBuilder,
        user: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match user {
            None => builder.header("x-api-key", API_KEY),
            Some(user) => builder.bearer_auth(crate::helpers::token(user, 3600)),
        }
    }

    async fn upload_as(
        &self,
        user: Option<&str>,
        file: &[u8],
        filename: &str,
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
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
            .authed(
                self.app.client.post(self.app.url("/api/v1/images/resize")),
                user,
            )
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
        self.status_as(None, task).await
    }

    async fn status_as(&self, user: Option<&str>, task: &str) -> (u16, Value) {
        let resp = self
            .authed(
                self.app
                    .client
                    .get(self.app.url(&format!("/api/v1/status/{task}"))),
                user,
            )
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
        self.result_as(None, task).await
    }

    async fn result_as(&self, user: Option<&str>, task: &str) -> (u16, String, Vec<u8>) {
        let resp = self
            .authed(
                self.app
                    .client
                    .get(self.app.url(&format!("/api/v1/images/result/{task}"))),
                user,
            )
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
    r.jobs
        .create(&task.to_string(), &blob, "service:tests")
        .await
        .unwrap();
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

/// Uploads are bounded before anything is buffered or queued: a declared length over the cap is
/// 413 unread; unknown or repeated fields are 400 at their headers; a preamble or a part header
/// that never ends is 400 after 8 KiB (the client, still connected, has sent no more); a client
/// that stalls mid-body is cut off with 408. No job is created by any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_forms_are_refused_early() {
    use crate::helpers::stalled_request;
    // Uploads up to 4 MiB: the junk form below (1.2 MB) is refused for its first field, whatever
    // the server has buffered by then, not for its size.
    let r = resizing(4 << 20).await;
    let wait = Duration::from_secs(10);
    let head = |length: usize| {
        format!(
            "POST /api/v1/images/resize HTTP/1.1\r\nX-Api-Key: {API_KEY}\r\n\
             Content-Type: multipart/form-data; boundary=XB\r\nContent-Length: {length}"
        )
    };
    // A gigabyte announced: refused from the header, nothing sent.
    let (code, body) = stalled_request(&r.app, &head(1 << 30), b"", wait)
        .await
        .expect("answered without the body");
    assert_eq!(code, 413, "{body}");
    // 20,000 junk fields: the first one is refused, the rest never read.
    let junk: String = (0..20_000)
        .map(|i| format!("--XB\r\nContent-Disposition: form-data; name=\"junk{i}\"\r\n\r\nx\r\n"))
        .collect();
    // Chunked, so no declared length stops it first.
    let chunked = format!(
        "POST /api/v1/images/resize HTTP/1.1\r\nX-Api-Key: {API_KEY}\r\n\
         Content-Type: multipart/form-data; boundary=XB\r\nTransfer-Encoding: chunked"
    );
    let chunk = |bytes: &[u8]| {
        let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
        framed.extend(bytes);
        framed.extend(b"\r\n");
        framed
    };
    let (code, body) = stalled_request(&r.app, &chunked, &chunk(junk.as_bytes()), wait)
        .await
        .expect("answered");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field \\\"junk0\\\""), "{body}");
    // A field sent twice.
    let (code, body) = r
        .upload(
            &picture(8, 8, ImageFormat::Png),
            "ok.png",
            &[("width", "10"), ("width", "20"), ("height", "10")],
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("sent twice"), "{body}");
    // A preamble without a newline (of any length: chunked); 64 KiB arrive, then the client waits.
    let preamble = vec![b'p'; 64 * 1024];
    let (code, body) = stalled_request(&r.app, &chunked, &chunk(&preamble), wait)
        .await
        .expect("answered after 8 KiB, without waiting for the rest");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("8192 bytes"), "{body}");
    // The same with a part header that never ends.
    let mut endless = b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ".to_vec();
    endless.extend(vec![b'h'; 64 * 1024]);
    let (code, body) = stalled_request(&r.app, &chunked, &chunk(&endless), wait)
        .await
        .expect("answered");
    assert_eq!(code, 400, "{body}");
    let jobs =
        r.db.collection::<mongodb::bson::Document>(stores::images::RESIZE_JOBS)
            .count_documents(mongodb::bson::doc! {})
            .await
            .unwrap();
    assert_eq!(jobs, 0, "nothing was queued");
    r.drop().await;
}

/// A client that sends part of a body and stalls is answered 408 after `API_BODY_TIMEOUT`, for
/// JSON and for uploads, and its connection does not hold a handler forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off() {
    use crate::helpers::stalled_request;
    let mut settings = test_settings();
    settings.limits.body_timeout = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    for (path, content_type, partial) in [
        (
            "/api/v1/anonymous-events",
            "application/json",
            &b"{\"anonymous_id\": \"slow\""[..],
        ),
        (
            "/api/v1/images/resize",
            "multipart/form-data; boundary=XB",
            &b"--XB\r\nContent-Disposition: form-data; name=\"width\"\r\n\r\n1"[..],
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nX-Api-Key: {API_KEY}\r\nContent-Type: {content_type}\r\n\
             Content-Length: 1000"
        );
        let started = std::time::Instant::now();
        let (code, body) = stalled_request(&app, &head, partial, Duration::from_secs(10))
            .await
            .expect("answered while the client still holds the connection");
        assert_eq!(code, 408, "{path}: {body}");
        assert!(body.contains("API_BODY_TIMEOUT"), "{body}");
        assert!(started.elapsed() >= Duration::from_secs(1), "{path}");
    }
}

/// A user's job is theirs: another user's token gets 404 for its status and result (as for an
/// unknown id), a service key reads it. The sweeper deletes originals and results once the result
/// expired (`IMAGE_RESULT_TTL_SECS`) and originals of jobs never processed in that time (marked
/// FAILURE), repeats harmlessly, and forgets the job a TTL later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_belong_to_their_creator_and_are_swept_after_their_ttl() {
    let r = resizing(1 << 20).await;
    let (alice, bob) = (crate::helpers::new_id(), crate::helpers::new_id());
    let fields = [("width", "4"), ("height", "4")];
    let (code, body) = r
        .upload_as(
            Some(&alice),
            &picture(16, 16, ImageFormat::Png),
            "a.png",
            &fields,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let task = body["task_id"].as_str().unwrap().to_string();
    assert_eq!(r.finished(&task).await["status"], "SUCCESS");
    assert_eq!(r.status_as(Some(&alice), &task).await.0, 200);
    let (code, _, bytes) = r.result_as(Some(&alice), &task).await;
    assert_eq!(code, 200);
    assert!(!bytes.is_empty());
    let (code, body) = r.status_as(Some(&bob), &task).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"], "not found");
    assert_eq!(r.result_as(Some(&bob), &task).await.0, 404);
    assert_eq!(r.result(&task).await.0, 200, "a service reads every job");

    // A job queued and never processed (its worker gone).
    let stale_blob = r.jobs.put_blob("stale", b"original").await.unwrap();
    let stale = uuid::Uuid::new_v4().to_string();
    r.jobs
        .create(&stale, &stale_blob, "service:tests")
        .await
        .unwrap();

    let done = r.jobs.get(&task).await.unwrap().unwrap();
    let (source, result) = (done.source_blob.clone(), done.result_blob.clone().unwrap());
    assert!(r.jobs.get_blob(&result).await.unwrap().is_some());
    let ttl = 3_600_000; // the fixture's worker keeps results an hour
    let now = schemas::domain::Timestamp::now().millis();
    // Before anything is due, nothing is touched.
    let swept = r.jobs.sweep(ttl, now).await.unwrap();
    assert_eq!((swept.jobs, swept.forgotten), (0, 0));
    assert!(r.jobs.get_blob(&source).await.unwrap().is_some());
    // Past the result's expiry and the stale job's TTL: both jobs' blobs go.
    let later = now + ttl + 60_000;
    let swept = r.jobs.sweep(ttl, later).await.unwrap();
    assert_eq!((swept.jobs, swept.forgotten), (2, 0));
    for blob in [&source, &result, &stale_blob] {
        assert_eq!(r.jobs.get_blob(blob).await.unwrap(), None, "{blob}");
    }
    assert_eq!(r.result(&task).await.0, 404, "the result is gone");
    let (code, body) = r.status(&stale).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "FAILURE");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("IMAGE_RESULT_TTL_SECS"),
        "{body}"
    );
    // Again: nothing more to do (a second sweeper, or one restarted after a crash).
    let swept = r.jobs.sweep(ttl, later).await.unwrap();
    assert_eq!((swept.jobs, swept.forgotten), (0, 0));
    // A TTL after the sweep the jobs themselves are forgotten.
    let swept = r.jobs.sweep(ttl, later + ttl).await.unwrap();
    assert_eq!(swept.forgotten, 2);
    assert_eq!(r.status(&task).await.0, 404);
    r.drop().await;
}
