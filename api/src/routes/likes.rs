//! Ratings: a score 0..10 per user and movie (10 is a like, 0 a dislike); the newest wins.

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{MovieId, Score, UserId};
use schemas::events::Rating;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{all_valid, event_id, json_body, occurred_at, produce, TimeInput, WriteResponses};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RatingRequest {
    /// 0..=10.
    #[schema(minimum = 0, maximum = 10)]
    pub score: i64,
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    pub occurred_at: Option<TimeInput>,
}

impl RatingRequest {
    pub fn into_event(self, user_id: &str, movie_id: &str) -> Result<Rating, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(user_id);
        let movie_id = MovieId::parse(movie_id);
        let score = Score::parse(self.score);
        let occurred_at = occurred_at("occurred_at", self.occurred_at.as_ref());
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            movie_id.as_ref().err(),
            score.as_ref().err(),
            occurred_at.as_ref().err(),
        ])?;
        Ok(Rating {
            event_id: event_id?,
            user_id: user_id?,
            movie_id: movie_id?,
            score: score?,
            occurred_at: occurred_at?,
        })
    }
}

/// Rate a movie 0..10.
#[utoipa::path(post, path = "/api/v1/likes/users/{user_id}/movies/{movie_id}", tag = "likes",
    params(("user_id" = String, Path, format = Uuid), ("movie_id" = String, Path, format = Uuid)),
    request_body = RatingRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn rate(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<RatingRequest>(body, state.limits.max_body_bytes)
        .await?
        .into_event(&path.0, &path.1)?;
    caller.may_act_for(&event.user_id)?;
    produce(&state, &req, event).await
}
