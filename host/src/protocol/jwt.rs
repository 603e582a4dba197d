//! NATS JWTs: the `ed25519-nkey` flavour of JWT that nats-server signs and expects.
//!
//! General JWT crates do not know this algorithm (an ed25519 signature by the
//! nkey named in `iss`, base64url without padding), so the codec lives here:
//! it is small, and every rule it follows is in `docs/protocol.md` §2.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key_cache::KeyCache;

/// nats-server refuses tokens longer than this (`jwt.MaxTokenSize`).
pub const MAX_TOKEN_BYTES: usize = 1024 * 1024;

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Why a token could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("token is {0} bytes, more than the 1 MiB nats-server accepts")]
    TooLarge(usize),
    #[error("token does not have three dot-separated parts")]
    NotThreeParts,
    #[error("token {part} is not base64url without padding")]
    Base64 { part: &'static str },
    #[error("token header is not a NATS JWT header (typ JWT, alg ed25519-nkey)")]
    Header,
    #[error("token claims are not valid JSON for this kind of token: {0}")]
    Claims(#[source] serde_json::Error),
    #[error("token issuer {0:?} is not a public nkey")]
    Issuer(String),
    #[error("token signature does not verify with its issuer's key")]
    Signature,
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// The registered claims every NATS JWT shares, around the `nats` object `N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims<N> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub sub: String,
    pub nats: N,
}

#[derive(Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

/// Only the issuer, read before the whole claims set so the signature is
/// checked before the rest of the payload is trusted.
#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: String,
}

fn decode_part(part: &str, name: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Base64 { part: name })
}

/// Decodes `token`, checks its header and verifies its signature with the key
/// in its `iss` claim. Times are not checked here: that is the caller's rule.
pub fn decode<N: DeserializeOwned>(token: &str) -> Result<Claims<N>, JwtError> {
    decode_with(token, &ServerKeys::default())
}

/// [`decode`], remembering the issuer's key in `keys` once its signature verified.
pub(crate) fn decode_with<N: DeserializeOwned>(
    token: &str,
    keys: &ServerKeys,
) -> Result<Claims<N>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotThreeParts);
    };
    let header: Header =
        serde_json::from_slice(&decode_part(header, "header")?).map_err(|_| JwtError::Header)?;
    let alg_ok = header.alg.eq_ignore_ascii_case("ed25519-nkey")
        || header.alg.eq_ignore_ascii_case("ed25519");
    if !header.typ.eq_ignore_ascii_case("JWT") || !alg_ok {
        return Err(JwtError::Header);
    }
    let payload_json = decode_part(payload, "payload")?;
    let signature = decode_part(signature, "signature")?;
    let issuer: IssuerOnly = serde_json::from_slice(&payload_json).map_err(JwtError::Claims)?;
    let (key, known) = keys.resolve(&issuer.iss)?;
    let signature = Signature::from_slice(&signature).map_err(|_| JwtError::Signature)?;
    let signed_len = token.len() - signature_len(token);
    key.verify(&token.as_bytes()[..signed_len], &signature)
        .map_err(|_| JwtError::Signature)?;
    if !known {
        // Only keys that signed something: junk cannot churn the cache.
        keys.remember(&issuer.iss, key);
    }
    serde_json::from_slice(&payload_json).map_err(JwtError::Claims)
}

/// The public keys of the servers whose requests verified, decoded. A
/// nats-server signs every request with the same key for its whole life, so
/// decoding it once saves a curve point decompression per request.
#[derive(Default)]
pub(crate) struct ServerKeys {
    known: KeyCache<VerifyingKey>,
}

impl ServerKeys {
    /// The key `issuer` names, and whether it was already known.
    fn resolve(&self, issuer: &str) -> Result<(VerifyingKey, bool), JwtError> {
        if let Some(key) = self.known.get(issuer) {
            return Ok((key, true));
        }
        let bad = || JwtError::Issuer(issuer.to_string());
        let (_, raw) = nkeys::from_public_key(issuer).map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad())?;
        Ok((key, false))
    }

    /// Keeps `key`, once a signature by it has verified.
    fn remember(&self, issuer: &str, key: VerifyingKey) {
        self.known.insert(issuer, key);
    }
}

/// Length of the signature part plus its leading dot.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// A key that signs tokens.
pub trait Signer {
    /// The encoded public key (`A...`, `N...`), which becomes `iss`.
    fn public_key(&self) -> String;
    /// An ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError>;
}

impl Signer for KeyPair {
    fn public_key(&self) -> String {
        KeyPair::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        KeyPair::sign(self, message).map_err(|e| JwtError::Sign(e.to_string()))
    }
}

/// The same key as an nkeys `KeyPair`, signing with aws-lc (assembly
/// curve25519): about twice as fast as ed25519-dalek here, and the service
/// signs twice per request.
pub struct FastSigner {
    public: String,
    pair: aws_lc_rs::signature::Ed25519KeyPair,
}

