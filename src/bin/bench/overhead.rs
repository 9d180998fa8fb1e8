//! Gateway overhead: `POST /v1/execute/slack/message` through the gateway to a fast fake
//! Slack, next to the same fake reached directly and through nginx as a plain reverse
//! proxy that injects the bearer token. Each run also starts a fresh gateway process,
//! which gives the start-up time and the idle and loaded memory.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::post;
use patchbay::sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

use crate::load::{LoadResult, Target, client, closed_loop};
use crate::procs::{GatewayProcess, Memory, Nginx, cpu_time};
use crate::setup::GatewayDb;
use crate::stats::millis;

/// The bot token that the fake Slack accepts.
const BOT_TOKEN: &str = "xoxb-bench-0000000000-0000000000000";

/// Settings of the overhead runs.
pub struct OverheadSettings {
    pub runs: usize,
    /// Workers of the throughput measurement.
    pub workers: usize,
    /// Length of each measurement.
    pub duration: Duration,
}

/// The measurements of one target in one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetRun {
    /// Requests per second with `workers` concurrent clients.
    pub throughput: f64,
    /// Latency under that load, in ms.
    pub loaded_p50: f64,
    pub loaded_p99: f64,
    /// Latency of one client sending one request at a time, in ms.
    pub p50: f64,
    pub p99: f64,
    /// CPU time of the proxy (gateway or nginx) per request under load, in µs; NaN for
    /// the fake alone, which shares the benchmark process.
    pub cpu_us_per_request: f64,
    pub errors: u64,
}

/// One overhead run: the three targets and the gateway process's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverheadRun {
    pub direct: TargetRun,
    pub nginx: TargetRun,
    pub gateway: TargetRun,
    pub startup_ms: f64,
    pub idle: Option<Memory>,
    pub loaded: Option<Memory>,
}

/// Starts the fake Slack on a free loopback port and returns its Web API base URL.
async fn start_fake_slack() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/api/chat.postMessage", post(post_message));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/api"))
}

/// `chat.postMessage` that checks the bearer token and returns a fixed message.
async fn post_message(
    headers: HeaderMap,
    _body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let expected = format!("Bearer {BOT_TOKEN}");
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    let body = if authorized {
        json!({"ok": true, "channel": "C0BENCH", "ts": "1700000000.000100",
            "message": {"type": "message", "text": "Benchmark message"}})
    } else {
        json!({"ok": false, "error": "invalid_auth"})
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

fn target(url: String, api_key: &str) -> anyhow::Result<Target> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {api_key}"))?,
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Target {
        url,
        headers,
        body: Bytes::from_static(br#"{"channel":"C0BENCH","text":"Benchmark message"}"#),
    })
}

/// Measures one target; `proxy_pids` are the processes whose CPU time counts.
async fn measure(
    target: &Target,
    settings: &OverheadSettings,
    proxy_pids: &[u32],
) -> anyhow::Result<TargetRun> {
    let many = client(settings.workers)?;
    let warm_up = Duration::from_millis(500);
    closed_loop(&many, target, settings.workers, warm_up, u64::MAX).await;
    let cpu_before = cpu_time(proxy_pids);
    let loaded = closed_loop(
        &many,
        target,
        settings.workers,
        settings.duration,
        5_000_000,
    )
    .await;
    let cpu_used = cpu_time(proxy_pids).saturating_sub(cpu_before);
    let cpu_us_per_request = if proxy_pids.is_empty() {
        f64::NAN
    } else {
        cpu_used.as_secs_f64() * 1e6 / loaded.ok.max(1) as f64
    };
    let one = client(1)?;
    closed_loop(&one, target, 1, warm_up, u64::MAX).await;
    let single = closed_loop(&one, target, 1, settings.duration, 1_000_000).await;
    check_answers(&loaded, &target.url)?;
    Ok(TargetRun {
        throughput: loaded.throughput(),
        loaded_p50: millis(loaded.p50()),
        loaded_p99: millis(loaded.p99()),
        p50: millis(single.p50()),
        p99: millis(single.p99()),
        cpu_us_per_request,
        errors: loaded.errors + single.errors,
    })
}

fn check_answers(result: &LoadResult, url: &str) -> anyhow::Result<()> {
    if result.ok == 0 {
        anyhow::bail!("no request to {url} succeeded");
    }
    Ok(())
}

/// The nginx `http` block: a keep-alive upstream to the fake Slack and one location that
/// replaces the client's `Authorization` with the bot token.
fn nginx_http_block(fake_slack_api: &str) -> String {
    let upstream = fake_slack_api
        .trim_start_matches("http://")
        .trim_end_matches("/api");
    format!(
        "  upstream fake_slack {{ server {upstream}; keepalive 64; }}\n  \
         server {{\n    listen {{LISTEN}};\n    \
         location = /v1/execute/slack/message {{\n      \
         proxy_pass http://fake_slack/api/chat.postMessage;\n      \
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
         proxy_set_header Authorization \"Bearer {BOT_TOKEN}\";\n    }}\n  }}"
    )
}

/// Runs the overhead scenario `settings.runs` times.
pub async fn run(dir: &Path, settings: &OverheadSettings) -> anyhow::Result<Vec<OverheadRun>> {
    let fake_slack = start_fake_slack().await?;
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let nginx = Nginx::start(&nginx_dir, &nginx_http_block(&fake_slack)).await?;
    // The gateway needs Google and Slack OAuth URLs; the sandbox supplies them, but the
    // Slack Web API calls go to the fake.
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;

    let mut runs = Vec::new();
    for index in 0..settings.runs {
        let run_dir = dir.join(format!("overhead-{index}"));
        std::fs::create_dir_all(&run_dir)?;
        let db = GatewayDb::create(&run_dir).await?;
        db.insert_slack_connection(BOT_TOKEN).await?;
        let env = db.env(&sandbox.urls(), &fake_slack);
        let gateway = GatewayProcess::spawn(&env, &run_dir.join("gateway.log")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = gateway.memory().ok();

        let direct = target(format!("{fake_slack}/chat.postMessage"), BOT_TOKEN)?;
        let via_nginx = target(
            format!("http://{}/v1/execute/slack/message", nginx.addr),
            &db.api_key,
        )?;
        let via_gateway = target(
            format!("{}/v1/execute/slack/message", gateway.base_url()),
            &db.api_key,
        )?;
        let mut run = OverheadRun {
            startup_ms: millis(gateway.startup),
            idle,
            ..OverheadRun::default()
        };
        let gateway_pids: Vec<u32> = gateway.pid().into_iter().collect();
        let nginx_pids = nginx.pids();
        // The order rotates between runs so that no target always goes first.
        for step in 0..3 {
            match (step + index) % 3 {
                0 => run.gateway = measure(&via_gateway, settings, &gateway_pids).await?,
                1 => run.nginx = measure(&via_nginx, settings, &nginx_pids).await?,
                _ => run.direct = measure(&direct, settings, &[]).await?,
            }
        }
        run.loaded = gateway.memory().ok();
        gateway.stop().await;
        eprintln!(
            "overhead run {}: gateway {:.0} req/s, nginx {:.0} req/s, direct {:.0} req/s",
            index + 1,
            run.gateway.throughput,
            run.nginx.throughput,
            run.direct.throughput
        );
        runs.push(run);
    }
    nginx.stop().await;
    sandbox.shutdown().await;
    Ok(runs)
}
