//! MIME decoder throughput on one core: the fixture corpus turned into Gmail `Message`
//! resources by the sandbox, then decoded by the gateway's `decode_message`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use patchbay::providers::google::decode::decode_message;
use patchbay::providers::google::wire::GmailMessage;

/// One run: messages per second of the decoder alone and of the whole path from `.eml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MimeRun {
    pub decode_per_second: f64,
    pub pipeline_per_second: f64,
}

fn resource(raw: &[u8]) -> Option<GmailMessage> {
    let value = patchbay::sandbox::message_resource(raw)?;
    serde_json::from_value(value).ok()
}

/// Loads every `.eml` in `dir`; returns the raw files and their resources.
pub fn load_corpus(dir: &Path) -> anyhow::Result<(Vec<Vec<u8>>, Vec<GmailMessage>)> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("could not read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    paths.sort();
    let mut raws = Vec::new();
    let mut resources = Vec::new();
    for path in paths {
        let raw = std::fs::read(&path)?;
        if let Some(message) = resource(&raw) {
            raws.push(raw);
            resources.push(message);
        }
    }
    anyhow::ensure!(
        !resources.is_empty(),
        "no parsable .eml in {}",
        dir.display()
    );
    Ok((raws, resources))
}

/// Repeats `work` over the corpus for at least `duration`; returns messages per second.
fn rate(duration: Duration, mut work: impl FnMut() -> usize) -> f64 {
    let started = Instant::now();
    let mut messages = 0;
    while started.elapsed() < duration {
        messages += work();
    }
    messages as f64 / started.elapsed().as_secs_f64()
}

/// Runs on the calling thread, so the figures are per core.
pub fn run(dir: &Path, runs: usize, duration: Duration) -> anyhow::Result<(usize, Vec<MimeRun>)> {
    let (raws, resources) = load_corpus(dir)?;
    let mut results = Vec::new();
    for _ in 0..runs {
        let decode_per_second = rate(duration, || {
            for message in &resources {
                std::hint::black_box(decode_message(message));
            }
            resources.len()
        });
        let pipeline_per_second = rate(duration, || {
            let mut count = 0;
            for raw in &raws {
                if let Some(message) = resource(raw) {
                    std::hint::black_box(decode_message(&message));
                    count += 1;
                }
            }
            count
        });
        results.push(MimeRun {
            decode_per_second,
            pipeline_per_second,
        });
    }
    Ok((resources.len(), results))
}
