//! Processes the benchmarks run: `patchbay serve` and nginx, each on a free loopback
//! port, with their memory read from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Returns a loopback address with a port that was free a moment ago.
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Returns the path of the `patchbay` binary next to this one (both come from one `cargo build`).
pub fn patchbay_exe() -> anyhow::Result<PathBuf> {
    let bench = std::env::current_exe()?;
    let exe = bench.with_file_name("patchbay");
    if !exe.exists() {
        bail!(
            "{} is missing: build both binaries with `cargo build --release --bins`",
            exe.display()
        );
    }
    Ok(exe)
}

/// A running `patchbay serve`, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Time from spawning the process to the first `200` from `GET /health`.
    pub startup: Duration,
}

impl GatewayProcess {
    /// Spawns `patchbay serve` with `env` (which must not set `PATCHBAY_LISTEN`) on a free
    /// port and waits for `/health`. Logs go to `log_path`.
    pub async fn spawn(env: &[(String, String)], log_path: &Path) -> anyhow::Result<Self> {
        let addr = free_loopback_addr()?;
        let log = std::fs::File::create(log_path)?;
        let started = Instant::now();
        let child = Command::new(patchbay_exe()?)
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("PATCHBAY_LISTEN", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("could not start patchbay serve")?;
        let health = format!("http://{addr}/health");
        let probe = reqwest::Client::builder().no_proxy().build()?;
        let mut process = GatewayProcess {
            child,
            addr,
            startup: Duration::ZERO,
        };
        loop {
            if let Ok(response) = probe.get(&health).send().await
                && response.status().is_success()
            {
                process.startup = started.elapsed();
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "patchbay serve exited with {status}; see {}",
                    log_path.display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("patchbay serve did not return 200 from /health within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident and peak resident memory of the process.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let pid = self.child.id().context("the gateway process has exited")?;
        Memory::of_pid(pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `VmRSS` and `VmHWM` from `/proc/PID/status`, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

impl Memory {
    pub fn of_pid(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("{name} missing from /proc/{pid}/status"))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok(Memory {
            rss_mib: field("VmRSS:")?,
            hwm_mib: field("VmHWM:")?,
        })
    }
}

/// nginx as a plain reverse proxy, in the foreground, killed when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with its prefix and config in `dir` and `http_block` as the body of
    /// its `http` block, where `{LISTEN}` is replaced by a free loopback address.
    pub async fn start(dir: &Path, http_block: &str) -> anyhow::Result<Nginx> {
        let addr = free_loopback_addr()?;
        let d = dir.display();
        let config = format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
            http_block.replace("{LISTEN}", &addr.to_string())
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let child = Command::new(nginx_exe())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start nginx; install it with `apt-get install -y nginx`")?;
        let mut nginx = Nginx { child, addr };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = nginx.child.try_wait()? {
                bail!("nginx exited with {status}; see {d}/error.log");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nginx did not listen on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(nginx)
    }

    /// The master process and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let Some(master) = self.child.id() else {
            return Vec::new();
        };
        let mut pids = vec![master];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse().ok());
                if let Some(pid) = pid
                    && parent_of(pid) == Some(master)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Stops nginx with SIGTERM, so that the master also stops its workers.
    pub async fn stop(mut self) {
        self.terminate();
        let _ = self.child.wait().await;
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `nginx` on the PATH, else the Debian location.
pub fn nginx_exe() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

/// CPU time (user and system) that the processes `pids` have used so far, from
/// `/proc/PID/stat`. A process that has gone counts as zero.
pub fn cpu_time(pids: &[u32]) -> Duration {
    let ticks: u64 = pids.iter().filter_map(|pid| process_ticks(*pid)).sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// `utime + stime` of one process in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in brackets may contain spaces, so fields are counted after it.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The parent process id of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// `getconf CLK_TCK`, or 100 (the value on Linux for x86 and ARM) when it fails.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}
