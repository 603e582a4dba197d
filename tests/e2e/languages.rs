//! Policies in every language. The conformance kit (`tests/conformance`)
//! runs through `nats-callout check --kit` against the token-table example
//! and the echo policy of Rust, Go, JavaScript and Python; then each
//! language's token-table serves real clients through a real nats-server.
//! Instance reuse (`calls_per_instance`) is checked here too.

use std::time::Duration;

use async_nats::ConnectOptions;
use serde_json::Value;

use super::{
    TOKEN_TABLE_SETTINGS, assert_alice_is_admitted, assert_authorization_violation,
    assert_token_grant, connect, connect_as, run_cli, user_info,
};
use crate::harness::{CalloutSpec, NatsServer, ServerXkey, policy_wasm, stack, workspace};

/// Runs a kit against a policy and fails with the kit's report.
fn conformance(policy: &str, kit: &str) {
    // The echo kit checks what reaches the policy, not speed: its large case
    // takes an interpreter over 100 ms. The sandbox kit checks the deadline.
    let timeout_ms = if kit == "sandbox" { "200" } else { "5000" };
    let wasm = policy_wasm(policy);
    let kit = workspace().join("tests/conformance").join(kit);
    let output = run_cli(&[
        "check",
        "--policy",
        &wasm.to_string_lossy(),
        "--kit",
        &kit.to_string_lossy(),
        "--timeout-ms",
        timeout_ms,
    ]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{policy} fails {}:\n{report}\n{}",
        kit.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains(" 0 failed"), "{report}");
}

#[test]
fn the_kit_passes_for_rust() {
    conformance("token-table", "token-table");
    conformance("echo-policy", "echo");
    conformance("echo-policy", "sandbox");
    // Capabilities, offline: each kit's capabilities.json is the data.
    conformance("oidc", "oidc");
}

#[test]
fn the_kit_passes_for_go() {
    conformance("kv-users", "kv-users");
    conformance("token-table-go", "token-table");
    conformance("echo-go", "echo");
    conformance("echo-go", "sandbox");
}

#[test]
fn the_kit_passes_for_javascript() {
    conformance("oidc-js", "oidc");
    conformance("token-table-js", "token-table");
    conformance("echo-js", "echo");
    conformance("echo-js", "sandbox");
}

#[test]
fn the_kit_passes_for_python() {
    conformance("kv-users-py", "kv-users");
    conformance("token-table-py", "token-table");
    conformance("echo-py", "echo");
    conformance("echo-py", "sandbox");
}

/// `sdk/go/build.sh` finds its tools without being told (this checkout's
/// Go and host binary), says what to do when one is missing, and leaves no
/// half-built module behind when the policy does not compile.
#[test]
fn the_go_build_script_finds_its_tools_and_cleans_up() {
    let script = workspace().join("sdk/go/build.sh");
    let dir = tempfile::tempdir().expect("a folder");
    let run = |policy: &std::path::Path, out: &str, extra_env: &[(&str, &str)]| {
        let mut command = std::process::Command::new("bash");
        command
            .arg(&script)
            .arg(policy)
            .arg(dir.path().join(out))
            .env_clear()
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("PATH", "/usr/bin:/bin");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        command.output().expect("bash runs")
    };
    let example = workspace().join("plugins/token-table-go");
    let built = run(&example, "policy.wasm", &[]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(dir.path().join("policy.wasm").exists());

    let missing = run(
        &example,
        "other.wasm",
        &[("NATS_CALLOUT", "/nonexistent/nats-callout")],
    );
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        error.contains("NATS_CALLOUT=/nonexistent/nats-callout is not an executable"),
        "{error}"
    );

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("a policy folder");
    let go_mod = std::fs::read_to_string(example.join("go.mod")).expect("go.mod");
    let sdk = workspace().join("sdk/go");
    let go_mod = go_mod.replace("=> ../../sdk/go", &format!("=> {}", sdk.display()));
    std::fs::write(broken.join("go.mod"), go_mod).expect("write go.mod");
    std::fs::write(broken.join("main.go"), "package main\n\nfunc main() {\n")
        .expect("write main.go");
    let failed = run(&broken, "broken.wasm", &[]);
    assert!(!failed.status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("broken"))
        .collect();
    assert_eq!(left, ["broken"], "a failed build left files behind");
}

