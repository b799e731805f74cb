//! Home feeds from Redis (written by the feed fan-out consumers): the caller's feed, merged with
//! the posts of the celebrities they follow, and a post's fan-out progress.

use actix_web::{web, HttpResponse};
use schemas::domain::{DomainError, PostId, UserId};
use serde::{Deserialize, Serialize};
use stores::feeds::Cursor;
use utoipa::{IntoParams, ToSchema};

use super::all_valid;
use super::lists::iso_millis;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

fn unavailable(e: stores::feeds::FeedError) -> ApiError {
    ApiError::StoreUnavailable(e.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FeedQuery {
    /// 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page: posts older than it.
    pub before: Option<String>,
    /// Only for services (X-Api-Key): whose feed. A user token implies it.
    #[param(format = Uuid)]
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedItem {
    #[schema(format = Uuid)]
    pub post_id: String,
    #[schema(format = Uuid)]
    pub author_id: String,
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// Pass as `before` for older posts; null at the end. Stable while new posts arrive.
    pub next_cursor: Option<String>,
}

/// The caller's home feed, newest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/feed", tag = "posts",
    params(FeedQuery),
    responses((status = 200, body = FeedPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn feed(
    caller: Caller,
    query: web::Query<FeedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    let l = (1..=100)
        .contains(&limit)
        .then_some(limit as usize)
        .ok_or_else(|| DomainError::new("limit", "must be 1 to 100"));
    let before = query
        .before
        .as_deref()
        .map(|b| {
            Cursor::parse(b)
                .filter(|c| PostId::parse(&c.post_id).is_ok())
                .ok_or_else(|| DomainError::new("before", "not a cursor from this API"))
        })
        .transpose();
    let named = query
        .user_id
        .as_deref()
        .map(|u| UserId::parse(u).map_err(|e| DomainError::new("user_id", e.reason)))
        .transpose();
    all_valid([
        l.as_ref().err(),
        before.as_ref().err(),
        named.as_ref().err(),
    ])?;
    let (limit, before) = (l?, before?);
    let user = caller.acting_user(named?)?;
    let posts = state
        .feeds
        .read(&user.to_string(), before.as_ref(), limit)
        .await
        .map_err(unavailable)?;
    let next_cursor = (posts.len() == limit)
        .then(|| posts.last())
        .flatten()
        .map(|p| {
            Cursor {
                at_ms: p.created_at,
                post_id: p.post_id.clone(),
            }
            .to_string()
        });
    let items = posts
        .into_iter()
        .map(|p| FeedItem {
            post_id: p.post_id,
            author_id: p.author_id,
            text: p.text,
            created_at: iso_millis(p.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(FeedPage { items, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FanoutProgress {
    #[schema(format = Uuid)]
    pub post_id: String,
    /// `celebrity` (merged at read time, no fan-out), `fanning_out` or `done`.
    pub state: String,
    /// The author's followers when the walk began.
    pub followers: u64,
    pub pages_emitted: u32,
    pub pages_done: u32,
    /// Known once every page is emitted.
    pub pages_total: Option<u32>,
}

/// A post's fan-out progress: pages emitted by the planner and written by the workers.
#[utoipa::path(get, path = "/api/v1/posts/{post_id}/fanout", tag = "posts",
    params(("post_id" = String, Path, format = Uuid)),
    responses((status = 200, body = FanoutProgress), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn fanout(
    _caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let post = PostId::parse(&path)?.to_string();
    let p = state
        .feeds
        .progress(&post)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("no fan-out recorded for post {post}")))?;
    let state = if p.celebrity {
        "celebrity"
    } else if p.planned && p.pages_done >= p.pages_emitted {
        "done"
    } else {
        "fanning_out"
    };
    Ok(HttpResponse::Ok().json(FanoutProgress {
        post_id: post,
        state: state.to_string(),
        followers: p.followers,
        pages_emitted: p.pages_emitted,
        pages_done: p.pages_done,
        pages_total: p.planned.then_some(p.pages_emitted),
    }))
}
