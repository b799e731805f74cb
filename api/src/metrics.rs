//! Prometheus metrics (`GET /metrics`) and the per-request middleware that feeds them and opens the
//! request's span: requests by route and status, latency, requests in flight, produce errors.

use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use producers::ProduceError;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing::Instrument;

use crate::telemetry::{TraceContext, REQUEST_ID};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    produce_errors: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by method, route and status",
        ),
        &["method", "route", "status"],
    )
    .expect("metric definition");
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "HTTP request latency by route",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["route"],
    )
    .expect("metric definition");
    let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being served")
        .expect("metric definition");
    let produce_errors = IntCounterVec::new(
        Opts::new(
            "kafka_produce_errors_total",
            "Events Kafka did not acknowledge, by cause",
        ),
        &["kind"],
    )
    .expect("metric definition");
    for m in [
        Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(latency.clone()),
        Box::new(in_flight.clone()),
        Box::new(produce_errors.clone()),
    ] {
        registry.register(m).expect("metric registration");
    }
    Metrics {
        registry,
        requests,
        latency,
        in_flight,
        produce_errors,
    }
});

pub fn produce_error(e: &ProduceError) {
    let kind = match e {
        ProduceError::Encode(_) => "encode",
        ProduceError::QueueFull => "queue_full",
        ProduceError::Delivery(_) => "delivery",
        ProduceError::Client(_) | ProduceError::Admin { .. } => "client",
    };
    METRICS.produce_errors.with_label_values(&[kind]).inc();
}

/// Who may read `GET /metrics` on the API port: `API_METRICS` (`on`, default, or `off`: no route)
/// and `METRICS_TOKEN` (when set, `Authorization: Bearer <token>` is required).
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub enabled: bool,
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl MetricsAccess {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        let enabled = match common::config::env_or("API_METRICS", "on").as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(common::config::ConfigError {
                    name: "API_METRICS".into(),
                    value: other.into(),
                    reason: "must be on or off".into(),
                })
            }
        };
        let token = std::env::var("METRICS_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        Ok(Self { enabled, token })
    }
}

/// `GET /metrics`, behind `METRICS_TOKEN` when it is set.
pub async fn guarded(
    req: actix_web::HttpRequest,
    access: actix_web::web::Data<MetricsAccess>,
) -> Result<HttpResponse, crate::error::ApiError> {
    use subtle::ConstantTimeEq;
    if let Some(token) = &access.token {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Digests, so the comparison takes the same time whatever the lengths.
        let (a, b) = (
            crate::auth::digest(presented.as_bytes()),
            crate::auth::digest(token.as_bytes()),
        );
        if !bool::from(a.ct_eq(&b)) {
            return Err(crate::error::ApiError::Unauthorized(
                "/metrics needs Authorization: Bearer <METRICS_TOKEN>".into(),
            ));
        }
    }
    Ok(endpoint().await)
}

/// `GET /metrics` in the Prometheus text format.
pub async fn endpoint() -> HttpResponse {
    let mut out = Vec::new();
    let families = METRICS.registry.gather();
    match TextEncoder::new().encode(&families, &mut out) {
        Ok(()) => HttpResponse::Ok()
            .content_type(TextEncoder::new().format_type())
            .body(out),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// Opens the request's span (with its request id and trace id), counts and times the request, and
/// echoes `x-request-id` in the response.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let trace = TraceContext::from_request(req.request());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    // A fixed set of label values: any method string a client invents would mint a time series.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        request_id = %trace.request_id,
        trace_id = %trace.trace_id(),
        status = tracing::field::Empty,
    );
    let request_id = HeaderValue::from_str(&trace.request_id).ok();
    req.extensions_mut().insert(trace);
    METRICS.in_flight.inc();
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    METRICS.in_flight.dec();
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("status", status);
    METRICS
        .requests
        .with_label_values(&[method.as_str(), route.as_str(), &status.to_string()])
        .inc();
    METRICS
        .latency
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    result.map(|mut res| {
        if let Some(id) = request_id {
            res.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID), id);
        }
        res
    })
}
