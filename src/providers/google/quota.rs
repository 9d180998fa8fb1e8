//! Per-connection pacing of Gmail API calls, so that the gateway stays under Gmail's
//! per-user limits instead of running into `429 rateLimitExceeded`.
//!
//! Gmail meters each user in quota units per second (a message fetch costs 5 units) and
//! also limits the requests one user has in flight. Every connection gets a token bucket
//! refilled at the configured rate and a semaphore of [`MAX_IN_FLIGHT`] permits. A call
//! takes an in-flight permit first, then reserves its units; when the bucket is short it
//! sleeps until the units have accrued. The state lives in this process only, so several
//! gateway instances serving one connection each pace on their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Default rate in quota units per second: a little under the 250 units per second per
/// user that Google publishes for the Gmail API, to leave room for timing jitter.
pub const DEFAULT_UNITS_PER_SECOND: u32 = 240;

/// Gmail requests one connection may have in flight. Gmail rejects a user's requests
/// beyond about 10 concurrent ones.
pub const MAX_IN_FLIGHT: usize = 10;

/// Connections tracked before idle ones are forgotten.
const PRUNE_THRESHOLD: usize = 1024;

/// A Gmail API method the gateway calls, with its cost in quota units.
///
/// NOTE: the costs follow Google's "Usage limits" page for the Gmail API as recalled,
/// because no copy of that table is kept in this repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GmailMethod {
    GetProfile,
    ListMessages,
    GetMessage,
    ListHistory,
    SendMessage,
    GetAttachment,
}

impl GmailMethod {
    /// Returns the method's cost in quota units.
    pub fn units(self) -> u32 {
        match self {
            GmailMethod::GetProfile => 1,
            GmailMethod::ListHistory => 2,
            GmailMethod::ListMessages | GmailMethod::GetMessage | GmailMethod::GetAttachment => 5,
            GmailMethod::SendMessage => 100,
        }
    }
}

/// The pacing state of every connection, keyed by connection id.
pub struct GmailQuota {
    units_per_second: u32,
    connections: Mutex<Connections>,
}

struct Connections {
    by_id: HashMap<String, Arc<ConnectionQuota>>,
    /// Size at which idle entries are pruned next.
    prune_at: usize,
}

impl GmailQuota {
    /// Paces every connection at `units_per_second` (at least 1).
    pub fn new(units_per_second: u32) -> GmailQuota {
        GmailQuota {
            units_per_second: units_per_second.max(1),
            connections: Mutex::new(Connections {
                by_id: HashMap::new(),
                prune_at: PRUNE_THRESHOLD,
            }),
        }
    }

    /// Returns the pacing state of one connection, creating it with a full bucket.
    pub fn connection(&self, connection_id: &str) -> Arc<ConnectionQuota> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(existing) = connections.by_id.get(connection_id) {
            return existing.clone();
        }
        if connections.by_id.len() >= connections.prune_at {
            // An entry with no other reference and a full bucket behaves exactly like a
            // new one, so dropping it loses nothing.
            connections
                .by_id
                .retain(|_, quota| Arc::strong_count(quota) > 1 || !quota.is_full());
            connections.prune_at = PRUNE_THRESHOLD.max(connections.by_id.len() * 2);
        }
        let quota = Arc::new(ConnectionQuota::new(self.units_per_second));
        connections
            .by_id
            .insert(connection_id.to_owned(), quota.clone());
        quota
    }
}

/// The token bucket and in-flight permits of one connection.
pub struct ConnectionQuota {
    /// Refill rate in units per second.
    rate: f64,
    /// Bucket capacity in units: a quarter second of the rate, so that a burst after an
    /// idle spell stays well inside what Gmail tolerates.
    burst: f64,
    bucket: Mutex<Bucket>,
    in_flight: Semaphore,
}

#[derive(Debug)]
struct Bucket {
    /// Units available; negative while callers wait for units they already reserved.
    units: f64,
    updated: Instant,
}

/// The right to send one Gmail request; the in-flight permit is released on drop.
pub struct QuotaPermit<'a> {
    _in_flight: Option<SemaphorePermit<'a>>,
}

