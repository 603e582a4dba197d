//! A hostile tenant's attacks on the host (issue 7), each as a class: a
//! policy that outlasts its deadline in WASI, grants nats-server would refuse
//! or ignore, text that would forge a log line.

use std::time::Duration;

use async_nats::ConnectOptions;
use serde_json::{Value, json};

use super::{connect, connect_as, hostile};
use crate::harness::{Callout, CalloutSpec, Keys};

/// The line a forging policy tries to slip into a log (see the hostile
/// policy's `FAKE_LINE`).
const FAKE_LINE_START: &str = "2026-01-01T00:00:00.000000Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_blocked_in_wasi_are_denied_at_their_deadline() {
    // Both block far longer than the server's 3 s auth timeout: the deny only
    // reaches nats-server because the host cut them off at 100 ms.
    let (server, callout) = hostile("timeout_ms = 100");
    for user in ["sleep", "block"] {
        super::assert_authorization_violation(connect_as(&server, user).await);
        callout.wait_for_log("policy timed out after 100 ms", Duration::from_secs(5));
        server.wait_for_log(
            "callout service returned an error: policy timed out after 100 ms",
            Duration::from_secs(5),
        );
        connect_as(&server, "ok")
            .await
            .unwrap_or_else(|e| panic!("after {user}: {e}\n{}", callout.log()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_sleeping_requests_does_not_lock_out_other_clients() {
    // Two slots; each sleeper would hold one for 20 s without wall-clock
    // deadlines, and every client would then fail at the 3 s auth timeout.
    let (server, callout) = hostile("timeout_ms = 200\n[service]\nmax_in_flight = 2");
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url();
            tokio::spawn(async move {
                for _ in 0..3 {
                    let _ = connect(
                        &url,
                        ConnectOptions::with_user_and_password("sleep".into(), "x".into()),
                    )
                    .await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for attempt in 0..5 {
        connect_as(&server, "ok")
            .await
            .unwrap_or_else(|e| panic!("well-behaved client {attempt}: {e}\n{}", callout.log()));
    }
    for sleeper in sleepers {
        sleeper.await.expect("sleeper task");
    }
    assert!(
        callout
            .log()
            .matches("policy timed out after 200 ms")
            .count()
            >= 8,
        "{}",
        callout.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_a_policy_leaks_do_not_outlive_its_instance() {
    // 1,000 leaked pollables a call, on fresh and on reused instances: every
    // call is still admitted (no handle table fills up across calls).
    for reuse in ["calls_per_instance = 1", "calls_per_instance = 50"] {
        let (server, callout) = hostile(reuse);
        for call in 0..120 {
            connect_as(&server, "leak")
                .await
                .unwrap_or_else(|e| panic!("{reuse}, call {call}: {e}\n{}", callout.log()));
        }
    }
}

/// Every line of `log` is one real event: none starts with the forged line,
/// and none holds a raw escape or NUL character.
fn assert_no_forged_line(what: &str, log: &str) {
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with(FAKE_LINE_START),
            "a forged line in the {what} log: {line:?}\n{log}"
        );
        assert!(
            !line.contains(['\u{1b}', '\0', '\r']),
            "a raw control character in the {what} log: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_policy_or_a_client_writes_forges_a_log_line() {
    let (server, callout) = hostile("");
    // host.log, stdout and stderr.
    connect_as(&server, "forge-log")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    // Escaped by the host, then quoted (backslashes doubled) by the log format.
    callout.wait_for_log("\"looks innocent\\\\n2026-01-01", Duration::from_secs(5));
    callout.wait_for_log("output=\"printed\\\\n2026-01-01", Duration::from_secs(5));
    callout.wait_for_log("output=\"\\\\u{1b}[2J", Duration::from_secs(5));
    // A deny reason, in the host's log and in nats-server's.
    super::assert_authorization_violation(connect_as(&server, "forge-reason").await);
    server.wait_for_log("policy denied: nope\\n2026-01-01", Duration::from_secs(5));
    callout.wait_for_log(
        "reason=\"policy denied: nope\\\\n2026-01-01",
        Duration::from_secs(5),
    );
    let denied_line = server
        .log()
        .lines()
        .find(|line| line.contains("policy denied: nope"))
        .map(str::len)
        .unwrap_or_default();
    assert!(
        (600..2048).contains(&denied_line),
        "the 4 KiB reason was not cut to its bound: {denied_line} bytes"
    );
    // A user name and a connection name (the policy allows anyone else).
    let forged_user = format!("mallory\n{FAKE_LINE_START}  INFO authorization decision=\"allow\"");
    connect(
        &server.url(),
        ConnectOptions::with_user_and_password(forged_user, "x".into())
            .name(format!("conn\r\n{FAKE_LINE_START} \u{1b}[31m")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    callout.wait_for_log("user=\"mallory\\\\n2026-01-01", Duration::from_secs(5));
    // A connection name alone is what the decision line shows as the user.
    connect(
        &server.url(),
        ConnectOptions::new().name(format!("conn\r\n{FAKE_LINE_START} \u{1b}[31m")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    callout.wait_for_log("user=\"conn\\\\r\\\\n2026-01-01", Duration::from_secs(5));
    assert_no_forged_line("nats-callout", &callout.log());
    assert_no_forged_line("nats-server", &server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_error_is_escaped_and_bounded() {
    let reason = format!(
        "bad\\n{FAKE_LINE_START} INFO fake\\u001b[31m{}",
        "y".repeat(100_000)
    );
    let settings = format!("refuse = \"{reason}\"");
    let mut callout = Callout::spawn(
        "nats://127.0.0.1:1",
        &Keys::new(),
        &CalloutSpec::hostile(&settings, ""),
    );
    assert_ne!(callout.wait_exit(Duration::from_secs(60)), Some(0));
    let log = callout.log();
    assert!(
        log.contains("refused its settings: bad\\n2026-01-01"),
        "{log}"
    );
    assert_no_forged_line("nats-callout", &log);
    assert!(log.len() < 8192, "the 100 KB init error was printed whole");
}

/// A small deterministic generator (xorshift), so a failing case can be
/// replayed from its seed.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[(self.next() % choices.len() as u64) as usize].clone()
    }

    /// A grant for the hostile policy's `grant` user: a valid base with
    /// one to four fields set to probes, each valid, invalid, or something
    /// nats-server records but does not enforce.
    fn grant(&mut self) -> Value {
        let mut grant = json!({ "account": "APP" });
        let probes = probes();
        for _ in 0..=(self.next() % 4) {
            let (key, value) = self.pick(&probes);
            grant[key] = value;
        }
        grant
    }
}

/// Every field a policy can set, with values to probe it with.
fn probes() -> Vec<(&'static str, Value)> {
    let fields: [(&str, Vec<Value>); 14] = [
        ("account", vec![json!("APP"), json!("SYS"), json!("NOPE")]),
        (
            "publish",
            vec![
                json!(["app.>"]),
                json!(["a b"]),
                json!([">"]),
                json!(["a..b"]),
            ],
        ),
        (
            "subscribe",
            vec![json!(["app.* q"]), json!(["app..x"]), json!(["x q r"])],
        ),
        ("name", vec![json!("Ann"), json!("two\nlines"), json!("")]),
        (
            "tags",
            vec![
                json!(["team:a", "Upper"]),
                json!(["new\nline"]),
                json!([""]),
            ],
        ),
        (
            "responses",
            vec![json!([1, 1000]), json!([0, 0]), json!([1, u64::MAX])],
        ),
        ("subs", vec![json!(-1), json!(1), json!(0), json!(-7)]),
        ("payload", vec![json!(-1), json!(5), json!(i64::MAX)]),
        ("data", vec![json!(-1), json!(100)]),
        (
            "source_cidrs",
            vec![
                json!(["127.0.0.0/8"]),
                json!(["127.0.0.1"]),
                json!(["10.0.0.0/8"]),
                json!(["nope"]),
            ],
        ),
        (
            "times",
            vec![
                json!([["00:00:00", "23:59:59"]]),
                json!([["25:00:00", "26:00:00"]]),
                json!([["10:00:00", "10:00:00"]]),
            ],
        ),
        (
            "times_location",
            vec![
                json!("UTC"),
                json!("Europe/Paris"),
                json!("Mars/Olympus"),
                json!(""),
                json!("europe/paris"),
            ],
        ),
        (
            "connection_types",
            vec![
                json!(["standard"]),
                json!(["websocket"]),
                json!(["mqtt", "leafnode"]),
                json!(["standard", "mqtt"]),
                json!(["in-process"]),
            ],
        ),
        (
            "expires_in_secs",
            vec![json!(60), json!(0), json!(u64::MAX)],
        ),
    ];
    fields
        .into_iter()
        .flat_map(|(key, values)| values.into_iter().map(move |value| (key, value)))
        .collect()
}

/// The decision lines the host logged for `grant` clients, in order.
fn grant_decisions(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(" authorization ") && line.contains("user=\"grant\""))
        .collect()
}

/// The last decision the host logged for a `grant` client, once there are
/// more than `before` of them.
fn decision_after(callout: &Callout, before: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = callout.log();
        let lines = grant_decisions(&log);
        if lines.len() > before {
            return lines[lines.len() - 1].to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decision logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_the_host_logs_is_what_the_client_sees() {
    let cases: usize = std::env::var("GRANT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("GRANT_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    let (server, callout) = hostile("");
    let mut generator = Cases(seed);
    // Every probe alone (with and without a time window, which times_location
    // needs to matter), then random combinations.
    let mut grants: Vec<Value> = Vec::new();
    for (key, value) in probes() {
        let mut grant = json!({ "account": "APP" });
        grant[key] = value;
        grants.push(grant.clone());
        grant["times"] = json!([["00:00:00", "23:59:59"]]);
        grant["times_location"] = grant.get("times_location").cloned().unwrap_or(json!("UTC"));
        grants.push(grant);
    }
    grants.extend((0..cases).map(|_| generator.grant()));
    let (mut allowed, mut denied) = (0, 0);
    for (case, grant) in grants.into_iter().enumerate() {
        let before = grant_decisions(&callout.log()).len();
        let outcome = connect(
            &server.url(),
            ConnectOptions::with_user_and_password("grant".into(), grant.to_string()),
        )
        .await;
        let decision = decision_after(&callout, before);
        let logged_allow = decision.contains("decision=\"allow\"");
        assert_eq!(
            logged_allow,
            outcome.is_ok(),
            "case {case} (GRANT_SEED={seed}): the host logged {decision:?} but the client saw {:?}\ngrant: {grant}\nnats-server:\n{}",
            outcome
                .as_ref()
                .map(|_| "admitted")
                .map_err(ToString::to_string),
            server.log()
        );
        if logged_allow {
            assert_promises_hold_for_a_plain_client(&grant, case, seed);
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    // The generator must exercise both sides of the rule.
    assert!(
        allowed > 0 && denied > 0,
        "{allowed} allowed, {denied} denied"
    );
}

/// An admitted client holds every restriction its grant promised, including
/// those nats-server records but does not enforce for callout users: the
/// test's clients are plain TCP clients with no limits of their own.
fn assert_promises_hold_for_a_plain_client(grant: &Value, case: usize, seed: u64) {
    let context = format!("case {case} (GRANT_SEED={seed}) was admitted with {grant}");
    if let Some(types) = grant["connection_types"].as_array() {
        assert!(
            types.iter().any(|t| t == "standard"),
            "{context}: a plain TCP client outside the granted connection types"
        );
    }
    for limit in ["subs", "data", "payload"] {
        let value = &grant[limit];
        assert!(
            value.is_null() || *value == json!(-1),
            "{context}: limits.{limit} is written into the JWT but nats-server does not enforce it"
        );
    }
}

/// The check command's stderr for `policy`, which must fail to load.
fn load_error(policy: &std::path::Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"connect_opts": {"protocol": 1}}"#).unwrap();
    let output = super::run_cli(&[
        "check",
        "--no-cache",
        "--policy",
        policy.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
    ]);
    assert!(!output.status.success(), "the policy loaded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_policy_for_another_version_of_the_world_is_refused() {
    // The same shape, another version: rename the imported interfaces (the
    // names keep their length, so the binary stays valid).
    let ours = std::fs::read(crate::harness::policy_wasm("hostile-policy")).unwrap();
    let mut theirs = ours.clone();
    let mut replaced = 0;
    for (from, to) in [
        (
            &b"nats:callout/types@0.1.0"[..],
            &b"nats:callout/types@0.2.0"[..],
        ),
        (b"nats:callout/host@0.1.0", b"nats:callout/host@0.2.0"),
    ] {
        let mut at = 0;
        while let Some(found) = theirs[at..].windows(from.len()).position(|w| w == from) {
            theirs[at + found..at + found + to.len()].copy_from_slice(to);
            at += found + to.len();
            replaced += 1;
        }
    }
    assert!(
        replaced > 0,
        "the component imports no nats:callout interface"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.wasm");
    std::fs::write(&path, theirs).unwrap();
    let error = load_error(&path);
    assert!(
        error.contains(
            "was built for nats:callout@0.2.0, but this host implements nats:callout@0.1.0"
        ),
        "{error}"
    );
}

#[test]
fn a_policy_stuck_while_starting_is_reported_as_a_timeout() {
    // A core module whose start function never returns, made a policy
    // component by the host's own componentize command.
    let module = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func $spin (loop $forever (br $forever)))
             (start $spin)
             (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
             (func (export "init") (param i32 i32) (result i32) i32.const 0)
             (func (export "authorize") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (core, component) = (
        dir.path().join("stuck.core.wasm"),
        dir.path().join("stuck.wasm"),
    );
    std::fs::write(&core, module).unwrap();
    let made = super::run_cli(&[
        "componentize",
        core.to_str().unwrap(),
        "--out",
        component.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let error = load_error(&component);
    assert!(error.contains("timed out after 10000 ms"), "{error}");
    assert!(!error.contains("not a component implementing"), "{error}");
}

/// `nats-callout check` of the hostile policy's `user`, run under an
/// address-space limit of `limit_kib` (`ulimit -v`).
fn check_with_address_space(limit_kib: u64, user: &str, memory_mb: u32) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let text = json!({ "connect_opts": { "user": user, "pass": "x", "protocol": 1 } });
    std::fs::write(&request, text.to_string()).unwrap();
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit_kib} && exec \"$0\" check --no-cache --memory-mb {memory_mb} --policy \"$1\" --request \"$2\""
        ))
        .arg(env!("CARGO_BIN_EXE_nats-callout"))
        .arg(crate::harness::policy_wasm("hostile-policy"))
        .arg(&request)
        .output()
        .expect("sh runs")
}

#[test]
fn a_small_address_space_falls_back_to_compact_memories_or_says_why_not() {
    // 8 GiB cannot hold the guarded layout (about 4 GiB per memory slot).
    let output = check_with_address_space(8 << 20, "ok", 32);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("using compact memories"), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["decision"], "allow");
    // The memory cap still holds in the compact layout.
    let output = check_with_address_space(8 << 20, "alloc", 32);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["reason"], "policy exceeded its memory cap of 32 MiB");
    // 2 GiB cannot hold even 24 compact memories of 4 GiB: a clear error.
    let output = check_with_address_space(2 << 20, "ok", 4096);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "cannot reserve virtual address space for 24 policy memories of up to 4096 MiB"
        ) && stderr.contains("ulimit -v"),
        "{stderr}"
    );
}

#[test]
fn check_answers_what_serve_would_for_a_grant_too_large_to_sign() {
    // Within the rules' subject count, but the user JWT would pass the size
    // nats-server accepts: serve denies it at signing, and so must check.
    let subjects: Vec<String> = (0..9000).map(|i| format!("app.{i:0>96}")).collect();
    let grant = json!({ "account": "APP", "publish": subjects });
    let request =
        json!({ "connect_opts": { "user": "grant", "pass": grant.to_string(), "protocol": 1 } });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let output = super::run_cli(&[
        "check",
        "--policy",
        crate::harness::policy_wasm("hostile-policy")
            .to_str()
            .unwrap(),
        "--request",
        path.to_str().unwrap(),
        "--accounts",
        "APP",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["decision"], "deny", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("more than nats-server accepts"), "{reason}");
}

#[test]
fn the_json_log_format_keeps_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    let request = json!({ "connect_opts": { "user": "forge-log", "pass": "x", "protocol": 1 } });
    std::fs::write(&path, request.to_string()).unwrap();
    let output = super::run_cli(&[
        "--log-format",
        "json",
        "check",
        "--policy",
        crate::harness::policy_wasm("hostile-policy")
            .to_str()
            .unwrap(),
        "--request",
        path.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    // host.log, stdout and stderr: three events, each whole.
    let forged: Vec<&Value> = events
        .iter()
        .filter(|event| event.to_string().contains(FAKE_LINE_START))
        .collect();
    assert_eq!(forged.len(), 3, "{log}");
    assert_no_forged_line("nats-callout (JSON)", &log);
}
