//! Test doubles (the `test-util` feature, and this crate's own tests):
//! [`FakeServer`] is nats-server's side of the exchange — it builds, signs
//! and (optionally) seals authorization requests exactly as the server
//! does, and opens the service's responses; [`FakeService`] is the
//! service's keys and request checks, without a policy.

use std::sync::Arc;
use std::time::Duration;

use nkeys::KeyPair;
use nkeys::XKey;

use crate::authz::{Accounts, Decider, GrantRules};
use crate::config::DenyMode;
use crate::policy::{PolicyLimits, PolicySource, Sandbox, SandboxLimits};
use crate::protocol::claims::{
    AuthorizationRequest, AuthorizationResponse, ClientInfo, ConnectOpts, REQUEST_AUDIENCE,
    ServerId,
};
use crate::protocol::jwt::FastSigner;
use crate::protocol::jwt::{self, Claims};
use crate::protocol::mint::{AccountKey, Placement};
use crate::protocol::verify::{DropReason, VerifiedRequest, Verifier, unix_now};
use crate::protocol::xkey::SealedBoxes;
use crate::serve::{Binding, Registry};

/// The example token-table policy, built by `scripts/build-policies.sh`.
pub const TOKEN_TABLE_WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/token_table.wasm"
);

/// Its settings: the token `s3cr3t` admits into `APP` for 600 s.
pub const TOKEN_TABLE_SETTINGS: &str = r#"{"tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"], "subscribe": ["app.>", "_INBOX.>"], "expires_in_secs": 600}}}"#;

/// The service as `serve` builds it, with the token-table policy allowed to
/// place users into `APP`, under a new issuer key; sealing with `xkey` when
/// given. Panics with a hint when the policy is not built.
pub async fn token_table_registry(xkey: Option<Arc<SealedBoxes>>, deny: DenyMode) -> Registry {
    let source = PolicySource {
        wasm: TOKEN_TABLE_WASM.into(),
        settings_json: TOKEN_TABLE_SETTINGS.into(),
        grants: crate::capability::Grants::none(),
        limits: PolicyLimits {
            timeout: Duration::from_millis(100),
            memory_bytes: 32 << 20,
            calls_per_instance: 1,
            max_idle_instances: 0,
        },
    };
    let sandbox =
        Sandbox::new(SandboxLimits::for_policies(4, [&source.limits])).expect("a sandbox");
    let rules = GrantRules {
        accounts: Accounts::Listed(vec!["APP".into()]),
        default_lifetime_secs: 3600,
        max_lifetime_secs: 86400,
        ceiling: Default::default(),
    };
    let decider = Decider::load(&sandbox, &source, rules, None)
        .await
        .unwrap_or_else(|e| panic!("{e} (run scripts/build-policies.sh)"));
    let signer = FastSigner::new(&KeyPair::new_account()).expect("a signer");
    let binding = Binding::new(
        Arc::new(AccountKey::identity(signer)),
        Arc::new(Placement::Config),
        decider,
        deny,
    );
    let mut registry = Registry::new(Verifier::new(xkey, Duration::from_secs(3600)));
    registry.add(binding);
    registry
}

/// The service's side, as the registry holds it: its issuer account and its
/// curve key.
pub struct FakeService {
    pub issuer: String,
    pub boxes: Arc<SealedBoxes>,
    /// The public half of the service's curve key, which servers seal to.
    pub xkey: XKey,
}

impl Default for FakeService {
    fn default() -> Self {
        let xkey = XKey::new();
        let seed = xkey.seed().expect("a new curve key has a seed");
        FakeService {
            issuer: KeyPair::new_account().public_key(),
            boxes: Arc::new(SealedBoxes::from_seed(&seed).expect("a new curve seed opens")),
            xkey: XKey::from_public_key(&xkey.public_key()).expect("its own public key"),
        }
    }
}

impl FakeService {
    /// The service's request checks, requiring encryption when `encrypted`.
    pub fn verifier(&self, encrypted: bool) -> Verifier {
        Verifier::new(
            encrypted.then(|| self.boxes.clone()),
            Duration::from_secs(2),
        )
    }

    /// Opens a request as the service does: verifies it, then routes it to
    /// this service's issuer (requests for another are dropped).
    pub fn open(
        &self,
        encrypted: bool,
        payload: &[u8],
        header: Option<&str>,
    ) -> Result<VerifiedRequest, DropReason> {
        let mut registry = Registry::new(self.verifier(encrypted));
        registry.insert(self.issuer.clone(), ());
        registry.open(payload, header).map(|(request, _)| request)
    }
}

/// A pretend nats-server with its own identity and curve keys.
pub struct FakeServer {
    pub identity: KeyPair,
    pub xkey: XKey,
}

impl Default for FakeServer {
    fn default() -> Self {
        FakeServer {
            identity: KeyPair::new_server(),
            xkey: XKey::new(),
        }
    }
}

impl FakeServer {
    /// A request from a client sending `connect_opts`.
    pub fn request(&self, connect_opts: ConnectOpts, sealed: bool) -> AuthorizationRequest {
        AuthorizationRequest {
            server_id: ServerId {
                name: "bench".into(),
                host: "127.0.0.1".into(),
                id: self.identity.public_key(),
                version: Some("2.15.1".into()),
                cluster: None,
                tags: vec![],
                xkey: sealed.then(|| self.xkey.public_key()),
            },
            user_nkey: KeyPair::new_user().public_key(),
            client_info: ClientInfo {
                host: Some("127.0.0.1".into()),
                id: Some(7),
                kind: Some("Client".into()),
                client_type: Some("nats".into()),
                ..ClientInfo::default()
            },
            connect_opts,
            client_tls: None,
            kind: "authorization_request".into(),
            version: 2,
        }
    }

    /// The request JWT's claims, as the server would sign them for `issuer`.
    pub fn claims(
        &self,
        issuer: &str,
        request: AuthorizationRequest,
    ) -> Claims<AuthorizationRequest> {
        let now = unix_now();
        Claims {
            aud: Some(REQUEST_AUDIENCE.into()),
            exp: Some(now + 2),
            jti: String::new(),
            iat: Some(now),
            iss: String::new(),
            name: None,
            nbf: None,
            sub: issuer.to_string(),
            nats: request,
        }
    }

    /// Signs `request` for `issuer`; seals it to `service_xkey` when given.
    /// Returns the payload and the `Nats-Server-Xkey` header value.
    pub fn encode(
        &self,
        issuer: &str,
        request: AuthorizationRequest,
        service_xkey: Option<&XKey>,
    ) -> (Vec<u8>, Option<String>) {
        let token =
            jwt::encode(&mut self.claims(issuer, request), &self.identity).unwrap_or_default();
        match service_xkey {
            None => (token.into_bytes(), None),
            Some(recipient) => (
                self.xkey
                    .seal(token.as_bytes(), recipient)
                    .unwrap_or_default(),
                Some(self.xkey.public_key()),
            ),
        }
    }

    /// Opens a response (sealed or not) and decodes it.
    pub fn open_response(
        &self,
        payload: &[u8],
        service_xkey: Option<&XKey>,
    ) -> Result<Claims<AuthorizationResponse>, String> {
        let bytes = if payload.starts_with(b"eyJ") {
            payload.to_vec()
        } else {
            let sender = service_xkey.ok_or("sealed response but no service xkey")?;
            self.xkey.open(payload, sender).map_err(|e| e.to_string())?
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
        jwt::decode(text).map_err(|e| e.to_string())
    }
}

pub mod tokens;
