//! Per-caller rate limits (actix-governor), keyed on the *verified* identity: the API key's name or
//! the token's user, after checking them; a request without valid credentials (anonymous events,
//! a wrong key, a forged token) is limited per client address, so inventing keys or tokens buys no
//! new bucket, and guessing them is limited too. The address is the peer's, or with
//! `TRUST_FORWARDED_FOR=on` (behind a proxy you run) the first `Forwarded` / `X-Forwarded-For`
//! hop. Idle keys are pruned every minute, so the limiter's memory is bounded by the callers of
//! the last minute. Over the limit: 429 with the JSON error shape and `Retry-After`.

use std::hash::{DefaultHasher, Hash, Hasher};

use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpMessage, HttpResponse, HttpResponseBuilder};
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy)]
pub struct CallerKey {
    /// Believe the forwarding headers for the client address (`TRUST_FORWARDED_FOR`).
    pub trust_forwarded: bool,
}

impl KeyExtractor for CallerKey {
    type Key = u64;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<u64, Self::KeyExtractionError> {
        let mut h = DefaultHasher::new();
        let caller = req
            .app_data::<actix_web::web::Data<AppState>>()
            .and_then(|state| state.auth.authenticate(req.request()).ok());
        if let Some(caller) = &caller {
            // The handler's `Caller` takes it from here instead of verifying the token again.
            req.extensions_mut().insert(caller.clone());
        }
        match caller {
            Some(Caller::Service(name)) => ("service", name).hash(&mut h),
            Some(Caller::User(user)) => ("user", user.to_string()).hash(&mut h),
            None => (
                "address",
                client_address(req.request(), self.trust_forwarded),
            )
                .hash(&mut h),
        }
        Ok(h.finish())
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let seconds = retry_after_secs(negative);
        response
            .insert_header(("Retry-After", seconds.to_string()))
            .json(json!({
                "error": "too many requests",
                "details": [{"message": format!("rate limit exceeded; retry in {seconds}s")}]
            }))
    }
}

/// Whole seconds until a refused caller may try again (rounded up, at least 1): `Retry-After`.
fn retry_after_secs(not_until: &NotUntil<QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The client's address: the peer's, or with `trust_forwarded` the first forwarded hop (the host
/// part of `ip:port`, `ip` or `[v6]:port`).
pub fn client_address(req: &actix_web::HttpRequest, trust_forwarded: bool) -> Option<String> {
    if trust_forwarded {
        req.connection_info().realip_remote_addr().map(|a| {
            a.parse::<std::net::SocketAddr>()
                .map(|s| s.ip().to_string())
                .unwrap_or_else(|_| a.to_string())
        })
    } else {
        req.peer_addr().map(|a| a.ip().to_string())
    }
}

type AddressLimiter = actix_governor::governor::DefaultKeyedRateLimiter<String>;

/// Failed authentications per client address (`AUTH_FAILURES_PER_MINUTE`, default 30; 0: off),
/// a bucket apart from the request rate, so guessing keys or tokens is slow whatever the request
/// limit is. Past it, a failed attempt answers 429 with Retry-After instead of 401; good
/// credentials still pass.
#[derive(Clone)]
pub struct AuthFailures {
    limiter: Option<std::sync::Arc<AddressLimiter>>,
    trust_forwarded: bool,
}

impl AuthFailures {
    pub fn new(per_minute: u32, trust_forwarded: bool) -> Self {
        use actix_governor::governor::{Quota, RateLimiter};
        let limiter = std::num::NonZeroU32::new(per_minute)
            .map(|n| std::sync::Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        if let Some(limiter) = &limiter {
            forget_idle_every_minute(limiter.clone());
        }
        Self {
            limiter,
            trust_forwarded,
        }
    }

    /// Counts a failed authentication of `req`: `failure` itself while under the limit, 429 past it.
    pub fn count(&self, req: &actix_web::HttpRequest, failure: ApiError) -> ApiError {
        let Some(limiter) = &self.limiter else {
            return failure;
        };
        let address = client_address(req, self.trust_forwarded).unwrap_or_default();
        match limiter.check_key(&address) {
            Ok(()) => failure,
            Err(not_until) => {
                let seconds = retry_after_secs(&not_until);
                ApiError::TooManyRequests(
                    format!(
                        "too many failed authentications from this address \
                         (AUTH_FAILURES_PER_MINUTE); retry in {seconds}s"
                    ),
                    seconds,
                )
            }
        }
    }
}

/// `RATE_LIMIT_PER_SECOND` per caller with bursts of `RATE_LIMIT_BURST`; 0 disables the limit.
/// `TRUST_FORWARDED_FOR` (`off`): whether the client address comes from forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u64,
    pub burst: u32,
    pub trust_forwarded: bool,
    /// `AUTH_FAILURES_PER_MINUTE` (see [`AuthFailures`]).
    pub auth_failures_per_minute: u32,
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
            .key_extractor(CallerKey {
                trust_forwarded: self.trust_forwarded,
            })
            .finish()
    }
}

/// Forgets callers idle for a whole replenishment of their bucket, every minute, for as long as
/// the limiter lives: its memory is bounded by the recent callers, not by every key ever sent.
pub fn prune_every_minute(config: &GovernorConfig<CallerKey, NoOpMiddleware<QuantaInstant>>) {
    forget_idle_every_minute(config.limiter().clone());
}

fn forget_idle_every_minute<K>(
    limiter: std::sync::Arc<actix_governor::governor::DefaultKeyedRateLimiter<K>>,
) where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
}
