//! Retry delays for every transient failure: exponential with full jitter (backon's), 100 ms
//! doubling up to 5 s, never giving up (the caller decides when to stop, e.g. on shutdown).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

pub struct Backoff {
    delays: backon::ExponentialBackoff,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            delays: ExponentialBuilder::default()
                .with_min_delay(first)
                .with_max_delay(max)
                .with_jitter()
                .without_max_times()
                .build(),
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(Duration::from_secs(5))
    }

    /// Waits the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[10] >= Duration::from_millis(500), "{delays:?}");
    }
}
