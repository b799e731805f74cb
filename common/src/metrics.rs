//! `GET /metrics` for the pipeline's background binaries (sinks, fan-out, workers, fetcher): the
//! process-wide Prometheus registry in the text format. Libraries register their metrics in
//! [`prometheus::default_registry`]; a binary calls [`serve`] once. (The API serves its own registry
//! through actix-web.)

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};

use crate::config::{env_or, ConfigError};

/// Where the endpoint listens: `METRICS_ADDR`, `off` to serve none.
pub fn addr_from_env(default: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let raw = env_or("METRICS_ADDR", default);
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|e: std::net::AddrParseError| ConfigError {
            name: "METRICS_ADDR".into(),
            value: raw.clone(),
            reason: e.to_string(),
        })
}

/// Binds `addr` and serves the default registry on a background task for the life of the process.
/// Returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "metrics at http://{bound}/metrics");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let served = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(bound)
}

/// Serves the endpoint when `METRICS_ADDR` (or `default`) asks for one.
pub async fn serve_from_env(default: &str) -> Result<Option<SocketAddr>, MetricsError> {
    match addr_from_env(default)? {
        Some(addr) => Ok(Some(
            serve(addr).await.map_err(|e| MetricsError::Bind(addr, e))?,
        )),
        None => Ok(None),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metrics endpoint: cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The current values of every metric in the default registry, in the text format.
pub fn render() -> String {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on an invalid metric family, which registration prevents.
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match req.uri().path() {
        "/metrics" => Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(render()))),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"error":"not found","details":[]}"#,
            ))),
    };
    Ok(response.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_default_registry() {
        let c = prometheus::IntCounter::new("common_metrics_test_total", "a test counter").unwrap();
        prometheus::register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let bound = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(bound).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("common_metrics_test_total 3"), "{body}");
    }
}
