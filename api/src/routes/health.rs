use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/api/v1/healthcheck/ping", tag = "health",
    responses((status = 200, description = "Always `\"pong\"`", body = String, example = json!("pong"))))]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().json("pong")
}

/// Readiness: Kafka answers metadata requests and the schema registry answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "Kafka or the registry is down")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let kafka = state.producer.raw().check(Duration::from_secs(2)).await;
    let registry = state.producer.codec().check().await;
    let body = json!({
        "kafka": kafka.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        "schema_registry": registry.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
    });
    if kafka.is_ok() && registry.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
