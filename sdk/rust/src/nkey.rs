//! nkey signatures, checked by the host (capability `nkey`, granted by
//! `[policy.capabilities] nkey = true`).
//!
//! nats-server does not check a client's nkey signature before it asks an
//! auth callout: a policy that admits clients by nkey must, with
//! [`verified_client_key`]. In config mode the server sends the nonce the
//! client signs only when its configuration has at least one nkey user.

use crate::AuthRequest;
pub use crate::bindings::nats::callout::nkey::{KeyKind, NkeyError};

/// Decodes a public nkey (checksum included) and says what it names.
pub fn parse_public_key(key: &str) -> Result<KeyKind, NkeyError> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::nats::callout::nkey::parse_public_key(key);
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::parse_public_key(key);
}

/// Checks that `signature` (base64, standard or URL-safe) is `key`'s
/// signature of `message`.
pub fn verify(key: &str, message: &[u8], signature: &str) -> Result<(), NkeyError> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::nats::callout::nkey::verify(key, message, signature);
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::verify_nkey(key, message, signature);
}

/// The client's public nkey, once its signature of the server's nonce is
/// checked: `Ok(None)` when the client sent no nkey; an error when it sent
/// one that nothing proves (no nonce from the server, no signature) or
/// whose signature does not verify.
pub fn verified_client_key(request: &AuthRequest) -> Result<Option<&str>, NkeyError> {
    let Some(key) = request.connect_opts.nkey.as_deref() else {
        return Ok(None);
    };
    let Some(nonce) = request.client_info.nonce.as_deref() else {
        return Err(NkeyError::MalformedSignature(
            "the server sent the client no nonce to sign (in config mode it sends one only when an nkey user is configured)".into(),
        ));
    };
    let Some(signature) = request.connect_opts.sig.as_deref() else {
        return Err(NkeyError::MalformedSignature(
            "the client sent an nkey without a signature".into(),
        ));
    };
    verify(key, nonce.as_bytes(), signature)?;
    Ok(Some(key))
}

impl NkeyError {
    /// What went wrong, in words (for a deny reason).
    pub fn message(&self) -> String {
        match self {
            NkeyError::InvalidKey(why) => format!("invalid nkey: {why}"),
            NkeyError::MalformedSignature(why) => format!("malformed signature: {why}"),
            NkeyError::BadSignature => "bad signature".into(),
        }
    }
}
