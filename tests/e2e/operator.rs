//! `[nats] creds_file`: the service logs in to NATS with a user JWT and its
//! seed, which only an operator-mode nats-server accepts. The test builds
//! one from scratch, signing every JWT with the host's own codec: an
//! operator, a system account SYS, and an auth account AUTH whose account
//! JWT turns the auth callout on for every client that connects without a
//! JWT of its own (`default_sentinel`; `docs/protocol.md` §3).
//!
//! The service signs user JWTs with the AUTH account key, which in operator
//! mode places the users into AUTH itself (§8.3).

use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use nats_callout::protocol::jwt::{Claims, encode};
use nkeys::{KeyPair, XKey};
use serde_json::{Value, json};

use super::{assert_authorization_violation, connect, user_info};
use crate::harness::{Callout, CalloutSpec, Keys, NatsServer};

/// A JWT for `sub` signed by `signer`, with `nats` typed as nats-io/jwt v2
/// writes it (`type`, `version: 2`).
fn jwt(sub: &KeyPair, kind: &str, mut nats: Value, signer: &KeyPair) -> String {
    nats["type"] = kind.into();
    nats["version"] = 2.into();
    let mut claims = Claims {
        aud: None,
        exp: None,
        jti: String::new(),
        iat: Some(unix_now()),
        iss: String::new(),
        name: None,
        nbf: None,
        sub: sub.public_key(),
        nats,
    };
    encode(&mut claims, signer).expect("the JWT is signed")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An account JWT signed by `operator`. Limits are written out as -1
/// (unlimited), as nats-io/jwt's `NewAccountClaims` does: an omitted limit
/// is 0, and an account with 0 connections admits nobody.
fn account_jwt(account: &KeyPair, mut nats: Value, operator: &KeyPair) -> String {
    nats["limits"] = json!({
        "subs": -1, "data": -1, "payload": -1,
        "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
    });
    jwt(account, "account", nats, operator)
}

/// A user JWT of `account`; without `nats` permissions it may do anything.
/// Its limits are -1 for the same reason as an account's.
fn user_jwt(user: &KeyPair, mut nats: Value, account: &KeyPair) -> String {
    nats["subs"] = (-1).into();
    nats["data"] = (-1).into();
    nats["payload"] = (-1).into();
    jwt(user, "user", nats, account)
}

/// An operator-mode nats-server whose account AUTH hands clients to the
/// callout, except `service`, which logs in with its own creds.
struct OperatorMode {
    server: NatsServer,
    auth: KeyPair,
}

impl OperatorMode {
    fn start(service: &KeyPair) -> OperatorMode {
        let operator = KeyPair::new_operator();
        let sys = KeyPair::new_account();
        let auth = KeyPair::new_account();
        let operator_jwt = jwt(
            &operator,
            "operator",
            json!({ "system_account": sys.public_key() }),
            &operator,
        );
        let sys_jwt = account_jwt(&sys, json!({}), &operator);
        // nats-io/jwt `ExternalAuthorization`.
        let auth_jwt = account_jwt(
            &auth,
            json!({ "authorization": {
                "auth_users": [service.public_key()],
                "allowed_accounts": [auth.public_key()],
            }}),
            &operator,
        );
        // Clients without a JWT become this bearer user of AUTH, allowed
        // nothing: the server sends them to the callout.
        let sentinel = user_jwt(
            &KeyPair::new_user(),
            json!({ "bearer_token": true, "pub": { "deny": [">"] }, "sub": { "deny": [">"] } }),
            &auth,
        );
        let server = NatsServer::with_conf(&format!(
            r#"
server_name: operator
operator: "{operator_jwt}"
system_account: {sys}
resolver: MEMORY
resolver_preload: {{
  {sys}: "{sys_jwt}"
  {auth_key}: "{auth_jwt}"
}}
default_sentinel: "{sentinel}"
"#,
            sys = sys.public_key(),
            auth_key = auth.public_key(),
        ));
        OperatorMode { server, auth }
    }

    /// The callout's keys: it signs with the AUTH account key and logs in
    /// with `creds_jwt` and `creds_key`'s seed.
    fn keys(&self, creds_jwt: String, creds_key: KeyPair) -> Keys {
        let seed = self.auth.seed().expect("seed");
        Keys {
            issuer: KeyPair::from_seed(&seed).expect("the AUTH seed"),
            xkey: XKey::new(),
            service: creds_key,
            service_jwt: Some(creds_jwt),
        }
    }
}

/// The hostile test policy, placing users into AUTH.
fn spec() -> CalloutSpec<'static> {
    CalloutSpec {
        accounts: &["AUTH"],
        ..CalloutSpec::hostile("account = \"AUTH\"", "")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_logs_in_with_a_creds_file_in_operator_mode() {
    let service = KeyPair::new_user();
    let nats = OperatorMode::start(&service);
    let creds = user_jwt(&service, json!({}), &nats.auth);
    // Waits for "serving auth callout requests": logged in and subscribed.
    let callout = Callout::start(&nats.server.url(), &nats.keys(creds, service), &spec());

    let ok = connect(
        &nats.server.url(),
        ConnectOptions::with_user_and_password("ok".into(), "x".into()),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "ok is not admitted: {e}\n{}\n{}",
            callout.log(),
            nats.server.log()
        )
    });
    assert_eq!(user_info(&ok).await["account"], nats.auth.public_key());
    callout.wait_for_log(
        "user=\"ok\" decision=\"allow\" account=\"AUTH\"",
        Duration::from_secs(5),
    );

    assert_authorization_violation(
        connect(
            &nats.server.url(),
            ConnectOptions::with_user_and_password("deny".into(), "x".into()),
        )
        .await,
    );
    callout.wait_for_log("user=\"deny\" decision=\"deny\"", Duration::from_secs(5));
    nats.server.wait_for_log(
        "callout service returned an error: policy denied: wrong credentials",
        Duration::from_secs(5),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_creds_keep_the_service_retrying_and_say_why() {
    let service = KeyPair::new_user();
    let nats = OperatorMode::start(&service);
    let stranger = KeyPair::new_account();
    // nats-server gives every client the same "authorization violation"; its
    // own log says more (at info level) only for the unknown account.
    let cases = [
        (
            "a JWT of an account the server does not know",
            user_jwt(&service, json!({}), &stranger),
            KeyPair::from_seed(&service.seed().unwrap()).unwrap(),
            "Account fetch failed: account missing",
        ),
        (
            "a seed that is not the JWT's user",
            user_jwt(&service, json!({}), &nats.auth),
            KeyPair::new_user(),
            "authentication error",
        ),
    ];
    for (what, creds, key, server_says) in cases {
        let server_log_before = nats.server.log().len();
        let callout = Callout::spawn(&nats.server.url(), &nats.keys(creds, key), &spec());
        // retry_on_initial_connect: the service neither exits nor serves; it
        // retries (backing off to every 4 s) and logs each refusal.
        let needle = "NATS event event=client error: nats: authorization violation";
        let deadline = Instant::now() + Duration::from_secs(60);
        while callout.log().matches(needle).count() < 2 {
            assert!(
                Instant::now() < deadline,
                "{what}: no two {needle:?} lines:\n{}",
                callout.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = callout.log();
        assert!(
            !log.contains("serving auth callout requests"),
            "{what}: serving with refused creds:\n{log}"
        );
        // The server logged each refusal before sending it.
        let server_log = nats.server.log();
        assert!(
            server_log[server_log_before..].contains(server_says),
            "{what}: the server log has no {server_says:?}:\n{server_log}"
        );
    }
}
