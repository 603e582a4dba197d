//! Minting the user JWT and the authorization response around it
//! (`docs/protocol.md` §5), sealed to the server when the request was.

use super::claims::{AuthorizationRequest, AuthorizationResponse, User};
use super::jwt::{self, Claims, JwtError, MAX_TOKEN_BYTES, Signer};
use super::xkey::SealedBoxes;

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

/// What a user JWT says beyond its permissions: where the user goes, under
/// which name, for how long.
pub struct UserToMint<'a> {
    /// The target account's name (config mode).
    pub account: &'a str,
    pub name: Option<&'a str>,
    pub lifetime_secs: u64,
    pub user: &'a User,
}

/// The user JWT's claims: `sub` is the per-attempt user nkey, `aud` the
/// target account.
pub fn user_claims(
    request: &AuthorizationRequest,
    grant: &UserToMint<'_>,
    now: i64,
) -> Claims<User> {
    Claims {
        aud: Some(grant.account.to_string()),
        exp: Some(now.saturating_add(i64::try_from(grant.lifetime_secs).unwrap_or(i64::MAX))),
        jti: String::new(),
        iat: Some(now),
        iss: String::new(),
        name: grant.name.map(str::to_string),
        nbf: None,
        sub: request.user_nkey.clone(),
        nats: grant.user.clone(),
    }
}

/// Where a response is sealed: with the service's curve key, to the
/// server's, when the request was sealed.
pub type Seal<'a> = Option<(&'a SealedBoxes, &'a str)>;

/// Signs a response that admits the user, with its user JWT inside.
pub fn sign_allow(
    request: &AuthorizationRequest,
    user: &mut Claims<User>,
    issuer: &impl Signer,
    now: i64,
    seal: Seal<'_>,
) -> Result<Vec<u8>, ResponseError> {
    let token = jwt::encode(user, issuer)?;
    // The response wraps the user JWT; both must stay under the server's limit.
    if token.len() > MAX_TOKEN_BYTES / 2 {
        return Err(ResponseError::TooLarge(token.len()));
    }
    sign(request, Some(token), None, issuer, now, seal)
}

/// Signs a response that refuses the user for `reason` (which nats-server
/// logs).
pub fn sign_deny(
    request: &AuthorizationRequest,
    reason: &str,
    issuer: &impl Signer,
    now: i64,
    seal: Seal<'_>,
) -> Result<Vec<u8>, ResponseError> {
    sign(request, None, Some(reason.to_string()), issuer, now, seal)
}

fn sign(
    request: &AuthorizationRequest,
    user_jwt: Option<String>,
    error: Option<String>,
    issuer: &impl Signer,
    now: i64,
    seal: Seal<'_>,
) -> Result<Vec<u8>, ResponseError> {
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
