//! Favourites: add and remove (the newest action per user and movie wins downstream), and the
//! user's list, newest first.

use actix_web::{web, HttpRequest, HttpResponse};
use mongodb::bson::doc;
use schemas::domain::{MovieId, UserId};
use schemas::events::{Favourite, FavouriteAction};
use serde::{Deserialize, Serialize};
use stores::mongo::{FavouriteDoc, ACTIVE, FAVOURITES};
use utoipa::ToSchema;

use super::lists::{iso_millis, page_of, Paged};
use super::{
    all_valid, event_id, json_body, occurred_at, page, produce_answering, PageQuery, TimeInput,
    WriteResponses,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Optional body: the client's event id and time.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EventMeta {
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    pub occurred_at: Option<TimeInput>,
}

impl EventMeta {
    pub fn into_favourite(
        self,
        user_id: &str,
        movie_id: &str,
        action: FavouriteAction,
    ) -> Result<Favourite, ApiError> {
        let event_id = event_id(self.event_id.as_deref());
        let user_id = UserId::parse(user_id);
        let movie_id = MovieId::parse(movie_id);
        let occurred_at = occurred_at("occurred_at", self.occurred_at.as_ref());
        all_valid([
            event_id.as_ref().err(),
            user_id.as_ref().err(),
            movie_id.as_ref().err(),
            occurred_at.as_ref().err(),
        ])?;
        Ok(Favourite {
            event_id: event_id?,
            user_id: user_id?,
            movie_id: movie_id?,
            action,
            occurred_at: occurred_at?,
        })
    }
}

async fn write(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: web::Data<AppState>,
    action: FavouriteAction,
) -> Result<HttpResponse, ApiError> {
    let event = json_body::<EventMeta>(body, &state.limits)
        .await?
        .into_favourite(&path.0, &path.1, action)?;
    caller.may_act_for(&event.user_id)?;
    // The seed's clients read these back from the answer.
    let answer = FavouriteAccepted {
        user_id: event.user_id.to_string(),
        movie_id: event.movie_id.to_string(),
        is_favorite: action == FavouriteAction::Added,
    };
    produce_answering(&state, &req, event, answer).await
}

/// The 202 of a favourite write: `status` and `event_id` as every write, and the seed's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct FavouriteAccepted {
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// `true` after an add, `false` after a removal.
    pub is_favorite: bool,
}

/// Add a movie to the user's favourites.
#[utoipa::path(post, path = "/api/v1/favorites/users/{user_id}/movies/{movie_id}", tag = "favorites",
    params(("user_id" = String, Path, format = Uuid), ("movie_id" = String, Path, format = Uuid)),
    request_body(content = Option<EventMeta>, description = "optional"),
    responses(WriteResponses, (status = 202,
        description = "Kafka acknowledged it; the answer also has `status` and `event_id`",
        body = FavouriteAccepted)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn add(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write(req, caller, path, body, state, FavouriteAction::Added).await
}

/// Remove a movie from the user's favourites.
#[utoipa::path(delete, path = "/api/v1/favorites/users/{user_id}/movies/{movie_id}", tag = "favorites",
    params(("user_id" = String, Path, format = Uuid), ("movie_id" = String, Path, format = Uuid)),
    request_body(content = Option<EventMeta>, description = "optional"),
    responses(WriteResponses, (status = 202,
        description = "Kafka acknowledged it; the answer also has `status` and `event_id`",
        body = FavouriteAccepted)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn remove(
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    write(req, caller, path, body, state, FavouriteAction::Removed).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FavouriteItem {
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// RFC 3339: when it was (last) added.
    pub added_at: String,
    /// The event that added it.
    #[schema(format = Uuid)]
    pub event_id: String,
}

/// A user's favourites, most recently added first (a user reads their own).
#[utoipa::path(get, path = "/api/v1/favorites/users/{user_id}", tag = "favorites",
    params(("user_id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = Paged<FavouriteItem>), (status = 400, body = crate::error::ErrorBody),
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
    let (total, docs, last) = page_of::<FavouriteDoc>(
        &state.mongo,
        FAVOURITES,
        doc! {"user_id": user.to_string(), ACTIVE: true},
        doc! {"user_id": user.to_string()},
        (page, size),
    )
    .await?;
    let items = docs
        .into_iter()
        .map(|d| FavouriteItem {
            movie_id: d.movie_id,
            added_at: iso_millis(d.updated_at),
            event_id: d.event_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::new(items, total, page, size, last)))
}