/// `check --capabilities` answers one request from the capabilities' data,
/// and without it the policy does not load, naming what it imports.
#[test]
fn check_answers_from_capability_data() {
    let kit = workspace().join("tests/conformance/kv-users");
    let wasm = policy_wasm("kv-users");
    let dir = tempfile::tempdir().expect("a folder");
    let request = dir.path().join("request.json");
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(kit.join("cases/password-right.json")).expect("the case"),
    )
    .expect("JSON");
    std::fs::write(&request, case["request"].to_string()).expect("write the request");
    let args = |capabilities: bool| {
        let mut args = vec![
            "check".to_string(),
            "--policy".into(),
            wasm.to_string_lossy().into_owned(),
            "--settings".into(),
            kit.join("settings.json").to_string_lossy().into_owned(),
            "--request".into(),
            request.to_string_lossy().into_owned(),
            "--timeout-ms".into(),
            "5000".into(),
        ];
        if capabilities {
            args.push("--capabilities".into());
            args.push(kit.join("capabilities.json").to_string_lossy().into_owned());
        }
        args
    };
    let with_data = run_cli(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    let report = String::from_utf8_lossy(&with_data.stdout);
    assert!(with_data.status.success(), "{report}");
    assert!(report.contains("\"account\": \"APP\""), "{report}");
    let without = run_cli(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    let error = String::from_utf8_lossy(&without.stderr);
    assert!(!without.status.success());
    assert!(
        error.contains("imports the capability nats:callout/nkey"),
        "{error}"
    );
}

/// Serves `policy` (a token-table in some language) and checks what the
/// Rust example's end-to-end test checks: exact grants, and denials with the
/// policy's reason in both logs.
async fn token_table_serves_clients(policy: &str, extra_policy_toml: &str) {
    let spec = CalloutSpec {
        policy,
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        with_xkey: true,
        nkey_auth: false,
        ..CalloutSpec::hostile("", extra_policy_toml)
    };
    let (server, callout) = stack(ServerXkey::Service, 3, &spec);

    for _ in 0..3 {
        let client = connect(&server.url(), ConnectOptions::with_token("s3cr3t".into()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{policy}: the token is not admitted: {e}\n{}",
                    callout.log()
                )
            });
        assert_token_grant(&user_info(&client).await);
    }

    assert_alice_is_admitted(&server).await;

    assert_authorization_violation(
        connect(
            &server.url(),
            ConnectOptions::with_user_and_password("alice".into(), "nope".into()),
        )
        .await,
    );
    assert_authorization_violation(
        connect(&server.url(), ConnectOptions::with_token("guess".into())).await,
    );
    callout.wait_for_log(
        "wrong password for user \\\"alice\\\"",
        Duration::from_secs(5),
    );
    // nats-server writes its log line after it refused the client: wait for it.
    server.wait_for_log("policy denied: unknown token", Duration::from_secs(5));
    let log = callout.log();
    assert!(
        !log.contains("s3cr3t") && !log.contains("wonderland"),
        "secrets in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_policy_serves_clients_through_nats_server() {
    token_table_serves_clients("token-table-go", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_policy_serves_clients_through_nats_server() {
    token_table_serves_clients("token-table-js", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_policy_serves_clients_through_nats_server_reusing_instances() {
    token_table_serves_clients("token-table-py", "calls_per_instance = 50").await;
}

/// The user name the hostile policy's `count` user gets: `call-N`, N being
/// the calls its instance has served.
async fn count(server: &NatsServer) -> String {
    let client = connect_as(server, "count").await.expect("admitted");
    let info: Value = user_info(&client).await;
    info["user"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_instances_are_recycled_after_their_calls_and_after_a_trap() {
    let (server, callout) = stack(
        ServerXkey::None,
        3,
        &CalloutSpec::hostile("account = \"APP\"", "calls_per_instance = 3"),
    );
    // One client at a time, so one instance serves them in turn.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(count(&server).await);
    }
    assert_eq!(seen, ["call-1", "call-2", "call-3", "call-1"]);

    // A trap drops the instance it happened in: the next call starts afresh.
    assert_eq!(count(&server).await, "call-2");
    assert_authorization_violation(connect_as(&server, "panic").await);
    assert_eq!(count(&server).await, "call-1");

    // An instance that grew past half its room to the 32 MiB cap is retired
    // after answering, before a later call could hit the cap.
    connect_as(&server, "hoard").await.expect("admitted");
    assert_eq!(count(&server).await, "call-1");
    callout.wait_for_log("calls_per_instance=3", Duration::from_secs(1));
}
