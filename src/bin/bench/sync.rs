//! Gmail sync at the quota limit: an initial sync of a large mailbox in pages of 100
//! against a sandbox that enforces Gmail's per-user quota and adds latency.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use patchbay::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::procs::GatewayProcess;
use crate::setup::{GatewayDb, connect};

/// Gmail's per-user quota as the sandbox enforces it, in units per second.
pub const SANDBOX_UNITS_PER_SECOND: f64 = 250.0;
/// Quota units per synced message: one `messages.get` (5) and a hundredth of a
/// `messages.list` page (5).
pub const UNITS_PER_MESSAGE: f64 = 5.0 + 5.0 / 100.0;

pub struct SyncSettings {
    pub runs: usize,
    pub baseline_runs: usize,
    /// Messages in the mailbox, all synced by the paced runs.
    pub messages: usize,
    /// Messages synced by each baseline run (fetches one at a time).
    pub baseline_messages: usize,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SyncRun {
    pub messages: usize,
    pub per_second: f64,
    pub rejected: usize,
    pub peak_mib: f64,
}

/// Writes `count` small messages dated now into `dir`.
fn write_mailbox(dir: &Path, count: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let date = chrono::Utc::now().to_rfc2822();
    for index in 0..count {
        let eml = format!(
            "From: Sender {index} <sender{index}@example.com>\r\nTo: ada@example.com\r\n\
             Subject: Benchmark message {index}\r\nDate: {date}\r\n\
             Message-ID: <bench-{index}@example.com>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n\
             Message number {index} of the sync benchmark.\r\nA second line of text.\r\n"
        );
        std::fs::write(dir.join(format!("{index:05}.eml")), eml)?;
    }
    Ok(())
}

/// Syncs up to `limit` messages in pages of 100 and returns how many arrived.
async fn sync_pages(
    client: &reqwest::Client,
    gateway: &str,
    key: &str,
    limit: usize,
) -> anyhow::Result<usize> {
    let mut synced = 0;
    let mut page_token: Option<String> = None;
    while synced < limit {
        let mut body = json!({"mode": "initial", "maxResults": 100, "userId": "bench"});
        if let Some(token) = &page_token {
            body["pageToken"] = json!(token);
        }
        let response = client
            .post(format!("{gateway}/v1/execute/gmail/sync"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let page: Value = response.json().await?;
        if !status.is_success() {
            bail!("a sync page failed with {status}: {page}");
        }
        synced += page["messages"].as_array().map_or(0, Vec::len);
        page_token = page["nextPageToken"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    Ok(synced)
}

async fn one_run(
    dir: &Path,
    sandbox: &Sandbox,
    fetch_concurrency: usize,
    limit: usize,
) -> anyhow::Result<SyncRun> {
    std::fs::create_dir_all(dir)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()?;
    let db = GatewayDb::create(dir).await?;
    let mut env = db.env(&sandbox.urls(), &sandbox.urls().slack_api);
    env.push((
        "PATCHBAY_GMAIL_FETCH_CONCURRENCY".to_owned(),
        fetch_concurrency.to_string(),
    ));
    let gateway = GatewayProcess::spawn(&env, &dir.join("gateway.log")).await?;
    connect(&gateway.base_url(), &db.api_key, "google", Some("bench")).await?;
    let log_url = format!("{}/_sandbox/requests", sandbox.base_url());
    client.delete(&log_url).send().await?.error_for_status()?;
    // Let the sandbox's quota bucket refill after the previous run.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now();
    let messages = sync_pages(&client, &gateway.base_url(), &db.api_key, limit).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_mib = gateway.memory()?.hwm_mib;
    gateway.stop().await;

    let log: Value = client.get(&log_url).send().await?.json().await?;
    let rejected = log
        .as_array()
        .context("the sandbox request log is not a list")?
        .iter()
        .filter(|request| request["status"] == 429)
        .count();
    Ok(SyncRun {
        messages,
        per_second: messages as f64 / seconds,
        rejected,
        peak_mib,
    })
}

/// Runs the paced syncs, then the baseline syncs with one fetch at a time.
pub async fn run(
    dir: &Path,
    settings: &SyncSettings,
) -> anyhow::Result<(Vec<SyncRun>, Vec<SyncRun>)> {
    let mailbox = dir.join("mailbox");
    write_mailbox(&mailbox, settings.messages)?;
    let sandbox = Sandbox::start(SandboxConfig {
        gmail_quota: true,
        latency_ms: settings.latency_ms,
        mailbox: Some(mailbox),
        ..SandboxConfig::default()
    })
    .await?;
    let mut paced = Vec::new();
    for index in 0..settings.runs {
        let run = one_run(
            &dir.join(format!("sync-{index}")),
            &sandbox,
            8,
            settings.messages,
        )
        .await?;
        eprintln!(
            "sync run {}: {} messages, {:.1}/s, {} answered 429, peak {:.1} MiB",
            index + 1,
            run.messages,
            run.per_second,
            run.rejected,
            run.peak_mib
        );
        paced.push(run);
    }
    let mut baseline = Vec::new();
    for index in 0..settings.baseline_runs {
        let dir = dir.join(format!("sync-baseline-{index}"));
        let run = one_run(&dir, &sandbox, 1, settings.baseline_messages).await?;
        eprintln!(
            "baseline sync run {}: {} messages, {:.1}/s, {} answered 429",
            index + 1,
            run.messages,
            run.per_second,
            run.rejected
        );
        baseline.push(run);
    }
    sandbox.shutdown().await;
    Ok((paced, baseline))
}
