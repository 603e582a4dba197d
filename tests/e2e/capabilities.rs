//! Capabilities end to end: the `oidc` example against an identity provider
//! served by the test itself on loopback (discovery and JWKS, keys made
//! here, one rotation, one outage; and over HTTPS under a private CA).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nats_callout::testing::tokens::{SigningKey, jwks, now_plus, unsigned};
use serde_json::{Value, json};

use super::harness::{CalloutSpec, ServerXkey, stack};
use super::operations::{scrape_until, sum};
use super::{connect, sorted, user_info};

/// An OIDC provider on loopback: its discovery document and key set, which
/// the test rotates, and an outage switch.
struct TestIssuer {
    url: String,
    keys: Mutex<Value>,
    down: AtomicBool,
    key_fetches: AtomicUsize,
    last_key_fetch: Mutex<Option<Instant>>,
}

impl TestIssuer {
    /// The provider over plain HTTP (allowed on loopback).
    async fn start(keys: Value) -> Arc<TestIssuer> {
        TestIssuer::serve(keys, None).await
    }

    /// The provider over HTTPS, with `tls`'s certificate.
    async fn start_tls(keys: Value, tls: tokio_rustls::TlsAcceptor) -> Arc<TestIssuer> {
        TestIssuer::serve(keys, Some(tls)).await
    }

    async fn serve(keys: Value, tls: Option<tokio_rustls::TlsAcceptor>) -> Arc<TestIssuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address: SocketAddr = listener.local_addr().expect("its address");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = Arc::new(TestIssuer {
            url: format!("{scheme}://{address}/realms/nats"),
            keys: Mutex::new(keys),
            down: AtomicBool::new(false),
            key_fetches: AtomicUsize::new(0),
            last_key_fetch: Mutex::new(None),
        });
        let serving = issuer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let issuer = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let issuer = issuer.clone();
                        async move { Ok::<_, Infallible>(issuer.answer(&request)) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        // A client that does not trust the certificate ends here.
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        });
        issuer
    }

    fn answer(&self, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: String| {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response
        };
        if self.down.load(Ordering::SeqCst) {
            return reply(StatusCode::SERVICE_UNAVAILABLE, "down".into());
        }
        match request.uri().path() {
            "/realms/nats/.well-known/openid-configuration" => reply(
                StatusCode::OK,
                json!({"issuer": self.url, "jwks_uri": format!("{}/certs", self.url)}).to_string(),
            ),
            "/realms/nats/certs" => {
                self.key_fetches.fetch_add(1, Ordering::SeqCst);
                *self.last_key_fetch.lock().unwrap() = Some(Instant::now());
                reply(StatusCode::OK, self.keys.lock().unwrap().to_string())
            }
            _ => reply(StatusCode::NOT_FOUND, String::new()),
        }
    }

    fn claims(&self, sub: &str, extra: Value) -> Value {
        let mut claims = json!({
            "iss": self.url, "aud": "nats", "sub": sub, "preferred_username": sub.to_uppercase(),
            "exp": now_plus(300), "iat": now_plus(0),
        });
        for (key, value) in extra.as_object().expect("an object") {
            claims[key] = value.clone();
        }
        claims
    }

    /// Waits until the host may fetch the keys again (5 s after the last
    /// fetch), so the next unknown `kid` refetches.
    async fn wait_until_refetch_allowed(&self) {
        let last = self
            .last_key_fetch
            .lock()
            .unwrap()
            .expect("keys were fetched");
        let allowed = last + Duration::from_millis(5_300);
        tokio::time::sleep_until(allowed.into()).await;
    }
}

