//! One call to the YouTube Data API, whatever the method: the first key not out of quota (by the
//! shared state) is used; a quota error marks the key exhausted until the next reset, for every
//! instance, and the call is retried with the next key; 429, 5xx and network failures back off with
//! jitter up to `YOUTUBE_RETRIES` times. Every call is counted by key *name*, method and outcome,
//! and the quota units it spends (the API's documented cost per method) by key name and method.

use std::time::Duration;

use schemas::domain::Timestamp;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{metrics, next_reset_ms, ApiKey, FetchError, Fetcher};

/// The Data API methods the fetcher calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Search,
    Videos,
    Channels,
}

impl Method {
    /// The path under the API's base URL.
    fn path(self) -> &'static str {
        match self {
            Method::Search => "search",
            Method::Videos => "videos",
            Method::Channels => "channels",
        }
    }

    /// The name the API's documentation and our metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Method::Search => "search.list",
            Method::Videos => "videos.list",
            Method::Channels => "channels.list",
        }
    }

    /// Quota units one call costs (the API's documented costs; a list call costs the same for 1
    /// or 50 ids).
    pub fn units(self) -> u64 {
        match self {
            Method::Search => 100,
            Method::Videos | Method::Channels => 1,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

impl Fetcher {
    /// Calls `method` with `params` (the key is added), rotating keys on quota errors and backing
    /// off on transient failures.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        params: &[(&str, &str)],
    ) -> Result<T, FetchError> {
        let keys = &self.config.keys;
        let mut attempt = 0;
        loop {
            let now = Timestamp::now().millis();
            let exhausted = self.state.exhausted_keys(now).await?;
            let m = &metrics::METRICS;
            let is_out = |k: &ApiKey| exhausted.iter().any(|(name, _)| name == &k.name);
            let out = keys.iter().filter(|k| is_out(k)).count();
            m.keys_exhausted.set(out as i64);
            m.all_exhausted.set(i64::from(out == keys.len()));
            // A call the API answered costs its units, unless the answer is that the key is out
            // of quota; one that never reached it costs nothing.
            let outcome = |key: &ApiKey, what: &str, charged: bool| {
                m.requests
                    .with_label_values(&[key.name.as_str(), method.name(), what])
                    .inc();
                if charged {
                    m.quota_units
                        .with_label_values(&[key.name.as_str(), method.name()])
                        .inc_by(method.units());
                }
            };
            let Some(key) = keys.iter().find(|k| !is_out(k)) else {
                let until_ms = exhausted
                    .iter()
                    .map(|(_, until)| *until)
                    .min()
                    .unwrap_or(now);
                return Err(FetchError::AllKeysExhausted { until_ms });
            };
            let sent = self
                .http
                .get(format!("{}/{}", self.config.base_url, method.path()))
                .query(params)
                .query(&[("key", key.secret.as_str())])
                .send()
                .await;
            let transient = match sent {
                Ok(resp) if resp.status().is_success() => {
                    outcome(key, "ok", true);
                    return resp.json::<T>().await.map_err(|e| FetchError::Api {
                        status: 200,
                        reason: "unreadable".into(),
                        message: e.without_url().to_string(),
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body: Option<ErrorResponse> = resp.json().await.ok();
                    let reasons: Vec<&str> = body
                        .as_ref()
                        .map(|b| b.error.errors.iter().map(|e| e.reason.as_str()).collect())
                        .unwrap_or_default();
                    if status == 403
                        && reasons
                            .iter()
                            .any(|r| *r == "quotaExceeded" || *r == "dailyLimitExceeded")
                    {
                        let until = next_reset_ms(now);
                        outcome(key, "quota", false);
                        self.state.mark_exhausted(&key.name, until).await?;
                        tracing::warn!(key = %key.name, method = method.name(), until_ms = until, "API key out of quota; trying the next");
                        continue;
                    }
                    if status == 429 || status >= 500 {
                        outcome(key, "transient", true);
                        format!("HTTP {status}")
                    } else {
                        outcome(key, "error", true);
                        return Err(FetchError::Api {
                            status,
                            reason: reasons.first().copied().unwrap_or_default().to_string(),
                            message: body
                                .as_ref()
                                .map(|b| b.error.message.clone())
                                .unwrap_or_default(),
                        });
                    }
                }
                Err(e) => {
                    outcome(key, "transient", false);
                    e.without_url().to_string()
                }
            };
            attempt += 1;
            if attempt > self.config.retries {
                return Err(FetchError::Unreachable(transient));
            }
            let base = 200u64 << attempt.min(6);
            let wait = Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2));
            tracing::warn!(error = %transient, method = method.name(), attempt, wait_ms = wait.as_millis() as u64, "YouTube API failed; backing off");
            tokio::time::sleep(wait).await;
        }
    }
}
