use actix_web::HttpResponse;

/// `GET /api/v1/healthcheck/ping` -> `"pong"`.
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().json("pong")
}
