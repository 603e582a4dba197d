//! End-to-end tests: a real nats-server, the real `nats-callout` binary, real
//! clients and real keys. Build the policies first (`scripts/test.sh` does).

mod capabilities;
mod hardening;
mod harness;
mod languages;
mod operations;
mod operator;
mod scaffold;
mod tenants;

use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions};
use futures::StreamExt as _;
use harness::{Callout, CalloutSpec, Keys, NatsServer, ServerXkey, stack};
use serde_json::Value;

const TOKEN_TABLE_SETTINGS: &str = r#"
[policy.settings.tokens.s3cr3t]
account = "APP"
publish = ["app.>", "$SYS.REQ.USER.INFO"]
subscribe = ["app.>", "_INBOX.>"]

[policy.settings.users.alice]
password = "wonderland"
account = "OTHER"
name = "Alice"
publish = ["$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]
expires_in_secs = 600
"#;

/// A server and a callout serving the token-table example policy.
struct Setup {
    server: NatsServer,
    callout: Callout,
}

fn token_table(xkey: bool, extra_policy_toml: &str) -> Setup {
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        with_xkey: xkey,
        nkey_auth: false,
        ..CalloutSpec::hostile("", extra_policy_toml)
    };
    let (server, callout) = stack(
        if xkey {
            ServerXkey::Service
        } else {
            ServerXkey::None
        },
        2,
        &spec,
    );
    Setup { server, callout }
}

async fn connect(
    url: &str,
    options: ConnectOptions,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    options
        .connection_timeout(Duration::from_secs(10))
        .connect(url)
        .await
}

async fn user_info(client: &async_nats::Client) -> Value {
    let reply = client
        .request("$SYS.REQ.USER.INFO", "".into())
        .await
        .expect("$SYS.REQ.USER.INFO answers");
    let info: Value = serde_json::from_slice(&reply.payload).expect("USER.INFO is JSON");
    info["data"].clone()
}

fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item.as_str().unwrap_or_default().to_string())
        .collect();
    items.sort();
    items
}

