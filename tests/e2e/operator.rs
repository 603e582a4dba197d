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
use crate::harness::{self, Callout, CalloutSpec, Keys, NatsServer};

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

/// An operator-mode nats-server (memory resolver) trusting `operator`, with
/// a system account of its own, the account JWTs `accounts` (public key,
/// JWT) preloaded, and `sentinel` for clients that present no JWT.
fn operator_server(
    name: &str,
    operator: &KeyPair,
    accounts: Vec<(String, String)>,
    sentinel: &str,
) -> NatsServer {
    let sys = KeyPair::new_account();
    let operator_jwt = jwt(
        operator,
        "operator",
        json!({ "system_account": sys.public_key() }),
        operator,
    );
    let preload = accounts
        .into_iter()
        .chain([(sys.public_key(), account_jwt(&sys, json!({}), operator))])
        .map(|(key, jwt)| format!("  {key}: \"{jwt}\"\n"))
        .collect::<String>();
    NatsServer::with_conf(&format!(
        r#"
server_name: {name}
operator: "{operator_jwt}"
system_account: {sys}
resolver: MEMORY
resolver_preload: {{
{preload}}}
default_sentinel: "{sentinel}"
"#,
        sys = sys.public_key(),
    ))
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
        let auth = KeyPair::new_account();
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
        let server = operator_server(
            "operator",
            &operator,
            vec![(auth.public_key(), auth_jwt)],
            &sentinel,
        );
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

/// The accounts of a real operator-mode deployment: AUTH (the auth account,
/// with a signing key the service signs responses with), APP (users signed
/// by its signing key), IDENT (by its identity key), SCOPED (by a scoped
/// signing key whose template decides the permissions), and OTHER, which
/// AUTH's `allowed_accounts` leaves out.
struct Deployment {
    server: NatsServer,
    auth: KeyPair,
    auth_signing: KeyPair,
    app: KeyPair,
    app_signing: KeyPair,
    ident: KeyPair,
    scoped: KeyPair,
    scoped_signing: KeyPair,
    other: KeyPair,
}

/// What the scoped signing key's template lets its users do.
const SCOPE_PUBLISH: &str = "scoped.>";

impl Deployment {
    fn start(service: &KeyPair) -> Deployment {
        let operator = KeyPair::new_operator();
        let [
            auth,
            auth_signing,
            app,
            app_signing,
            ident,
            scoped,
            scoped_signing,
            other,
        ] = std::array::from_fn(|_| KeyPair::new_account());
        let accounts = [
            (
                &auth,
                json!({
                    "signing_keys": [auth_signing.public_key()],
                    "authorization": {
                        "auth_users": [service.public_key()],
                        "allowed_accounts": [app.public_key(), ident.public_key(), scoped.public_key()],
                    },
                }),
            ),
            (&app, json!({ "signing_keys": [app_signing.public_key()] })),
            (&ident, json!({})),
            (
                &scoped,
                // nats-io/jwt `UserScope`.
                json!({ "signing_keys": [{
                    "kind": "user_scope",
                    "key": scoped_signing.public_key(),
                    "role": "limited",
                    "template": {
                        "pub": { "allow": [SCOPE_PUBLISH, "$SYS.REQ.USER.INFO"] },
                        "sub": { "allow": ["_INBOX.>"] },
                        "subs": -1, "data": -1, "payload": -1,
                    },
                }]}),
            ),
            (&other, json!({})),
        ];
        let accounts = accounts
            .into_iter()
            .map(|(account, nats)| (account.public_key(), account_jwt(account, nats, &operator)))
            .collect();
        let sentinel = user_jwt(
            &KeyPair::new_user(),
            json!({ "bearer_token": true, "pub": { "deny": [">"] }, "sub": { "deny": [">"] } }),
            &auth,
        );
        let server = operator_server("deployment", &operator, accounts, &sentinel);
        Deployment {
            server,
            auth,
            auth_signing,
            app,
            app_signing,
            ident,
            scoped,
            scoped_signing,
            other,
        }
    }

    /// The callout's keys: it signs responses with AUTH's signing key and
    /// logs in as `service`, a user of AUTH.
    fn keys(&self, service: &KeyPair) -> Keys {
        Keys {
            issuer: KeyPair::from_seed(&self.auth_signing.seed().unwrap()).unwrap(),
            xkey: XKey::new(),
            service: KeyPair::from_seed(&service.seed().unwrap()).unwrap(),
            service_jwt: Some(user_jwt(service, json!({}), &self.auth)),
        }
    }
}

/// Operator mode end to end: the service signs responses with AUTH's signing
/// key (`issuer_account` = AUTH) and each user JWT with its target account's
/// key, and nats-server places the users accordingly; a scoped key's
/// template, not the policy's grant, decides its users' permissions; an
/// account outside the policy's accounts is denied by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_placed_and_signed_by_their_target_accounts_in_operator_mode() {
    let service = KeyPair::new_user();
    let nats = Deployment::start(&service);
    let keys_dir = tempfile::tempdir().unwrap();
    let seed_file = |name: &str, key: &KeyPair| {
        let path = keys_dir.path().join(name);
        std::fs::write(&path, key.seed().unwrap()).unwrap();
        path.display().to_string()
    };
    let extra_issuer = format!(
        "account = \"{}\"\nallowed_accounts = [\"{}\", \"{}\", \"{}\"]",
        nats.auth.public_key(),
        nats.app.public_key(),
        nats.ident.public_key(),
        nats.scoped.public_key(),
    );
    let extra = format!(
        r#"
[accounts.APP]
public_key = "{app}"
signing_key_file = "{app_key}"

[accounts.IDENT]
public_key = "{ident}"
signing_key_file = "{ident_key}"

[accounts.SCOPED]
public_key = "{scoped}"
signing_key_file = "{scoped_key}"
scoped = true
"#,
        app = nats.app.public_key(),
        app_key = seed_file("app.nk", &nats.app_signing),
        ident = nats.ident.public_key(),
        ident_key = seed_file("ident.nk", &nats.ident),
        scoped = nats.scoped.public_key(),
        scoped_key = seed_file("scoped.nk", &nats.scoped_signing),
    );
    let spec = CalloutSpec {
        accounts: &["APP", "IDENT", "SCOPED"],
        extra_issuer_toml: &extra_issuer,
        extra_toml: &extra,
        ..CalloutSpec::hostile("account = \"APP\"", "")
    };
    let callout = Callout::start(&nats.server.url(), &nats.keys(&service), &spec);
    let logs = || format!("{}\n{}", callout.log(), nats.server.log());
    let connect_granted = |grant: Value| {
        let url = nats.server.url();
        async move {
            connect(
                &url,
                ConnectOptions::with_user_and_password("grant".into(), grant.to_string()),
            )
            .await
        }
    };

    // APP: a user JWT signed by APP's signing key, in a response signed by
    // AUTH's signing key.
    let app = connect(
        &nats.server.url(),
        ConnectOptions::with_user_and_password("ok".into(), "x".into()),
    )
    .await
    .unwrap_or_else(|e| panic!("ok is not admitted: {e}\n{}", logs()));
    assert_eq!(user_info(&app).await["account"], nats.app.public_key());

    // IDENT: signed by the account's identity key.
    let ident = connect_granted(json!({
        "account": "IDENT",
        "publish": ["ident.>", "$SYS.REQ.USER.INFO"],
        "subscribe": ["_INBOX.>"],
    }))
    .await
    .unwrap_or_else(|e| panic!("IDENT is not admitted: {e}\n{}", logs()));
    let info = user_info(&ident).await;
    assert_eq!(info["account"], nats.ident.public_key());
    assert!(
        info["permissions"]["publish"]["allow"]
            .as_array()
            .is_some_and(|allow| allow.contains(&json!("ident.>"))),
        "{info}"
    );

    // SCOPED: the template's permissions, whatever the policy granted.
    let scoped = connect_granted(json!({
        "account": "SCOPED",
        "publish": ["secret.>"],
        "subscribe": ["secret.>"],
    }))
    .await
    .unwrap_or_else(|e| panic!("SCOPED is not admitted: {e}\n{}", logs()));
    let info = user_info(&scoped).await;
    assert_eq!(info["account"], nats.scoped.public_key());
    let allowed = info["permissions"]["publish"]["allow"].to_string();
    assert!(
        allowed.contains(SCOPE_PUBLISH) && !allowed.contains("secret"),
        "{info}"
    );
    callout.wait_for_log(
        "signed with a scoped signing key: permissions and limits come from its template",
        Duration::from_secs(5),
    );

    // An account the policy may not use is the host's deny.
    assert_authorization_violation(connect_granted(json!({ "account": "OTHER" })).await);
    nats.server.wait_for_log(
        "callout service returned an error: policy granted account \"OTHER\", which is not in [policy] accounts",
        Duration::from_secs(5),
    );
}

