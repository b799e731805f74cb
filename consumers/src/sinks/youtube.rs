//! Fetch requests (`POST /api/v1/videos/fetch` produces VideoFetchRequested) on the shared runtime:
//! a request is committed once its fetch is done, or failed for good (the API refused the query:
//! dead-lettered with its answer). Everything else — the API or the network down, every key out of
//! quota, a bad key, MongoDB or Kafka unreachable, the schema registry down — is retried with the
//! runtime's backoff while the request stays uncommitted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use producers::youtube::Fetcher;
use schemas::events::VideoFetchRequested;

use crate::{Record, Sink, SinkError, Written};

pub struct FetchRequests {
    fetcher: Arc<Fetcher>,
    /// Queries the API refused, with its answer, for the batch being written: a retry of the
    /// batch (another request's fetch failed for a while) does not ask the API again.
    refused: Mutex<HashMap<String, String>>,
}

impl FetchRequests {
    pub fn new(fetcher: Arc<Fetcher>) -> Self {
        Self {
            fetcher,
            refused: Mutex::new(HashMap::new()),
        }
    }
}

impl Sink for FetchRequests {
    type Event = VideoFetchRequested;

    fn name(&self) -> &'static str {
        "youtube-requests"
    }

    /// One fetch per distinct query of the batch (a burst of requests for a query is one fetch).
    async fn write(&self, batch: &[Record<VideoFetchRequested>]) -> Result<Written, SinkError> {
        let mut outcome: HashMap<&str, Option<String>> = HashMap::new();
        let mut refused = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            let query = r.event.query.as_str();
            let known = self
                .refused
                .lock()
                .expect("not poisoned")
                .get(query)
                .cloned();
            let failure = match outcome.get(query) {
                Some(done) => done.clone(),
                None if known.is_some() => known,
                None => {
                    let done = match self.fetcher.fetch_query(query).await {
                        Ok(_) => None,
                        Err(e) if e.is_permanent() => {
                            let reason = e.to_string();
                            self.refused
                                .lock()
                                .expect("not poisoned")
                                .insert(query.to_string(), reason.clone());
                            Some(reason)
                        }
                        Err(e) => return Err(SinkError::Transient(e.to_string())),
                    };
                    outcome.insert(query, done.clone());
                    done
                }
            };
            if let Some(reason) = failure {
                refused.push((i, reason));
            }
        }
        self.refused.lock().expect("not poisoned").clear();
        Written::default().unless_refused(refused)
    }
}
