//! The OpenAPI document, generated from the handlers' annotations (`/api/v1/openapi.json`, Swagger
//! UI at `/api/v1/docs/`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Cinema UGC events API", description = "Events from the cinema's services and frontend, acknowledged by Kafka."),
    paths(
        routes::health::ping,
        routes::health::ready,
        routes::movies::playback_event,
        routes::movies::movie_viewing,
        routes::movies::playback_position,
        routes::likes::rate,
        routes::favorites::add,
        routes::favorites::remove,
        routes::follows::follow,
        routes::follows::unfollow,
        routes::favorites::list,
        routes::likes::list,
        routes::likes::movie_rating,
        routes::likes::top_rated,
        routes::follows::followers,
        routes::follows::following,
        routes::posts::create,
        routes::feed::feed,
        routes::feed::fanout,
        routes::images::resize,
        routes::images::status,
        routes::images::result,
        routes::videos::fetch,
        routes::videos::list,
        routes::videos::search,
        routes::videos::trending_keywords,
        routes::videos::channel_stats,
        routes::events::user_event,
        routes::events::anonymous_event,
        routes::batch::batch,
        routes::analytics::watch_time,
        routes::analytics::continue_watching,
        routes::analytics::top_movies,
        routes::analytics::events_hourly,
    ),
    components(schemas(crate::error::ErrorBody, routes::Accepted, routes::TimeInput)),
    modifiers(&Security),
    tags(
        (name = "movies", description = "Player events"),
        (name = "likes", description = "Ratings 0..10; reads from MongoDB"),
        (name = "favorites", description = "Writes, and reads from MongoDB"),
        (name = "follows", description = "Writes, and reads from MongoDB"), (name = "posts", description = "Posts, home feeds (Redis) and fan-out progress"),
        (name = "events", description = "Generic frontend events and batches"),
        (name = "analytics", description = "Reads from ClickHouse"),
        (name = "images", description = "Resize jobs: upload, status, result"),
        (name = "videos", description = "YouTube videos found by the fetcher (ClickHouse)"),
        (name = "health"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
