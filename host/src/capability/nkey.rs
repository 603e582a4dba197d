//! The `nkey` capability: public nkeys decoded and Ed25519 signatures
//! checked, as nats-server checks its nonce challenge — which it does *not*
//! do for an auth callout user, so a policy admitting clients by nkey must.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::policy::sandbox::CallState;
use crate::policy::wit::nats::callout::nkey::{Host, KeyKind, NkeyError};

/// What a public nkey names, from its prefix (checksum checked).
pub(crate) fn parse_public_key(key: &str) -> Result<KeyKind, NkeyError> {
    let kind = match key.as_bytes().first() {
        Some(b'O') => KeyKind::Operator,
        Some(b'A') => KeyKind::Account,
        Some(b'U') => KeyKind::User,
        Some(b'N') => KeyKind::Server,
        Some(b'C') => KeyKind::Cluster,
        Some(b'X') => KeyKind::Curve,
        _ => {
            return Err(NkeyError::InvalidKey(
                "not a public nkey: it starts with none of O, A, U, N, C, X".into(),
            ));
        }
    };
    let checked = if kind == KeyKind::Curve {
        nkeys::XKey::from_public_key(key).map(drop)
    } else {
        nkeys::KeyPair::from_public_key(key).map(drop)
    };
    checked.map_err(|e| NkeyError::InvalidKey(format!("not a public nkey: {e}")))?;
    Ok(kind)
}

/// Checks that `signature` (base64, standard with padding or URL-safe
/// without: clients send both) is `key`'s signature of `message`.
pub(crate) fn verify(key: &str, message: &[u8], signature: &str) -> Result<(), NkeyError> {
    if parse_public_key(key)? == KeyKind::Curve {
        return Err(NkeyError::InvalidKey(
            "a curve key (X...) encrypts; it does not sign".into(),
        ));
    }
    let signer = nkeys::KeyPair::from_public_key(key)
        .map_err(|e| NkeyError::InvalidKey(format!("not a public nkey: {e}")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(signature))
        .map_err(|_| NkeyError::MalformedSignature("not base64".into()))?;
    if bytes.len() != 64 {
        return Err(NkeyError::MalformedSignature(format!(
            "{} bytes, where an Ed25519 signature has 64",
            bytes.len()
        )));
    }
    signer
        .verify(message, &bytes)
        .map_err(|_| NkeyError::BadSignature)
}

impl Host for CallState {
    fn parse_public_key(&mut self, key: String) -> Result<KeyKind, NkeyError> {
        parse_public_key(&key)
    }

    fn verify(
        &mut self,
        key: String,
        message: Vec<u8>,
        signature: String,
    ) -> Result<(), NkeyError> {
        verify(&key, &message, &signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_answer_to_the_nonce_verifies_in_either_encoding() {
        let user = nkeys::KeyPair::new_user();
        let nonce = "nonce-from-the-server";
        let signature = user.sign(nonce.as_bytes()).unwrap();
        let key = user.public_key();
        // nats.go: URL-safe without padding; nats.py: standard with padding.
        for encoded in [
            URL_SAFE_NO_PAD.encode(&signature),
            STANDARD.encode(&signature),
        ] {
            assert_eq!(verify(&key, nonce.as_bytes(), &encoded), Ok(()));
        }
        let forged = nkeys::KeyPair::new_user().sign(nonce.as_bytes()).unwrap();
        assert_eq!(
            verify(&key, nonce.as_bytes(), &URL_SAFE_NO_PAD.encode(forged)),
            Err(NkeyError::BadSignature)
        );
        assert_eq!(
            verify(&key, b"another nonce", &URL_SAFE_NO_PAD.encode(&signature)),
            Err(NkeyError::BadSignature)
        );
        assert!(matches!(
            verify(&key, nonce.as_bytes(), "!!"),
            Err(NkeyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&key, nonce.as_bytes(), &STANDARD.encode([0u8; 10])),
            Err(NkeyError::MalformedSignature(m)) if m.contains("10 bytes")
        ));
    }

    #[test]
    fn keys_are_named_by_prefix_and_checked() {
        assert_eq!(
            parse_public_key(&nkeys::KeyPair::new_user().public_key()),
            Ok(KeyKind::User)
        );
        assert_eq!(
            parse_public_key(&nkeys::KeyPair::new_account().public_key()),
            Ok(KeyKind::Account)
        );
        assert_eq!(
            parse_public_key(&nkeys::XKey::new().public_key()),
            Ok(KeyKind::Curve)
        );
        let mut broken = nkeys::KeyPair::new_user().public_key();
        broken.replace_range(5..6, if &broken[5..6] == "A" { "B" } else { "A" });
        assert!(matches!(
            parse_public_key(&broken),
            Err(NkeyError::InvalidKey(_))
        ));
        assert!(matches!(
            parse_public_key("hello"),
            Err(NkeyError::InvalidKey(_))
        ));
        let curve = nkeys::XKey::new().public_key();
        assert!(matches!(
            verify(&curve, b"x", &STANDARD.encode([0u8; 64])),
            Err(NkeyError::InvalidKey(m)) if m.contains("curve")
        ));
    }
}