impl ConnectionQuota {
    fn new(units_per_second: u32) -> ConnectionQuota {
        let rate = f64::from(units_per_second.max(1));
        let burst = rate / 4.0;
        ConnectionQuota {
            rate,
            burst,
            bucket: Mutex::new(Bucket {
                units: burst,
                updated: Instant::now(),
            }),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Waits for an in-flight permit and for the method's units, then returns the permit.
    pub async fn acquire(&self, method: GmailMethod) -> QuotaPermit<'_> {
        // The semaphore is never closed, so `acquire` does not fail; if it did, the call
        // would go out without an in-flight permit rather than fail.
        let permit = self.in_flight.acquire().await.ok();
        let wait = self.reserve(f64::from(method.units()));
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                ?method,
                "pacing Gmail call"
            );
            tokio::time::sleep(wait).await;
        }
        QuotaPermit { _in_flight: permit }
    }

    /// Empties the bucket after Gmail rejected a call for its rate, so that the calls
    /// waiting behind it slow down too.
    pub fn drain(&self) {
        let mut bucket = self.lock_bucket();
        self.refill(&mut bucket);
        bucket.units = bucket.units.min(0.0);
    }

    /// Takes `units` from the bucket and returns how long the caller must wait for them.
    fn reserve(&self, units: f64) -> Duration {
        let mut bucket = self.lock_bucket();
        self.refill(&mut bucket);
        bucket.units -= units;
        if bucket.units >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.units / self.rate)
    }

    fn refill(&self, bucket: &mut Bucket) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.units = (bucket.units + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
    }

    fn is_full(&self) -> bool {
        let mut bucket = self.lock_bucket();
        self.refill(&mut bucket);
        bucket.units >= self.burst
    }

    fn lock_bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_costs_match_gmail_table() {
        assert_eq!(GmailMethod::GetMessage.units(), 5);
        assert_eq!(GmailMethod::ListMessages.units(), 5);
        assert_eq!(GmailMethod::ListHistory.units(), 2);
        assert_eq!(GmailMethod::GetProfile.units(), 1);
        assert_eq!(GmailMethod::SendMessage.units(), 100);
        assert_eq!(GmailMethod::GetAttachment.units(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_paces_to_configured_rate() {
        let quota = GmailQuota::new(100);
        let connection = quota.connection("conn_a");
        let start = Instant::now();
        for _ in 0..100 {
            let _permit = connection.acquire(GmailMethod::GetMessage).await;
        }
        // 500 units at 100 units/s with a burst of 25 units: 4.75 s.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(4740), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(4760), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn burst_after_idle_is_immediate() {
        let quota = GmailQuota::new(240);
        let connection = quota.connection("conn_a");
        let start = Instant::now();
        for _ in 0..12 {
            let _permit = connection.acquire(GmailMethod::GetMessage).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let _permit = connection.acquire(GmailMethod::GetMessage).await;
        assert!(start.elapsed() > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let quota = Arc::new(GmailQuota::new(200));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let quota = quota.clone();
            tasks.push(tokio::spawn(async move {
                let connection = quota.connection("conn_a");
                let _permit = connection.acquire(GmailMethod::GetMessage).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // 200 units at 200 units/s with a burst of 50 units: 0.75 s.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(740), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(760), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn connections_have_separate_buckets() {
        let quota = GmailQuota::new(100);
        let first = quota.connection("conn_a");
        let second = quota.connection("conn_b");
        let _send = first.acquire(GmailMethod::SendMessage).await;
        let start = Instant::now();
        let _get = second.acquire(GmailMethod::GetMessage).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_is_capped() {
        let quota = GmailQuota::new(10_000);
        let connection = quota.connection("conn_a");
        let mut held = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            held.push(connection.acquire(GmailMethod::GetProfile).await);
        }
        let blocked = tokio::time::timeout(
            Duration::from_secs(5),
            connection.acquire(GmailMethod::GetProfile),
        )
        .await;
        assert!(blocked.is_err(), "an eleventh call got a permit");
        held.pop();
        let freed = tokio::time::timeout(
            Duration::from_secs(5),
            connection.acquire(GmailMethod::GetProfile),
        )
        .await;
        assert!(freed.is_ok(), "a released permit was not handed on");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_delays_next_call() {
        let quota = GmailQuota::new(100);
        let connection = quota.connection("conn_a");
        connection.drain();
        let start = Instant::now();
        let _permit = connection.acquire(GmailMethod::GetMessage).await;
        assert_eq!(start.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_full_entries_are_pruned() {
        let quota = GmailQuota::new(100);
        let kept = quota.connection("conn_kept");
        for index in 0..PRUNE_THRESHOLD {
            drop(quota.connection(&format!("conn_{index}")));
        }
        let _ = quota.connection("conn_new");
        let count = quota.connections.lock().unwrap().by_id.len();
        assert!(count <= 3, "{count} entries left after pruning");
        let again = quota.connection("conn_kept");
        assert!(Arc::ptr_eq(&kept, &again));
    }
}