/// What `TOKEN_TABLE_SETTINGS` grants the token `s3cr3t`, as USER.INFO shows it.
fn assert_token_grant(info: &Value) {
    assert_eq!(info["account"], "APP");
    // The server does not keep the order of permission lists.
    assert_eq!(
        sorted(&info["permissions"]["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "app.>"]
    );
    assert_eq!(
        sorted(&info["permissions"]["subscribe"]["allow"]),
        ["_INBOX.>", "app.>"]
    );
}

/// A user and password land in the other account, with the policy's name and
/// lifetime (`TOKEN_TABLE_SETTINGS`' alice).
async fn assert_alice_is_admitted(server: &NatsServer) {
    let alice = connect(
        &server.url(),
        ConnectOptions::with_user_and_password("alice".into(), "wonderland".into()),
    )
    .await
    .expect("alice is admitted");
    let info = user_info(&alice).await;
    assert_eq!(info["account"], "OTHER");
    assert_eq!(info["user"], "Alice");
    // `expires` is a Go duration in nanoseconds: close to 600 s.
    let expires = info["expires"].as_f64().unwrap_or(0.0);
    assert!(
        (590e9..=600e9).contains(&expires),
        "expires = {}",
        info["expires"]
    );
}

fn assert_authorization_violation(result: Result<async_nats::Client, async_nats::ConnectError>) {
    match result {
        Ok(_) => panic!("the client was admitted"),
        Err(error) => assert_eq!(
            error.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{error}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_client_gets_exactly_its_permissions() {
    let setup = token_table(false, "");
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let client = connect(
        &setup.server.url(),
        ConnectOptions::with_token("s3cr3t".into()).event_callback(move |event| {
            let errors_tx = errors_tx.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = errors_tx.send(error.to_string());
                }
            }
        }),
    )
    .await
    .expect("the token is admitted");

    assert_token_grant(&user_info(&client).await);

    // Inside the grant: a round trip on app.echo works.
    let mut sub = client.subscribe("app.echo").await.unwrap();
    client.publish("app.echo", "hi".into()).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload[..], b"hi");

    // Outside it: a permissions violation.
    client.publish("other.subject", "x".into()).await.unwrap();
    client.flush().await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), errors.recv())
        .await
        .expect("a server error")
        .unwrap();
    assert!(
        error
            .to_lowercase()
            .contains("permissions violation for publish to \"other.subject\""),
        "{error}"
    );

    assert_alice_is_admitted(&setup.server).await;

    setup
        .callout
        .wait_for_log("decision=\"allow\"", Duration::from_secs(5));
    let log = setup.callout.log();
    assert!(
        !log.contains("s3cr3t") && !log.contains("wonderland"),
        "secrets in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_client_gets_authorization_violation() {
    let setup = token_table(false, "");
    assert_authorization_violation(
        connect(
            &setup.server.url(),
            ConnectOptions::with_token("guess".into()),
        )
        .await,
    );
    assert_authorization_violation(
        connect(
            &setup.server.url(),
            ConnectOptions::with_user_and_password("alice".into(), "nope".into()),
        )
        .await,
    );
    setup.callout.wait_for_log(
        "wrong password for user \\\"alice\\\"",
        Duration::from_secs(5),
    );
    setup
        .callout
        .wait_for_log("unknown token", Duration::from_secs(5));
    // nats-server logs the reason the service gave (after it refused the
    // client: wait for it); the client never sees it.
    setup
        .server
        .wait_for_log("policy denied: unknown token", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_deny_sends_nothing_and_still_rejects() {
    let setup = token_table(false, "deny = \"silent\"");
    assert_authorization_violation(
        connect(
            &setup.server.url(),
            ConnectOptions::with_token("guess".into()),
        )
        .await,
    );
    setup
        .callout
        .wait_for_log("decision=\"deny-silent\"", Duration::from_secs(5));
    // Allowed clients are unaffected.
    connect(
        &setup.server.url(),
        ConnectOptions::with_token("s3cr3t".into()),
    )
    .await
    .expect("admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_requests_are_opened_and_answered_sealed() {
    let setup = token_table(true, "");
    let client = connect(
        &setup.server.url(),
        ConnectOptions::with_token("s3cr3t".into()),
    )
    .await
    .expect("admitted");
    assert_eq!(user_info(&client).await["account"], "APP");
    assert_authorization_violation(
        connect(
            &setup.server.url(),
            ConnectOptions::with_token("guess".into()),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_xkey_is_refused_with_a_clear_log_line() {
    let (server, callout) = stack(
        ServerXkey::Stranger,
        1,
        &CalloutSpec::hostile("", "").with_xkey(),
    );
    assert!(
        connect(
            &server.url(),
            ConnectOptions::with_user_and_password("ok".into(), "x".into())
        )
        .await
        .is_err()
    );
    callout.wait_for_log(
        "cannot decrypt the request with the configured xkey",
        Duration::from_secs(5),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_request_is_refused_when_encryption_is_required() {
    let (server, callout) = stack(
        ServerXkey::None,
        1,
        &CalloutSpec::hostile("", "").with_xkey(),
    );
    assert_authorization_violation(
        connect(
            &server.url(),
            ConnectOptions::with_user_and_password("ok".into(), "x".into()),
        )
        .await,
    );
    callout.wait_for_log(
        "request was not encrypted, but this service requires encryption",
        Duration::from_secs(5),
    );
}

/// A server and a callout serving the hostile test policy.
fn hostile(extra_policy_toml: &str) -> (NatsServer, Callout) {
    stack(
        ServerXkey::None,
        3,
        &CalloutSpec::hostile("account = \"APP\"", extra_policy_toml),
    )
}

async fn connect_as(
    server: &NatsServer,
    user: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    connect(
        &server.url(),
        ConnectOptions::with_user_and_password(user.into(), "x".into()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_policies_are_denied_and_the_host_keeps_serving() {
    let (server, callout) = hostile("timeout_ms = 50\nmemory_mb = 16");
    let cases = [
        ("loop", "policy timed out after 50 ms"),
        ("alloc", "policy exceeded its memory cap of 16 MiB"),
        ("recurse", "policy overflowed its stack"),
        ("panic", "policy trapped"),
        ("huge", "subjects, more than the 10000 allowed"),
        (
            "foreign",
            "policy granted account \\\"SYS\\\", which is not in [policy] accounts",
        ),
        ("bad-subject", "malformed publish subject"),
        // No filesystem, environment, arguments or network inside the sandbox.
        (
            "escape",
            "policy denied: file=false dir=false env=0 args=0 net=false",
        ),
        ("flood", "policy trapped"),
        // A host function refused the call: the cause, not the backtrace header.
        (
            "random",
            "policy call failed in the host: requested len 1048576 exceeds limit 1024",
        ),
    ];
    for (user, reason) in cases {
        if connect_as(&server, user).await.is_ok() {
            panic!("{user} was admitted:\n{}", callout.log());
        }
        callout.wait_for_log(reason, Duration::from_secs(5));
        // The deny reached nats-server as a signed error response, not as a timeout.
        server.wait_for_log(&reason.replace("\\\"", "\""), Duration::from_secs(5));
        let next = connect_as(&server, "ok")
            .await
            .unwrap_or_else(|e| panic!("after {user}: {e}\n{}", callout.log()));
        drop(next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_starts_from_a_clean_instance_and_lifetimes_are_capped() {
    let (server, _callout) = hostile("max_lifetime_secs = 120\ndefault_lifetime_secs = 60");
    for _ in 0..3 {
        let client = connect_as(&server, "count").await.expect("admitted");
        // The policy counts calls in a static: a fresh instance always says 1.
        let info = {
            let reply = client
                .request("$SYS.REQ.USER.INFO", "".into())
                .await
                .expect("info");
            serde_json::from_slice::<Value>(&reply.payload).unwrap()["data"].clone()
        };
        assert_eq!(info["user"], "call-1");
    }
    let client = connect_as(&server, "forever")
        .await
        .expect("admitted with a shortened lifetime");
    let reply = client
        .request("$SYS.REQ.USER.INFO", "".into())
        .await
        .expect("info");
    let info: Value = serde_json::from_slice(&reply.payload).unwrap();
    let expires = info["data"]["expires"].as_f64().unwrap_or(0.0);
    assert!(expires > 0.0 && expires <= 120e9, "expires = {expires}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_auth_subject_does_no_harm() {
    let (server, callout) = hostile("");
    let tester = connect(
        &server.url(),
        ConnectOptions::with_user_and_password("tester".into(), "pwd".into())
            .event_callback(|event| async move { eprintln!("tester event: {event}") }),
    )
    .await
    .expect("the tester is an auth user");
    let forged = {
        // A well-formed request signed by a key that is not the server named inside it.
        let impostor = nkeys::KeyPair::new_server();
        let header = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";
        let payload = base64_url(&serde_json::json!({
            "iss": impostor.public_key(), "sub": "A", "aud": "nats-authorization-request",
            "nats": {"server_id": {"id": nkeys::KeyPair::new_server().public_key()}, "user_nkey": nkeys::KeyPair::new_user().public_key(), "type": "authorization_request", "version": 2}
        }).to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = base64_url_bytes(&impostor.sign(signing_input.as_bytes()).unwrap());
        format!("{signing_input}.{signature}")
    };
    let payloads: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        b"eyJ.not.ajwt".to_vec(),
        vec![0xff; 64],
        vec![b'x'; 2 * 1024 * 1024 - 4096],
        forged.into_bytes(),
    ];
    for payload in payloads {
        let inbox = tester.new_inbox();
        let mut replies = tester.subscribe(inbox.clone()).await.unwrap();
        tester
            .publish_with_reply("$SYS.REQ.USER.AUTH", inbox, payload.into())
            .await
            .unwrap();
        tester.flush().await.unwrap();
        let reply = tokio::time::timeout(Duration::from_millis(300), replies.next()).await;
        assert!(reply.is_err(), "garbage got a reply");
    }
    callout.wait_for_log("request dropped", Duration::from_secs(5));
    callout.wait_for_log(
        "is not the server key in server_id.id",
        Duration::from_secs(5),
    );
    connect_as(&server, "ok").await.expect("still serving");
}

fn base64_url(text: &str) -> String {
    base64_url_bytes(text.as_bytes())
}

fn base64_url_bytes(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_connects_are_all_answered() {
    let (server, _callout) = stack(ServerXkey::None, 10, &CalloutSpec::hostile("", ""));
    let report = nats_callout_loadgen::measure(nats_callout_loadgen::LoadArgs {
        server: server.url(),
        connections: 500,
        concurrency: 500,
        token: None,
        user: Some("ok".into()),
        password: Some("x".into()),
        timeout_ms: 20_000,
        server_pid: None,
        service_pid: None,
        label: "500".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        (report.succeeded, report.failed),
        (500, 0),
        "{:?}",
        report.first_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_survives_a_nats_server_restart() {
    let (mut server, callout) = hostile("");
    connect_as(&server, "ok")
        .await
        .expect("admitted before the restart");
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect_as(&server, "ok").await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("not admitted after the restart: {error}\n{}", callout.log()),
        }
    }
    assert!(callout.log().contains("disconnected from NATS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    // A request is in flight (its policy sleeps until its 1.5 s deadline) when
    // SIGTERM arrives: it is finished and answered before the service exits.
    let (server, mut callout) = hostile("timeout_ms = 1500");
    connect_as(&server, "ok").await.expect("admitted");
    let url = server.url();
    let in_flight = tokio::spawn(async move {
        connect(
            &url,
            ConnectOptions::with_user_and_password("sleep".into(), "x".into()),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    callout.terminate();
    assert_eq!(callout.wait_exit(Duration::from_secs(10)), Some(0));
    let log = callout.log();
    assert!(
        log.contains("finishing requests in flight in_flight=") && !log.contains("in_flight=0"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    // The in-flight client got the service's signed deny, not the server's timeout.
    assert_authorization_violation(in_flight.await.expect("client task"));
    server.wait_for_log(
        "callout service returned an error: policy timed out after 1500 ms",
        Duration::from_secs(5),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_even_when_nats_is_gone() {
    let (mut server, mut callout) = hostile("");
    server.stop();
    callout.wait_for_log("disconnected from NATS", Duration::from_secs(10));
    callout.terminate();
    assert_eq!(
        callout.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        callout.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_settings_stop_the_service_with_the_policy_s_reason() {
    let keys = Keys::new();
    let mut callout = Callout::spawn(
        "nats://127.0.0.1:1",
        &keys,
        &CalloutSpec::hostile("refuse = \"the moon is not in [policy.settings]\"", ""),
    );
    assert_ne!(callout.wait_exit(Duration::from_secs(60)), Some(0));
    let log = callout.log();
    assert!(
        log.contains("refused its settings: the moon is not in [policy.settings]"),
        "{log}"
    );
}

fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .args(args)
        .env("NATS_CALLOUT_CACHE_DIR", harness::policy_cache_dir())
        .output()
        .expect("nats-callout runs")
}

#[test]
fn check_evaluates_a_policy_offline() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let policy = harness::policy_wasm("token-table");
    let check = |settings: &str, request: &str, accounts: &str| {
        let (settings, request) = (
            write("settings.json", settings),
            write("request.json", request),
        );
        let mut args = vec![
            "check",
            "--policy",
            policy.to_str().unwrap(),
            "--settings",
            &settings,
            "--request",
            &request,
        ];
        if !accounts.is_empty() {
            args.extend(["--accounts", accounts]);
        }
        run_cli(&args)
    };
    let report = |output: std::process::Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let settings = r#"{"tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"]}}}"#;
    // The whole decoded JWT payload, as captured from a server, is accepted too.
    let token = r#"{"nats": {"user_nkey": "UABC", "connect_opts": {"auth_token": "s3cr3t", "protocol": 1}}}"#;

    let allowed = report(check(settings, token, "APP"));
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["user_claims"]["aud"], "APP");
    assert_eq!(allowed["user_claims"]["sub"], "UABC");
    assert_eq!(
        allowed["user_claims"]["nats"]["pub"]["allow"],
        serde_json::json!(["app.>"])
    );
    assert_eq!(allowed["user_claims"]["nats"]["version"], 2);

    // A grant outside --accounts is reported as the host's deny.
    let outside = report(check(settings, token, "OTHER"));
    assert_eq!(outside["decision"], "deny");
    assert!(
        outside["reason"]
            .as_str()
            .unwrap()
            .contains("not in [policy] accounts")
    );
    assert_eq!(
        (&outside["reason_class"], &outside["reason_kind"]),
        (&serde_json::json!("rule"), &serde_json::json!("account"))
    );

    let guess = report(check(
        settings,
        r#"{"connect_opts": {"auth_token": "guess"}}"#,
        "",
    ));
    assert_eq!(guess["reason"], "policy denied: unknown token");
    assert_eq!(guess["reason_class"], "policy");

    // Refused settings fail the command with the policy's message.
    let refused = check("{}", token, "");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("refused its settings: invalid settings: no `tokens`")
    );
}

/// `[policy.ceiling]` caps what the policy may grant, through a real
/// nats-server: a grant inside is admitted with exactly its subjects, an
/// entry without permissions gets the ceiling's (never the account's
/// everything), and a grant above is denied with the subject named in both
/// logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceiling_caps_what_the_policy_may_grant() {
    let settings = r#"
[policy.settings.tokens.inside]
account = "APP"
publish = ["app.orders.new", "$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]

[policy.settings.tokens.unset]
account = "APP"

[policy.settings.tokens.above]
account = "APP"
publish = ["app.>"]
"#;
    let ceiling = r#"
[policy.ceiling]
publish = ["app.orders.>", "$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]
max_lifetime_secs = 600
"#;
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: settings,
        ..CalloutSpec::hostile("", ceiling)
    };
    let (server, callout) = stack(ServerXkey::None, 2, &spec);
    let token = |token: &str| ConnectOptions::with_token(token.into());

    let inside = connect(&server.url(), token("inside"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    let info = user_info(&inside).await;
    assert_eq!(
        sorted(&info["permissions"]["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "app.orders.new"]
    );

    let unset = connect(&server.url(), token("unset"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    let info = user_info(&unset).await;
    assert_eq!(
        sorted(&info["permissions"]["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "app.orders.>"]
    );
    assert_eq!(
        sorted(&info["permissions"]["subscribe"]["allow"]),
        ["_INBOX.>"]
    );
    // No lifetime asked: the default (3600 s) capped by the ceiling's 600 s
    // (`expires` is a Go duration in nanoseconds).
    let expires = info["expires"].as_f64().unwrap_or(0.0);
    assert!((590e9..=600e9).contains(&expires), "{info}");

    assert_authorization_violation(connect(&server.url(), token("above")).await);
    let reason =
        "policy granted the publish subject \\\"app.>\\\", which is outside the operator's ceiling";
    callout.wait_for_log(reason, Duration::from_secs(5));
    callout.wait_for_log("reason_kind=\"ceiling\"", Duration::from_secs(5));
    server.wait_for_log(&reason.replace("\\\"", "\""), Duration::from_secs(5));
}

/// `check --kit` holds an allowed case to the host's rules: a grant the
/// policy makes but `serve` would deny fails the case, with the host's reason.
#[test]
fn the_kit_fails_an_allow_the_host_would_deny() {
    let kit = tempfile::tempdir().unwrap();
    std::fs::create_dir(kit.path().join("cases")).unwrap();
    std::fs::write(kit.path().join("settings.json"), r#"{"account": "APP"}"#).unwrap();
    let case = |file: &str, user: &str| {
        let case = serde_json::json!({
            "description": format!("user {user}"),
            "request": {"connect_opts": {"user": user}},
            "expect": {"decision": "allow"},
        });
        std::fs::write(kit.path().join("cases").join(file), case.to_string()).unwrap();
    };
    case("1-good.json", "alice");
    case("2-bad-subject.json", "bad-subject");
    let policy = harness::policy_wasm("hostile-policy");
    let output = run_cli(&[
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--kit",
        kit.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("ok    1-good.json"), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL  2-bad-subject.json — user bad-subject: the policy allowed, but the host's rules refuse its grant: policy granted a malformed publish subject"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("2 cases, 1 passed, 1 failed"), "{stdout}");
}

/// `keys` as a new operator meets it: its two configurations, run as they
/// are (only the policy's settings added), admit a client through the
/// callout, with xkey, and its seeds stay private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_writes_configurations_that_nats_server_and_the_service_run_as_they_are() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let port = harness::free_port();
    let policy = harness::policy_wasm("token-table");
    let output = run_cli(&[
        "keys",
        "--out",
        out.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--accounts",
        "APP,OTHER",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let server_conf = read("nats-server.conf");
    let callout_toml = read("callout.toml");
    assert!(printed.contains(&server_conf) && printed.contains(&callout_toml));
    let issuer = nkeys::KeyPair::from_seed(read("issuer.seed").trim()).unwrap();
    let xkey = nkeys::XKey::from_seed(read("xkey.seed").trim()).unwrap();
    let service = nkeys::KeyPair::from_seed(read("service.nk").trim()).unwrap();
    assert!(server_conf.contains(&format!("issuer: {}", issuer.public_key())));
    assert!(server_conf.contains(&format!("xkey: {}", xkey.public_key())));
    assert!(server_conf.contains(&format!("auth_users: [ {} ]", service.public_key())));
    assert!(server_conf.contains("MERGE (1/2)") && server_conf.contains("MERGE (2/2)"));
    for seed in ["issuer.seed", "xkey.seed", "service.nk"] {
        assert!(!printed.contains(read(seed).trim()), "{seed} was printed");
        let mode = std::fs::metadata(out.join(seed))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{seed}");
    }

    let server = NatsServer::exactly(&server_conf, port);
    let files: Vec<(&str, String)> = ["issuer.seed", "xkey.seed", "service.nk"]
        .into_iter()
        .map(|name| (name, read(name)))
        .collect();
    let callout =
        Callout::spawn_with_files(&format!("{callout_toml}{TOKEN_TABLE_SETTINGS}"), &files);
    callout.wait_for_log("serving auth callout requests", Duration::from_secs(60));
    let client = connect(&server.url(), ConnectOptions::with_token("s3cr3t".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", callout.log(), server.log()));
    assert_token_grant(&user_info(&client).await);
    assert_alice_is_admitted(&server).await;
    assert_authorization_violation(
        connect(&server.url(), ConnectOptions::with_token("guess".into())).await,
    );
    assert!(
        callout.log().contains("decision=\"allow\""),
        "{}",
        callout.log()
    );
    // `whoami` shows the same from the command line, never the secret, and
    // fails when refused.
    let whoami = |args: &[&str]| {
        let url = server.url();
        let mut all = vec!["whoami", "--server", url.as_str()];
        all.extend(args);
        let output = run_cli(&all);
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
        )
    };
    let (ok, admitted) = whoami(&["--token", "s3cr3t"]);
    assert!(ok, "{admitted}");
    assert!(
        admitted.starts_with(r#"token            ADMITTED    account="APP" publish=["#),
        "{admitted}"
    );
    assert!(!admitted.contains("s3cr3t"), "{admitted}");
    let (ok, refused) = whoami(&["--user", "alice", "--password", "guess"]);
    assert!(!ok, "{refused}");
    assert!(
        refused.starts_with(r#"user "alice"     REFUSED     "#)
            && refused.contains("authorization violation")
            && !refused.contains("guess"),
        "{refused}"
    );

    // A second run changes nothing and says why.
    let again = run_cli(&["keys", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(read("nats-server.conf"), server_conf);
}

/// `check --config` evaluates a tenant's policy under exactly the service's
/// configuration: its settings, accounts and lifetimes, not the command
/// line's or a kit's.
#[test]
fn check_reads_the_service_s_own_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let policy = harness::policy_wasm("token-table");
    let config = dir.path().join("callout.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
[issuer]
seed_file = "issuer.seed"

[[tenant]]
name = "strict"
route = {{ token_prefix = "s" }}
[tenant.policy]
wasm = "{policy}"
accounts = ["APP"]
default_lifetime_secs = 60
max_lifetime_secs = 60
[tenant.policy.settings.tokens.s3cr3t]
account = "OTHER"
[tenant.policy.settings.tokens.short]
account = "APP"
expires_in_secs = 600

[[tenant]]
name = "golden"
route = {{ token_prefix = "g" }}
[tenant.policy]
wasm = "{policy}"
accounts = ["APP", "OTHER"]
golden_kit = "{kit}"
[tenant.policy.settings.tokens.s3cr3t]
account = "OTHER"

[[tenant]]
name = "open"
[tenant.policy]
wasm = "{policy}"
accounts = ["APP", "OTHER"]
[tenant.policy.settings.tokens.s3cr3t]
account = "OTHER"
"#,
            policy = policy.display(),
            kit = harness::workspace()
                .join("tests/conformance/token-table")
                .display(),
        ),
    )
    .unwrap();
    let request = |token: &str| {
        let path = dir.path().join(format!("{token}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"connect_opts": {{"auth_token": "{token}"}}}}"#),
        )
        .unwrap();
        path
    };
    let check = |tenant: Option<&str>, token: &str| {
        let (config, request) = (config.to_str().unwrap(), request(token));
        let mut args = vec!["check", "--config", config, "--request"];
        args.push(request.to_str().unwrap());
        if let Some(tenant) = tenant {
            args.extend(["--tenant", tenant]);
        }
        let output = run_cli(&args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };

    // The tenant's accounts refuse OTHER; its lifetime cap holds.
    let (ok, stdout, stderr) = check(Some("strict"), "s3cr3t");
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["decision"], "deny", "{stdout}");
    assert!(
        report["reason"].as_str().unwrap().contains("OTHER"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = check(Some("strict"), "short");
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["decision"], "allow", "{stdout}");
    assert_eq!(report["lifetime_secs"], 60, "{stdout}");
    assert_eq!(report["note"], "lifetime shortened from 600s", "{stdout}");
    // The other tenant allows the same token into OTHER.
    let (ok, stdout, stderr) = check(Some("open"), "s3cr3t");
    assert!(ok, "{stderr}");
    assert!(stdout.contains(r#""decision": "allow""#), "{stdout}");

    // Several tenants and none chosen, or one that is not there: named.
    let (ok, _, stderr) = check(None, "s3cr3t");
    assert!(!ok);
    assert!(
        stderr.contains("several tenants: choose one with --tenant (strict, golden, open)"),
        "{stderr}"
    );
    // A tenant whose golden kit fails under its settings: serve would not
    // start its policy, and check says so rather than answer.
    let (ok, stdout, stderr) = check(Some("golden"), "s3cr3t");
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("golden kit") && stderr.contains("serve would not start this policy"),
        "{stderr}"
    );
    let (ok, _, stderr) = check(Some("nope"), "s3cr3t");
    assert!(!ok);
    assert!(stderr.contains(r#"no tenant "nope""#), "{stderr}");

    // A kit runs under the tenant's settings and rules, not its own: the
    // token-table kit passes alone and fails under "strict".
    let kit = harness::workspace().join("tests/conformance/token-table");
    let alone = run_cli(&[
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--kit",
        kit.to_str().unwrap(),
    ]);
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stdout)
    );
    let under = run_cli(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        "strict",
        "--kit",
        kit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&under.stdout);
    assert!(!under.status.success(), "{stdout}");
    // "strict" maps s3cr3t to OTHER, which its accounts refuse.
    let failed = stdout
        .lines()
        .find(|line| line.starts_with("FAIL  token-known.json"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(failed.contains("OTHER"), "{failed}");
    assert!(
        String::from_utf8_lossy(&under.stderr).contains("settings.json is not used"),
        "{}",
        String::from_utf8_lossy(&under.stderr)
    );
}

#[test]
fn a_broken_config_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callout.toml");
    std::fs::write(&config, "[nats]\nservers = []\n[issuer]\nseed_file = \"x\"\n[policy]\nwasm = \"p.wasm\"\naccounts = [\"APP\"]\n").unwrap();
    let output = run_cli(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("[nats] servers is empty"));

    std::fs::write(&config, "[nats]\nservers = [\"nats://127.0.0.1:1\"]\n[issuer]\nseed_file = \"missing.seed\"\n[policy]\nwasm = \"p.wasm\"\naccounts = [\"APP\"]\n").unwrap();
    let output = run_cli(&["serve", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.seed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_policy_does_not_hold_up_other_clients() {
    // Four calls spin for their whole 1.5 s deadline on a 2-core machine; a
    // well-behaved client that starts after them is still answered first.
    let (server, callout) = hostile("timeout_ms = 1500");
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let url = server.url();
            tokio::spawn(async move {
                let _ = connect(
                    &url,
                    ConnectOptions::with_user_and_password("loop".into(), "x".into()),
                )
                .await;
                Instant::now()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    connect_as(&server, "ok")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    let ok_done = Instant::now();
    for spinner in spinners {
        let spinner_done = spinner.await.unwrap();
        assert!(
            ok_done < spinner_done,
            "the well-behaved client waited for the spinning policies"
        );
    }
    callout.wait_for_log("policy timed out after 1500 ms", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_runs_once_at_load_not_on_every_call() {
    // init spins far longer than the 50 ms call deadline: calls only succeed
    // because they start from the snapshot taken after init.
    let (server, callout) = stack(
        ServerXkey::None,
        3,
        &CalloutSpec::hostile("init_spin = 1_000_000_000", "timeout_ms = 50"),
    );
    for _ in 0..3 {
        connect_as(&server, "ok")
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_can_authenticate_to_nats_with_an_nkey() {
    let spec = CalloutSpec {
        nkey_auth: true,
        ..CalloutSpec::hostile("", "")
    };
    let (server, callout) = stack(ServerXkey::None, 3, &spec);
    connect_as(&server, "ok")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
}

/// `check` with settings as a JSON file and `serve` with the same settings as
/// a TOML table compile the policy once: the compiled cache is keyed on what
/// the settings mean, not on how they are spelled.
#[test]
fn check_and_serve_share_the_compiled_policy_for_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let settings = dir.path().join("settings.json");
    // Spaces, and keys in another order than serve's TOML → JSON gives them.
    std::fs::write(
        &settings,
        r#"{ "tokens" : { "s3cr3t" : { "subscribe" : ["_INBOX.>"], "account" : "APP" } } }"#,
    )
    .unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"connect_opts": {"auth_token": "s3cr3t"}}"#).unwrap();
    let policy = harness::policy_wasm("token-table");
    let checked = run_cli(&[
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let cache_line = format!("cache_dir = \"{}\"", cache.display());
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: "[policy.settings.tokens.s3cr3t]\naccount = \"APP\"\nsubscribe = [\"_INBOX.>\"]\n",
        accounts: &["APP"],
        ..CalloutSpec::hostile("", &cache_line)
    };
    let (_server, callout) = stack(ServerXkey::None, 2, &spec);
    callout.wait_for_log("policy loaded", Duration::from_secs(10));
    let log = callout.log();
    assert!(
        log.contains("from_cache=true"),
        "serve compiled again:\n{log}"
    );
}
