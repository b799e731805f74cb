//! The resend lookup: which events of a batch `event_ids` already has.
//!
//! A batch of recent events covers a short span of time, and `event_ids` holds few other rows in
//! that span (what the batches before it wrote there): the span's rows are read whole, at most
//! [`RANGE_ROWS_PER_KEY`] per key of the batch, and matched here. That is a third of what the
//! server spends matching the batch's ids itself (it builds a set of them for every query); when
//! the span holds more (a group of many consumers writing the same times), or the batch spans
//! long, the batch's keys go to the server, which returns those it has.
//!
//! The batch's (time, id) keys go to the server as *external data* (ClickHouse's HTTP interface
//! takes a query's temporary tables in a multipart body, in any input format), in RowBinary, not
//! as literals in the SQL: the server's SQL parser takes 2-3 µs per literal (about 100 ms for a
//! batch of 50,000, in 25 queries under `max_query_size`); binary rows cost it next to nothing,
//! and the whole batch is one query. On a cluster the temporary table goes with the query to every
//! shard.

use std::time::Duration;

use uuid::Uuid;

use super::ahead::{Key, KeySet};
use crate::SinkError;

/// Keys sent per lookup query.
const KEYS_PER_QUERY: usize = 100_000;
/// A key as RowBinary: the time (UInt64) and the id (UUID: its high and low halves, each a
/// little-endian UInt64); the answer's rows have the same shape.
const ROW: usize = 24;
/// A chunk whose events occurred within this span is looked up by time range, not by each time.
const SHORT_SPAN_MS: u64 = 600_000;
/// A short span is read whole when it holds at most this many rows per key looked up.
const RANGE_ROWS_PER_KEY: usize = 4;
/// How long one lookup may take before it counts as failed (and the batch is retried).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Looks events up in one database's `event_ids`.
#[derive(Clone)]
pub(super) struct Lookups {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
    /// `database` and the configured settings, as URL parameters.
    params: Vec<(String, String)>,
}

impl Lookups {
    pub fn new(
        url: &str,
        user: &str,
        password: &str,
        database: &str,
        settings: Vec<(&'static str, String)>,
    ) -> Self {
        let mut params = vec![("database".to_string(), database.to_string())];
        params.extend(settings.into_iter().map(|(k, v)| (k.to_string(), v)));
        Self {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("an HTTP client without TLS builds"),
            url: url.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            params,
        }
    }

    /// Rows of `event_ids` (time in ms, event id) that include every key of `keys` the table has
    /// for `stream` (and maybe events of the same ids at other times).
    /// `keys` is sorted by time.
    pub async fn seen(&self, stream: &'static str, keys: &[Key]) -> Result<KeySet, SinkError> {
        let mut seen = KeySet::default();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let (first, last) = (chunk[0].0, chunk[chunk.len() - 1].0);
            // The month bounds let the server skip other partitions; the times pick the granules
            // (the table is ordered by stream, time, id): a short span as a range, a long one (a
            // backlog with stragglers) as the exact set; the ids pick the rows (the caller matches
            // whole keys: a (time, id) pair as the filter costs the server half as much again).
            let months = format!(
                "stream = '{stream}' \
                 AND occurred_at >= toDateTime({}) AND occurred_at <= toDateTime({})",
                first / 1000,
                last / 1000,
            );
            if last - first <= SHORT_SPAN_MS {
                let most = chunk.len() * RANGE_ROWS_PER_KEY;
                let sql = format!(
                    "SELECT occurred_at_ms, event_id FROM event_ids \
                     WHERE {months} AND occurred_at_ms BETWEEN {first} AND {last} \
                     LIMIT {} FORMAT RowBinary",
                    most + 1
                );
                let started = std::time::Instant::now();
                let answer = self.query(&sql, None).await?;
                let rows = keys_of(&answer)?;
                tracing::debug!(
                    keys = chunk.len(),
                    rows = rows.len(),
                    whole = rows.len() <= most,
                    ms = started.elapsed().as_millis() as u64,
                    "resend lookup: the span read"
                );
                if rows.len() <= most {
                    // `chunk` is sorted (by time, then id).
                    seen.extend(rows.filter(|k| chunk.binary_search(k).is_ok()));
                    continue;
                }
            }
            let times = if last - first <= SHORT_SPAN_MS {
                format!("occurred_at_ms BETWEEN {first} AND {last}")
            } else {
                "occurred_at_ms IN (SELECT ms FROM keys)".to_string()
            };
            let sql = format!(
                "SELECT occurred_at_ms, event_id FROM event_ids \
                 WHERE {months} AND {times} AND event_id IN (SELECT id FROM keys) \
                 FORMAT RowBinary"
            );
            let started = std::time::Instant::now();
            seen.extend(keys_of(&self.query(&sql, Some(chunk)).await?)?);
            tracing::debug!(
                keys = chunk.len(),
                ms = started.elapsed().as_millis() as u64,
                "resend lookup: the keys sent"
            );
        }
        Ok(seen)
    }

