//! Favourites: add and remove; the newest action per user and movie wins downstream.

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{MovieId, UserId};
use schemas::events::{Favourite, FavouriteAction};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{all_valid, event_id, json_body, occurred_at, produce, TimeInput, WriteResponses};
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
    let event = json_body::<EventMeta>(body, state.limits.max_body_bytes)
        .await?
        .into_favourite(&path.0, &path.1, action)?;
    caller.may_act_for(&event.user_id)?;
    produce(&state, &req, event).await
}

/// Add a movie to the user's favourites.
#[utoipa::path(post, path = "/api/v1/favorites/users/{user_id}/movies/{movie_id}", tag = "favorites",
    params(("user_id" = String, Path, format = Uuid), ("movie_id" = String, Path, format = Uuid)),
    request_body(content = Option<EventMeta>, description = "optional"), responses(WriteResponses),
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
    request_body(content = Option<EventMeta>, description = "optional"), responses(WriteResponses),
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
