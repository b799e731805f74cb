//! Views prediction over Kafka request/reply: `POST /api/v1/videos/views-prediction` produces a
//! ViewsPredictionRequested (its event id is the request id and the correlation id; the reply
//! topic is named in it), then waits up to `PREDICTION_WAIT_MS` for the views predictor's
//! ViewsPredicted: 200 with the prediction, 409 when the model has too little data, or 202 with
//! where to poll (`GET /api/v1/videos/views-prediction/{request_id}`, any API instance, for
//! `PREDICTION_RESULT_TTL_SECS`).

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, EventId, Timestamp};
use schemas::events::{ViewsPredicted, ViewsPredictionRequested};
use serde::{Deserialize, Serialize};
use stores::replies::ReplyState;
use utoipa::ToSchema;

use super::{all_valid, json_body, send};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct PredictionRequest {
    /// The video's title, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// The channel's subscribers, 0 to 10,000,000,000.
    pub channel_subscribers: i64,
    /// The upload's date: `YYYY-MM-DD` (midnight UTC) or RFC 3339.
    pub upload_date: String,
    /// An http(s) URL of at most 2,048 characters (not used by the current model).
    pub thumbnail_url: Option<String>,
}

/// One day of a prediction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PredictedDay {
    /// Days after upload, 1 to 31.
    pub day: u32,
    /// Cumulative views at the end of that day.
    pub views: i64,
    /// The 90 % interval.
    pub lower: i64,
    pub upper: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionAnswer {
    #[schema(format = Uuid)]
    pub request_id: String,
    /// `predicted`.
    pub status: String,
    /// The model that answered.
    pub model_version: String,
    pub training_videos: i64,
    pub days: Vec<PredictedDay>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionPending {
    #[schema(format = Uuid)]
    pub request_id: String,
    /// `pending`.
    pub status: &'static str,
    /// Where to ask again.
    pub poll: String,
}

fn validate(body: &PredictionRequest) -> Result<Timestamp, ApiError> {
    let title = (1..=200)
        .contains(&body.title.trim().chars().count())
        .then_some(())
        .ok_or_else(|| DomainError::new("title", "must be 1 to 200 characters"));
    let subs = (0..=10_000_000_000)
        .contains(&body.channel_subscribers)
        .then_some(())
        .ok_or_else(|| DomainError::new("channel_subscribers", "must be 0 to 10000000000"));
    let raw = body.upload_date.trim();
    let date = if raw.len() == 10 {
        Timestamp::parse_rfc3339("upload_date", &format!("{raw}T00:00:00Z"))
    } else {
        Timestamp::parse_rfc3339("upload_date", raw)
    };
    let date = date.and_then(|d| {
        (d.millis() >= 1_104_537_600_000 && d.millis() < 4_102_444_800_000)
            .then_some(d)
            .ok_or_else(|| {
                DomainError::new("upload_date", "must be from 2005 (YouTube's start) to 2099")
            })
    });
    let thumbnail = body.thumbnail_url.as_deref().map_or(Ok(()), |u| {
        (u.len() <= 2048 && (u.starts_with("https://") || u.starts_with("http://")))
            .then_some(())
            .ok_or_else(|| {
                DomainError::new(
                    "thumbnail_url",
                    "must be an http(s) URL of at most 2048 characters",
                )
            })
    });
    all_valid([
        title.as_ref().err(),
        subs.as_ref().err(),
        date.as_ref().err(),
        thumbnail.as_ref().err(),
    ])?;
    Ok(date?)
}

fn poll_path(request_id: &str) -> String {
    format!("/api/v1/videos/views-prediction/{request_id}")
}

/// The answer a reply makes: 200 with the prediction, or 409 when there was not enough data.
fn answered(reply: ViewsPredicted) -> Result<HttpResponse, ApiError> {
    if reply.status != "predicted" {
        return Err(ApiError::NotEnoughData(reply.message));
    }
    let days = (0..reply.views.len())
        .map(|i| PredictedDay {
            day: i as u32 + 1,
            views: reply.views[i],
            lower: reply.lower.get(i).copied().unwrap_or(reply.views[i]),
            upper: reply.upper.get(i).copied().unwrap_or(reply.views[i]),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PredictionAnswer {
        request_id: reply.request_id,
        status: reply.status,
        model_version: reply.model_version,
        training_videos: reply.training_videos,
        days,
    }))
}

fn pending(request_id: String) -> HttpResponse {
    let poll = poll_path(&request_id);
    HttpResponse::Accepted()
        .insert_header(("Location", poll.clone()))
        .json(PredictionPending {
            request_id,
            status: "pending",
            poll,
        })
}

fn store_unavailable(e: stores::replies::ReplyError) -> ApiError {
    ApiError::StoreUnavailable(e.to_string())
}

/// Predicts a video's cumulative views for each of its first 31 days, with a 90 % interval,
/// from the views predictor (over Kafka). Waits up to `PREDICTION_WAIT_MS` (2 s) for the answer,
/// else answers 202 with where to poll.
#[utoipa::path(post, path = "/api/v1/videos/views-prediction", tag = "videos",
    request_body = PredictionRequest,
    responses((status = 200, body = PredictionAnswer), (status = 202, body = PredictionPending),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 409, description = "Not enough data to predict: the model has too few videos", body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn request(
    req: HttpRequest,
    _caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::<PredictionRequest>(body, &state.limits).await?;
    let upload_date = validate(&body)?;
    let event = ViewsPredictionRequested {
        event_id: EventId::new_random(),
        title: body.title.trim().to_string(),
        channel_subscribers: body.channel_subscribers,
        upload_date,
        thumbnail_url: body.thumbnail_url,
        reply_topic: schemas::topics::VIEWS_PREDICTIONS.to_string(),
        occurred_at: Timestamp::now(),
    };
    let id = event.event_id.to_string();
    let replies = &state.replies;
    replies
        .store
        .pending(&id)
        .await
        .map_err(store_unavailable)?;
    let reply = replies.wait_for(&id);
    if let Err(e) = send(&state, &req, &event).await {
        replies.forget(&id);
        return Err(e);
    }
    let outcome = tokio::time::timeout(state.limits.prediction_wait, reply).await;
    replies.forget(&id);
    match outcome {
        Ok(Ok(reply)) => answered(reply),
        _ => Ok(pending(id)),
    }
}

/// A views prediction asked for earlier: 200 or 409 once answered, 202 while pending, 404 for an
/// unknown (or expired) request id.
#[utoipa::path(get, path = "/api/v1/videos/views-prediction/{request_id}", tag = "videos",
    params(("request_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PredictionAnswer), (status = 202, body = PredictionPending),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn poll(
    _caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = EventId::parse(&path.into_inner())
        .map_err(|_| DomainError::new("request_id", "must be a UUID"))?
        .to_string();
    match state
        .replies
        .store
        .state(&id)
        .await
        .map_err(store_unavailable)?
    {
        ReplyState::Answered(json) => {
            let reply: ViewsPredicted = serde_json::from_str(&json)
                .map_err(|e| ApiError::Internal(format!("a stored reply does not read: {e}")))?;
            answered(reply)
        }
        ReplyState::Pending => Ok(pending(id)),
        ReplyState::Unknown => Err(ApiError::NotFound(format!(
            "no views prediction request {id} (unknown, or older than PREDICTION_RESULT_TTL_SECS)"
        ))),
    }
}
