//! `patchbay-bench`: starts the sandbox, fake providers, nginx and `patchbay serve`
//! processes on loopback, measures the gateway, and writes `BENCHMARKS.md`.
//!
//! Run it through `scripts/bench.sh`, which installs nginx and builds in release mode.
//! Every load is bounded in requests and in time, and nothing leaves 127.0.0.1.

mod load;
mod mime;
mod overhead;
mod procs;
mod report;
mod setup;
mod stats;
mod storm;
mod sync;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "patchbay-bench",
    about = "Benchmark the gateway and write BENCHMARKS.md"
)]
pub struct Args {
    /// Runs of the overhead, refresh-storm and MIME scenarios.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Concurrent clients of the throughput measurement.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Seconds of each throughput and latency measurement.
    #[arg(long, default_value_t = 3)]
    pub duration_secs: u64,
    /// Concurrent requests of the refresh storm.
    #[arg(long, default_value_t = 1000)]
    pub storm_requests: usize,
    /// Milliseconds the sandbox token endpoint takes during the storm.
    #[arg(long, default_value_t = 200)]
    pub token_latency_ms: u64,
    /// Messages in the Gmail sync mailbox.
    #[arg(long, default_value_t = 10_000)]
    pub sync_messages: usize,
    /// Runs of the paced Gmail sync (each syncs the whole mailbox).
    #[arg(long, default_value_t = 3)]
    pub sync_runs: usize,
    /// Messages synced by each baseline run (one fetch at a time).
    #[arg(long, default_value_t = 1000)]
    pub baseline_messages: usize,
    /// Runs of the baseline Gmail sync.
    #[arg(long, default_value_t = 3)]
    pub baseline_runs: usize,
    /// Milliseconds the sandbox adds to every Gmail request.
    #[arg(long, default_value_t = 30)]
    pub sync_latency_ms: u64,
    /// Scenarios to run, comma separated: overhead, storm, sync, mime.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "overhead,storm,sync,mime"
    )]
    pub only: Vec<String>,
    /// Folder of `.eml` files for the MIME decoder.
    #[arg(long, default_value = "tests/fixtures/eml")]
    pub fixtures: PathBuf,
    /// Report file; text below its notes marker is kept.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only.iter().any(|name| name == scenario)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut results = report::Results::default();

    if args.wants("overhead") {
        let settings = overhead::OverheadSettings {
            runs: args.runs,
            workers: args.workers,
            duration: Duration::from_secs(args.duration_secs),
        };
        results.overhead = Some(overhead::run(dir.path(), &settings).await?);
    }
    if args.wants("storm") {
        let settings = storm::StormSettings {
            runs: args.runs,
            requests: args.storm_requests,
            token_latency: Duration::from_millis(args.token_latency_ms),
        };
        results.storm = Some(storm::run(dir.path(), &settings).await?);
    }
    if args.wants("sync") {
        let settings = sync::SyncSettings {
            runs: args.sync_runs,
            baseline_runs: args.baseline_runs,
            messages: args.sync_messages,
            baseline_messages: args.baseline_messages,
            latency_ms: args.sync_latency_ms,
        };
        results.sync = Some(sync::run(dir.path(), &settings).await?);
    }
    if args.wants("mime") {
        results.mime = Some(mime::run(
            &args.fixtures,
            args.runs,
            Duration::from_secs(1),
        )?);
    }

    let text = report::render(&args, &results)?;
    std::fs::write(&args.out, text)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
