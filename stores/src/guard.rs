//! Guards in Redis for requests that spend a shared external budget (the YouTube Data API quota):
//! a per-caller count in fixed windows, and a "first within" mark that coalesces the same request
//! asked again. Every API instance shares them.

use std::time::Duration;

use redis::aio::ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Clone)]
pub struct RequestGuard {
    conn: ConnectionManager,
    prefix: String,
}

impl RequestGuard {
    /// On `redis_url`, keys under `prefix`, each connection attempt and command bounded by
    /// `timeout`.
    pub async fn connect(
        redis_url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, GuardError> {
        Ok(Self {
            conn: crate::redis_connection(redis_url, timeout).await?,
            prefix: prefix.to_string(),
        })
    }

    /// Counts one request of `caller` for `what` in the current fixed window of `window`: the
    /// count so far in the window (this one included) and the seconds until the window ends.
    pub async fn count(
        &self,
        what: &str,
        caller: &str,
        window: Duration,
    ) -> Result<(u64, u64), GuardError> {
        let secs = window.as_secs().max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let slot = now / secs;
        let key = format!("{}guard:{what}:{caller}:{slot}", self.prefix);
        let mut conn = self.conn.clone();
        let (count, _): (u64, bool) = redis::pipe()
            .incr(&key, 1)
            .expire(&key, secs as i64 + 1)
            .query_async(&mut conn)
            .await?;
        Ok((count, (slot + 1) * secs - now))
    }

    /// True for the first call with `key` within `ttl` (which marks it); false while the mark lasts.
    pub async fn first_within(&self, key: &str, ttl: Duration) -> Result<bool, GuardError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}guard:once:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Removes the mark `first_within` set for `key` (the marked request did not go through).
    pub async fn forget(&self, key: &str) -> Result<(), GuardError> {
        let mut conn = self.conn.clone();
        let _: u64 = redis::cmd("DEL")
            .arg(format!("{}guard:once:{key}", self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
