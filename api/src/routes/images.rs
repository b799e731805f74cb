//! Image resize jobs: upload (multipart) -> original stored in GridFS -> ResizeRequested -> 202 with
//! a task id; the job's status; the result's bytes. The format is sniffed from the bytes and the
//! header's dimensions checked before anything is queued (the worker checks again, and decodes
//! under limits).

use actix_multipart::Multipart;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures::TryStreamExt;
use schemas::domain::{DomainError, EventId, TaskId, Timestamp};
use schemas::events::{ImageFormat as OutFormat, ResizeFit, ResizeRequested};
use serde::Serialize;
use stores::images::{check_size, probe, ImageLimits, JobStatus};
use utoipa::ToSchema;

use super::all_valid;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::TraceContext;

/// The multipart form, for the OpenAPI document.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ResizeForm {
    /// The image: PNG, JPEG or WebP (sniffed from the bytes).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// 1..=8192 (IMAGE_MAX_OUTPUT_SIDE).
    width: u32,
    height: u32,
    /// `exact` (default: exactly width x height), `contain` (fits inside, keeps the aspect ratio) or
    /// `cover` (fills, center-cropped).
    fit: Option<String>,
    /// `jpeg`, `png` or `webp` (default: the source's format).
    format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskAccepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    #[schema(format = Uuid)]
    pub task_id: String,
}

fn store(e: impl std::fmt::Display) -> ApiError {
    ApiError::StoreUnavailable(e.to_string())
}

fn invalid(field: &'static str, e: impl std::fmt::Display) -> ApiError {
    DomainError::new(field, e.to_string()).into()
}

/// The form's fields: `file` and at most these, each once (so a form has at most six parts).
const FORM_FIELDS: [&str; 5] = ["width", "height", "fit", "format", "file"];
/// Room for the form's other fields and its framing, beside `IMAGE_MAX_UPLOAD_BYTES` of file.
pub const FORM_OVERHEAD: usize = 64 * 1024;
/// The most bytes of a field other than `file`.
const FIELD_MAX_BYTES: usize = 256;

type Form = (Option<Vec<u8>>, std::collections::HashMap<String, String>);

