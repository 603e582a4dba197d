//! Opening and verifying an authorization request from nats-server: size cap,
//! xkey decryption, signature, issuer, audience and age checks
//! (`docs/protocol.md` §4 and §6). What fails here is dropped unanswered,
//! for a [`DropReason`]: nothing in it can be trusted enough to answer.
//! Which binding answers a verified request is the registry's question
//! (`serve/registry.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::claims::{AuthorizationRequest, REQUEST_AUDIENCE};
use super::jwt::{self, Claims, JwtError, MAX_TOKEN_BYTES, ServerKeys};
use super::xkey::{SealError, SealedBoxes};
use crate::untrusted::{Quoted, reason_text};

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    pub claims: Claims<AuthorizationRequest>,
    /// The server's curve key when the request was sealed; the response is
    /// sealed to it.
    pub server_xkey: Option<String>,
    /// Set when the request is genuine but must be denied before any policy
    /// runs.
    pub refusal: Option<Refusal>,
}

/// Why a genuine request is denied before any policy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "request was not encrypted, but this service requires encryption ([issuer] xkey_seed_file is set)"
    )]
    NotEncrypted,
}

/// Why a message is dropped unanswered. Every text it quotes from the message
/// is escaped and bounded ([`Quoted`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DropReason {
    #[error("request is {0} bytes, more than the 1 MiB limit")]
    TooLarge(usize),
    #[error(
        "request is not a plaintext JWT and no xkey is configured ([issuer] xkey_seed_file): garbage, or the server encrypts requests and this service cannot open them"
    )]
    SealedButNoXkey,
    #[error(
        "encrypted request without a Nats-Server-Xkey header (is the NATS connection negotiating headers?)"
    )]
    NoXkeyHeader,
    #[error("Nats-Server-Xkey header is not a public curve key")]
    BadXkeyHeader,
    #[error("request is neither a JWT nor an xkv1 sealed box")]
    NotSealedBox,
    #[error(
        "cannot decrypt the request with the configured xkey {own_xkey}: the server's auth_callout xkey must be this key"
    )]
    CannotDecrypt { own_xkey: String },
    #[error("request is not UTF-8 text")]
    NotUtf8,
    #[error("request JWT rejected: {0}")]
    Jwt(Arc<JwtError>),
    #[error("request issuer {issuer} is not the server key in server_id.id ({server})")]
    NotSignedByServer { issuer: Quoted, server: Quoted },
    #[error("request audience is {0}, not {REQUEST_AUDIENCE:?}")]
    Audience(Quoted),
    #[error("request type is {0}, not \"authorization_request\"")]
    Kind(Quoted),
    #[error("request user_nkey is not a public user nkey")]
    UserNkey,
    #[error("server_id.xkey in the signed request does not match the Nats-Server-Xkey header")]
    XkeyMismatch,
    #[error("request expired {0}s ago: the server has given up on it")]
    Expired(i64),
    #[error(
        "request is for issuer {requested}, but this service signs as {served}: check auth_callout issuer in the server's configuration"
    )]
    UnknownIssuer { requested: Quoted, served: String },
    #[error("request without a reply subject")]
    NoReplySubject,
    /// The tenant's share of the calls is taken and its line of waiting
    /// requests full: the client's connect times out, and the other
    /// tenants' requests are not held up behind it.
    #[error("tenant {0:?} has its share of calls running and its line of waiting requests full")]
    TenantBusy(std::sync::Arc<str>),
}

impl DropReason {
    /// The reason as logged: rendered, escaped and bounded.
    pub fn text(&self) -> String {
        reason_text(self)
    }

    /// A stable name for the kind of drop, for metrics labels and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            DropReason::TooLarge(_) => "too_large",
            DropReason::SealedButNoXkey
            | DropReason::NoXkeyHeader
            | DropReason::BadXkeyHeader
            | DropReason::NotSealedBox
            | DropReason::CannotDecrypt { .. }
            | DropReason::XkeyMismatch => "xkey",
            DropReason::NotUtf8 | DropReason::Jwt(_) => "malformed",
            DropReason::NotSignedByServer { .. } => "signature",
            DropReason::Audience(_) | DropReason::Kind(_) | DropReason::UserNkey => "claims",
            DropReason::Expired(_) => "expired",
            DropReason::UnknownIssuer { .. } => "unknown_issuer",
            DropReason::NoReplySubject => "no_reply_subject",
            DropReason::TenantBusy(_) => "tenant_busy",
        }
    }
}

impl VerifiedRequest {
    pub fn request(&self) -> &AuthorizationRequest {
        &self.claims.nats
    }

    /// The account the server expects to sign the response (`sub`).
    pub fn issuer(&self) -> &str {
        &self.claims.sub
    }

