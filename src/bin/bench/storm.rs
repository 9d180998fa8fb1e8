//! Refresh storm: many concurrent requests on one Slack connection whose access token
//! has expired. The gateway must call the token endpoint once, and every request waits
//! for that one refresh.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use patchbay::Provider;
use patchbay::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::procs::GatewayProcess;
use crate::setup::{GatewayDb, connect};
use crate::stats::{millis, percentile};

const TOKEN_PATH: &str = "/slack/api/oauth.v2.access";

pub struct StormSettings {
    pub runs: usize,
    pub requests: usize,
    /// Delay the sandbox adds to the token endpoint.
    pub token_latency: Duration,
}

/// One storm run: latencies in ms with the token expired, and with a fresh token.
#[derive(Debug, Clone, Copy, Default)]
pub struct StormRun {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub fresh_p50: f64,
    pub fresh_p99: f64,
    pub token_calls: usize,
}

/// Sends `count` requests at once and returns their latencies, sorted; fails unless
/// every one succeeds.
async fn burst(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::with_capacity(count);
    let body = json!({"channel": "#general", "text": "Storm"});
    for _ in 0..count {
        let request = client.post(url).bearer_auth(key).json(&body);
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let response = request.send().await?;
            let status = response.status();
            response.bytes().await?;
            anyhow::Ok((status, began.elapsed()))
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        let (status, latency) = task.await??;
        if !status.is_success() {
            bail!("a storm request failed with {status}");
        }
        latencies.push(latency);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

async fn control(
    client: &reqwest::Client,
    sandbox: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .request(method, format!("{sandbox}/_sandbox/{path}"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(response.json().await.unwrap_or(Value::Null))
}

pub async fn run(dir: &Path, settings: &StormSettings) -> anyhow::Result<Vec<StormRun>> {
    let sandbox = Sandbox::start(SandboxConfig {
        slack_token_rotation: true,
        ..SandboxConfig::default()
    })
    .await?;
    let sandbox_url = sandbox.base_url();
    let db = GatewayDb::create(dir).await?;
    let env = db.env(&sandbox.urls(), &sandbox.urls().slack_api);
    let gateway = GatewayProcess::spawn(&env, &dir.join("gateway-storm.log")).await?;
    connect(&gateway.base_url(), &db.api_key, "slack", None).await?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(settings.requests)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{}/v1/execute/slack/message", gateway.base_url());
    let mut runs = Vec::new();
    for index in 0..settings.runs {
        let fresh = burst(&client, &url, &db.api_key, settings.requests).await?;

        db.expire_access_token(Provider::Slack, None).await?;
        control(
            &client,
            &sandbox_url,
            reqwest::Method::POST,
            "slack/expire-tokens",
            json!({}),
        )
        .await?;
        control(
            &client,
            &sandbox_url,
            reqwest::Method::DELETE,
            "requests",
            Value::Null,
        )
        .await?;
        let delay = settings.token_latency.as_millis() as u64;
        let fault = json!({"path": TOKEN_PATH, "delayMs": delay, "times": 1});
        control(
            &client,
            &sandbox_url,
            reqwest::Method::POST,
            "faults",
            fault,
        )
        .await?;

        let storm = burst(&client, &url, &db.api_key, settings.requests).await?;
        let log = control(
            &client,
            &sandbox_url,
            reqwest::Method::GET,
            "requests",
            Value::Null,
        )
        .await?;
        let token_calls = log
            .as_array()
            .context("the sandbox request log is not a list")?
            .iter()
            .filter(|request| request["path"] == TOKEN_PATH)
            .count();
        if token_calls != 1 {
            bail!(
                "refresh storm run {}: {token_calls} token calls, expected exactly 1",
                index + 1
            );
        }
        let run = StormRun {
            p50: millis(percentile(&storm, 0.50)),
            p99: millis(percentile(&storm, 0.99)),
            max: millis(storm.last().copied().unwrap_or_default()),
            fresh_p50: millis(percentile(&fresh, 0.50)),
            fresh_p99: millis(percentile(&fresh, 0.99)),
            token_calls,
        };
        eprintln!(
            "storm run {}: p99 {:.1} ms, one token call",
            index + 1,
            run.p99
        );
        runs.push(run);
    }
    gateway.stop().await;
    sandbox.shutdown().await;
    Ok(runs)
}
