//! Who is calling. Services send `X-Api-Key` (keys from config, compared in constant time); users
//! send `Authorization: Bearer <JWT>` (HS256 secret or RS256 public key from config, `sub` = user
//! id; `exp` and `nbf` checked, `iss` / `aud` when configured, a lifetime over
//! `JWT_MAX_LIFETIME_SECS` refused). [`Caller`] is an extractor: a handler that takes it is
//! authenticated.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use schemas::domain::UserId;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

pub const API_KEY_HEADER: &str = "x-api-key";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A backend service, named by its key's name; it may write for any user.
    Service(String),
    /// A signed-in user; they may write only their own events.
    User(UserId),
}

impl Caller {
    /// 403 unless this caller may write events of `user`.
    pub fn may_act_for(&self, user: &UserId) -> Result<(), ApiError> {
        match self {
            Caller::Service(_) => Ok(()),
            Caller::User(me) if me == user => Ok(()),
            Caller::User(_) => Err(ApiError::Forbidden(
                "a user may only write their own events".into(),
            )),
        }
    }

    /// Who owns what this caller creates (image jobs): `user:<id>` or `service:<key name>`.
    pub fn owner_tag(&self) -> String {
        match self {
            Caller::Service(name) => format!("service:{name}"),
            Caller::User(id) => format!("user:{id}"),
        }
    }

    /// Whether this caller may read something owned by `owner`: services read everything, a user
    /// only what they created.
    pub fn may_read(&self, owner: Option<&str>) -> bool {
        match self {
            Caller::Service(_) => true,
            Caller::User(_) => owner == Some(self.owner_tag().as_str()),
        }
    }

    /// The user a request acts as: the token's user, or for a service the one it names.
    pub fn acting_user(&self, named: Option<UserId>) -> Result<UserId, ApiError> {
        match (self, named) {
            (Caller::User(me), None) => Ok(*me),
            (Caller::User(me), Some(u)) => {
                self.may_act_for(&u)?;
                Ok(*me)
            }
            (Caller::Service(_), Some(u)) => Ok(u),
            (Caller::Service(_), None) => {
                Err(ApiError::Invalid(vec![schemas::domain::DomainError::new(
                    "user",
                    "a service must name the user it acts for",
                )]))
            }
        }
    }
}

#[derive(Clone)]
struct ApiKey {
    name: String,
    /// SHA-256 of the key: every comparison is of 32 bytes, whatever the lengths.
    digest: [u8; 32],
    dev: bool,
}

/// SHA-256 of a secret, for comparisons that take the same time whatever its length.
pub fn digest(secret: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret).into()
}

/// Keys and token verification, from `API_KEYS`, `JWT_HS256_SECRET`, `JWT_RS256_PUBLIC_KEY`.
#[derive(Clone)]
pub struct AuthConfig {
    keys: Vec<ApiKey>,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens valid for longer than this (from `iat`, or from now) are refused.
    max_lifetime_secs: u64,
    dev_secret: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        f.debug_struct("AuthConfig")
            .field("api_keys", &names)
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("API_KEYS: entry {0} is empty")]
    EmptyKey(usize),
    #[error("JWT_RS256_PUBLIC_KEY is not a PEM RSA public key: {0}")]
    BadPublicKey(jsonwebtoken::errors::Error),
    #[error(transparent)]
    Config(#[from] common::config::ConfigError),
}

/// The local development defaults; `main` warns when they are in use.
pub const DEV_API_KEY: &str = "local-dev-key";
pub const DEV_JWT_SECRET: &str = "local-dev-secret";

impl AuthConfig {
    /// `API_KEYS` is `name:secret,name:secret` (a bare `secret` is named `key<N>`).
    /// `JWT_RS256_PUBLIC_KEY` (PEM) takes precedence over `JWT_HS256_SECRET`.
    pub fn new(
        api_keys: &str,
        hs256_secret: &str,
        rs256_public_pem: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let mut keys = Vec::new();
        for (i, entry) in api_keys.split(',').map(str::trim).enumerate() {
            let (name, secret) = match entry.split_once(':') {
                Some((n, s)) => (n.to_string(), s),
                None => (format!("key{i}"), entry),
            };
            if secret.is_empty() {
                return Err(AuthConfigError::EmptyKey(i));
            }
            keys.push(ApiKey {
                name,
                digest: digest(secret.as_bytes()),
                dev: secret == DEV_API_KEY,
            });
        }
        let (decoding, algorithm) = match rs256_public_pem {
            Some(pem) => (
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(AuthConfigError::BadPublicKey)?,
                Algorithm::RS256,
            ),
            None => (
                DecodingKey::from_secret(hs256_secret.as_bytes()),
                Algorithm::HS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Ok(Self {
            keys,
            decoding,
            validation,
            max_lifetime_secs: 24 * 3600,
            dev_secret: rs256_public_pem.is_none() && hs256_secret == DEV_JWT_SECRET,
        })
    }

    /// Tokens must name this issuer (`iss`).
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".into());
        self
    }

    /// Tokens must name this audience (`aud`).
    pub fn with_audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation.required_spec_claims.insert("aud".into());
        self
    }

