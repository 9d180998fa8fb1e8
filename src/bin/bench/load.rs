//! A closed-loop HTTP load generator: a fixed number of workers, each sending its next
//! request as soon as the previous response arrives, bounded in time and in requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::stats::percentile;

/// One request, sent again and again.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub headers: HeaderMap,
    pub body: axum::body::Bytes,
}

/// Measurements of one load run.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests that returned 200.
    pub ok: u64,
    /// Requests that returned another status or failed in transport.
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every successful request, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 0.50)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.latencies, 0.99)
    }
}

/// A client with one keep-alive connection per worker and no proxy.
pub fn client(workers: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(workers)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Runs `workers` concurrent loops against `target` until `duration` has passed or
/// `max_requests` have been sent.
pub async fn closed_loop(
    client: &reqwest::Client,
    target: &Target,
    workers: usize,
    duration: Duration,
    max_requests: u64,
) -> LoadResult {
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let client = client.clone();
        let target = target.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
                let began = Instant::now();
                let outcome = client
                    .post(&target.url)
                    .headers(target.headers.clone())
                    .body(target.body.clone())
                    .send()
                    .await;
                let ok = match outcome {
                    Ok(response) => {
                        let status = response.status();
                        // The body is read so that the connection can be reused.
                        response.bytes().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    result.ok += 1;
                    result.latencies.push(began.elapsed());
                } else {
                    result.errors += 1;
                }
            }
            result
        }));
    }
    let mut total = LoadResult::default();
    for task in tasks {
        if let Ok(part) = task.await {
            total.ok += part.ok;
            total.errors += part.errors;
            total.latencies.extend(part.latencies);
        } else {
            total.errors += 1;
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}
