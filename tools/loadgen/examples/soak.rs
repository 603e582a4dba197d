//! The client side of the soak test (`scripts/soak.sh`, not part of CI): for a
//! given time, a few streams connect one client after another through
//! nats-server, with user names that the hostile test policy
//! (`tests/policies/hostile`) acts on — `ok` is allowed, `deny` denied, and
//! `loop`, `alloc`, `panic`, `flood`, `sleep` misbehave and must be denied —
//! and write one JSON line per attempt as the client saw it:
//!
//! `{"t0":<unix ms>,"t1":<unix ms>,"user":"ok","outcome":"admitted","error":null}`
//!
//! `outcome` is `admitted`, `refused` (authorization violation), `timeout` (no
//! answer within the connect timeout: a dropped request), `down` (connection
//! refused: nothing listens, as while nats-server restarts) or `error` (any
//! other failure, such as the server going away mid-handshake). Progress goes
//! to stderr every 30 s.
//!
//! `cargo run --release -p nats-callout-loadgen --example soak -- --server nats://127.0.0.1:4222 --seconds 60 --out attempts.jsonl`
//! Options: `--streams 4`, `--pause-ms 20`, `--timeout-ms 2000`,
//! `--mix ok:4,deny:3,loop:1,alloc:1,panic:1,flood:1,sleep:1,block:1,leak:1,forge-reason:1,random:1` (user:weight).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::{ConnectErrorKind, ConnectOptions};

const DEFAULT_MIX: &str =
    "ok:4,deny:3,loop:1,alloc:1,panic:1,flood:1,sleep:1,block:1,leak:1,forge-reason:1,random:1";
const OUTCOMES: [&str; 5] = ["admitted", "refused", "timeout", "down", "error"];

struct Args {
    server: String,
    seconds: u64,
    out: String,
    streams: usize,
    pause: Duration,
    timeout: Duration,
    /// One entry per unit of weight, interleaved so each kind recurs evenly.
    schedule: Vec<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!("soak: {problem}");
    eprintln!(
        "usage: soak --server URL --seconds N --out FILE [--streams N] [--pause-ms N] \
         [--timeout-ms N] [--mix user:weight,...]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut server = None;
    let mut seconds = None;
    let mut out = None;
    let mut streams = 4usize;
    let mut pause_ms = 20u64;
    let mut timeout_ms = 2000u64;
    let mut mix = DEFAULT_MIX.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"));
        };
        let number = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag} wants a number, not {v:?}")))
        };
        match flag.as_str() {
            "--server" => server = Some(value),
            "--seconds" => seconds = Some(number(&value)),
            "--out" => out = Some(value),
            "--streams" => streams = number(&value).max(1) as usize,
            "--pause-ms" => pause_ms = number(&value),
            "--timeout-ms" => timeout_ms = number(&value).max(1),
            "--mix" => mix = value,
            other => usage(&format!("unknown option {other}")),
        }
    }
    let mut weighted = Vec::new();
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (user, weight) = part.split_once(':').unwrap_or((part, "1"));
        let weight: usize = weight
            .parse()
            .unwrap_or_else(|_| usage(&format!("bad weight in --mix {part:?}")));
        if user.is_empty() {
            usage(&format!("empty user in --mix {part:?}"));
        }
        weighted.push((user.to_string(), weight));
    }
    // Round-robin over the kinds, each as often as its weight says: the
    // default mix gives `ok deny loop alloc panic flood sleep ok deny ok`.
    let mut schedule = Vec::new();
    let rounds = weighted.iter().map(|(_, w)| *w).max().unwrap_or(0);
    for round in 0..rounds {
        for (user, weight) in &weighted {
            if round < *weight {
                schedule.push(user.clone());
            }
        }
    }
    if schedule.is_empty() {
        usage("--mix names no user");
    }
    Args {
        server: server.unwrap_or_else(|| usage("--server is required")),
        seconds: seconds.unwrap_or_else(|| usage("--seconds is required")),
        out: out.unwrap_or_else(|| usage("--out is required")),
        streams,
        pause: Duration::from_millis(pause_ms),
        timeout: Duration::from_millis(timeout_ms),
        schedule,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether an error, or any error it wraps, is a refused TCP connection.
fn connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        current = e.source();
    }
    let text = error.to_string();
    text.contains("Connection refused") || text.contains("os error 111")
}