/// An `[accounts]` entry outside the auth account's `allowed_accounts`
/// stops the service at start-up, naming it: nats-server would refuse every
/// user placed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_outside_allowed_accounts_stops_the_service() {
    let service = KeyPair::new_user();
    let nats = Deployment::start(&service);
    let keys_dir = tempfile::tempdir().unwrap();
    let other_key = keys_dir.path().join("other.nk");
    std::fs::write(&other_key, nats.other.seed().unwrap()).unwrap();
    let extra_issuer = format!(
        "account = \"{}\"\nallowed_accounts = [\"{}\"]",
        nats.auth.public_key(),
        nats.app.public_key(),
    );
    let extra = format!(
        "[accounts.OTHER]\npublic_key = \"{}\"\nsigning_key_file = \"{}\"\n",
        nats.other.public_key(),
        other_key.display()
    );
    let spec = CalloutSpec {
        accounts: &["OTHER"],
        extra_issuer_toml: &extra_issuer,
        extra_toml: &extra,
        ..CalloutSpec::hostile("account = \"OTHER\"", "")
    };
    let mut callout = Callout::spawn(&nats.server.url(), &nats.keys(&service), &spec);
    assert_ne!(callout.wait_exit(Duration::from_secs(60)), Some(0));
    let log = callout.log();
    assert!(
        log.contains(&format!(
            "[accounts.OTHER] public_key {} is not in [issuer] allowed_accounts",
            nats.other.public_key()
        )),
        "{log}"
    );
}

