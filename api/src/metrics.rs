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
    let method = req.method().to_string();
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
