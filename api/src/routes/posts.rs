//! Posts: produced as PostCreated for the feed fan-out.

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, PostId, UserId};
use schemas::events::PostCreated;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{all_valid, event_id, json_body, occurred_at, send, TimeInput, WriteResponses};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_TEXT_CHARS: usize = 5000;

#[derive(Debug, Deserialize, ToSchema)]
pub struct PostRequest {
    /// 1 to 5000 characters.
    #[schema(min_length = 1, max_length = 5000)]
    pub text: String,
    /// Optional client-chosen post id (an id another author already used gets 409; the same
    /// author sending it again is idempotent).
    #[schema(format = Uuid)]
    pub post_id: Option<String>,
    /// Only for services (X-Api-Key): the author. A user token implies it.
    #[schema(format = Uuid)]
    pub author_id: Option<String>,
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    pub occurred_at: Option<TimeInput>,
}

/// Publish a post to the author's followers.
#[utoipa::path(post, path = "/api/v1/posts", tag = "posts",
    request_body = PostRequest,
    // Every write's responses, with this endpoint's 202 body and its 409.
    responses(WriteResponses,
        (status = 202, description = "Kafka acknowledged the post; `Location` is its fan-out progress",
            body = PostAccepted, headers(("Location" = String))),
        (status = 409, description = "The `post_id` belongs to another author", body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::<PostRequest>(body, &state.limits).await?;
    let event_id = event_id(body.event_id.as_deref());
    let post_id = body.post_id.as_deref().map_or_else(
        || Ok(PostId::from_uuid(uuid::Uuid::new_v4())),
        PostId::parse,
    );
    let named = body
        .author_id
        .as_deref()
        .map(|a| UserId::parse(a).map_err(|e| DomainError::new("author_id", e.reason)))
        .transpose();
    let chars = body.text.chars().count();
    let text = if body.text.trim().is_empty() || chars > MAX_TEXT_CHARS {
        Err(DomainError::new(
            "text",
            format!("must be 1 to {MAX_TEXT_CHARS} characters"),
        ))
    } else {
        Ok(body.text)
    };
    let occurred_at = occurred_at("occurred_at", body.occurred_at.as_ref());
    all_valid([
        event_id.as_ref().err(),
        post_id.as_ref().err(),
        named.as_ref().err(),
        text.as_ref().err(),
        occurred_at.as_ref().err(),
    ])?;
    let event = PostCreated {
        event_id: event_id?,
        post_id: post_id?,
        author_id: caller.acting_user(named?)?,
        text: text?,
        occurred_at: occurred_at?,
    };
    super::within_time_bounds(&state, &event)?;
    let (post, author) = (event.post_id.to_string(), event.author_id.to_string());
    if let Some(owner) = state
        .feeds
        .claim_post(&post, &author)
        .await
        .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?
    {
        tracing::info!(post, owner, author, "post id taken by another author");
        return Err(ApiError::Conflict(format!(
            "post_id {post} belongs to another author"
        )));
    }
    send(&state, &req, &event).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/posts/{post}/fanout")))
        .json(PostAccepted {
            status: "accepted",
            event_id: event.event_id.to_string(),
            post_id: post,
        }))
}

/// A post was accepted: its id (the one the feeds show) and where its fan-out can be followed.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PostAccepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    #[schema(format = Uuid)]
    pub event_id: String,
    #[schema(format = Uuid)]
    pub post_id: String,
}