/// One of two auth accounts of [`TwoAuthAccounts`]: the account, the
/// callout's keys in it, its target account APP, and a sentinel its
/// clients connect with.
struct AuthAccount {
    auth: KeyPair,
    /// Signs the account's responses (a signing key for `a`, the identity
    /// key for `b`).
    responder: KeyPair,
    xkey: XKey,
    service: KeyPair,
    app: KeyPair,
    /// Signs APP's users (a signing key for `a`, the identity key for `b`).
    app_signer: KeyPair,
    sentinel: String,
    sentinel_key: KeyPair,
}

impl AuthAccount {
    fn new(signing_keys: bool) -> AuthAccount {
        let (auth, app) = (KeyPair::new_account(), KeyPair::new_account());
        let copy = |key: &KeyPair| KeyPair::from_seed(&key.seed().unwrap()).unwrap();
        let (responder, app_signer) = if signing_keys {
            (KeyPair::new_account(), KeyPair::new_account())
        } else {
            (copy(&auth), copy(&app))
        };
        let sentinel_key = KeyPair::new_user();
        let sentinel = user_jwt(
            &sentinel_key,
            json!({ "bearer_token": true, "pub": { "deny": [">"] }, "sub": { "deny": [">"] } }),
            &auth,
        );
        AuthAccount {
            auth,
            responder,
            xkey: XKey::new(),
            service: KeyPair::new_user(),
            app,
            app_signer,
            sentinel,
            sentinel_key,
        }
    }

