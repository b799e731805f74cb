//! Request ids and W3C trace context: taken from the request when the caller sent them, made up
//! otherwise, and written into the Kafka headers of every event the request produces so consumers
//! continue the trace.

use actix_web::{HttpMessage, HttpRequest};
use uuid::Uuid;

pub const REQUEST_ID: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";

/// The trace identity of one request.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub request_id: String,
    pub traceparent: String,
}

impl TraceContext {
    /// The context the request middleware stored, or (outside it) one read from the headers.
    pub fn of(req: &HttpRequest) -> Self {
        req.extensions()
            .get::<TraceContext>()
            .cloned()
            .unwrap_or_else(|| Self::from_request(req))
    }

    pub fn from_request(req: &HttpRequest) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header(REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let traceparent = header(TRACEPARENT)
            .filter(|v| valid_traceparent(v))
            .map(|parent| child_of(&parent))
            .unwrap_or_else(new_traceparent);
        Self {
            request_id,
            traceparent,
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    pub fn kafka_headers(&self) -> [(&str, &str); 2] {
        [
            (REQUEST_ID, self.request_id.as_str()),
            (TRACEPARENT, self.traceparent.as_str()),
        ]
    }
}

fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        && parts[1] != "00000000000000000000000000000000"
}

fn span_id() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_string()
}

fn new_traceparent() -> String {
    format!("00-{}-{}-01", Uuid::new_v4().simple(), span_id())
}

/// Same trace, a new span id for our hop.
fn child_of(parent: &str) -> String {
    format!("00-{}-{}-{}", &parent[3..35], span_id(), &parent[53..55])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_or_made() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ))
            .to_http_request();
        let t = TraceContext::from_request(&req);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(valid_traceparent(&t.traceparent));
        assert_ne!(&t.traceparent[36..52], "00f067aa0ba902b7");

        let bare = actix_web::test::TestRequest::default().to_http_request();
        let t = TraceContext::from_request(&bare);
        assert!(valid_traceparent(&t.traceparent), "{}", t.traceparent);
        assert!(!t.request_id.is_empty());
    }
}
