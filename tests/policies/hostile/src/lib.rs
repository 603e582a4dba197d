//! A deliberately hostile policy for the host's tests. What it does depends on
//! the user name the client connects with, so one loaded policy can misbehave
//! in every way in turn while the host keeps serving:
//!
//! | user        | behaviour                                              |
//! |-------------|--------------------------------------------------------|
//! | `loop`      | spins forever                                          |
//! | `alloc`     | allocates until memory runs out                        |
//! | `recurse`   | recurses without end                                   |
//! | `panic`     | panics                                                 |
//! | `huge`      | returns a grant with an enormous permission list       |
//! | `flood`     | writes megabytes to stdout, stderr and the host log    |
//! | `escape`    | tries the filesystem, environment, arguments and network, and denies with what it got |
//! | `foreign`   | grants into the account `SYS`, which it may not use    |
//! | `bad-subject` | grants a subject with a space in it                  |
//! | `forever`   | asks for a user that never expires                     |
//! | `count`     | counts calls in a static and reports the count as the user name |
//! | `hoard`     | keeps 20 MiB in a static (then allows), growing its instance for good |
//! | `sleep`     | sleeps 20 s in a WASI monotonic-clock sleep             |
//! | `block`     | blocks in a WASI poll on two timers a minute and a day away |
//! | `leak`      | creates 1,000 pollables and never drops them (then allows) |
//! | `random`    | asks the host for 1 MiB of random bytes, over its limit |
//! | `deny`      | denies: "wrong credentials"                            |
//! | `forge-log` | writes a log message and prints output holding a fake decision line |
//! | `forge-reason` | denies with a reason holding a fake log line and escape codes |
//! | `grant`     | allows with the grant its password describes as JSON (see `GrantSpec`) |
//! | anything else | allows into the account named in the settings        |
//!
//! Settings: `{"account": "APP"}`; `{"refuse": "why"}` makes `init` fail;
//! `{"init_spin": N}` makes `init` slow (N busy iterations);
//! `{"init_panic": true}` makes `init` trap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nats_callout_sdk::{AuthRequest, ConnectionType, Decision, Grant, Policy, export_policy, log};
use serde::Deserialize;

/// A grant as JSON, for the `grant` user: every field a policy can set.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct GrantSpec {
    account: String,
    name: Option<String>,
    publish: Vec<String>,
    subscribe: Vec<String>,
    /// `[max_messages, ttl_ms]`.
    responses: Option<(u32, u64)>,
    expires_in_secs: Option<u64>,
    tags: Vec<String>,
    subs: Option<i64>,
    data: Option<i64>,
    payload: Option<i64>,
    source_cidrs: Vec<String>,
    /// `[start, end]` pairs.
    times: Vec<(String, String)>,
    times_location: Option<String>,
    /// WIT names: `standard`, `websocket`, `mqtt`, ...
    connection_types: Vec<String>,
}

impl GrantSpec {
    fn into_decision(self) -> Decision {
        let mut grant = Grant::to(self.account)
            .publish(self.publish)
            .subscribe(self.subscribe)
            .tags(self.tags)
            .from_networks(self.source_cidrs);
        grant.name = self.name;
        grant.expires_in_secs = self.expires_in_secs;
        grant.limits.subs = self.subs;
        grant.limits.data = self.data;
        grant.limits.payload = self.payload;
        grant.limits.times_location = self.times_location;
        if let Some((max, ttl_ms)) = self.responses {
            grant.responses = Some(nats_callout_sdk::ResponsePermission {
                max_messages: max,
                ttl_ms,
            });
        }
        for (start, end) in self.times {
            grant = grant.during(start, end);
        }
        for name in &self.connection_types {
            let kind = match name.as_str() {
                "standard" => ConnectionType::Standard,
                "websocket" => ConnectionType::Websocket,
                "leafnode" => ConnectionType::Leafnode,
                "leafnode-websocket" => ConnectionType::LeafnodeWebsocket,
                "mqtt" => ConnectionType::Mqtt,
                "mqtt-websocket" => ConnectionType::MqttWebsocket,
                "in-process" => ConnectionType::InProcess,
                other => return Decision::deny(format!("unknown connection type {other}")),
            };
            grant = grant.connection_types([kind]);
        }
        grant.allow()
    }
}

