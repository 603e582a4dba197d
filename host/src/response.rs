//! Minting the user JWT and the authorization response around it
//! (`docs/protocol.md` §5), sealed to the server when the request was.

use crate::claims::{AuthorizationRequest, AuthorizationResponse, User};
use crate::jwt::{self, Claims, JwtError, MAX_TOKEN_BYTES, Signer};
use crate::rules::CheckedGrant;
use crate::sealed_box::SealedBoxes;

/// Why a response could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("the user JWT would be {0} bytes, more than nats-server accepts")]
    TooLarge(usize),
    #[error("cannot seal the response to the server's xkey: {0}")]
    Seal(String),
}

/// The user JWT for `grant`: `sub` is the per-attempt user nkey, `aud` the
/// target account's name (config mode), signed by the issuer.
pub fn user_claims(request: &AuthorizationRequest, grant: &CheckedGrant, now: i64) -> Claims<User> {
    Claims {
        aud: Some(grant.account.clone()),
        exp: Some(now.saturating_add(i64::try_from(grant.lifetime_secs).unwrap_or(i64::MAX))),
        jti: String::new(),
        iat: Some(now),
        iss: String::new(),
        name: grant.name.clone(),
        nbf: None,
        sub: request.user_nkey.clone(),
        nats: grant.user.clone(),
    }
}

/// What the response carries.
pub enum Answer<'a> {
    /// The grant, as user claims to sign.
    Allow(&'a mut Claims<User>),
    /// The deny reason.
    Deny(&'a str),
}

/// Signs the response JWT (with the user JWT inside for `Allow`), sealed to
/// `server_xkey` with `own_xkey` when the request was sealed.
pub fn sign(
    request: &AuthorizationRequest,
    answer: Answer<'_>,
    issuer: &impl Signer,
    now: i64,
    seal: Option<(&SealedBoxes, &str)>,
) -> Result<Vec<u8>, ResponseError> {
    let (user_jwt, error) = match answer {
        Answer::Allow(user) => {
            let token = jwt::encode(user, issuer)?;
            // The response wraps the user JWT; both must stay under the server's limit.
            if token.len() > MAX_TOKEN_BYTES / 2 {
                return Err(ResponseError::TooLarge(token.len()));
            }
            (Some(token), None)
        }
        Answer::Deny(reason) => (None, Some(reason.to_string())),
    };
    let mut response = Claims {
        aud: Some(request.server_id.id.clone()),
        exp: None,
        jti: String::new(),
        iat: Some(now),
        iss: String::new(),
        name: None,
        nbf: None,
        sub: request.user_nkey.clone(),
        nats: AuthorizationResponse {
            jwt: user_jwt,
            error,
            issuer_account: None,
            kind: "authorization_response".into(),
            version: 2,
        },
    };
    let token = jwt::encode(&mut response, issuer)?;
    match seal {
        None => Ok(token.into_bytes()),
        Some((own, server)) => own
            .seal(token.as_bytes(), server)
            .map_err(|e| ResponseError::Seal(e.to_string())),
    }
}
