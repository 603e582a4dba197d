//! Minting the user JWT and the authorization response around it
//! (`docs/protocol.md` §5), sealed to the server when the request was.
//!
//! Who signs what depends on the server's mode (`docs/protocol.md` §5):
//! in config mode the callout issuer signs both tokens and the user JWT
//! names its account by name (`aud`); in operator mode the response is
//! signed by the auth account (its identity key or a signing key, then
//! naming the account in `issuer_account`) and the user JWT by the *target*
//! account, which places the user there.

use std::collections::BTreeMap;

use super::claims::{AuthorizationRequest, AuthorizationResponse, User};
use super::jwt::{self, Claims, FastSigner, JwtError, MAX_TOKEN_BYTES};
use super::xkey::SealedBoxes;

/// A key that signs for an account: the account's identity key, or one of
/// its signing keys.
pub struct AccountKey {
    /// The account's public key (`A...`).
    pub account: String,
    pub key: FastSigner,
    /// A scoped signing key: the users it signs carry no permissions or
    /// limits of their own; its template in the account JWT decides them.
    pub scoped: bool,
}

impl AccountKey {
    /// The account's identity key.
    pub fn identity(key: FastSigner) -> AccountKey {
        AccountKey {
            account: key.public().to_string(),
            key,
            scoped: false,
        }
    }

    /// `issuer_account` of what this key signs: the account when a signing
    /// key signs, nothing when the identity key does.
    pub fn issuer_account(&self) -> Option<&str> {
        (self.key.public() != self.account).then_some(self.account.as_str())
    }
}

/// Where users go and who signs their JWTs.
pub enum Placement {
    /// Config mode: into the account named in `aud`, signed by the issuer.
    Config,
    /// Operator mode: into the account whose key signs, by account name.
    Operator(BTreeMap<String, AccountKey>),
}

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

/// Signs a response that admits the user, with its user JWT inside: the
/// user JWT signed by `user_issuer`, the response by `issuer`.
pub fn sign_allow(
    request: &AuthorizationRequest,
    user: &mut Claims<User>,
    user_issuer: &AccountKey,
    issuer: &AccountKey,
    now: i64,
    seal: Seal<'_>,
) -> Result<Vec<u8>, ResponseError> {
    user.nats.issuer_account = user_issuer.issuer_account().map(str::to_string);
    let token = jwt::encode(user, &user_issuer.key)?;
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
    issuer: &AccountKey,
    now: i64,
    seal: Seal<'_>,
) -> Result<Vec<u8>, ResponseError> {
    sign(request, None, Some(reason.to_string()), issuer, now, seal)
}

fn sign(
    request: &AuthorizationRequest,
    user_jwt: Option<String>,
    error: Option<String>,
    issuer: &AccountKey,
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
            issuer_account: issuer.issuer_account().map(str::to_string),
            kind: "authorization_response".into(),
            version: 2,
        },
    };
    let token = jwt::encode(&mut response, &issuer.key)?;
    match seal {
        None => Ok(token.into_bytes()),
        Some((own, server)) => own
            .seal(token.as_bytes(), server)
            .map_err(|e| ResponseError::Seal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::claims::ConnectOpts;
    use crate::testing::FakeServer;
    use nkeys::KeyPair;

    fn key(account: &KeyPair, signer: &KeyPair, scoped: bool) -> AccountKey {
        AccountKey {
            account: account.public_key(),
            key: FastSigner::new(signer).unwrap(),
            scoped,
        }
    }

    #[test]
    fn signing_keys_name_their_account_and_identity_keys_do_not() {
        let server = FakeServer::default();
        let request = server.request(ConnectOpts::default(), false);
        let (auth, auth_signing) = (KeyPair::new_account(), KeyPair::new_account());
        let (app, app_signing) = (KeyPair::new_account(), KeyPair::new_account());
        let user = User {
            publish: Default::default(),
            subscribe: Default::default(),
            resp: None,
            src: vec![],
            times: vec![],
            times_location: None,
            subs: -1,
            data: -1,
            payload: -1,
            allowed_connection_types: vec![],
            tags: vec![],
            issuer_account: None,
            kind: "user".into(),
            version: 2,
        };
        let grant = UserToMint {
            account: "APP",
            name: None,
            lifetime_secs: 60,
            user: &user,
        };
        for (response_key, user_key) in [
            (
                key(&auth, &auth_signing, false),
                key(&app, &app_signing, false),
            ),
            (
                AccountKey::identity(FastSigner::new(&auth).unwrap()),
                AccountKey::identity(FastSigner::new(&app).unwrap()),
            ),
        ] {
            let mut claims = user_claims(&request, &grant, 1);
            let payload =
                sign_allow(&request, &mut claims, &user_key, &response_key, 1, None).unwrap();
            let response = server.open_response(&payload, None).unwrap();
            assert_eq!(response.iss, response_key.key.public());
            assert_eq!(
                response.nats.issuer_account.as_deref(),
                response_key.issuer_account()
            );
            let minted: Claims<User> = jwt::decode(&response.nats.jwt.unwrap()).unwrap();
            assert_eq!(minted.iss, user_key.key.public());
            assert_eq!(
                minted.nats.issuer_account.as_deref(),
                user_key.issuer_account()
            );
        }
        assert_eq!(
            key(&auth, &auth_signing, false).issuer_account(),
            Some(auth.public_key().as_str())
        );
        assert_eq!(
            AccountKey::identity(FastSigner::new(&auth).unwrap()).issuer_account(),
            None
        );
    }
}