/// Reads the upload within its bounds: the whole body at most `IMAGE_MAX_UPLOAD_BYTES` +
/// [`FORM_OVERHEAD`] (413, refused from `Content-Length` before reading when it says more), the
/// preamble and each part's headers at most [`super::form::MAX_PART_HEADER`] (400), only the known
/// fields, each once (400 naming the field, before its value is read).
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Form, ApiError> {
    use super::form::{Guarded, Refusal};
    let cap = limit + FORM_OVERHEAD;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(ApiError::TooLarge(cap));
    }
    let boundary = req
        .mime_type()
        .ok()
        .flatten()
        .and_then(|m| {
            m.get_param(actix_web::mime::BOUNDARY)
                .map(|b| b.as_str().to_string())
        })
        .ok_or_else(|| invalid("form", "multipart/form-data with a boundary is required"))?;
    let (guarded, refused) = Guarded::new(payload, &boundary, cap);
    let mut form = Multipart::new(req.headers(), guarded);
    let framing = |e: actix_multipart::MultipartError| match refused.get() {
        Some(Refusal::TooLarge) => ApiError::TooLarge(cap),
        Some(Refusal::HeaderTooLong) => invalid(
            "form",
            format!(
                "a part's headers (or the preamble) are longer than {} bytes",
                super::form::MAX_PART_HEADER
            ),
        ),
        None => ApiError::BadJson(format!("multipart: {e}")),
    };
    let (mut file, mut fields) = (None::<Vec<u8>>, std::collections::HashMap::new());
    while let Some(mut field) = form.try_next().await.map_err(framing)? {
        let name = field.name().unwrap_or_default().to_string();
        if !FORM_FIELDS.contains(&name.as_str()) {
            return Err(invalid(
                "form",
                format!(
                    "unknown field {name:?} (the form takes {})",
                    FORM_FIELDS.join(", ")
                ),
            ));
        }
        if fields.contains_key(&name) || (name == "file" && file.is_some()) {
            return Err(invalid("form", format!("field {name} is sent twice")));
        }
        let cap = if name == "file" {
            limit
        } else {
            FIELD_MAX_BYTES
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(framing)? {
            if bytes.len() + chunk.len() > cap {
                return Err(if name == "file" {
                    ApiError::TooLarge(limit)
                } else {
                    invalid("form", format!("field {name} is too long"))
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == "file" {
            file = Some(bytes);
        } else {
            fields.insert(name, String::from_utf8_lossy(&bytes).trim().to_string());
        }
    }
    Ok((file, fields))
}

/// Queue a resize of an uploaded image.
#[utoipa::path(post, path = "/api/v1/images/resize", tag = "images",
    request_body(content = ResizeForm, content_type = "multipart/form-data"),
    responses((status = 202, body = TaskAccepted), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn resize(
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let read = read_form(&req, payload, state.images.max_upload_bytes);
    let (file, fields) = tokio::time::timeout(state.limits.body_timeout, read)
        .await
        .map_err(|_| super::body_timeout(state.limits.body_timeout))??;
    let side = |name: &'static str| -> Result<u32, DomainError> {
        fields
            .get(name)
            .ok_or_else(|| DomainError::new(name, "is required"))?
            .parse::<u32>()
            .map_err(|_| DomainError::new(name, "must be a positive integer"))
    };
    let (width, height) = (side("width"), side("height"));
    let fit = match fields.get("fit").map(String::as_str) {
        None | Some("") | Some("exact") => Ok(ResizeFit::Exact),
        Some("contain") => Ok(ResizeFit::Contain),
        Some("cover") => Ok(ResizeFit::Cover),
        Some(_) => Err(DomainError::new("fit", "must be exact, contain or cover")),
    };
    let format = match fields.get("format").map(String::as_str) {
        None | Some("") => Ok(None),
        Some("jpeg") | Some("jpg") => Ok(Some(OutFormat::Jpeg)),
        Some("png") => Ok(Some(OutFormat::Png)),
        Some("webp") => Ok(Some(OutFormat::Webp)),
        Some(_) => Err(DomainError::new("format", "must be jpeg, png or webp")),
    };
    let file_err = file
        .is_none()
        .then(|| DomainError::new("file", "is required"));
    all_valid([
        width.as_ref().err(),
        height.as_ref().err(),
        fit.as_ref().err(),
        format.as_ref().err(),
        file_err.as_ref(),
    ])?;
    let (width, height, fit, file) = (width?, height?, fit?, file.unwrap_or_default());
    let limits = state.images.limits;
    check_size(width, height, &limits).map_err(|e| invalid("width", e))?;
    let (source, _, _) = probe(&file, &limits).map_err(|e| invalid("file", e))?;
    let format = format?.unwrap_or(match source {
        image::ImageFormat::Jpeg => OutFormat::Jpeg,
        image::ImageFormat::WebP => OutFormat::Webp,
        _ => OutFormat::Png,
    });

    let task_id = TaskId::from_uuid(uuid::Uuid::new_v4());
    let jobs = &state.images.jobs;
    let blob = jobs
        .put_blob(&format!("{task_id}.source"), &file)
        .await
        .map_err(store)?;
    if let Err(e) = jobs
        .create(&task_id.to_string(), &blob, &caller.owner_tag())
        .await
    {
        // No job points at the original: delete it now, the sweeper would never find it.
        let _ = jobs.delete_blob(&blob).await;
        return Err(store(e));
    }
    let event = ResizeRequested {
        event_id: EventId::new_random(),
        task_id,
        blob_id: blob,
        width: width as i32,
        height: height as i32,
        fit,
        format,
        occurred_at: Timestamp::now(),
    };
    let trace = TraceContext::of(&req);
    if let Err(e) = state.producer.send(&event, &trace.kafka_headers()).await {
        let _ = jobs
            .mark(
                &task_id.to_string(),
                JobStatus::Failure,
                Some("could not be queued"),
            )
            .await;
        return Err(e.into());
    }
    Ok(HttpResponse::Accepted().json(TaskAccepted {
        status: "accepted",
        task_id: task_id.to_string(),
    }))
}

/// What the API needs of the image pipeline (`IMAGE_MAX_UPLOAD_BYTES` and the worker's limits).
#[derive(Clone)]
pub struct Images {
    pub jobs: stores::images::ImageJobs,
    pub max_upload_bytes: usize,
    pub limits: ImageLimits,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStatus {
    #[schema(format = Uuid)]
    pub task_id: String,
    /// PENDING, STARTED, SUCCESS or FAILURE.
    pub status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A resize job's status. A user token reads only its own jobs (another's is 404, as an unknown
/// id); an API key reads all.
#[utoipa::path(get, path = "/api/v1/status/{task_id}", tag = "images",
    params(("task_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TaskStatus), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn status(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let task = TaskId::parse(&path)?.to_string();
    let job = state
        .images
        .jobs
        .get(&task)
        .await
        .map_err(store)?
        .filter(|job| caller.may_read(job.owner.as_deref()))
        .ok_or_else(|| ApiError::NotFound(format!("no task {task}")))?;
    let status = serde_json::to_value(job.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(TaskStatus {
        task_id: task,
        status,
        error: job.error,
    }))
}

/// The resized image (404 until the job succeeded, and after the result expired).
#[utoipa::path(get, path = "/api/v1/images/result/{task_id}", tag = "images",
    params(("task_id" = String, Path, format = Uuid)),
    responses((status = 200, description = "the image bytes", content_type = "image/*"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn result(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let task = TaskId::parse(&path)?.to_string();
    let jobs = &state.images.jobs;
    // Another user's job answers as an unknown one: its existence is not theirs to learn.
    let job = jobs
        .get(&task)
        .await
        .map_err(store)?
        .filter(|job| caller.may_read(job.owner.as_deref()));
    let now = Timestamp::now().millis();
    let (blob, content_type) = match job {
        Some(j) if j.status == JobStatus::Success && j.expires_at.is_none_or(|e| e > now) => (
            j.result_blob.unwrap_or_default(),
            j.content_type.unwrap_or_default(),
        ),
        Some(j) if j.status == JobStatus::Success => {
            return Err(ApiError::NotFound(format!(
                "the result of {task} has expired"
            )))
        }
        Some(_) => {
            return Err(ApiError::NotFound(format!(
                "task {task} has no result (yet)"
            )))
        }
        None => return Err(ApiError::NotFound(format!("no task {task}"))),
    };
    let bytes = jobs
        .get_blob(&blob)
        .await
        .map_err(store)?
        .ok_or_else(|| ApiError::NotFound(format!("the result of {task} is gone")))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, max-age=3600"))
        .body(bytes))
}
