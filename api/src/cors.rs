//! Cross-origin access (`CORS_ALLOWED_ORIGINS`): none by default, so a browser on another site can
//! neither read the API's answers nor send it a JSON write (the preflight fails). Listed origins get
//! the methods and headers the API uses; there is no wildcard, which would reopen cross-site writes.

use actix_cors::Cors;
use actix_web::http::{header, Method};
use common::config::ConfigError;

/// The origins allowed to call the API from a browser, each `scheme://host[:port]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins(Vec<String>);

impl CorsOrigins {
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_default();
        Self::parse(&raw).map_err(|reason| ConfigError {
            name: "CORS_ALLOWED_ORIGINS".into(),
            value: raw.clone(),
            reason,
        })
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("{origin:?} is not an http(s) origin (no wildcard)"))?;
            if rest.is_empty() || rest.contains(['/', '*', ' ', '?', '#']) {
                return Err(format!(
                    "{origin:?} is not an origin: scheme://host[:port], no path or wildcard"
                ));
            }
            origins.push(origin.to_string());
        }
        Ok(Self(origins))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The middleware for these origins (used only when there are some).
    pub fn middleware(&self) -> Cors {
        self.0
            .iter()
            .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
            .allowed_methods([Method::GET, Method::POST, Method::DELETE])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-api-key"),
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                header::HeaderName::from_static("x-request-id"),
            ])
            .max_age(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(CorsOrigins::parse("").unwrap().is_empty());
        assert_eq!(
            CorsOrigins::parse("https://cinema.example, http://localhost:3000").unwrap(),
            CorsOrigins(vec![
                "https://cinema.example".into(),
                "http://localhost:3000".into()
            ])
        );
        for bad in [
            "*",
            "https://*.example",
            "cinema.example",
            "https://a.example/app",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