    /// A request taken as it is, without a signature to verify: for `check`,
    /// which evaluates requests written by hand or captured from a server.
    pub fn unsigned(nats: AuthorizationRequest, issuer: &str) -> VerifiedRequest {
        VerifiedRequest {
            claims: Claims {
                aud: Some(REQUEST_AUDIENCE.into()),
                exp: None,
                jti: String::new(),
                iat: None,
                iss: nats.server_id.id.clone(),
                name: None,
                nbf: None,
                sub: issuer.to_string(),
                nats,
            },
            server_xkey: None,
            refusal: None,
        }
    }
}

/// Verifies the requests of one subscription: the keys it opens them with
/// and the servers it has seen.
pub struct Verifier {
    /// The service's curve key, when requests are encrypted.
    xkey: Option<Arc<SealedBoxes>>,
    /// Server keys already seen.
    server_keys: ServerKeys,
    /// How long past its `exp` a request is still answered.
    expiry_leeway: Duration,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Verifier {
    pub fn new(xkey: Option<Arc<SealedBoxes>>, expiry_leeway: Duration) -> Verifier {
        Verifier {
            xkey,
            server_keys: ServerKeys::default(),
            expiry_leeway,
        }
    }

    /// The curve key responses are sealed with, when requests are encrypted.
    pub fn xkey(&self) -> Option<&SealedBoxes> {
        self.xkey.as_deref()
    }

    /// Opens and verifies `payload`: decrypts it, then checks the token.
    pub fn open(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<VerifiedRequest, DropReason> {
        if payload.len() > MAX_TOKEN_BYTES {
            return Err(DropReason::TooLarge(payload.len()));
        }
        let (token_bytes, server_xkey) = if payload.starts_with(b"eyJ") {
            (payload.to_vec(), None)
        } else {
            let header = xkey_header.map(str::to_string);
            (self.decrypt(payload, xkey_header)?, header)
        };
        let token = std::str::from_utf8(&token_bytes).map_err(|_| DropReason::NotUtf8)?;
        let claims: Claims<AuthorizationRequest> =
            jwt::decode_with(token.trim_end(), &self.server_keys)
                .map_err(|error| DropReason::Jwt(Arc::new(error)))?;
        self.check_claims(&claims, server_xkey.as_deref())?;
        let refusal =
            (self.xkey.is_some() && server_xkey.is_none()).then_some(Refusal::NotEncrypted);
        Ok(VerifiedRequest {
            claims,
            server_xkey,
            refusal,
        })
    }

    /// Opens a sealed request with the service's curve key.
    fn decrypt(&self, payload: &[u8], xkey_header: Option<&str>) -> Result<Vec<u8>, DropReason> {
        let own = self.xkey.as_ref().ok_or(DropReason::SealedButNoXkey)?;
        let header = xkey_header.ok_or(DropReason::NoXkeyHeader)?;
        own.open(payload, header).map_err(|error| match error {
            SealError::PeerKey(_) => DropReason::BadXkeyHeader,
            SealError::Format => DropReason::NotSealedBox,
            SealError::Decrypt | SealError::Encrypt => DropReason::CannotDecrypt {
                own_xkey: own.public_key().to_string(),
            },
        })
    }

    /// The claims of a token whose signature verified: who signed it, for
    /// whom, what it is, and whether it is still awaited.
    fn check_claims(
        &self,
        claims: &Claims<AuthorizationRequest>,
        server_xkey: Option<&str>,
    ) -> Result<(), DropReason> {
        let nats = &claims.nats;
        if !claims.iss.starts_with('N') || claims.iss != nats.server_id.id {
            return Err(DropReason::NotSignedByServer {
                issuer: Quoted::new(&claims.iss),
                server: Quoted::new(&nats.server_id.id),
            });
        }
        if claims.aud.as_deref() != Some(REQUEST_AUDIENCE) {
            return Err(DropReason::Audience(Quoted::or_none(claims.aud.as_deref())));
        }
        if !nats.kind.is_empty() && nats.kind != "authorization_request" {
            return Err(DropReason::Kind(Quoted::new(&nats.kind)));
        }
        let user_key = nkeys::from_public_key(&nats.user_nkey)
            .map(|(prefix, _)| nkeys::KeyPairType::from(prefix));
        if !matches!(user_key, Ok(nkeys::KeyPairType::User)) {
            return Err(DropReason::UserNkey);
        }
        if let Some(sender) = server_xkey
            && nats.server_id.xkey.as_deref() != Some(sender)
        {
            return Err(DropReason::XkeyMismatch);
        }
        match self.late_by(claims.exp) {
            Some(late) => Err(DropReason::Expired(late)),
            None => Ok(()),
        }
    }

    /// How many seconds past its expiry (and the leeway) a request is, if it
    /// is: the server has given up on it. Checked when it arrives, and again
    /// when it has waited for a slot.
    pub fn late_secs(&self, request: &VerifiedRequest) -> Option<i64> {
        self.late_by(request.claims.exp)
    }

    fn late_by(&self, exp: Option<i64>) -> Option<i64> {
        let exp = exp.filter(|exp| *exp > 0)?;
        let late_ms = (unix_now() - exp).saturating_mul(1000);
        let leeway_ms = i64::try_from(self.expiry_leeway.as_millis()).unwrap_or(i64::MAX);
        (late_ms > leeway_ms).then_some(late_ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::claims::ConnectOpts;
    use crate::testing::{FakeServer, FakeService};
    use nkeys::KeyPair;

    /// Why `open` refuses `payload`; panics if it accepts it.
    fn refusal(
        service: &FakeService,
        encrypted: bool,
        payload: &[u8],
        header: Option<&str>,
    ) -> String {
        service
            .open(encrypted, payload, header)
            .expect_err("the request is refused")
            .to_string()
    }

    fn claims(server: &FakeServer, issuer: &str, sealed: bool) -> Claims<AuthorizationRequest> {
        server.claims(issuer, server.request(ConnectOpts::default(), sealed))
    }

    #[test]
    fn accepts_plain_and_sealed_requests() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let (payload, header) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), false),
            None,
        );
        let request = service.open(false, &payload, header.as_deref()).unwrap();
        assert!(request.server_xkey.is_none() && request.refusal.is_none());

        let (sealed, header) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), true),
            Some(&service.xkey),
        );
        let request = service.open(true, &sealed, header.as_deref()).unwrap();
        assert_eq!(request.server_xkey, Some(server.xkey.public_key()));
    }

    #[test]
    fn drops_stale_requests() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut stale = claims(&server, &service.issuer, false);
        stale.exp = Some(unix_now() - 10);
        let token = jwt::encode(&mut stale, &server.identity).unwrap();
        let error = refusal(&service, false, token.as_bytes(), None);
        assert!(error.contains("expired 10s ago"), "{error}");
    }

    #[test]
    fn drops_requests_for_another_issuer_or_audience() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut other = claims(&server, &KeyPair::new_account().public_key(), false);
        let token = jwt::encode(&mut other, &server.identity).unwrap();
        let error = refusal(&service, false, token.as_bytes(), None);
        assert!(error.contains("this service signs as"), "{error}");

        let mut audience = claims(&server, &service.issuer, false);
        audience.aud = Some("elsewhere".into());
        let token = jwt::encode(&mut audience, &server.identity).unwrap();
        let error = refusal(&service, false, token.as_bytes(), None);
        assert!(error.contains("audience"), "{error}");
    }

    #[test]
    fn drops_requests_signed_by_a_key_other_than_the_server_id() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut forged = claims(&server, &service.issuer, false);
        let token = jwt::encode(&mut forged, &KeyPair::new_server()).unwrap();
        let error = refusal(&service, false, token.as_bytes(), None);
        assert!(
            error.contains("is not the server key in server_id.id"),
            "{error}"
        );
    }

    #[test]
    fn encryption_mismatches_are_named() {
        let service = FakeService::default();
        let server = FakeServer::default();
        // Plaintext while encryption is required: verified, then refused.
        let (plain, _) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), false),
            None,
        );
        let request = service.open(true, &plain, None).unwrap();
        assert_eq!(request.refusal, Some(Refusal::NotEncrypted));
        // Sealed while no xkey is configured.
        let (sealed, header) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), true),
            Some(&service.xkey),
        );
        let error = refusal(&service, false, &sealed, header.as_deref());
        assert!(error.contains("no xkey is configured"), "{error}");
        // Sealed to another key.
        let other = FakeService::default();
        let error = refusal(&other, true, &sealed, header.as_deref());
        assert!(
            error.contains("cannot decrypt the request with the configured xkey"),
            "{error}"
        );
        // Sealed without the header.
        let error = refusal(&service, true, &sealed, None);
        assert!(error.contains("Nats-Server-Xkey"), "{error}");
    }

    #[test]
    fn drops_oversized_and_garbage_payloads() {
        let service = FakeService::default();
        let error = refusal(&service, false, &vec![b'e'; MAX_TOKEN_BYTES + 1], None);
        assert!(error.contains("more than the 1 MiB limit"), "{error}");
        let error = refusal(&service, false, b"eyJhello", None);
        assert!(error.contains("request JWT rejected"), "{error}");
    }
}