/// One connect: the outcome and, for failures other than a refusal, why.
async fn attempt(args: &Args, user: &str) -> (&'static str, Option<String>) {
    let options = ConnectOptions::with_user_and_password(user.to_string(), "soak".to_string())
        .name("soak")
        .connection_timeout(args.timeout)
        .max_reconnects(1);
    // async-nats bounds the handshake with the connection timeout; this outer
    // bound only guards against a hang anywhere else.
    let connected = tokio::time::timeout(
        args.timeout + Duration::from_secs(1),
        options.connect(args.server.as_str()),
    )
    .await;
    match connected {
        Ok(Ok(client)) => {
            drop(client);
            ("admitted", None)
        }
        Ok(Err(error)) => match error.kind() {
            ConnectErrorKind::AuthorizationViolation => ("refused", None),
            ConnectErrorKind::TimedOut => ("timeout", Some(error.to_string())),
            _ if connection_refused(&error) => ("down", Some(error.to_string())),
            _ => ("error", Some(error.to_string())),
        },
        Err(_) => ("timeout", Some("no answer (outer bound)".to_string())),
    }
}

struct Shared {
    args: Args,
    deadline: Instant,
    out: Mutex<std::io::BufWriter<std::fs::File>>,
    counts: [AtomicU64; OUTCOMES.len()],
}

async fn stream(shared: Arc<Shared>, index: usize) {
    let schedule = &shared.args.schedule;
    // Streams start at different places in the schedule, so the kinds mix
    // across streams too.
    let mut next = index * schedule.len() / shared.args.streams;
    while Instant::now() < shared.deadline {
        let user = &schedule[next % schedule.len()];
        next += 1;
        let t0 = unix_ms();
        let (outcome, error) = attempt(&shared.args, user).await;
        let t1 = unix_ms();
        let slot = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        shared.counts[slot].fetch_add(1, Ordering::Relaxed);
        let line = serde_json::json!({
            "t0": t0, "t1": t1, "user": user, "outcome": outcome, "error": error,
        });
        if let Ok(mut out) = shared.out.lock() {
            let _ = writeln!(out, "{line}");
        }
        // While nothing listens, do not spin on refused connections.
        let pause = if outcome == "down" {
            shared.args.pause.max(Duration::from_millis(100))
        } else {
            shared.args.pause
        };
        tokio::time::sleep(pause).await;
    }
}

fn progress(shared: &Shared, started: Instant) -> String {
    let counts: Vec<u64> = shared
        .counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let total: u64 = counts.iter().sum();
    format!(
        "soak: {:>4} s: {total} attempts: {} admitted, {} refused, {} timed out, {} server down, {} other errors",
        started.elapsed().as_secs(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let file = std::fs::File::create(&args.out).unwrap_or_else(|e| {
        eprintln!("soak: cannot create {}: {e}", args.out);
        std::process::exit(1);
    });
    let started = Instant::now();
    let streams = args.streams;
    let shared = Arc::new(Shared {
        deadline: started + Duration::from_secs(args.seconds),
        args,
        out: Mutex::new(std::io::BufWriter::new(file)),
        counts: Default::default(),
    });
    eprintln!(
        "soak: {} streams for {} s against {}, schedule {}",
        streams,
        shared.args.seconds,
        shared.args.server,
        shared.args.schedule.join(" ")
    );
    let tasks: Vec<_> = (0..streams)
        .map(|i| tokio::spawn(stream(shared.clone(), i)))
        .collect();
    let reporter = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", progress(&shared, started));
            }
        })
    };
    for task in tasks {
        let _ = task.await;
    }
    reporter.abort();
    if let Ok(mut out) = shared.out.lock()
        && let Err(error) = out.flush()
    {
        eprintln!("soak: cannot write {}: {error}", shared.args.out);
        std::process::exit(1);
    }
    eprintln!("{} (done)", progress(&shared, started));
}