    /// Runs `sql`, with `keys` (if any) as the temporary table `keys (ms UInt64, id UUID)`; its
    /// answer.
    async fn query(&self, sql: &str, keys: Option<&[Key]>) -> Result<Vec<u8>, SinkError> {
        let mut params = self.params.clone();
        // Without keys the query is the body; with them it goes in the URL, the body being the
        // keys.
        if keys.is_some() {
            params.push(("query".into(), sql.to_string()));
        }
        // A fresh random boundary: neither chance nor a client choosing event ids puts it in the
        // binary rows.
        let boundary = format!("lookup{}", Uuid::new_v4().simple());
        let body = keys.map(|keys| {
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"keys\"; filename=\"keys\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .into_bytes();
            body.reserve(keys.len() * ROW + 64);
            for (ms, id) in keys {
                let (high, low) = id.as_u64_pair();
                body.extend_from_slice(&ms.to_le_bytes());
                body.extend_from_slice(&high.to_le_bytes());
                body.extend_from_slice(&low.to_le_bytes());
            }
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            params.push(("keys_structure".into(), "ms UInt64, id UUID".into()));
            params.push(("keys_format".into(), "RowBinary".into()));
            body
        });
        let url = reqwest::Url::parse_with_params(&self.url, &params)
            .map_err(|e| SinkError::Transient(format!("CLICKHOUSE_URL: {e}")))?;
        let mut request = self
            .http
            .post(url)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password);
        request = match body {
            Some(body) => request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
            None => request.body(sql.to_string()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| SinkError::Transient(format!("event_ids lookup: {e}")))?;
        let ok = response.status().is_success();
        let answer = response
            .bytes()
            .await
            .map_err(|e| SinkError::Transient(format!("event_ids lookup: {e}")))?;
        if ok {
            Ok(answer.to_vec())
        } else {
            let text = String::from_utf8_lossy(&answer);
            // Whatever the server says, the batch's data is not at fault: a lookup is retried.
            Err(SinkError::Transient(format!(
                "event_ids lookup: {}",
                text.chars().take(2000).collect::<String>()
            )))
        }
    }
}

/// The keys of a RowBinary answer of (time UInt64, id UUID) rows.
fn keys_of(rows: &[u8]) -> Result<impl ExactSizeIterator<Item = Key> + '_, SinkError> {
    if !rows.len().is_multiple_of(ROW) {
        return Err(SinkError::Transient(format!(
            "event_ids lookup: {} bytes is not a whole number of rows",
            rows.len()
        )));
    }
    Ok(rows.chunks_exact(ROW).map(|row| {
        let word = |i: usize| u64::from_le_bytes(row[i..i + 8].try_into().expect("8 bytes"));
        (word(0), Uuid::from_u64_pair(word(8), word(16)))
    }))
}
