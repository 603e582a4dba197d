//! Opening and verifying an authorization request from nats-server: size cap,
//! xkey decryption, signature, issuer, audience and age checks
//! (`docs/protocol.md` §4 and §6), and its translation into the
//! policy's `auth-request`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bindings;
use crate::claims::{AuthorizationRequest, REQUEST_AUDIENCE};
use crate::jwt::{self, Claims, IssuerKeys, MAX_TOKEN_BYTES};
use crate::sealed_box::{SealError, SealedBoxes};

/// A request that passed every check.
pub struct VerifiedRequest {
    pub claims: Claims<AuthorizationRequest>,
    /// The server's curve key when the request was sealed; the response is
    /// sealed to it.
    pub server_xkey: Option<String>,
    /// Set when the request is genuine but must be denied before the policy
    /// runs (a plaintext request when encryption is required).
    pub refusal: Option<String>,
}

impl VerifiedRequest {
    pub fn request(&self) -> &AuthorizationRequest {
        &self.claims.nats
    }

    /// A request taken as it is, without a signature to verify: for `check`,
    /// which evaluates requests written by hand or captured from a server.
    pub fn unsigned(nats: AuthorizationRequest) -> VerifiedRequest {
        VerifiedRequest {
            claims: Claims {
                aud: Some(REQUEST_AUDIENCE.into()),
                exp: None,
                jti: String::new(),
                iat: None,
                iss: nats.server_id.id.clone(),
                name: None,
                nbf: None,
                sub: String::new(),
                nats,
            },
            server_xkey: None,
            refusal: None,
        }
    }
}

/// The keys and rules a request is checked against.
pub struct RequestCheck<'a> {
    /// Public key of the account the server expects to sign (`sub` of the request).
    pub issuer: &'a str,
    /// The service's curve key, when requests are encrypted.
    pub xkey: Option<&'a SealedBoxes>,
    /// Server keys already seen.
    pub server_keys: &'a IssuerKeys,
    /// How long past its `exp` a request is still answered.
    pub expiry_leeway: Duration,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl RequestCheck<'_> {
    /// Opens and verifies `payload`. The error is why the request is dropped
    /// unanswered: nothing in it can be trusted enough to answer.
    pub fn open(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<VerifiedRequest, String> {
        if payload.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "request is {} bytes, more than the 1 MiB limit",
                payload.len()
            ));
        }
        let sealed = !payload.starts_with(b"eyJ");
        let (token_bytes, server_xkey) = if sealed {
            let Some(own) = self.xkey else {
                return Err("request is not a plaintext JWT and no xkey is configured ([issuer] xkey_seed_file): \
                            garbage, or the server encrypts requests and this service cannot open them"
                    .into());
            };
            let header = xkey_header.ok_or(
                "encrypted request without a Nats-Server-Xkey header (is the NATS connection negotiating headers?)",
            )?;
            let opened = own.open(payload, header).map_err(|error| match error {
                SealError::PeerKey(_) => "Nats-Server-Xkey header is not a public curve key".to_string(),
                SealError::Format => "request is neither a JWT nor an xkv1 sealed box".to_string(),
                _ => format!(
                    "cannot decrypt the request with the configured xkey {}: the server's auth_callout xkey must be this key",
                    own.public_key()
                ),
            })?;
            (opened, Some(header.to_string()))
        } else {
            (payload.to_vec(), None)
        };
        let token = std::str::from_utf8(&token_bytes)
            .map_err(|_| "request is not UTF-8 text".to_string())?;
        let claims: Claims<AuthorizationRequest> =
            jwt::decode_with(token.trim_end(), self.server_keys)
                .map_err(|e| format!("request JWT rejected: {e}"))?;

        let nats = &claims.nats;
        if !claims.iss.starts_with('N') || claims.iss != nats.server_id.id {
            return Err(format!(
                "request issuer {} is not the server key in server_id.id ({})",
                claims.iss, nats.server_id.id
            ));
        }
        if claims.aud.as_deref() != Some(REQUEST_AUDIENCE) {
            return Err(format!(
                "request audience is {:?}, not {REQUEST_AUDIENCE:?}",
                claims.aud
            ));
        }
        if !nats.kind.is_empty() && nats.kind != "authorization_request" {
            return Err(format!(
                "request type is {:?}, not \"authorization_request\"",
                nats.kind
            ));
        }
        let user_key = nkeys::from_public_key(&nats.user_nkey)
            .map(|(prefix, _)| nkeys::KeyPairType::from(prefix));
        if !matches!(user_key, Ok(nkeys::KeyPairType::User)) {
            return Err("request user_nkey is not a public user nkey".into());
        }
        if claims.sub != self.issuer {
            return Err(format!(
                "request is for issuer {}, but this service signs as {}: check auth_callout issuer in the server's configuration",
                claims.sub, self.issuer
            ));
        }
        if let Some(sender) = &server_xkey
            && nats.server_id.xkey.as_deref() != Some(sender.as_str())
        {
            return Err(
                "server_id.xkey in the signed request does not match the Nats-Server-Xkey header"
                    .into(),
            );
        }
        if let Some(exp) = claims.exp
            && exp > 0
        {
            let late_ms = (unix_now() - exp).saturating_mul(1000);
            let leeway_ms = i64::try_from(self.expiry_leeway.as_millis()).unwrap_or(i64::MAX);
            if late_ms > leeway_ms {
                return Err(format!(
                    "request expired {}s ago: the server has given up on it",
                    late_ms / 1000
                ));
            }
        }
        let refusal = (self.xkey.is_some() && server_xkey.is_none())
            .then(|| "request was not encrypted, but this service requires encryption ([issuer] xkey_seed_file is set)".to_string());
        Ok(VerifiedRequest {
            claims,
            server_xkey,
            refusal,
        })
    }
}

