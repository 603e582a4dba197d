//! Test doubles for the capabilities, so policy logic unit-tests natively
//! with `cargo test`: the host is not there, so tell the doubles what it
//! would answer. Each test thread has its own doubles; [`reset`] clears them.
//!
//! ```
//! use nats_callout_sdk::{kv, oidc, password, testing};
//!
//! testing::reset();
//! testing::put_kv("users", "alice", br#"{"account": "APP"}"#);
//! assert_eq!(kv::get_text("users", "alice").unwrap().as_deref(), Some(r#"{"account": "APP"}"#));
//! assert_eq!(kv::get("users", "bob").unwrap(), None);
//!
//! testing::accept_token("tok", "https://idp", r#"{"sub": "alice"}"#);
//! assert_eq!(oidc::verify("tok").unwrap().claims, r#"{"sub": "alice"}"#);
//! assert!(oidc::verify("forged").is_err());
//!
//! testing::set_password_hash("$argon2id$fake", "wonderland");
//! assert_eq!(password::verify("wonderland", "$argon2id$fake"), Ok(true));
//! assert_eq!(password::verify("guess", "$argon2id$fake"), Ok(false));
//! ```
//!
//! Calls in a WebAssembly build go to the host; these functions then have
//! no effect.

// In a component the host answers, so the stand-ins below go unused there.
#![cfg_attr(target_family = "wasm", allow(dead_code, unused_imports))]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::kv::KvError;
use crate::nkey::{KeyKind, NkeyError};
use crate::oidc::{TokenError, VerifiedToken};
use crate::password::PasswordError;

#[derive(Default)]
struct Doubles {
    /// Buckets granted, and their entries.
    kv: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    unavailable: BTreeSet<String>,
    /// Tokens that verify: token → (issuer, claims).
    tokens: BTreeMap<String, (String, String)>,
    /// Tokens refused with a given error.
    refused_tokens: BTreeMap<String, TokenError>,
    /// Hashes known: hash → the password that matches it.
    hashes: BTreeMap<String, String>,
    /// (key, message, signature) that verify.
    signatures: BTreeSet<(String, Vec<u8>, String)>,
}

thread_local! {
    static DOUBLES: RefCell<Doubles> = RefCell::new(Doubles::default());
}

fn with<T>(f: impl FnOnce(&mut Doubles) -> T) -> T {
    DOUBLES.with(|doubles| f(&mut doubles.borrow_mut()))
}

/// Forgets everything told so far.
pub fn reset() {
    with(|d| *d = Doubles::default());
}

/// Puts `key` = `value` in `bucket` (which counts as granted from then on).
pub fn put_kv(bucket: &str, key: &str, value: &[u8]) {
    with(|d| {
        d.kv.entry(bucket.into())
            .or_default()
            .insert(key.into(), value.to_vec())
    });
}

/// Deletes `key` from `bucket` (which counts as granted from then on).
pub fn delete_kv(bucket: &str, key: &str) {
    with(|d| d.kv.entry(bucket.into()).or_default().remove(key));
}

/// Makes reads of `bucket` fail as the host's do when its copy may be stale
/// (the bucket counts as granted from then on).
pub fn make_kv_unavailable(bucket: &str) {
    with(|d| {
        d.kv.entry(bucket.into()).or_default();
        d.unavailable.insert(bucket.into())
    });
}

/// Makes `token` verify, from `issuer`, with `claims` (JSON text).
pub fn accept_token(token: &str, issuer: &str, claims: &str) {
    with(|d| {
        d.tokens
            .insert(token.into(), (issuer.into(), claims.into()))
    });
}

/// Makes `token` fail with `error` (other unknown tokens fail as
/// [`TokenError::BadSignature`]).
pub fn refuse_token(token: &str, error: TokenError) {
    with(|d| d.refused_tokens.insert(token.into(), error));
}

/// Makes `hash` the hash of `password` (other hashes are malformed).
pub fn set_password_hash(hash: &str, password: &str) {
    with(|d| d.hashes.insert(hash.into(), password.into()));
}

/// Makes `signature` a valid signature of `message` by `key`.
pub fn accept_signature(key: &str, message: &[u8], signature: &str) {
    with(|d| {
        d.signatures
            .insert((key.into(), message.to_vec(), signature.into()))
    });
}

pub(crate) fn kv_get(bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    with(|d| match d.kv.get(bucket) {
        None => Err(KvError::NotGranted(bucket.into())),
        Some(_) if d.unavailable.contains(bucket) => Err(KvError::Unavailable(format!(
            "bucket {bucket:?}: (test double)"
        ))),
        Some(entries) => Ok(entries.get(key).cloned()),
    })
}

pub(crate) fn verify_token(token: &str) -> Result<VerifiedToken, TokenError> {
    with(|d| {
        if let Some((issuer, claims)) = d.tokens.get(token) {
            return Ok(VerifiedToken {
                issuer: issuer.clone(),
                claims: claims.clone(),
            });
        }
        Err(d
            .refused_tokens
            .get(token)
            .cloned()
            .unwrap_or(TokenError::BadSignature))
    })
}

pub(crate) fn verify_password(password: &str, hash: &str) -> Result<bool, PasswordError> {
    with(|d| match d.hashes.get(hash) {
        Some(known) => Ok(known == password),
        None => Err(PasswordError::MalformedHash(
            "not a hash the test doubles know (testing::set_password_hash)".into(),
        )),
    })
}

pub(crate) fn parse_public_key(key: &str) -> Result<KeyKind, NkeyError> {
    if key.len() != 56 {
        return Err(NkeyError::InvalidKey("not 56 characters".into()));
    }
    match key.as_bytes()[0] {
        b'O' => Ok(KeyKind::Operator),
        b'A' => Ok(KeyKind::Account),
        b'U' => Ok(KeyKind::User),
        b'N' => Ok(KeyKind::Server),
        b'C' => Ok(KeyKind::Cluster),
        b'X' => Ok(KeyKind::Curve),
        _ => Err(NkeyError::InvalidKey("unknown prefix".into())),
    }
}

pub(crate) fn verify_nkey(key: &str, message: &[u8], signature: &str) -> Result<(), NkeyError> {
    parse_public_key(key)?;
    with(|d| {
        if d.signatures
            .contains(&(key.to_string(), message.to_vec(), signature.to_string()))
        {
            Ok(())
        } else {
            Err(NkeyError::BadSignature)
        }
    })
}
