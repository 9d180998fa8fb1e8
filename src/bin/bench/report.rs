//! Renders `BENCHMARKS.md` from the measurements, keeping the hand-written notes below
//! [`NOTES_MARKER`] of the previous report.

use std::fmt::Write;
use std::process::Command;

use crate::Args;
use crate::mime::MimeRun;
use crate::overhead::{OverheadRun, TargetRun};
use crate::stats::Spread;
use crate::storm::StormRun;
use crate::sync::{SANDBOX_UNITS_PER_SECOND, SyncRun, UNITS_PER_MESSAGE};

/// Text below this line of an existing report is copied into the new one.
pub const NOTES_MARKER: &str =
    "<!-- Notes below this line are written by hand and kept by patchbay-bench. -->";

#[derive(Default)]
pub struct Results {
    pub overhead: Option<Vec<OverheadRun>>,
    pub storm: Option<Vec<StormRun>>,
    pub sync: Option<(Vec<SyncRun>, Vec<SyncRun>)>,
    pub mime: Option<(usize, Vec<MimeRun>)>,
}

fn spread<T>(runs: &[T], value: impl Fn(&T) -> f64) -> Spread {
    Spread::of(&runs.iter().map(value).collect::<Vec<_>>())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// Output of a shell command, trimmed, or a note that it failed.
fn shell(command: &str) -> String {
    match Command::new("sh").arg("-c").arg(command).output() {
        Ok(output) => {
            let mut text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if text.is_empty() {
                text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            }
            text
        }
        Err(error) => format!("({command} failed: {error})"),
    }
}

pub fn render(args: &Args, results: &Results) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Measured by `patchbay-bench` (`src/bin/bench/`) through `scripts/bench.sh` on {}. \
         Each figure is the median of the runs with the min–max spread in brackets. \
         Everything runs on one machine over 127.0.0.1: the load generator, the sandbox \
         and the fake Slack share the `patchbay-bench` process, and the gateway runs as \
         a separate `patchbay serve` process (release build, SQLite, `RUST_LOG=warn`). \
         The machine is shared with other work, so expect noise of several percent.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )?;

    writeln!(out, "## Machine\n")?;
    writeln!(
        out,
        "- CPU: {}",
        shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    )?;
    writeln!(out, "- `nproc`: {}", shell("nproc"))?;
    writeln!(out, "- kernel: {}", shell("uname -r"))?;
    writeln!(out, "- {}", shell("rustc --version"))?;
    writeln!(
        out,
        "- {}\n",
        shell("nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1")
    )?;
    writeln!(out, "```text\n$ free -h\n{}\n```\n", shell("free -h"))?;

    writeln!(out, "## Commands\n")?;
    let invocation: Vec<String> = std::env::args().collect();
    writeln!(
        out,
        "```sh\nscripts/bench.sh            # installs nginx if missing, builds, runs, writes this file\n{}\n```\n",
        invocation.join(" ")
    )?;
    writeln!(
        out,
        "One scenario alone: `--only overhead` (or `storm`, `sync`, `mime`).\n"
    )?;

    match &results.overhead {
        Some(runs) => overhead_section(&mut out, args, runs)?,
        None => writeln!(out, "## 1. Overhead\n\nNot run.\n")?,
    }
    match &results.storm {
        Some(runs) => storm_section(&mut out, args, runs)?,
        None => writeln!(out, "## 2. Refresh storm\n\nNot run.\n")?,
    }
    match &results.sync {
        Some((paced, baseline)) => sync_section(&mut out, args, paced, baseline)?,
        None => writeln!(out, "## 3. Gmail sync at the quota limit\n\nNot run.\n")?,
    }
    footprint_section(&mut out, results)?;

    writeln!(out, "{NOTES_MARKER}\n")?;
    let previous = std::fs::read_to_string(&args.out).unwrap_or_default();
    if let Some((_, notes)) = previous.split_once(NOTES_MARKER) {
        out.push_str(notes.trim_start_matches('\n'));
    }
    Ok(out)
}

fn target_rows(
    out: &mut String,
    name: &str,
    runs: &[OverheadRun],
    pick: impl Fn(&OverheadRun) -> TargetRun,
) -> anyhow::Result<()> {
    let get = |value: fn(&TargetRun) -> f64| spread(runs, |run| value(&pick(run)));
    writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        get(|t| t.throughput).show(0),
        get(|t| t.cpu_us_per_request).show(0),
        get(|t| t.p50).show(3),
        get(|t| t.p99).show(3),
        get(|t| t.loaded_p50).show(2),
        get(|t| t.loaded_p99).show(2),
        runs.iter().map(|run| pick(run).errors).sum::<u64>(),
    )?;
    Ok(())
}

