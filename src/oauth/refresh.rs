//! Single-flight token refresh: concurrent requests on one connection share one
//! refresh call, and every waiter gets its outcome.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// Upper bound on one refresh, retries included. A refresh still running then is
/// reported to its waiters as timed out, and the next request starts a new one.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(15);

/// Outcome of a refresh; cloned to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshFailure {
    #[error("the grant was revoked or expired")]
    Revoked,
    #[error("the provider rate-limited the refresh")]
    RateLimited { retry_after: u64 },
    #[error("the refresh failed: {0}")]
    Unavailable(String),
    #[error("the refresh did not finish within {} s", REFRESH_DEADLINE.as_secs())]
    TimedOut,
    #[error("the refresh failed internally: {0}")]
    Internal(String),
}

type Flight = Shared<BoxFuture<'static, Result<(), RefreshFailure>>>;

/// The refreshes in flight, by key (connection id and token kind).
#[derive(Default, Clone)]
pub struct Refresher {
    flights: Arc<Mutex<HashMap<String, (u64, Flight)>>>,
    next_generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Refresher {
    /// Joins the refresh in flight for `key`, or starts `refresh` as a new one.
    ///
    /// The refresh runs in its own task, so a caller that goes away does not
    /// cancel it for the others, and it is abandoned after [`REFRESH_DEADLINE`].
    pub async fn run<F>(&self, key: &str, refresh: impl FnOnce() -> F) -> Result<(), RefreshFailure>
    where
        F: Future<Output = Result<(), RefreshFailure>> + Send + 'static,
    {
        let flight = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match flights.get(key) {
                Some((_, flight)) => flight.clone(),
                None => {
                    let generation = self
                        .next_generation
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let flight = self.start(key.to_owned(), generation, refresh());
                    flights.insert(key.to_owned(), (generation, flight.clone()));
                    flight
                }
            }
        };
        flight.await
    }

    fn start<F>(&self, key: String, generation: u64, refresh: F) -> Flight
    where
        F: Future<Output = Result<(), RefreshFailure>> + Send + 'static,
    {
        let flights = Arc::clone(&self.flights);
        let task = tokio::spawn(async move {
            let outcome = match tokio::time::timeout(REFRESH_DEADLINE, refresh).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::warn!(key = %key, "token refresh timed out");
                    Err(RefreshFailure::TimedOut)
                }
            };
            let mut flights = flights.lock().unwrap_or_else(|poison| poison.into_inner());
            if flights
                .get(&key)
                .is_some_and(|(current, _)| *current == generation)
            {
                flights.remove(&key);
            }
            outcome
        });
        async move {
            task.await
                .unwrap_or_else(|error| Err(RefreshFailure::Internal(error.to_string())))
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let refresher = Refresher::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for _ in 0..20 {
            let refresher = refresher.clone();
            let calls = Arc::clone(&calls);
            waiters.push(tokio::spawn(async move {
                refresher
                    .run("conn", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(())
                    })
                    .await
            }));
        }
        for waiter in waiters {
            assert!(waiter.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failure_reaches_every_waiter_and_next_call_retries() {
        let refresher = Refresher::default();
        let first = refresher.run("conn", || async { Err(RefreshFailure::Revoked) });
        let second = refresher.run("conn", || async { Ok(()) });
        let (first, second) = tokio::join!(first, second);
        assert!(matches!(first, Err(RefreshFailure::Revoked)));
        assert!(matches!(second, Err(RefreshFailure::Revoked)));
        assert!(refresher.run("conn", || async { Ok(()) }).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_refresh_times_out_for_all_waiters() {
        let refresher = Refresher::default();
        let hang = || std::future::pending::<Result<(), RefreshFailure>>();
        let (first, second) =
            tokio::join!(refresher.run("conn", hang), refresher.run("conn", hang));
        assert!(matches!(first, Err(RefreshFailure::TimedOut)));
        assert!(matches!(second, Err(RefreshFailure::TimedOut)));
        assert!(refresher.run("conn", || async { Ok(()) }).await.is_ok());
    }
}
