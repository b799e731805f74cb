//! Replies to requests answered asynchronously (views predictions), kept in Redis for a while so
//! any API instance can serve the poll of a request another one accepted: a pending mark per
//! request id, then its reply (the first one stored wins: a request answered twice after a
//! predictor crash keeps its first answer).

use std::time::Duration;

use redis::aio::ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What is known of a request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyState {
    /// Its reply, as stored.
    Answered(String),
    /// Accepted, not answered yet.
    Pending,
    /// Never accepted here, or forgotten after the TTL.
    Unknown,
}

#[derive(Clone)]
pub struct ReplyStore {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl ReplyStore {
    /// On `redis_url`, keys under `prefix`, kept `ttl`; each connection attempt and command
    /// bounded by `timeout`.
    pub async fn connect(
        redis_url: &str,
        prefix: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, ReplyError> {
        Ok(Self {
            conn: crate::redis_connection(redis_url, timeout).await?,
            prefix: prefix.to_string(),
            ttl,
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}reply:{kind}:{id}", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// Marks `id` accepted and waiting for its reply.
    pub async fn pending(&self, id: &str) -> Result<(), ReplyError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(self.key("pending", id))
            .arg(1)
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Stores `reply` for `id` unless one is stored already; whether this one was.
    pub async fn answer(&self, id: &str, reply: &str) -> Result<bool, ReplyError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("answer", id))
            .arg(reply)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    pub async fn state(&self, id: &str) -> Result<ReplyState, ReplyError> {
        let mut conn = self.conn.clone();
        let (answer, pending): (Option<String>, Option<String>) = redis::pipe()
            .get(self.key("answer", id))
            .get(self.key("pending", id))
            .query_async(&mut conn)
            .await?;
        Ok(match (answer, pending) {
            (Some(a), _) => ReplyState::Answered(a),
            (None, Some(_)) => ReplyState::Pending,
            (None, None) => ReplyState::Unknown,
        })
    }
}
