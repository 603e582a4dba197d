//! OIDC ID tokens and other JWTs, verified by the host against the keys of
//! the issuers the operator granted (capability `oidc`, granted by
//! `[[policy.capabilities.oidc]]` tables naming each issuer and its
//! audiences): signature, `iss`, `aud`, `exp`, `nbf`.

pub use crate::bindings::nats::callout::oidc::{TokenError, VerifiedToken};

/// Verifies `token` against the granted issuer its `iss` names; returns
/// the issuer and the token's claims as JSON text.
pub fn verify(token: &str) -> Result<VerifiedToken, TokenError> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::nats::callout::oidc::verify(token);
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::verify_token(token);
}

impl TokenError {
    /// What went wrong, in words (for a deny reason).
    pub fn message(&self) -> String {
        match self {
            TokenError::Malformed(why) => format!("malformed: {why}"),
            TokenError::UnknownIssuer(why) => format!("unknown issuer: {why}"),
            TokenError::AlgorithmRefused(why) => format!("algorithm refused: {why}"),
            TokenError::UnknownKey(why) => format!("unknown key: {why}"),
            TokenError::BadSignature => "bad signature".into(),
            TokenError::Expired => "expired".into(),
            TokenError::NotYetValid => "not yet valid".into(),
            TokenError::WrongAudience => "wrong audience".into(),
            TokenError::KeysUnavailable(why) => format!("issuer keys unavailable: {why}"),
        }
    }
}
