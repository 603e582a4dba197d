//! Operations: `/metrics` read by a Prometheus text parser and checked
//! against the clients the test ran, `/healthz` and `/readyz` (which flips
//! while nats-server is down), the NATS services API (`$SRV`), and reloads
//! that swap a good policy in and leave everything as it was on a bad one.

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::harness::{CalloutSpec, ServerXkey, free_port, metrics_table, policy_wasm, stack};
use super::{TOKEN_TABLE_SETTINGS, assert_authorization_violation, connect};

/// An HTTP GET on loopback: the status code and the body.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the metrics listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, body.to_string())
}

/// `/metrics`, parsed as Prometheus parses it.
pub(super) async fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|line| Ok(line.to_string())))
        .expect("/metrics parses as Prometheus text")
}

/// The sum of the samples of `name` whose labels include all of `labels`.
pub(super) fn sum(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map_or(0.0, |bucket| bucket.count)
            }
            _ => 0.0,
        })
        .sum()
}

async fn wait_until_ready(port: u16, ready: bool, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = http_get(port, "/readyz").await;
        if (status == 200) == ready {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not become {ready} within {timeout:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_the_services_api_count_what_clients_saw() {
    let port = free_port();
    let metrics_table = metrics_table(port);
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        extra_toml: &metrics_table,
        ..CalloutSpec::hostile("", "")
    };
    let (mut server, callout) = stack(ServerXkey::None, 2, &spec);
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    wait_until_ready(port, true, Duration::from_secs(10)).await;

    for _ in 0..3 {
        connect(&server.url(), ConnectOptions::with_token("s3cr3t".into()))
            .await
            .expect("the token is admitted");
    }
    for _ in 0..2 {
        assert_authorization_violation(
            connect(&server.url(), ConnectOptions::with_token("guess".into())).await,
        );
    }

    let scrape = scrape(port).await;
    let decisions = "nats_callout_decisions_total";
    assert_eq!(sum(&scrape, decisions, &[("decision", "allow")]), 3.0);
    assert_eq!(
        sum(
            &scrape,
            decisions,
            &[("decision", "deny"), ("reason_class", "policy")]
        ),
        2.0
    );
    assert_eq!(sum(&scrape, decisions, &[("tenant", "default")]), 5.0);
    assert_eq!(
        sum(&scrape, "nats_callout_request_duration_microseconds", &[]),
        5.0,
        "one latency observation per decision"
    );
    assert_eq!(
        sum(
            &scrape,
            "nats_callout_phase_duration_microseconds",
            &[("phase", "policy")]
        ),
        5.0
    );
    assert_eq!(
        sum(&scrape, "nats_callout_dropped_requests_total", &[]),
        0.0
    );
    assert_eq!(sum(&scrape, "nats_callout_policy_failures_total", &[]), 0.0);
    let sha256 = format!(
        "{:x}",
        Sha256::digest(std::fs::read(policy_wasm("token-table")).expect("the policy"))
    );
    assert_eq!(
        sum(
            &scrape,
            "nats_callout_policy_info",
            &[("tenant", "default"), ("sha256", &sha256)]
        ),
        1.0,
        "the loaded policy's SHA-256 is an info metric"
    );
    assert_eq!(sum(&scrape, "nats_callout_nats_connected", &[]), 1.0);
    assert_eq!(
        sum(&scrape, "nats_callout_instances_started_total", &[]),
        5.0,
        "a fresh instance per call"
    );

    // The NATS services API, asked as `nats micro` asks it, from the auth
    // account (where the service's connection lives).
    let admin = connect(
        &server.url(),
        ConnectOptions::with_user_and_password("auth".into(), "pwd".into()),
    )
    .await
    .expect("the auth user connects");
    let ask = |subject: &'static str| {
        let admin = admin.clone();
        async move {
            let reply = admin
                .request(subject, "".into())
                .await
                .unwrap_or_else(|e| panic!("{subject} answers: {e}"));
            serde_json::from_slice::<Value>(&reply.payload).expect("JSON")
        }
    };
    let ping = ask("$SRV.PING.nats-callout").await;
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    assert_eq!(ping["name"], "nats-callout");
    let info = ask("$SRV.INFO.nats-callout").await;
    assert_eq!(info["endpoints"][0]["name"], "authorize");
    assert_eq!(info["endpoints"][0]["subject"], "$SYS.REQ.USER.AUTH");
    assert_eq!(info["endpoints"][0]["queue_group"], "nats-callout");
    let stats = ask("$SRV.STATS.nats-callout").await;
    let endpoint = &stats["endpoints"][0];
    assert_eq!(endpoint["num_requests"], 5, "{stats}");
    assert_eq!(endpoint["data"]["allowed"], 3, "{stats}");
    assert_eq!(endpoint["data"]["denied"], 2, "{stats}");
    drop(admin);

    // Not ready while nats-server is down; ready again once it is back.
    server.stop();
    let why = wait_until_ready(port, false, Duration::from_secs(10)).await;
    assert!(why.contains("not connected to NATS"), "{why}");
    assert_eq!(http_get(port, "/healthz").await.0, 200, "alive all along");
    server.restart();
    wait_until_ready(port, true, Duration::from_secs(20)).await;
    let scrape = scrape_until(port, |s| {
        sum(
            s,
            "nats_callout_nats_events_total",
            &[("event", "connected")],
        ) >= 2.0
    })
    .await;
    assert!(
        sum(
            &scrape,
            "nats_callout_nats_events_total",
            &[("event", "disconnected")]
        ) >= 1.0
    );
    drop(callout);
}

/// Scrapes until `done` holds (a metric updated by a background event).
pub(super) async fn scrape_until(
    port: u16,
    done: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = scrape(port).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never showed it: {:?}",
            scrape.samples
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A golden kit with one case: the token `token` is admitted into APP.
fn write_golden_kit(dir: &Path, token: &str) {
    let cases = dir.join("golden/cases");
    std::fs::create_dir_all(&cases).expect("kit folder");
    let case = serde_json::json!({
        "description": format!("{token} is admitted into APP"),
        "request": {
            "server_id": {"name": "golden", "host": "0.0.0.0", "id": "NGOLDEN", "version": "2.11.4"},
            "user_nkey": "UGOLDENUSER",
            "client_info": {"host": "192.0.2.10", "id": 7, "kind": "Client", "type": "nats"},
            "connect_opts": {"protocol": 1, "lang": "go", "version": "1.41.0", "auth_token": token},
            "type": "authorization_request",
            "version": 2
        },
        "expect": {"decision": "allow", "account": "APP"}
    });
    std::fs::write(cases.join("token.json"), case.to_string()).expect("write the case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_a_good_policy_in_and_a_bad_one_changes_nothing() {
    let port = free_port();
    let metrics_table = metrics_table(port);
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        extra_policy_toml: "golden_kit = \"golden\"",
        extra_toml: &metrics_table,
        ..CalloutSpec::hostile("", "")
    };
    // The kit must exist before the service starts: it runs at start too.
    let keys = super::harness::Keys::new();
    let server = super::harness::NatsServer::start(&super::harness::ServerSpec {
        issuer_public: keys.issuer.public_key(),
        service_nkey: keys.service.public_key(),
        xkey_public: None,
        auth_timeout_secs: 2,
    });
    let callout = super::harness::Callout::spawn_prepared(&server.url(), &keys, &spec, |dir| {
        write_golden_kit(dir, "s3cr3t")
    });
    callout.wait_for_log("serving auth callout requests", Duration::from_secs(60));
    let config_path = callout.dir().join("callout.toml");
    let original = std::fs::read_to_string(&config_path).expect("the configuration");
    let admitted = |token: &'static str| {
        let url = server.url();
        async move { connect(&url, ConnectOptions::with_token(token.into())).await }
    };
    admitted("s3cr3t")
        .await
        .expect("admitted before any reload");
    assert_authorization_violation(admitted("n3w").await);

    // 1. New settings that fail the golden kit: s3cr3t would be lost.
    let failing = original.replace(
        "[policy.settings.tokens.s3cr3t]",
        "[policy.settings.tokens.n3w]",
    );
    std::fs::write(&config_path, &failing).expect("rewrite");
    callout.hangup();
    callout.wait_for_log("reload failed", Duration::from_secs(30));
    let log = callout.log();
    assert!(
        log.contains("golden kit") && log.contains("token.json"),
        "the failure names the failing case:\n{log}"
    );
    admitted("s3cr3t")
        .await
        .expect("the old policy keeps serving");
    assert_authorization_violation(admitted("n3w").await);

    // 2. Both tokens, picked up by the file watch (no signal): applied.
    let both = original.replace(
        "[policy.settings.tokens.s3cr3t]",
        "[policy.settings.tokens.n3w]\naccount = \"APP\"\n\n[policy.settings.tokens.s3cr3t]",
    );
    std::fs::write(&config_path, &both).expect("rewrite");
    callout.wait_for_log("reloaded: new requests", Duration::from_secs(30));
    admitted("n3w").await.expect("the new settings serve");
    admitted("s3cr3t")
        .await
        .expect("and keep what the kit requires");

    // 3. A file that is not a component, 4. a policy that traps in its
    // init, 5. a broken configuration: each fails, nothing changes.
    std::fs::write(callout.dir().join("junk.wasm"), b"not a component").expect("junk");
    let not_a_component = both.replace(
        &format!("wasm = \"{}\"", policy_wasm("token-table").display()),
        "wasm = \"junk.wasm\"",
    );
    let hostile = both
        .replace(
            &format!("wasm = \"{}\"", policy_wasm("token-table").display()),
            &format!("wasm = \"{}\"", policy_wasm("hostile-policy").display()),
        )
        .replace("[policy.settings]", "[policy.settings]\ninit_panic = true");
    for (broken, why) in [
        (not_a_component, "junk.wasm"),
        (hostile, "failed in init"),
        ("[nats\nservers = ".to_string(), "callout.toml"),
    ] {
        let failures = callout.log().matches("reload failed").count();
        std::fs::write(&config_path, &broken).expect("rewrite");
        callout.hangup();
        let deadline = Instant::now() + Duration::from_secs(60);
        while callout.log().matches("reload failed").count() == failures {
            assert!(
                Instant::now() < deadline,
                "no failed reload:\n{}",
                callout.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = callout
            .log()
            .lines()
            .rfind(|line| line.contains("reload failed"))
            .unwrap_or_default()
            .to_string();
        assert!(line.contains(why), "the failure names {why}: {line}");
        admitted("n3w")
            .await
            .expect("the last good policy keeps serving");
    }

    let scrape = scrape(port).await;
    assert_eq!(
        sum(
            &scrape,
            "nats_callout_reloads_total",
            &[("result", "applied")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &scrape,
            "nats_callout_reloads_total",
            &[("result", "failed")]
        ),
        4.0
    );
    assert_eq!(
        sum(&scrape, "nats_callout_last_reload_successful", &[]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_fails_its_golden_kit_does_not_start() {
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        extra_policy_toml: "golden_kit = \"golden\"",
        ..CalloutSpec::hostile("", "")
    };
    let keys = super::harness::Keys::new();
    let mut callout =
        super::harness::Callout::spawn_prepared("nats://127.0.0.1:1", &keys, &spec, |dir| {
            write_golden_kit(dir, "unknown-token")
        });
    assert_eq!(callout.wait_exit(Duration::from_secs(60)), Some(1));
    let log = callout.log();
    assert!(
        log.contains("golden kit")
            && log.contains("1 of 1 cases failed")
            && log.contains("token.json"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_policy_is_compared_and_the_audit_carries_no_secret() {
    let port = free_port();
    // The candidate (the hostile test policy) admits every client into
    // OTHER with full permissions: it disagrees with token-table on each
    // client below, each time in another way.
    let extra = format!(
        r#"
[policy.shadow]
wasm = "{shadow}"
settings = {{ account = "OTHER" }}

[policy.audit]
subject = "callout.audit"
file = "audit.jsonl"

[metrics]
listen = "127.0.0.1:{port}"
"#,
        shadow = policy_wasm("hostile-policy").display()
    );
    let spec = CalloutSpec {
        policy: "token-table",
        settings_toml: TOKEN_TABLE_SETTINGS,
        accounts: &["APP", "OTHER"],
        extra_toml: &extra,
        ..CalloutSpec::hostile("", "")
    };
    let (server, callout) = stack(ServerXkey::None, 2, &spec);
    callout.wait_for_log("shadow policy loaded", Duration::from_secs(5));
    let auditor = connect(
        &server.url(),
        ConnectOptions::with_user_and_password("auth".into(), "pwd".into()),
    )
    .await
    .expect("the auth user connects");
    let mut events = auditor.subscribe("callout.audit").await.expect("subscribe");
    auditor.flush().await.expect("flush");

    // Clients see the enforcing policy's decisions only.
    let client = connect(&server.url(), ConnectOptions::with_token("s3cr3t".into()))
        .await
        .expect("the token is admitted");
    super::assert_token_grant(&super::user_info(&client).await);
    assert_authorization_violation(
        connect(&server.url(), ConnectOptions::with_token("guess".into())).await,
    );
    super::assert_alice_is_admitted(&server).await;

    let scrape = scrape_until(port, |s| {
        sum(s, "nats_callout_shadow_comparisons_total", &[]) >= 3.0
    })
    .await;
    for differs_in in ["decision", "account", "grant"] {
        assert_eq!(
            sum(
                &scrape,
                "nats_callout_shadow_comparisons_total",
                &[("tenant", "default"), ("result", differs_in)]
            ),
            1.0,
            "one disagreement in {differs_in}"
        );
    }
    // The counter moves before the line is logged: wait for the lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    while callout.log().matches("shadow policy disagrees").count() < 3 {
        assert!(Instant::now() < deadline, "{}", callout.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = callout.log();
    assert_eq!(log.matches("shadow policy disagrees").count(), 3, "{log}");
    assert!(
        log.contains(r#"differs_in="account" enforcing="allow APP" shadow="allow OTHER""#),
        "{log}"
    );

    let sha256 = format!(
        "{:x}",
        Sha256::digest(std::fs::read(policy_wasm("token-table")).expect("the policy"))
    );
    let mut received = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(
            Duration::from_secs(5),
            futures::StreamExt::next(&mut events),
        )
        .await
        .expect("an audit event within 5 s")
        .expect("the subscription is open");
        received.push(String::from_utf8(event.payload.to_vec()).expect("UTF-8"));
    }
    let parsed: Vec<Value> = received
        .iter()
        .map(|event| serde_json::from_str(event).expect("an event is JSON"))
        .collect();
    let decisions: Vec<&str> = parsed
        .iter()
        .map(|e| e["decision"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(decisions, ["allow", "deny", "allow"], "{received:?}");
    assert_eq!(parsed[0]["account"], "APP");
    assert_eq!(parsed[1]["reason_class"], "policy");
    assert_eq!(parsed[2]["user"], "alice");
    for event in &parsed {
        assert_eq!(event["tenant"], "default");
        assert_eq!(event["policy_sha256"], sha256.as_str());
        assert!(event["client_id"].as_u64().is_some(), "{event}");
        assert!(event["latency_micros"].as_u64().is_some(), "{event}");
        assert!(
            event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
    }
    // The file gets the same events (flushed once the queue is empty).
    let file = callout.dir().join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    let written = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(written.lines().count(), 3, "{written}");
    for secret in ["s3cr3t", "guess", "wonderland"] {
        assert!(!written.contains(secret), "{secret} in the audit file");
        assert!(
            received.iter().all(|e| !e.contains(secret)),
            "{secret} in an event"
        );
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

/// `[[tenant]]` tables for `hostile` (users `…@acme`, into APP) and, with
/// `globex`, token-table (tokens `globex_…`, into OTHER).
fn tenant_tables(acme: bool, globex: bool) -> String {
    let mut tables = String::new();
    if acme {
        tables += &format!(
            "[[tenant]]\nname = \"acme\"\nroute = {{ user_suffix = \"@acme\" }}\n[tenant.policy]\nwasm = \"{}\"\naccounts = [\"APP\"]\n[tenant.policy.settings]\naccount = \"APP\"\n\n",
            policy_wasm("hostile-policy").display()
        );
    }
    if globex {
        tables += &format!(
            "[[tenant]]\nname = \"globex\"\nroute = {{ token_prefix = \"globex_\" }}\n[tenant.policy]\nwasm = \"{}\"\naccounts = [\"OTHER\"]\n[tenant.policy.settings.tokens.globex_1]\naccount = \"OTHER\"\npublish = [\"$SYS.REQ.USER.INFO\"]\nsubscribe = [\"_INBOX.>\"]\n\n",
            policy_wasm("token-table").display()
        );
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_added_and_removed_and_keys_read_again_without_a_restart() {
    let tables = tenant_tables(true, false);
    let spec = CalloutSpec {
        tenants_toml: Some(&tables),
        ..CalloutSpec::hostile("", "")
    };
    let (server, callout) = stack(ServerXkey::None, 2, &spec);
    let config_path = callout.dir().join("callout.toml");
    let original = std::fs::read_to_string(&config_path).expect("the configuration");
    let url = server.url();
    let globex = || connect(&url, ConnectOptions::with_token("globex_1".into()));
    super::connect_as(&server, "alice@acme")
        .await
        .expect("acme is served");
    assert_authorization_violation(globex().await);

    let callout = &callout;
    let reloads = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while callout.log().matches("reloaded: new requests").count() < n {
            assert!(Instant::now() < deadline, "no reload:\n{}", callout.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A tenant added.
    let both = original.replace(&tables, &tenant_tables(true, true));
    std::fs::write(&config_path, &both).expect("rewrite");
    callout.hangup();
    reloads(1).await;
    let client = globex().await.expect("the new tenant is served");
    assert_eq!(super::user_info(&client).await["account"], "OTHER");
    super::connect_as(&server, "alice@acme")
        .await
        .expect("and acme still is");

    // A tenant removed: its clients are taken by no route.
    let only_globex = original.replace(&tables, &tenant_tables(false, true));
    std::fs::write(&config_path, &only_globex).expect("rewrite");
    callout.hangup();
    reloads(2).await;
    assert_authorization_violation(super::connect_as(&server, "alice@acme").await);
    server.wait_for_log(
        "no tenant's route takes this request",
        Duration::from_secs(5),
    );
    globex().await.expect("globex is still served");

    // Keys are read again at each reload: without its seed, the reload
    // fails and names the file; the keys in use keep signing.
    let seed = callout.dir().join("issuer.seed");
    std::fs::rename(&seed, callout.dir().join("issuer.seed.away")).expect("move the seed");
    callout.hangup();
    callout.wait_for_log("reload failed", Duration::from_secs(30));
    let line = callout
        .log()
        .lines()
        .rfind(|line| line.contains("reload failed"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("issuer.seed"), "{line}");
    globex().await.expect("the running keys keep signing");
}
