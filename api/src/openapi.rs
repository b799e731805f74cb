//! The OpenAPI document, generated from the handlers' annotations (`/api/v1/openapi.json`, Swagger
//! UI at `/api/v1/docs/`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Cinema UGC events API", description = "Events from the cinema's services and frontend, acknowledged by Kafka. Every error answers `{\"error\", \"details\"}`, including an unknown path (404), a wrong method (405), an exceeded rate limit (429, with Retry-After), a body that arrives too slowly (408) or with another Content-Type (415)."),
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
        routes::videos::details,
        routes::predictions::request,
        routes::predictions::poll,
        routes::channels::search,
        routes::channels::details,
        routes::channels::stats,
        routes::keywords::top,
        routes::keywords::trend,
        routes::events::user_event,
        routes::events::anonymous_event,
        routes::batch::batch,
        routes::analytics::watch_time,
        routes::analytics::continue_watching,
        routes::analytics::top_movies,
        routes::analytics::events_hourly,
    ),
    components(schemas(crate::error::ErrorBody, routes::Accepted, routes::TimeInput)),
    modifiers(&Security, &GenericResponses),
    tags(
        (name = "movies", description = "Player events"),
        (name = "likes", description = "Ratings 0..10; reads from MongoDB"),
        (name = "favorites", description = "Writes, and reads from MongoDB"),
        (name = "follows", description = "Writes, and reads from MongoDB"), (name = "posts", description = "Posts, home feeds (Redis) and fan-out progress"),
        (name = "events", description = "Generic frontend events and batches"),
        (name = "analytics", description = "Reads from ClickHouse"),
        (name = "images", description = "Resize jobs: upload, status, result"),
        (name = "videos", description = "YouTube videos found by the fetcher (ClickHouse)"),
        (name = "channels", description = "YouTube channels the fetcher has seen, with their statistics (ClickHouse)"),
        (name = "keywords", description = "Title keywords of the fetched videos: trends, related words, top lists (ClickHouse)"),
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

/// The answers any operation can give whatever its own are (the rate limit, a wrong method), and
/// those of any operation with a body (too slow, wrong media type), in the one error shape.
struct GenericResponses;

impl Modify for GenericResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let with_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                add("405", "This path does not take this method");
                add(
                    "429",
                    "The caller's rate limit is exceeded; see Retry-After",
                );
                if with_body {
                    add("408", "The body did not arrive within API_BODY_TIMEOUT");
                    add(
                        "415",
                        "The body's Content-Type is not one this endpoint takes",
                    );
                }
            }
        }
    }
}
