//! Ratings: a score 0..10 per user and movie (10 is a like, 0 a dislike; the newest wins
//! downstream), and their reads: a user's ratings, a movie's summary, the top-rated movies.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use schemas::domain::{DomainError, MovieId, Score, UserId};
use schemas::events::Rating;
use serde::{Deserialize, Serialize};
use stores::mongo::{RatingDoc, RATINGS};
use utoipa::{IntoParams, ToSchema};

use super::lists::{iso_millis, page_of, Paged};
use super::{
    all_valid, event_id, json_body, occurred_at, page, produce_answering, PageQuery, TimeInput,
    WriteResponses,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use stores::mongo::number;

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
    request_body = RatingRequest,
    responses(WriteResponses, (status = 202,
        description = "Kafka acknowledged the rating; the answer also has `status` and `event_id`",
        body = RatingAccepted)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn rate(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<RatingRequest>(body, &state.limits)
        .await?
        .into_event(&path.0, &path.1)?;
    caller.may_act_for(&event.user_id)?;
    // The seed's clients read these back from the answer.
    let answer = RatingAccepted {
        user_id: event.user_id.to_string(),
        movie_id: event.movie_id.to_string(),
        score: event.score.get(),
    };
    produce_answering(&state, &req, event, answer).await
}

/// The 202 of a rating: `status` and `event_id` as every write, and the seed's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatingAccepted {
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    pub score: u8,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingItem {
    #[schema(format = Uuid)]
    pub movie_id: String,
    pub score: i32,
    /// RFC 3339: when the current score was given.
    pub rated_at: String,
    #[schema(format = Uuid)]
    pub event_id: String,
}

/// A user's ratings (likes are 10, dislikes 0), most recent first (a user reads their own).
#[utoipa::path(get, path = "/api/v1/likes/users/{user_id}", tag = "likes",
    params(("user_id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = Paged<RatingItem>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&path)?;
    caller.may_act_for(&user)?;
    let (page, size) = page(&query, state.limits.list_max_depth)?;
    let filter = doc! {"user_id": user.to_string()};
    let (total, docs, last) =
        page_of::<RatingDoc>(&state.mongo, RATINGS, filter.clone(), filter, (page, size)).await?;
    let items = docs
        .into_iter()
        .map(|d| RatingItem {
            movie_id: d.movie_id,
            score: d.score,
            rated_at: iso_millis(d.updated_at),
            event_id: d.event_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::new(items, total, page, size, last)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovieRating {
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// Mean score 0..10; null without ratings.
    pub average: Option<f64>,
    pub votes: u64,
    /// Scores of 10.
    pub likes: u64,
    /// Scores of 0.
    pub dislikes: u64,
    /// The calling user's own score, if they rated it (null for services).
    pub your_score: Option<i32>,
}

/// A movie's rating: average, votes, likes, dislikes, and the caller's own score.
#[utoipa::path(get, path = "/api/v1/movies/{movie_id}/rating", tag = "likes",
    params(("movie_id" = String, Path, format = Uuid)),
    responses((status = 200, body = MovieRating), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn movie_rating(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let movie = MovieId::parse(&path)?.to_string();
    let collection = state.mongo.collection::<Document>(RATINGS);
    let summary = async {
        let mut cursor = collection
            .aggregate([
                doc! {"$match": {"movie_id": &movie}},
                doc! {"$group": {
                    "_id": null,
                    "average": {"$avg": "$score"},
                    "votes": {"$sum": 1},
                    "likes": {"$sum": {"$cond": [{"$eq": ["$score", 10]}, 1, 0]}},
                    "dislikes": {"$sum": {"$cond": [{"$eq": ["$score", 0]}, 1, 0]}},
                }},
            ])
            .await?;
        Ok::<_, ApiError>(cursor.try_next().await?)
    };
    let own = async {
        match &caller {
            Caller::User(user) => Ok::<_, ApiError>(
                state
                    .mongo
                    .collection::<RatingDoc>(RATINGS)
                    .find_one(doc! {"user_id": user.to_string(), "movie_id": &movie})
                    .await?
                    .map(|d| d.score),
            ),
            Caller::Service(_) => Ok(None),
        }
    };
    let (summary, your_score) = futures::try_join!(summary, own)?;
    let field = |k: &str| summary.as_ref().and_then(|d| number(d, k));
    let votes = field("votes").unwrap_or(0.0) as u64;
    Ok(HttpResponse::Ok().json(MovieRating {
        movie_id: movie.clone(),
        average: if votes > 0 { field("average") } else { None },
        votes,
        likes: field("likes").unwrap_or(0.0) as u64,
        dislikes: field("dislikes").unwrap_or(0.0) as u64,
        your_score,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TopRatedQuery {
    /// 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Only movies with at least this many ratings, >= 1 (default 1).
    #[param(minimum = 1)]
    pub min_votes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopRated {
    #[schema(format = Uuid)]
    pub movie_id: String,
    pub average: f64,
    pub votes: u64,
}

/// The best-rated movies by average score (ties: more votes first).
#[utoipa::path(get, path = "/api/v1/movies/top-rated", tag = "likes",
    params(TopRatedQuery),
    responses((status = 200, body = Vec<TopRated>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn top_rated(
    _caller: Caller,
    query: web::Query<TopRatedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(10);
    let min_votes = query.min_votes.unwrap_or(1);
    let l = (1..=100)
        .contains(&limit)
        .then_some(limit)
        .ok_or_else(|| DomainError::new("limit", "must be 1 to 100"));
    let m = (1..=i64::from(i32::MAX))
        .contains(&min_votes)
        .then_some(min_votes)
        .ok_or_else(|| DomainError::new("min_votes", "must be >= 1"));
    all_valid([l.as_ref().err(), m.as_ref().err()])?;
    let rows: Vec<Document> = state
        .mongo
        .collection::<Document>(RATINGS)
        .aggregate([
            doc! {"$group": {"_id": "$movie_id", "average": {"$avg": "$score"}, "votes": {"$sum": 1}}},
            doc! {"$match": {"votes": {"$gte": m? as i32}}},
            doc! {"$sort": {"average": -1, "votes": -1, "_id": 1}},
            doc! {"$limit": l?},
        ])
        .await?
        .try_collect()
        .await?;
    let top: Vec<TopRated> = rows
        .iter()
        .map(|d| TopRated {
            movie_id: d.get_str("_id").unwrap_or_default().to_string(),
            average: number(d, "average").unwrap_or(0.0),
            votes: number(d, "votes").unwrap_or(0.0) as u64,
        })
        .collect();
    Ok(HttpResponse::Ok().json(top))
}