fn overhead_section(out: &mut String, args: &Args, runs: &[OverheadRun]) -> anyhow::Result<()> {
    writeln!(out, "## 1. Overhead\n")?;
    writeln!(
        out,
        "`POST /v1/execute/slack/message` to a fake Slack `chat.postMessage` (an axum \
         handler that checks the bearer token and returns a fixed answer). Three paths \
         to the same fake: the gateway (API key lookup, connection lookup, token \
         decryption, provider call), nginx as a plain reverse proxy that sets \
         `Authorization: Bearer …` (keep-alive upstream, `worker_processes auto`, no \
         access log), and the fake directly. Per run: {} runs, a fresh gateway process \
         each time, targets measured in rotating order; throughput with {} concurrent \
         keep-alive clients for {} s; latency with one client sending one request at a \
         time for {} s; 0.5 s of warm-up before each. Proxy CPU is the user and system \
         time of the gateway process, or of the nginx master and workers, during the \
         throughput measurement (`/proc/PID/stat`), divided by the requests served.\n",
        runs.len(),
        args.workers,
        args.duration_secs,
        args.duration_secs
    )?;
    writeln!(
        out,
        "| path | requests/s | proxy CPU µs/request | p50 ms, 1 client | p99 ms, 1 client \
         | p50 ms, {w} clients | p99 ms, {w} clients | errors |",
        w = args.workers
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
    target_rows(out, "gateway", runs, |run| run.gateway)?;
    target_rows(out, "nginx", runs, |run| run.nginx)?;
    target_rows(out, "fake directly", runs, |run| run.direct)?;
    let ratio = spread(runs, |run| run.gateway.throughput / run.nginx.throughput);
    let added = spread(runs, |run| run.gateway.p50 - run.nginx.p50);
    let added_direct = spread(runs, |run| run.gateway.p50 - run.direct.p50);
    let cpu_ratio = spread(runs, |run| {
        run.gateway.cpu_us_per_request / run.nginx.cpu_us_per_request
    });
    writeln!(out)?;
    writeln!(out, "| ratio (per run, then median) | value | target | |")?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    writeln!(
        out,
        "| gateway / nginx throughput | {} | ≥ 0.60 | {} |",
        ratio.show(2),
        verdict(ratio.median >= 0.60)
    )?;
    writeln!(
        out,
        "| added p50 vs nginx, 1 client (ms) | {} | < 1 ms | {} |",
        added.show(3),
        verdict(added.median < 1.0)
    )?;
    writeln!(
        out,
        "| added p50 vs the fake directly, 1 client (ms) | {} | | |",
        added_direct.show(3)
    )?;
    writeln!(
        out,
        "| gateway / nginx CPU time per request | {} | | |\n",
        cpu_ratio.show(1)
    )?;
    Ok(())
}

fn storm_section(out: &mut String, args: &Args, runs: &[StormRun]) -> anyhow::Result<()> {
    let latency = args.token_latency_ms as f64;
    writeln!(out, "## 2. Refresh storm\n")?;
    writeln!(
        out,
        "{} concurrent `slack/message` requests on one Slack connection (sandbox Slack with \
         token rotation) whose stored access token has expired; the sandbox token endpoint \
         takes {} ms (an injected delay). The tool fails unless the sandbox saw exactly one \
         `oauth.v2.access` call per storm and every request returned 200. For comparison, \
         the same burst with a fresh token just before. {} runs.\n",
        args.storm_requests,
        args.token_latency_ms,
        runs.len()
    )?;
    let over = spread(runs, |run| run.p99 - latency);
    writeln!(out, "| measure | value |")?;
    writeln!(out, "| --- | --- |")?;
    writeln!(
        out,
        "| token calls per storm | {} |",
        spread(runs, |run| run.token_calls as f64).show(0)
    )?;
    writeln!(
        out,
        "| storm p50 (ms) | {} |",
        spread(runs, |run| run.p50).show(1)
    )?;
    writeln!(
        out,
        "| storm p99 (ms) | {} |",
        spread(runs, |run| run.p99).show(1)
    )?;
    writeln!(
        out,
        "| storm max (ms) | {} |",
        spread(runs, |run| run.max).show(1)
    )?;
    writeln!(
        out,
        "| fresh-token p50 (ms) | {} |",
        spread(runs, |run| run.fresh_p50).show(1)
    )?;
    writeln!(
        out,
        "| fresh-token p99 (ms) | {} |",
        spread(runs, |run| run.fresh_p99).show(1)
    )?;
    writeln!(
        out,
        "| storm p99 − token latency (ms), target ≤ 20 | {} {} |\n",
        over.show(1),
        verdict(over.median <= 20.0)
    )?;
    Ok(())
}

fn sync_section(
    out: &mut String,
    args: &Args,
    paced: &[SyncRun],
    baseline: &[SyncRun],
) -> anyhow::Result<()> {
    let bound = SANDBOX_UNITS_PER_SECOND / UNITS_PER_MESSAGE;
    writeln!(out, "## 3. Gmail sync at the quota limit\n")?;
    writeln!(
        out,
        "Initial `gmail/sync` in pages of 100 of a {}-message mailbox (generated `.eml` \
         files) against the sandbox with Gmail's quota enforced (250 units per second and \
         10 concurrent requests per user, 429 `rateLimitExceeded` beyond) and {} ms added \
         to every Gmail request. A fresh `patchbay serve` process per run; peak memory is \
         its `VmHWM`. 429s are counted in the sandbox request log. The quota-bound rate is \
         250 / ({UNITS_PER_MESSAGE} units per message: one `messages.get` and a hundredth \
         of a `messages.list`) = {bound:.1} messages/s. Paced: the defaults \
         (`PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND=240`, `PATCHBAY_GMAIL_FETCH_CONCURRENCY=8`), \
         {} runs of the whole mailbox. Baseline: `PATCHBAY_GMAIL_FETCH_CONCURRENCY=1`, \
         {} runs of the first {} messages.\n",
        args.sync_messages,
        args.sync_latency_ms,
        paced.len(),
        baseline.len(),
        args.baseline_messages
    )?;
    writeln!(
        out,
        "| run | messages | messages/s | share of quota-bound rate | 429s | peak memory (MiB) |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
    for (name, runs) in [("paced", paced), ("baseline", baseline)] {
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            spread(runs, |run| run.messages as f64).show(0),
            spread(runs, |run| run.per_second).show(1),
            spread(runs, |run| run.per_second / bound).show(2),
            runs.iter().map(|run| run.rejected).sum::<usize>(),
            spread(runs, |run| run.peak_mib).show(1),
        )?;
    }
    let rate = spread(paced, |run| run.per_second);
    let rejected: usize = paced.iter().map(|run| run.rejected).sum();
    let peak = spread(paced, |run| run.peak_mib);
    let speedup = rate.median / spread(baseline, |run| run.per_second).median;
    writeln!(out)?;
    writeln!(out, "| target | value | |")?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(
        out,
        "| ≥ 45 messages/s | {:.1} | {} |",
        rate.median,
        verdict(rate.median >= 45.0)
    )?;
    writeln!(
        out,
        "| ≥ 90% of the quota-bound rate | {:.0}% | {} |",
        100.0 * rate.median / bound,
        verdict(rate.median >= 0.9 * bound)
    )?;
    writeln!(
        out,
        "| 0 answers 429 | {rejected} | {} |",
        verdict(rejected == 0)
    )?;
    writeln!(
        out,
        "| peak memory < 100 MB | {:.1} MiB max | {} |",
        peak.max,
        verdict(peak.max * 1.048_576 < 100.0)
    )?;
    writeln!(out, "| paced / baseline rate | {speedup:.2}× | |\n")?;
    Ok(())
}

fn footprint_section(out: &mut String, results: &Results) -> anyhow::Result<()> {
    writeln!(out, "## 4. Memory, start-up and the MIME decoder\n")?;
    if let Some(runs) = &results.overhead {
        let memory = |pick: fn(&OverheadRun) -> Option<f64>| {
            Spread::of(&runs.iter().filter_map(pick).collect::<Vec<_>>())
        };
        writeln!(
            out,
            "From the overhead runs, one fresh `patchbay serve` process each (SQLite, new \
             database file). Start-up is the time from spawning the process to the first \
             200 from `GET /health`, migrations included. Idle memory is read 0.5 s after \
             start-up, loaded memory right after the last load of the run.\n"
        )?;
        writeln!(out, "| measure | value |")?;
        writeln!(out, "| --- | --- |")?;
        writeln!(
            out,
            "| start-up (ms) | {} |",
            spread(runs, |run| run.startup_ms).show(1)
        )?;
        writeln!(
            out,
            "| idle VmRSS (MiB) | {} |",
            memory(|run| run.idle.map(|m| m.rss_mib)).show(1)
        )?;
        writeln!(
            out,
            "| loaded VmRSS (MiB) | {} |",
            memory(|run| run.loaded.map(|m| m.rss_mib)).show(1)
        )?;
        writeln!(
            out,
            "| loaded VmHWM (MiB) | {} |\n",
            memory(|run| run.loaded.map(|m| m.hwm_mib)).show(1)
        )?;
    } else {
        writeln!(
            out,
            "Memory and start-up come from the overhead runs, which did not run.\n"
        )?;
    }
    if let Some((corpus, runs)) = &results.mime {
        writeln!(
            out,
            "MIME decoder on one core over the {corpus} messages of `tests/fixtures/eml/`, \
             1 s per measurement, {} runs. \"decode\" is `decode_message` on a Gmail \
             `Message` resource prepared beforehand; \"eml to message\" adds the sandbox's \
             conversion of the raw file into that resource (mail-parser and JSON).\n",
            runs.len()
        )?;
        writeln!(out, "| measure | messages/s per core |")?;
        writeln!(out, "| --- | --- |")?;
        writeln!(
            out,
            "| decode | {} |",
            spread(runs, |run| run.decode_per_second).show(0)
        )?;
        writeln!(
            out,
            "| eml to message | {} |\n",
            spread(runs, |run| run.pipeline_per_second).show(0)
        )?;
    }
    Ok(())
}
