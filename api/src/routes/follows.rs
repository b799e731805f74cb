//! Follows: the follower is the caller (a user token), or for a service the `follower_id` it names.

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, UserId};
use schemas::events::{Follow, FollowAction};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{all_valid, event_id, json_body, occurred_at, produce, TimeInput, WriteResponses};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FollowRequest {
    /// Only for services (X-Api-Key): the user who follows. A user token implies it.
    #[schema(format = Uuid)]
    pub follower_id: Option<String>,
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    pub occurred_at: Option<TimeInput>,
}

async fn write(
    req: HttpRequest,
    caller: Caller,
    followee: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
    action: FollowAction,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::<FollowRequest>(body, state.limits.max_body_bytes).await?;
    let event_id = event_id(body.event_id.as_deref());
    let followee_id =
        UserId::parse(&followee).map_err(|e| DomainError::new("followee_id", e.reason));
    let named = body
        .follower_id
        .as_deref()
        .map(|f| UserId::parse(f).map_err(|e| DomainError::new("follower_id", e.reason)))
        .transpose();
    let occurred_at = occurred_at("occurred_at", body.occurred_at.as_ref());
    all_valid([
        event_id.as_ref().err(),
        followee_id.as_ref().err(),
        named.as_ref().err(),
        occurred_at.as_ref().err(),
    ])?;
    let follower_id = caller.acting_user(named?)?;
    let followee_id = followee_id?;
    if follower_id == followee_id {
        return Err(DomainError::new("followee_id", "a user cannot follow themselves").into());
    }
    let event = Follow {
        event_id: event_id?,
        follower_id,
        followee_id,
        action,
        occurred_at: occurred_at?,
    };
    produce(&state, &req, event).await
}

/// Follow a user.
#[utoipa::path(post, path = "/api/v1/follows/{followee_id}", tag = "follows",
    params(("followee_id" = String, Path, format = Uuid)),
    request_body(content = Option<FollowRequest>, description = "optional"), responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn follow(
    req: HttpRequest,
    caller: Caller,
    followee: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write(req, caller, followee, body, state, FollowAction::Follow).await
}

/// Unfollow a user.
#[utoipa::path(delete, path = "/api/v1/follows/{followee_id}", tag = "follows",
    params(("followee_id" = String, Path, format = Uuid)),
    request_body(content = Option<FollowRequest>, description = "optional"), responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn unfollow(
    req: HttpRequest,
    caller: Caller,
    followee: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write(req, caller, followee, body, state, FollowAction::Unfollow).await
}