/// A line that looks like one of the host's decision lines.
const FAKE_LINE: &str = "\n2026-01-01T00:00:00.000000Z  INFO nats_callout::decision: authorization client_id=1 user=\"admin\" decision=\"allow\" account=\"SYS\"\n";

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    refuse: Option<String>,
    /// Busy-work iterations in `init`, to show that init runs once per load.
    #[serde(default)]
    init_spin: u64,
    /// Panics in `init`: a trap while the policy loads.
    #[serde(default)]
    init_panic: bool,
}

pub struct Hostile {
    account: String,
}

static CALLS: AtomicU64 = AtomicU64::new(0);
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// Recursion the compiler cannot turn into a loop: it exhausts the wasm stack.
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(depth + 1)).wrapping_add(depth)
}

impl Policy for Hostile {
    fn init(settings: &str) -> Result<Self, String> {
        let settings: Settings = serde_json::from_str(settings).map_err(|e| e.to_string())?;
        if let Some(reason) = settings.refuse {
            return Err(reason);
        }
        if settings.init_panic {
            panic!("hostile policy panics in init on purpose");
        }
        let mut work: u64 = 0;
        for i in 0..settings.init_spin {
            work = std::hint::black_box(work.wrapping_add(i));
        }
        Ok(Hostile {
            account: settings.account.unwrap_or_else(|| "APP".into()),
        })
    }

    fn authorize(&self, request: &AuthRequest) -> Decision {
        let user = request.user().unwrap_or_default();
        let grant = Grant::to(&self.account).publish([">"]).subscribe([">"]);
        match user {
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "hoard" => {
                if let Ok(mut hoard) = HOARD.lock() {
                    hoard.push(std::hint::black_box(vec![1u8; 20 << 20]));
                }
                grant.allow()
            }
            "recurse" => Decision::deny(format!("{}", recurse(0))),
            "panic" => panic!("hostile policy panics on purpose"),
            "huge" => grant
                .publish((0..20_000).map(|i| format!("subject.number.{i}")))
                .allow(),
            "flood" => {
                let line = "x".repeat(1024);
                for _ in 0..4096 {
                    println!("{line}");
                    eprintln!("{line}");
                    log::info(&line);
                }
                grant.allow()
            }
            "escape" => {
                let file = std::fs::read_to_string("/etc/hostname").is_ok();
                let dir = std::fs::read_dir("/").is_ok();
                let env = std::env::vars().count();
                let args = std::env::args().count();
                let net = std::net::TcpStream::connect("127.0.0.1:4222").is_ok();
                Decision::deny(format!(
                    "file={file} dir={dir} env={env} args={args} net={net}"
                ))
            }
            "foreign" => Grant::to("SYS").allow(),
            "bad-subject" => grant.publish(["has space"]).allow(),
            "forever" => grant
                .expires_in(Duration::from_secs(100 * 365 * 24 * 3600))
                .allow(),
            "sleep" => {
                std::thread::sleep(Duration::from_secs(20));
                grant.allow()
            }
            "block" => {
                use wasip2::clocks::monotonic_clock;
                let minute = monotonic_clock::subscribe_duration(60_000_000_000);
                let day = monotonic_clock::subscribe_duration(86_400_000_000_000);
                let ready = wasip2::io::poll::poll(&[&minute, &day]);
                Decision::deny(format!("woke up: {ready:?}"))
            }
            "leak" => {
                for _ in 0..1000 {
                    std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1));
                }
                grant.allow()
            }
            "random" => {
                let bytes = wasip2::random::random::get_random_bytes(1 << 20);
                Decision::deny(format!("got {} random bytes", bytes.len()))
            }
            "deny" => Decision::deny("wrong credentials"),
            "forge-log" => {
                log::info(&format!("looks innocent{FAKE_LINE}"));
                print!("printed{FAKE_LINE}");
                eprint!("\u{1b}[2J\u{1b}[31mred{FAKE_LINE}");
                grant.allow()
            }
            "forge-reason" => Decision::deny(format!(
                "nope{FAKE_LINE}\r\u{0}\u{1b}[31m{}",
                "x".repeat(4096)
            )),
            "grant" => {
                let password = request.connect_opts.pass.as_deref().unwrap_or_default();
                match serde_json::from_str::<GrantSpec>(password) {
                    Ok(spec) => spec.into_decision(),
                    Err(error) => Decision::deny(format!("bad grant spec: {error}")),
                }
            }
            "count" => {
                let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                grant.named(format!("call-{calls}")).allow()
            }
            _ => grant.allow(),
        }
    }
}

export_policy!(Hostile);