    /// AUTH's and APP's account JWTs: AUTH hands its clients to its callout
    /// (encrypted to its xkey) and allows only its own APP.
    fn account_jwts(&self, operator: &KeyPair) -> [(String, String); 2] {
        let signing_keys = |account: &KeyPair, signer: &KeyPair| {
            if account.public_key() == signer.public_key() {
                json!([])
            } else {
                json!([signer.public_key()])
            }
        };
        let auth = account_jwt(
            &self.auth,
            json!({
                "signing_keys": signing_keys(&self.auth, &self.responder),
                "authorization": {
                    "auth_users": [self.service.public_key()],
                    "allowed_accounts": [self.app.public_key()],
                    "xkey": self.xkey.public_key(),
                },
            }),
            operator,
        );
        let app = account_jwt(
            &self.app,
            json!({ "signing_keys": signing_keys(&self.app, &self.app_signer) }),
            operator,
        );
        [(self.auth.public_key(), auth), (self.app.public_key(), app)]
    }

    /// The tenant `name`'s tables and the files they name.
    fn tenant(&self, name: &str) -> (String, Vec<(String, String)>) {
        let seed = |key: &KeyPair| key.seed().unwrap();
        let creds = harness::creds_file(
            &user_jwt(&self.service, json!({}), &self.auth),
            &self.service,
        );
        let toml = format!(
            r#"
[[tenant]]
name = "{name}"
[tenant.nats]
creds_file = "{name}.creds"
[tenant.issuer]
seed_file = "{name}-auth.nk"
xkey_seed_file = "{name}-xkey.seed"
account = "{auth}"
allowed_accounts = ["{app}"]
[tenant.accounts.APP]
public_key = "{app}"
signing_key_file = "{name}-app.nk"
[tenant.policy]
wasm = "{hostile}"
accounts = ["APP"]
[tenant.policy.settings]
account = "APP"
"#,
            auth = self.auth.public_key(),
            app = self.app.public_key(),
            hostile = harness::policy_wasm("hostile-policy").display(),
        );
        let files = vec![
            (format!("{name}.creds"), creds),
            (format!("{name}-auth.nk"), seed(&self.responder)),
            (format!("{name}-xkey.seed"), self.xkey.seed().unwrap()),
            (format!("{name}-app.nk"), seed(&self.app_signer)),
        ];
        (toml, files)
    }

    /// Connection options of a client with this account's sentinel.
    fn client(&self, user: &str, password: &str) -> ConnectOptions {
        ConnectOptions::with_user_and_password(user.into(), password.into())
            .credentials(&harness::creds_file(&self.sentinel, &self.sentinel_key))
            .expect("sentinel creds")
    }
}

