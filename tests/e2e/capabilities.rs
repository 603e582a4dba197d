//! Capabilities end to end: the `oidc` example against an identity provider
//! served by the test itself on loopback (discovery and JWKS, keys made
//! here, one rotation, one outage).

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
    async fn start(keys: Value) -> Arc<TestIssuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address: SocketAddr = listener.local_addr().expect("its address");
        let issuer = Arc::new(TestIssuer {
            url: format!("http://{address}/realms/nats"),
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
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let issuer = issuer.clone();
                        async move { Ok::<_, Infallible>(issuer.answer(&request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
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
    let spec = CalloutSpec {
        policy: "oidc",
        settings_toml: OIDC_RULES,
        accounts: &["APP", "OTHER"],
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