const OIDC_RULES: &str = r#"
[[policy.settings.rules]]
claim = "groups"
value = "ops"
account = "OTHER"
publish = ["ops.>", "$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]

[[policy.settings.rules]]
account = "APP"
name = "{{preferred_username}}"
publish = ["user.{{sub}}.>", "$SYS.REQ.USER.INFO"]
subscribe = ["user.{{sub}}.>", "_INBOX.>"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_verified_against_the_issuers_keys_and_mapped_to_grants() {
    let (rs, es) = (SigningKey::rs256("rs-1"), SigningKey::es256("es-1"));
    let issuer = TestIssuer::start(jwks(&[&rs, &es])).await;
    let capability = format!(
        "timeout_ms = 2000\n\n[[policy.capabilities.oidc]]\nissuer = \"{}\"\naudiences = [\"nats\"]\n",
        issuer.url
    );
    let metrics_port = super::harness::free_port();
    let metrics_table = super::harness::metrics_table(metrics_port);
    let spec = CalloutSpec {
        policy: "oidc",
        settings_toml: OIDC_RULES,
        accounts: &["APP", "OTHER"],
        extra_toml: &metrics_table,
        ..CalloutSpec::hostile("", &capability)
    };
    let (server, callout) = stack(ServerXkey::None, 3, &spec);
    let with_token = |token: String| ConnectOptions::with_token(token);

    // A valid RS256 token: claims fill the subjects and the name; the
    // connection ends with the token.
    let alice_token = rs.sign(&issuer.claims("alice", json!({})));
    let alice = connect(&server.url(), with_token(alice_token.clone()))
        .await
        .expect("alice's token admits her");
    let info = user_info(&alice).await;
    assert_eq!(info["account"], "APP");
    assert_eq!(info["user"], "ALICE");
    assert_eq!(
        sorted(&info["permissions"]["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "user.alice.>"]
    );
    assert_eq!(
        sorted(&info["permissions"]["subscribe"]["allow"]),
        ["_INBOX.>", "user.alice.>"]
    );
    let expires = info["expires"].as_f64().unwrap_or(0.0);
    assert!((290e9..=300e9).contains(&expires), "expires = {expires}");

    // ES256, and a claim choosing another rule.
    let olga = connect(
        &server.url(),
        with_token(es.sign(&issuer.claims("olga", json!({"groups": ["dev", "ops"]})))),
    )
    .await
    .expect("olga's token admits her");
    assert_eq!(user_info(&olga).await["account"], "OTHER");

    // Every way a token can be wrong is denied, with its reason.
    let forger = SigningKey::rs256("rs-1");
    let refused = [
        (
            rs.sign(&issuer.claims("eve", json!({"exp": now_plus(-120)}))),
            "token refused: expired",
        ),
        (
            rs.sign(&issuer.claims("eve", json!({"aud": "web"}))),
            "token refused: wrong audience",
        ),
        (
            rs.sign(&issuer.claims("eve", json!({"iss": "http://127.0.0.1:1/other"}))),
            "token refused: unknown issuer",
        ),
        (
            forger.sign(&issuer.claims("eve", json!({}))),
            "token refused: bad signature",
        ),
        (
            unsigned(&issuer.claims("eve", json!({}))),
            "token refused: algorithm refused",
        ),
        (
            rs.sign(&issuer.claims("eve.>", json!({}))),
            "is not a single subject token",
        ),
    ];
    for (token, reason) in refused {
        let attempt = connect(&server.url(), with_token(token)).await;
        assert!(attempt.is_err(), "{reason}: admitted");
        callout.wait_for_log(reason, Duration::from_secs(5));
    }

    // A rotation: a token signed with a key published after the host
    // fetched the set is admitted once the host fetches it again.
    let rotated = SigningKey::es256("es-2");
    *issuer.keys.lock().unwrap() = jwks(&[&rs, &rotated]);
    issuer.wait_until_refetch_allowed().await;
    let fetches = issuer.key_fetches.load(Ordering::SeqCst);
    let carol = connect(
        &server.url(),
        with_token(rotated.sign(&issuer.claims("carol", json!({})))),
    )
    .await
    .expect("a token of the rotated key admits carol");
    assert_eq!(user_info(&carol).await["account"], "APP");
    assert_eq!(issuer.key_fetches.load(Ordering::SeqCst), fetches + 1);

    // A kid nobody published: refused, and within 5 s of the last fetch it
    // does not make the host fetch again (made-up kids cannot storm the
    // issuer).
    let stranger = SigningKey::rs256("nobody");
    for _ in 0..3 {
        let attempt = connect(
            &server.url(),
            with_token(stranger.sign(&issuer.claims("eve", json!({})))),
        )
        .await;
        assert!(attempt.is_err(), "an unknown kid admitted");
    }
    callout.wait_for_log("token refused: unknown key", Duration::from_secs(5));
    assert_eq!(issuer.key_fetches.load(Ordering::SeqCst), fetches + 1);

    // The issuer goes down: a fetch fails, and the keys held keep working.
    issuer.down.store(true, Ordering::SeqCst);
    issuer.wait_until_refetch_allowed().await;
    let attempt = connect(
        &server.url(),
        with_token(stranger.sign(&issuer.claims("eve", json!({})))),
    )
    .await;
    assert!(attempt.is_err());
    callout.wait_for_log(
        "cannot fetch the OIDC issuer's keys; keeping those held",
        Duration::from_secs(5),
    );
    // Fetches are counted by result: the first, the rotation's, the failed one.
    let fetches = |scrape: &prometheus_parse::Scrape, result: &str| {
        sum(
            scrape,
            "nats_callout_oidc_key_fetches_total",
            &[("issuer", &issuer.url), ("result", result)],
        )
    };
    let counted = scrape_until(metrics_port, |s| fetches(s, "failed") >= 1.0).await;
    assert_eq!(fetches(&counted, "ok"), 2.0);
    let dave = connect(
        &server.url(),
        with_token(rs.sign(&issuer.claims("dave", json!({})))),
    )
    .await
    .expect("cached keys admit dave while the issuer is down");
    assert_eq!(user_info(&dave).await["account"], "APP");

    // No token reaches the log.
    let log = callout.log();
    for part in alice_token.split('.').skip(1) {
        assert!(!log.contains(part), "a part of a token in the log");
    }
}

/// A TLS acceptor presenting the certificate and key at `cert` and `key`.
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_file(cert).expect("a PEM certificate")];
    let key = PrivateKeyDer::from_pem_file(key).expect("a PEM key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("a server certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An issuer served over HTTPS by a private CA: trusted through the
/// issuer's `ca_file`, and not without it (the system's roots do not know
/// the CA), where its tokens are refused as keys unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_issuer_is_trusted_through_its_ca_file_only() {
    let rs = SigningKey::rs256("rs-1");
    let pki = super::tenants::Pki::new();
    let (cert, key) = pki.issue("idp", &["127.0.0.1"], "Identity provider");
    let issuer = TestIssuer::start_tls(jwks(&[&rs]), tls_acceptor(&cert, &key)).await;
    assert!(issuer.url.starts_with("https://"));
    let capability = |ca_line: &str| {
        format!(
            "timeout_ms = 2000\n\n[[policy.capabilities.oidc]]\nissuer = \"{}\"\naudiences = [\"nats\"]\n{ca_line}\n",
            issuer.url
        )
    };
    let token = rs.sign(&issuer.claims("alice", json!({})));

    let trusted = capability(&format!("ca_file = \"{}\"", pki.ca().display()));
    let spec = CalloutSpec {
        policy: "oidc",
        settings_toml: OIDC_RULES,
        accounts: &["APP", "OTHER"],
        ..CalloutSpec::hostile("", &trusted)
    };
    let (server, callout) = stack(ServerXkey::None, 3, &spec);
    let alice = connect(&server.url(), ConnectOptions::with_token(token.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", callout.log()));
    assert_eq!(user_info(&alice).await["account"], "APP");
    assert_eq!(issuer.key_fetches.load(Ordering::SeqCst), 1);

    let untrusted = capability("");
    let spec = CalloutSpec {
        policy: "oidc",
        settings_toml: OIDC_RULES,
        accounts: &["APP", "OTHER"],
        ..CalloutSpec::hostile("", &untrusted)
    };
    let (server, callout) = stack(ServerXkey::None, 3, &spec);
    let refused = connect(&server.url(), ConnectOptions::with_token(token)).await;
    assert!(refused.is_err(), "admitted by an issuer it cannot trust");
    callout.wait_for_log(
        "token refused: issuer keys unavailable",
        Duration::from_secs(5),
    );
    callout.wait_for_log(
        "cannot fetch the OIDC issuer's keys",
        Duration::from_secs(5),
    );
    assert_eq!(
        issuer.key_fetches.load(Ordering::SeqCst),
        1,
        "no key set was served to the untrusting host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_importing_a_capability_it_was_not_granted_does_not_load() {
    let spec = CalloutSpec {
        policy: "oidc",
        settings_toml: OIDC_RULES,
        accounts: &["APP", "OTHER"],
        ..CalloutSpec::hostile("", "")
    };
    let keys = super::harness::Keys::new();
    let mut callout = super::harness::Callout::spawn("nats://127.0.0.1:1", &keys, &spec);
    assert_eq!(callout.wait_exit(Duration::from_secs(60)), Some(1));
    let log = callout.log();
    assert!(
        log.contains("imports the capability nats:callout/oidc, which its configuration does not grant: grant it with a [[policy.capabilities.oidc]] issuer"),
        "{log}"
    );
}

/// A password hash of `correct horse battery staple` made by argon2-cffi
/// (libargon2) at OWASP's floor (m=19456, t=2).
const ALICE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bLmcjXHO10ZkfYup/Ctb3w$ABN5U8dtkmbExkmxFbqLMUhgQQy0wxf+dcAc0A5mEEM";
const ALICE_PASSWORD: &str = "correct horse battery staple";

/// A nats-server with JetStream for the AUTH account (where the callout's
/// user records live), and an nkey user so it sends clients a nonce.
fn jetstream_server(
    keys: &super::harness::Keys,
    store: &std::path::Path,
) -> super::harness::NatsServer {
    super::harness::NatsServer::with_conf(&format!(
        r#"
server_name: test
jetstream {{ store_dir: "{store}" }}
accounts {{
  AUTH {{
    jetstream: enabled
    users: [ {{ user: auth, password: pwd }}, {{ nkey: {service} }} ]
  }}
  APP {{}}
  OTHER {{}}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: 3s
  auth_callout {{
    issuer: {issuer}
    account: AUTH
    auth_users: [ auth, {service} ]
  }}
}}
"#,
        store = store.display(),
        service = keys.service.public_key(),
        issuer = keys.issuer.public_key(),
    ))
}

/// Connects with `options`, retrying for up to `within` until the outcome
/// is `admitted` (a KV change reaches the host's mirror asynchronously);
/// returns how long it took.
async fn until_outcome(
    url: &str,
    options: impl Fn() -> ConnectOptions,
    admitted: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let outcome = connect(url, options()).await.is_ok();
        if outcome == admitted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {} after {within:?}",
            if outcome { "admitted" } else { "refused" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_user_records_admit_by_password_hash_and_nkey_and_follow_the_bucket() {
    let keys = super::harness::Keys::new();
    let store = tempfile::tempdir().expect("a JetStream store");
    let server = jetstream_server(&keys, store.path());
    let admin = connect(
        &server.url(),
        ConnectOptions::with_user_and_password("auth".into(), "pwd".into()),
    )
    .await
    .expect("the admin connects");
    let jetstream = async_nats::jetstream::new(admin);
    let bucket = |name: &str| async_nats::jetstream::kv::Config {
        bucket: name.into(),
        ..Default::default()
    };
    let users = jetstream
        .create_key_value(bucket("users"))
        .await
        .expect("bucket users");
    jetstream
        .create_key_value(bucket("secrets"))
        .await
        .expect("bucket secrets");
    let record = |account: &str, hash: Option<&str>| {
        let mut record = json!({
            "account": account,
            "publish": ["$SYS.REQ.USER.INFO"],
            "subscribe": ["_INBOX.>"],
        });
        if let Some(hash) = hash {
            record["password_hash"] = json!(hash);
        }
        bytes::Bytes::from(record.to_string())
    };
    users
        .put("alice", record("APP", Some(ALICE_HASH)))
        .await
        .expect("put alice");
    let device = nkeys::KeyPair::new_user();
    users
        .put(device.public_key(), record("OTHER", None))
        .await
        .expect("put the device");

    // The golden kit answers from its own capability data, while the
    // bucket's mirror is still loading.
    let golden = super::harness::workspace().join("tests/conformance/kv-users");
    let kv_policy_toml = format!(
        "timeout_ms = 2000\ngolden_kit = \"{}\"\n\n[policy.capabilities]\nnkey = true\n\n[policy.capabilities.password]\n\n[policy.capabilities.kv]\nbuckets = [\"users\"]\n",
        golden.display()
    );
    let metrics_port = super::harness::free_port();
    let metrics_table = super::harness::metrics_table(metrics_port);
    let spec = CalloutSpec {
        policy: "kv-users",
        settings_toml: "bucket = \"users\"",
        accounts: &["APP", "OTHER"],
        extra_toml: &metrics_table,
        ..CalloutSpec::hostile("", &kv_policy_toml)
    };
    let callout = super::harness::Callout::start(&server.url(), &keys, &spec);
    callout.wait_for_log("KV mirror is current", Duration::from_secs(10));
    let mirror_current = |scrape: &prometheus_parse::Scrape| {
        sum(
            scrape,
            "nats_callout_kv_mirror_current",
            &[("bucket", "users")],
        )
    };
    scrape_until(metrics_port, |s| mirror_current(s) == 1.0).await;
    let url = server.url();
    let password = |user: &str, password: &str| {
        let (user, password) = (user.to_string(), password.to_string());
        move || ConnectOptions::with_user_and_password(user.clone(), password.clone())
    };

    // A password checked against the record's argon2id hash.
    let alice = connect(&url, password("alice", ALICE_PASSWORD)())
        .await
        .expect("alice's password admits her");
    assert_eq!(user_info(&alice).await["account"], "APP");
    assert!(
        connect(&url, password("alice", "Tr0ub4dor&3")())
            .await
            .is_err()
    );
    callout.wait_for_log("user \\\"alice\\\": wrong password", Duration::from_secs(5));

    // An nkey client, whose signature of the server's nonce the host checks.
    let seed = device.seed().expect("a seed");
    let with_device = || ConnectOptions::with_nkey(seed.clone());
    let device_client = connect(&url, with_device())
        .await
        .expect("the device's nkey admits it");
    assert_eq!(user_info(&device_client).await["account"], "OTHER");
    // The same key with a forged signature, as nats-server passes it on.
    assert_forged_signature_is_refused(server.port, &device.public_key()).await;
    callout.wait_for_log("nkey refused: bad signature", Duration::from_secs(5));

    // An admin's put admits a new user within a second; a delete refuses it.
    assert!(
        connect(&url, password("bob", ALICE_PASSWORD)())
            .await
            .is_err()
    );
    users
        .put("bob", record("APP", Some(ALICE_HASH)))
        .await
        .expect("put bob");
    let admitted_after = until_outcome(
        &url,
        password("bob", ALICE_PASSWORD),
        true,
        Duration::from_secs(1),
    )
    .await;
    users.delete("bob").await.expect("delete bob");
    let refused_after = until_outcome(
        &url,
        password("bob", ALICE_PASSWORD),
        false,
        Duration::from_secs(1),
    )
    .await;
    eprintln!(
        "bob admitted {admitted_after:?} after the put, refused {refused_after:?} after the delete"
    );

    // A bucket the policy was not granted is refused, even though the
    // callout's user can read it.
    let config = callout.dir().join("callout.toml");
    let text = std::fs::read_to_string(&config).expect("callout.toml");
    // (Without the golden kit, whose cases read "users" and would refuse
    // this reload.)
    let golden_line = format!("golden_kit = \"{}\"\n", golden.display());
    let secrets = text
        .replace("\nbucket = \"users\"", "\nbucket = \"secrets\"")
        .replace(&golden_line, "");
    std::fs::write(&config, secrets).expect("rewrite");
    callout.hangup();
    callout.wait_for_log("reloaded: new requests", Duration::from_secs(30));
    assert!(
        connect(&url, password("alice", ALICE_PASSWORD)())
            .await
            .is_err()
    );
    callout.wait_for_log(
        "user records bucket \\\"secrets\\\" is not granted",
        Duration::from_secs(5),
    );
    std::fs::write(&config, text).expect("restore");
    callout.hangup();
    until_outcome(
        &url,
        password("alice", ALICE_PASSWORD),
        true,
        Duration::from_secs(30),
    )
    .await;

    // The bucket disappears: the host's copy is no longer current, and
    // every record-based client is refused with the reason.
    jetstream
        .delete_key_value("users")
        .await
        .expect("delete the bucket");
    until_outcome(
        &url,
        password("alice", ALICE_PASSWORD),
        false,
        Duration::from_secs(10),
    )
    .await;
    callout.wait_for_log("user records unavailable", Duration::from_secs(5));
    scrape_until(metrics_port, |s| mirror_current(s) == 0.0).await;
    assert!(
        !callout.log().contains(ALICE_PASSWORD),
        "a password in the log"
    );
}

/// Speaks the client protocol by hand: CONNECT with `key` and a signature
/// that is not its own; nats-server hands it to the callout, which must
/// refuse it.
async fn assert_forged_signature_is_refused(port: u16, key: &str) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = lines.next_line().await.expect("INFO").expect("a line");
    assert!(
        info.contains("\"nonce\""),
        "the server sends no nonce: {info}"
    );
    let forged =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 64]);
    let connect =
        json!({"verbose": false, "pedantic": false, "protocol": 1, "nkey": key, "sig": forged});
    write
        .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .expect("send CONNECT");
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("an answer")
        .expect("a line")
        .unwrap_or_default();
    assert!(answer.contains("Authorization Violation"), "{answer}");
}
