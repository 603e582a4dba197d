//! An identity provider's side of OIDC, for tests of the `oidc`
//! capability: signing keys (RS256, ES256), their JWKS, and tokens signed
//! with them (or not signed at all), written with aws-lc-rs directly so the
//! verifier is tested against an implementation other than its own.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A key an issuer signs tokens with.
pub struct SigningKey {
    kid: String,
    key: Key,
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl SigningKey {
    /// A new RSA 2048 key for RS256, named `kid`.
    pub fn rs256(kid: &str) -> SigningKey {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
        SigningKey {
            kid: kid.into(),
            key: Key::Rsa(key),
        }
    }

    /// A new P-256 key for ES256, named `kid`.
    pub fn es256(kid: &str) -> SigningKey {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
        SigningKey {
            kid: kid.into(),
            key: Key::Ec(key),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm its tokens carry.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
        }
    }

    /// Its public key as a JWK (RFC 7517), with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.key {
            Key::Rsa(key) => {
                let public = key.public_key();
                json!({
                    "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Key::Ec(key) => {
                // Uncompressed point: 0x04, x, y.
                let point = key.public_key().as_ref();
                json!({
                    "kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
        }
    }

    /// A token of `claims` with the usual header (`alg`, `kid`, `typ`).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token of `claims` with `header` as given, signed with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", encode(header), encode(claims));
        let rng = SystemRandom::new();
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .expect("an RSA signature");
                signature
            }
            Key::Ec(key) => key
                .sign(&rng, input.as_bytes())
                .expect("an ECDSA signature")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>()})
}

/// An `alg: none` token of `claims`, with an empty signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT"})),
        encode(claims)
    )
}

/// Seconds since the Unix epoch, plus `offset`.
pub fn now_plus(offset: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    now + offset
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
