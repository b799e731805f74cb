//! The one shutdown primitive of every binary: a cloneable handle that can be awaited in several
//! places, and asked "has shutdown started?" after it fired (as in mini-redis). It fires on SIGTERM
//! or Ctrl-C ([`Shutdown::on_signal`]), when a caller's future completes ([`Shutdown::when`], for
//! tests), or when someone calls [`Shutdown::trigger`].

use std::future::Future;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that fires only when triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that fires on the first SIGTERM or SIGINT.
    pub fn on_signal() -> Self {
        Self::when(signal())
    }

    /// A handle that fires when `done` completes (or when triggered).
    pub fn when(done: impl Future<Output = ()> + Send + 'static) -> Self {
        let handle = Self::new();
        let token = handle.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = done => token.cancel(),
                _ = token.cancelled() => {}
            }
        });
        handle
    }

    /// Starts shutdown; every waiter wakes.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started (at once if it already has); may be awaited any number
    /// of times, from any clone.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}

/// Waits for every task of a binary; the first that fails (or panics) triggers `shutdown` so the
/// others stop too, and is returned (so the process exits non-zero).
pub async fn join_all<E>(
    mut tasks: tokio::task::JoinSet<Result<(), E>>,
    shutdown: &Shutdown,
) -> Result<(), E>
where
    E: std::fmt::Display + From<tokio::task::JoinError> + Send + 'static,
{
    let mut failed = None;
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.map_err(E::from).and_then(|r| r) {
            tracing::error!(error = %e, "task stopped with an error; shutting down");
            shutdown.trigger();
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_waiter_and_stays_fired() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = Shutdown::when(async {
            let _ = rx.await;
        });
        assert!(!s.is_triggered());
        let clone = s.clone();
        let waiter = tokio::spawn(async move { clone.wait().await });
        tx.send(()).unwrap();
        waiter.await.unwrap();
        s.wait().await;
        s.wait().await; // awaiting again after it fired returns at once
        assert!(s.is_triggered());
    }
}
