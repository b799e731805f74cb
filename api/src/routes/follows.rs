//! Follows: the follower is the caller (a user token), or for a service the `follower_id` it names;
//! and a user's followers and followees, walked by cursor (user id order).

use actix_web::{web, HttpRequest, HttpResponse};
use futures::TryStreamExt;
use mongodb::bson::doc;
use schemas::domain::{DomainError, UserId};
use schemas::events::{Follow, FollowAction};
use serde::{Deserialize, Serialize};
use stores::mongo::{FollowDoc, ACTIVE, FOLLOWS};
use utoipa::ToSchema;

use super::lists::{iso_millis, CursorPage, CursorQuery};

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
    let body = json_body::<FollowRequest>(body, &state.limits).await?;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowItem {
    /// The follower (in a followers list) or the followee (in a following list).
    #[schema(format = Uuid)]
    pub user_id: String,
    /// RFC 3339: when the follow began.
    pub since: String,
}

/// Which side of the follow a list is about.
#[derive(Clone, Copy)]
enum Side {
    Followers,
    Following,
}

async fn walk(
    side: Side,
    user: &str,
    query: &CursorQuery,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(user)?.to_string();
    let limit = query.limit()?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| UserId::parse(c).map_err(|e| DomainError::new("cursor", e.reason)))
        .transpose()?;
    let (fixed, walked) = match side {
        Side::Followers => ("followee_id", "follower_id"),
        Side::Following => ("follower_id", "followee_id"),
    };
    let mut filter = doc! {fixed: &user, ACTIVE: true};
    if let Some(after) = after {
        filter.insert(walked, doc! {"$gt": after.to_string()});
    }
    let docs: Vec<FollowDoc> = state
        .mongo
        .collection::<FollowDoc>(FOLLOWS)
        .find(filter)
        .sort(doc! {walked: 1})
        .limit(limit + 1)
        .await?
        .try_collect()
        .await?;
    let more = docs.len() as i64 > limit;
    let items: Vec<FollowItem> = docs
        .into_iter()
        .take(limit as usize)
        .map(|d| FollowItem {
            user_id: match side {
                Side::Followers => d.follower_id,
                Side::Following => d.followee_id,
            },
            since: iso_millis(d.updated_at),
        })
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|i| i.user_id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(CursorPage { items, next_cursor }))
}

/// A user's followers, by follower id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/followers", tag = "follows",
    params(("user_id" = String, Path, format = Uuid), CursorQuery),
    responses((status = 200, body = CursorPage<FollowItem>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn followers(
    _caller: Caller,
    path: web::Path<String>,
    query: web::Query<CursorQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    walk(Side::Followers, &path, &query, &state).await
}

/// The users a user follows, by followee id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/following", tag = "follows",
    params(("user_id" = String, Path, format = Uuid), CursorQuery),
    responses((status = 200, body = CursorPage<FollowItem>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn following(
    _caller: Caller,
    path: web::Path<String>,
    query: web::Query<CursorQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    walk(Side::Following, &path, &query, &state).await
}
