//! nats-server's side of the exchange, for benchmarks and tests: builds,
//! signs and (optionally) seals authorization requests exactly as the server
//! does, and opens the service's responses. [`FakeService`] is the other
//! side's keys, for tests of request checks.

use std::time::Duration;

use nkeys::KeyPair;
use nkeys::XKey;

use crate::claims::{
    AuthorizationRequest, AuthorizationResponse, ClientInfo, ConnectOpts, REQUEST_AUDIENCE,
    ServerId,
};
use crate::jwt::{self, Claims, IssuerKeys};
use crate::request::{RequestCheck, unix_now};
use crate::sealed_box::SealedBoxes;

/// The service's side, as `service.rs` holds it: its issuer account, its
/// curve key and its cache of server keys.
pub struct FakeService {
    pub issuer: String,
    pub boxes: SealedBoxes,
    /// The public half of the service's curve key, which servers seal to.
    pub xkey: XKey,
    pub server_keys: IssuerKeys,
}

impl Default for FakeService {
    fn default() -> Self {
        let xkey = XKey::new();
        let seed = xkey.seed().expect("a new curve key has a seed");
        FakeService {
            issuer: KeyPair::new_account().public_key(),
            boxes: SealedBoxes::from_seed(&seed).expect("a new curve seed opens"),
            xkey: XKey::from_public_key(&xkey.public_key()).expect("its own public key"),
            server_keys: IssuerKeys::default(),
        }
    }
}

impl FakeService {
    /// The service's request checks, requiring encryption when `encrypted`.
    pub fn check(&self, encrypted: bool) -> RequestCheck<'_> {
        RequestCheck {
            issuer: &self.issuer,
            xkey: encrypted.then_some(&self.boxes),
            server_keys: &self.server_keys,
            expiry_leeway: Duration::from_secs(2),
        }
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