impl FastSigner {
    /// The encoded public key.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// From a key pair that holds a seed.
    pub fn new(key: &KeyPair) -> Result<FastSigner, JwtError> {
        let seed = key.seed().map_err(|e| JwtError::Sign(e.to_string()))?;
        let (_, raw) = nkeys::decode_seed(&seed).map_err(|e| JwtError::Sign(e.to_string()))?;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&raw)
            .map_err(|e| JwtError::Sign(e.to_string()))?;
        Ok(FastSigner {
            public: key.public_key(),
            pair,
        })
    }
}

impl Signer for FastSigner {
    fn public_key(&self) -> String {
        self.public.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        Ok(self.pair.sign(message).as_ref().to_vec())
    }
}

/// Encodes `claims` signed by `signer`, setting `iss` to the signer's public
/// key and `jti` to a hash of the claims.
pub fn encode<N: Serialize>(
    claims: &mut Claims<N>,
    signer: &impl Signer,
) -> Result<String, JwtError> {
    claims.iss = signer.public_key();
    claims.jti = String::new();
    let unidentified = serde_json::to_vec(claims).map_err(JwtError::Claims)?;
    claims.jti = data_encoding::BASE32_NOPAD.encode(&Sha256::digest(&unidentified));
    let payload = serde_json::to_vec(claims).map_err(JwtError::Claims)?;

    let mut token = String::with_capacity(payload.len() * 4 / 3 + 160);
    URL_SAFE_NO_PAD.encode_string(HEADER, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Body {
        kind: String,
        version: u8,
    }

    fn claims() -> Claims<Body> {
        Claims {
            aud: Some("aud".into()),
            exp: None,
            jti: String::new(),
            iat: Some(1),
            iss: String::new(),
            name: None,
            nbf: None,
            sub: "sub".into(),
            nats: Body {
                kind: "k".into(),
                version: 2,
            },
        }
    }

    #[test]
    fn round_trips_and_verifies() {
        let signer = KeyPair::new_account();
        let token = encode(&mut claims(), &signer).unwrap();
        assert!(!token.contains('='), "no padding");
        let decoded: Claims<Body> = decode(&token).unwrap();
        assert_eq!(decoded.iss, signer.public_key());
        assert_eq!(
            decoded.nats,
            Body {
                kind: "k".into(),
                version: 2
            }
        );
        assert!(!decoded.jti.is_empty());
    }

    #[test]
    fn only_keys_whose_signature_verified_are_remembered() {
        let keys = ServerKeys::default();
        let signer = KeyPair::new_account();
        let token = encode(&mut claims(), &signer).unwrap();
        // The right key named in `iss`, but a signature that does not verify.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        assert!(decode_with::<serde_json::Value>(&forged, &keys).is_err());
        assert_eq!(keys.known.len(), 0);
        decode_with::<serde_json::Value>(&token, &keys).unwrap();
        assert!(keys.known.get(&signer.public_key()).is_some());
    }

    #[test]
    fn the_fast_signer_signs_as_nkeys_does() {
        let key = KeyPair::new_account();
        let fast = FastSigner::new(&key).unwrap();
        assert_eq!(Signer::public_key(&fast), key.public_key());
        // ed25519 signatures are deterministic: both must produce the same bytes.
        assert_eq!(
            Signer::sign(&fast, b"message").unwrap(),
            Signer::sign(&key, b"message").unwrap()
        );
        let token = encode(&mut claims(), &fast).unwrap();
        assert_eq!(decode::<Body>(&token).unwrap().iss, key.public_key());
    }

    #[test]
    fn rejects_tampering_and_garbage() {
        let token = encode(&mut claims(), &KeyPair::new_account()).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"iss":"x","sub":"evil","nats":{"kind":"k","version":2}}"#);
        parts[1] = &forged;
        assert!(matches!(
            decode::<Body>(&parts.join(".")),
            Err(JwtError::Issuer(_))
        ));

        let other = KeyPair::new_account();
        let mut swapped = claims();
        swapped.iss = other.public_key();
        let resigned = encode(&mut swapped, &KeyPair::new_account()).unwrap();
        let (head, _) = resigned.rsplit_once('.').unwrap();
        let wrong_sig = format!("{head}.{}", token.rsplit_once('.').unwrap().1);
        assert!(matches!(
            decode::<Body>(&wrong_sig),
            Err(JwtError::Signature)
        ));

        assert!(matches!(
            decode::<Body>("garbage"),
            Err(JwtError::NotThreeParts)
        ));
        assert!(matches!(
            decode::<Body>("a.b.c"),
            Err(JwtError::Base64 { .. } | JwtError::Header)
        ));
        assert!(matches!(
            decode::<Body>(&format!("{token}=")),
            Err(JwtError::Base64 { .. })
        ));
    }
}