/// The policy's view of a request.
pub fn to_policy_request(request: &AuthorizationRequest, issuer: &str) -> bindings::AuthRequest {
    let server = &request.server_id;
    let info = &request.client_info;
    let opts = &request.connect_opts;
    bindings::AuthRequest {
        server: bindings::ServerId {
            name: server.name.clone(),
            host: server.host.clone(),
            id: server.id.clone(),
            version: server.version.clone(),
            cluster: server.cluster.clone(),
            tags: server.tags.clone(),
            xkey: server.xkey.clone(),
        },
        user_nkey: request.user_nkey.clone(),
        client_info: bindings::ClientInfo {
            host: info.host.clone(),
            id: info.id,
            user: info.user.clone(),
            name: info.name.clone(),
            tags: info.tags.clone(),
            name_tag: info.name_tag.clone(),
            kind: info.kind.clone(),
            client_type: info.client_type.clone(),
            mqtt_id: info.mqtt_id.clone(),
            nonce: info.nonce.clone(),
        },
        connect_opts: bindings::ConnectOpts {
            jwt: opts.jwt.clone(),
            nkey: opts.nkey.clone(),
            sig: opts.sig.clone(),
            auth_token: opts.auth_token.clone(),
            user: opts.user.clone(),
            pass: opts.pass.clone(),
            name: opts.name.clone(),
            lang: opts.lang.clone(),
            version: opts.version.clone(),
            protocol: opts.protocol,
        },
        client_tls: request.client_tls.as_ref().map(|tls| bindings::ClientTls {
            version: tls.version.clone(),
            cipher: tls.cipher.clone(),
            certs: tls.certs.clone(),
            verified_chains: tls.verified_chains.clone(),
        }),
        issuer: issuer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::ConnectOpts;
    use crate::fake_server::{FakeServer, FakeService};
    use nkeys::KeyPair;

    /// Why `open` refuses `payload`; panics if it accepts it.
    fn refusal(
        service: &FakeService,
        encrypted: bool,
        payload: &[u8],
        header: Option<&str>,
    ) -> String {
        service
            .check(encrypted)
            .open(payload, header)
            .err()
            .expect("the request is refused")
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
        let request = service
            .check(false)
            .open(&payload, header.as_deref())
            .unwrap();
        assert!(request.server_xkey.is_none() && request.refusal.is_none());

        let (sealed, header) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), true),
            Some(&service.xkey),
        );
        let request = service
            .check(true)
            .open(&sealed, header.as_deref())
            .unwrap();
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
        let request = service.check(true).open(&plain, None).unwrap();
        assert!(request.refusal.unwrap().contains("requires encryption"));
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
