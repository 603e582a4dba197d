//! The connection-storm load generator behind `nats-callout load`. Opens N client
//! connections at concurrency C through a nats-server, and reports connects/s,
//! connect-latency percentiles and the CPU time per connect that the
//! nats-server and callout processes spent (read from `/proc/<pid>/stat`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde::Serialize;

/// Arguments of `nats-callout load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The nats-server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub server: String,
    /// Connections to open in total.
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Connect with this token.
    #[arg(long)]
    pub token: Option<String>,
    /// Connect with this user name (with --password).
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// Per-connect timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// nats-server's pid, to report its CPU per connect.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The callout service's pid, to report its CPU per connect.
    #[arg(long)]
    pub service_pid: Option<u32>,
    /// A label for the report.
    #[arg(long, default_value = "run")]
    pub label: String,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub label: String,
    pub connections: usize,
    pub concurrency: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub connects_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub server_cpu_us_per_connect: Option<f64>,
    pub service_cpu_us_per_connect: Option<f64>,
}

/// CPU time (user + system) a process has used, in microseconds.
pub fn process_cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks_per_sec = clock_ticks_per_sec();
    Some((utime + stime) * 1_000_000 / ticks_per_sec)
}

fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn connect_once(args: &LoadArgs) -> Result<Duration, String> {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_millis(args.timeout_ms))
        .max_reconnects(1);
    if let Some(token) = &args.token {
        options = options.token(token.clone());
    }
    if let Some(user) = &args.user {
        options =
            options.user_and_password(user.clone(), args.password.clone().unwrap_or_default());
    }
    let started = Instant::now();
    let client = tokio::time::timeout(
        Duration::from_millis(args.timeout_ms),
        options.connect(&args.server),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    drop(client);
    Ok(elapsed)
}

/// Runs the load and returns its report.
pub async fn measure(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let args = Arc::new(args);
    let cpu_before = (
        args.server_pid.and_then(process_cpu_micros),
        args.service_pid.and_then(process_cpu_micros),
    );
    let started = Instant::now();
    let results: Vec<Result<Duration, String>> = futures::stream::iter(0..args.connections)
        .map(|_| {
            let args = args.clone();
            async move { connect_once(&args).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = (
        args.server_pid.and_then(process_cpu_micros),
        args.service_pid.and_then(process_cpu_micros),
    );

    let mut latencies: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    latencies.sort();
    let failed = results.len() - latencies.len();
    let first_error = results.iter().find_map(|r| r.as_ref().err().cloned());
    let per_connect = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) if !results.is_empty() => {
            Some((a.saturating_sub(b)) as f64 / results.len() as f64)
        }
        _ => None,
    };
    Ok(LoadReport {
        label: args.label.clone(),
        connections: args.connections,
        concurrency: args.concurrency,
        succeeded: latencies.len(),
        failed,
        first_error,
        seconds,
        connects_per_sec: latencies.len() as f64 / seconds.max(f64::EPSILON),
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        server_cpu_us_per_connect: per_connect(cpu_before.0, cpu_after.0),
        service_cpu_us_per_connect: per_connect(cpu_before.1, cpu_after.1),
    })
}

/// `nats-callout load`: prints the report as one JSON line.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let report = measure(args).await?;
    println!(
        "{}",
        serde_json::to_string(&report).context("cannot encode the report")?
    );
    Ok(())
}