/// Several auth accounts, one host: an operator-mode server with two auth
/// accounts, each with its own callout (auth user, xkey, allowed APP
/// account), served by one `nats-callout` whose two tenants each have
/// their own connection, keys and accounts (`[tenant.nats]`,
/// `[tenant.issuer]`, `[tenant.accounts]`). Both policies name their
/// account `APP`, which each tenant maps to its own; tenant b's policy
/// granting a's account is denied by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_auth_account_is_a_tenant_with_its_own_connection_and_keys() {
    let (a, b) = (AuthAccount::new(true), AuthAccount::new(false));
    let operator = KeyPair::new_operator();
    let accounts = a
        .account_jwts(&operator)
        .into_iter()
        .chain(b.account_jwts(&operator))
        .collect();
    let server = operator_server("two_auth_accounts", &operator, accounts, &a.sentinel);
    let (a_toml, a_files) = a.tenant("a");
    let (b_toml, b_files) = b.tenant("b");
    let conf = format!("[nats]\nservers = [\"{}\"]\n{a_toml}{b_toml}", server.url());
    let files: Vec<(&str, String)> = a_files
        .iter()
        .chain(&b_files)
        .map(|(name, content)| (name.as_str(), content.clone()))
        .collect();
    let callout = Callout::spawn_with_files(&conf, &files);
    // Each tenant's own connection, keys and xkey: its requests arrive
    // sealed to its own xkey (a plaintext request would be denied as
    // not_encrypted), and its responses are sealed back.
    for tenant in ["a", "b"] {
        let serving = format!("callout=\"{tenant}\" tenant=\"{tenant}\"");
        callout.wait_for_log(&serving, Duration::from_secs(120));
        let log = callout.log();
        assert!(
            log.lines().any(|line| line.contains(&serving)
                && line.contains("operator_mode=true encryption=true")),
            "{log}"
        );
    }
    let logs = || format!("{}\n{}", callout.log(), server.log());

    // a's clients: the default sentinel, or a's own; both land in a's APP.
    for options in [
        ConnectOptions::with_user_and_password("ok".into(), "x".into()),
        a.client("ok", "x"),
    ] {
        let client = connect(&server.url(), options)
            .await
            .unwrap_or_else(|e| panic!("a's client is not admitted: {e}\n{}", logs()));
        assert_eq!(user_info(&client).await["account"], a.app.public_key());
    }
    callout.wait_for_log("tenant=\"a\" client_id=", Duration::from_secs(5));

    // b's client, with b's sentinel: the same policy's APP is b's APP.
    let client = connect(&server.url(), b.client("ok", "x"))
        .await
        .unwrap_or_else(|e| panic!("b's client is not admitted: {e}\n{}", logs()));
    assert_eq!(user_info(&client).await["account"], b.app.public_key());
    callout.wait_for_log("tenant=\"b\" client_id=", Duration::from_secs(5));

    // b's policy placing a user into a's account: the host's deny, signed
    // by b's key (nats-server reads the reason from it).
    let into_a = json!({ "account": a.app.public_key() }).to_string();
    assert_authorization_violation(connect(&server.url(), b.client("grant", &into_a)).await);
    server.wait_for_log(
        &format!(
            "callout service returned an error: policy granted account \"{}\", which is not in [policy] accounts",
            a.app.public_key()
        ),
        Duration::from_secs(5),
    );
    // And b's policy denying is b's deny, on b's connection.
    assert_authorization_violation(connect(&server.url(), b.client("deny", "x")).await);
    server.wait_for_log(
        "callout service returned an error: policy denied: wrong credentials",
        Duration::from_secs(5),
    );
    // The service's log is read from its stderr by a thread: wait for the
    // line rather than read the log once.
    let b_denied = |log: &str| {
        log.lines()
            .any(|line| line.contains("tenant=\"b\"") && line.contains("user=\"deny\""))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b_denied(&callout.log()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = callout.log();
    assert!(b_denied(&log), "{log}");
}

/// Every connection is made before any is served: a tenant whose creds
/// cannot be read stops the service at start-up, naming its table, and no
/// other tenant is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_cannot_connect_stops_the_service_before_anyone_is_served() {
    let (a, b) = (AuthAccount::new(true), AuthAccount::new(false));
    let (a_toml, a_files) = a.tenant("a");
    let (b_toml, b_files) = b.tenant("b");
    // No server listens there: a's connection waits for it, b's fails first.
    let conf = format!("[nats]\nservers = [\"nats://127.0.0.1:1\"]\n{a_toml}{b_toml}");
    let files: Vec<(&str, String)> = a_files
        .iter()
        .chain(&b_files)
        .filter(|(name, _)| name != "b.creds")
        .map(|(name, content)| (name.as_str(), content.clone()))
        .collect();
    let mut callout = Callout::spawn_with_files(&conf, &files);
    assert_ne!(callout.wait_exit(Duration::from_secs(120)), Some(0));
    let log = callout.log();
    assert!(
        log.contains("[[tenant]] \"b\" [tenant.nats] creds_file") && log.contains("b.creds"),
        "{log}"
    );
    assert!(!log.contains("serving auth callout requests"), "{log}");
}
