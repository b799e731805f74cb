//! `REGISTRY_AUTH`: when set, the writes (register, delete, config changes) need HTTP basic
//! credentials from its list; reads, lookups and compatibility checks stay open, as in Confluent's
//! registry with basic auth on its write paths. Credentials are kept and compared as SHA-256
//! digests of `user:password`, every entry checked, so neither which entry matched nor a length
//! shows in the timing.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accepted `user:password` pairs, as digests.
#[derive(Clone, Default)]
pub struct WriteAuth(Vec<[u8; 32]>);

impl std::fmt::Debug for WriteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteAuth({} credentials)", self.0.len())
    }
}

fn digest(pair: &str) -> [u8; 32] {
    Sha256::digest(pair.as_bytes()).into()
}

impl WriteAuth {
    /// `user:password[,user:password...]`; empty means writes are open (local development).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut digests = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    digests.push(digest(pair))
                }
                _ => return Err("each entry must be user:password, both non-empty".into()),
            }
        }
        Ok(Self(digests))
    }

    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an `Authorization` header value carries one of the credentials.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|a| a.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let offered: [u8; 32] = Sha256::digest(&decoded).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d[..].ct_eq(&offered[..])
            })
            .into()
    }
}

/// Whether a request changes the registry: registering, deleting, or changing a config.
pub fn is_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT | Method::DELETE => true,
        Method::POST => {
            path.starts_with("/subjects/") && path.trim_end_matches('/').ends_with("/versions")
        }
        _ => false,
    }
}

/// Refuses a write without good credentials: 401 with Confluent's error body (code 40101).
pub async fn guard_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = is_write(req.method(), req.path())
        && req
            .app_data::<actix_web::web::Data<WriteAuth>>()
            .is_some_and(|auth| {
                let offered = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                !auth.is_open() && !auth.admits(offered)
            });
    if !refused {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let error = crate::RegistryError::Unauthorized;
    let mut response: HttpResponse = error.error_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"schema-registry\""),
    );
    Ok(req.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[test]
    fn only_listed_credentials_pass() {
        let auth = WriteAuth::parse("ci:s3cret, ops:other").unwrap();
        assert!(auth.admits(Some(&basic("ci:s3cret"))));
        assert!(auth.admits(Some(&basic("ops:other"))));
        for bad in [
            basic("ci:wrong"),
            basic("ci:s3cret "),
            "Bearer x".into(),
            "Basic !!".into(),
        ] {
            assert!(!auth.admits(Some(&bad)), "{bad}");
        }
        assert!(!auth.admits(None));
        assert!(WriteAuth::parse("").unwrap().is_open());
        assert!(WriteAuth::parse("nopassword").is_err());
        assert!(WriteAuth::parse("user:").is_err());
        assert_eq!(format!("{auth:?}"), "WriteAuth(2 credentials)");
    }

    #[test]
    fn writes_are_told_from_reads() {
        assert!(is_write(&Method::POST, "/subjects/a-value/versions"));
        assert!(is_write(&Method::DELETE, "/subjects/a-value"));
        assert!(is_write(&Method::PUT, "/config"));
        assert!(!is_write(&Method::POST, "/subjects/a-value"), "lookup");
        assert!(!is_write(
            &Method::POST,
            "/compatibility/subjects/a-value/versions/latest"
        ));
        assert!(!is_write(&Method::GET, "/subjects"));
    }
}