    /// Tokens valid for longer than this are refused (`JWT_MAX_LIFETIME_SECS`).
    pub fn with_max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime_secs = secs;
        self
    }

    /// `API_KEYS`, `JWT_HS256_SECRET`, `JWT_RS256_PUBLIC_KEY`, `JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `JWT_MAX_LIFETIME_SECS` (default 86400).
    pub fn from_env() -> Result<Self, AuthConfigError> {
        use common::config::{env_or, env_parse};
        let keys = env_or("API_KEYS", &format!("local:{DEV_API_KEY}"));
        let secret = env_or("JWT_HS256_SECRET", DEV_JWT_SECRET);
        let pem = std::env::var("JWT_RS256_PUBLIC_KEY")
            .ok()
            .filter(|p| !p.is_empty());
        let mut config = Self::new(&keys, &secret, pem.as_deref())?
            .with_max_lifetime(env_parse("JWT_MAX_LIFETIME_SECS", 24 * 3600)?);
        if let Ok(iss) = std::env::var("JWT_ISSUER") {
            if !iss.is_empty() {
                config = config.with_issuer(&iss);
            }
        }
        if let Ok(aud) = std::env::var("JWT_AUDIENCE") {
            if !aud.is_empty() {
                config = config.with_audience(&aud);
            }
        }
        Ok(config)
    }

    /// True when a development default (the built-in key or secret) is in force.
    pub fn uses_dev_defaults(&self) -> bool {
        self.keys.iter().any(|k| k.dev) || self.dev_secret
    }

    fn service(&self, presented: &[u8]) -> Option<&str> {
        // Compare digests against every key, without an early exit, so timing says nothing about
        // which key, nor about its length.
        let presented = digest(presented);
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) {
                found = Some(key.name.as_str());
            }
        }
        found
    }

    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        if let Some(key) = req.headers().get(API_KEY_HEADER) {
            return self
                .service(key.as_bytes())
                .map(|name| Caller::Service(name.to_string()))
                .ok_or_else(|| ApiError::Unauthorized("invalid API key".into()));
        }
        let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "missing credentials: send Authorization: Bearer <token> or X-Api-Key".into(),
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be `Bearer <token>`".into())
            })?;
        let claims = decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        let start = claims.iat.unwrap_or(now).max(claims.nbf.unwrap_or(0));
        if claims.exp.saturating_sub(start.min(now)) > self.max_lifetime_secs {
            return Err(ApiError::Unauthorized(format!(
                "invalid token: valid for longer than {} s (JWT_MAX_LIFETIME_SECS)",
                self.max_lifetime_secs
            )));
        }
        UserId::parse(&claims.sub)
            .map(Caller::User)
            .map_err(|_| ApiError::Unauthorized("invalid token: sub is not a user id".into()))
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
    nbf: Option<u64>,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        // Verified already by the rate limiter's key extractor (when the limit is on).
        if let Some(caller) = req.extensions().get::<Caller>() {
            return ready(Ok(caller.clone()));
        }
        ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => state
                .auth
                .authenticate(req)
                .map_err(|failure| state.auth_failures.count(req, failure)),
            None => Err(ApiError::Internal("auth is not configured".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde::Serialize;

    #[derive(Serialize)]
    struct TestClaims<'a> {
        sub: &'a str,
        exp: u64,
    }

    fn token(secret: &str, sub: &str, exp: u64) -> String {
        encode(
            &Header::default(),
            &TestClaims { sub, exp },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn api_keys_and_tokens() {
        let auth = AuthConfig::new("svc-a:alpha,beta", "s3cret", None).unwrap();
        let req = TestRequest::default()
            .insert_header((API_KEY_HEADER, "alpha"))
            .to_http_request();
        assert_eq!(
            auth.authenticate(&req).unwrap(),
            Caller::Service("svc-a".into())
        );
        let req = TestRequest::default()
            .insert_header((API_KEY_HEADER, "beta"))
            .to_http_request();
        assert_eq!(
            auth.authenticate(&req).unwrap(),
            Caller::Service("key1".into())
        );
        let req = TestRequest::default()
            .insert_header((API_KEY_HEADER, "alph"))
            .to_http_request();
        assert!(matches!(
            auth.authenticate(&req),
            Err(ApiError::Unauthorized(_))
        ));

        let user = uuid::Uuid::new_v4().to_string();
        let good = token("s3cret", &user, now() + 60);
        let req = TestRequest::default()
            .insert_header(("Authorization", format!("Bearer {good}")))
            .to_http_request();
        assert_eq!(
            auth.authenticate(&req).unwrap(),
            Caller::User(UserId::parse(&user).unwrap())
        );
        for bad in [
            token("other", &user, now() + 60),
            token("s3cret", &user, now() - 120),
            token("s3cret", "not-a-uuid", now() + 60),
        ] {
            let req = TestRequest::default()
                .insert_header(("Authorization", format!("Bearer {bad}")))
                .to_http_request();
            assert!(matches!(
                auth.authenticate(&req),
                Err(ApiError::Unauthorized(_))
            ));
        }
        let req = TestRequest::default().to_http_request();
        assert!(matches!(
            auth.authenticate(&req),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn users_act_only_for_themselves() {
        let me = UserId::from_uuid(uuid::Uuid::new_v4());
        let other = UserId::from_uuid(uuid::Uuid::new_v4());
        assert!(Caller::User(me).may_act_for(&me).is_ok());
        assert!(matches!(
            Caller::User(me).may_act_for(&other),
            Err(ApiError::Forbidden(_))
        ));
        assert!(Caller::Service("s".into()).may_act_for(&other).is_ok());
        assert_eq!(Caller::User(me).acting_user(None).unwrap(), me);
        assert_eq!(
            Caller::Service("s".into())
                .acting_user(Some(other))
                .unwrap(),
            other
        );
        assert!(Caller::Service("s".into()).acting_user(None).is_err());
    }
}
