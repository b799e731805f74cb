//! Per-caller rate limits (actix-governor): a caller is its API key, its bearer token, or (with
//! neither) its peer address. Over the limit: 429 with the JSON error shape and `Retry-After`.

use std::hash::{DefaultHasher, Hash, Hasher};

use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde_json::json;

use crate::auth::API_KEY_HEADER;

#[derive(Debug, Clone, Copy)]
pub struct CallerKey;

impl KeyExtractor for CallerKey {
    type Key = u64;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<u64, Self::KeyExtractionError> {
        let headers = req.headers();
        let mut h = DefaultHasher::new();
        if let Some(k) = headers.get(API_KEY_HEADER) {
            ("key", k.as_bytes()).hash(&mut h);
        } else if let Some(a) = headers.get(actix_web::http::header::AUTHORIZATION) {
            ("bearer", a.as_bytes()).hash(&mut h);
        } else {
            ("peer", req.peer_addr().map(|a| a.ip())).hash(&mut h);
        }
        Ok(h.finish())
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .insert_header(("Retry-After", seconds.max(1).to_string()))
            .json(json!({
                "error": "too many requests",
                "details": [{"message": format!("rate limit exceeded; retry in {}s", seconds.max(1))}]
            }))
    }
}

/// `RATE_LIMIT_PER_SECOND` per caller with bursts of `RATE_LIMIT_BURST`; 0 disables the limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u64,
    pub burst: u32,
}

impl RateLimit {
    pub fn config(&self) -> Option<GovernorConfig<CallerKey, NoOpMiddleware<QuantaInstant>>> {
        if self.per_second == 0 {
            return None;
        }
        // governor counts a replenishment period per request.
        let nanos = (1_000_000_000 / self.per_second).max(1);
        GovernorConfigBuilder::default()
            .nanoseconds_per_request(nanos)
            .burst_size(self.burst.max(1))
            .key_extractor(CallerKey)
            .finish()
    }
}
