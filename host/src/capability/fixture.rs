//! Capability data for offline runs — `check --capabilities <file>`, a
//! kit's `capabilities.json`, and a golden kit at start and reload — so the
//! answer does not depend on an identity provider being up or a bucket's
//! contents that day. The same capabilities answer, from this data:
//!
//! ```json
//! {
//!   "nkey": true,
//!   "password": {"argon2_min_memory_kib": 19456},
//!   "kv": {"users": {"alice": {"account": "APP"}, "note": "plain text"}},
//!   "oidc": [{"issuer": "https://idp.example.com", "audiences": ["nats"],
//!             "jwks": {"keys": [ ... ]}}]
//! }
//! ```
//!
//! A key present grants its capability (`"password": {}` grants it with
//! the default floors). A KV value is its bytes: a JSON string as its text,
//! anything else as its JSON. Tokens in cases must outlive the kit: give
//! them a distant `exp`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use super::{GrantError, Grants, kv, oidc, password};
use crate::config::{OidcIssuerConfig, PasswordConfig};

/// A kit's capability data, beside its `cases/`.
pub const KIT_FILE: &str = "capabilities.json";

/// What a fixture file holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    nkey: bool,
    #[serde(default)]
    password: Option<PasswordConfig>,
    #[serde(default)]
    kv: Option<HashMap<String, HashMap<String, Value>>>,
    #[serde(default)]
    oidc: Vec<FixtureIssuer>,
}

/// An issuer of a fixture: its rules, and its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureIssuer {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default = "default_leeway_secs")]
    leeway_secs: u64,
    jwks: Value,
}

fn default_leeway_secs() -> u64 {
    60
}

impl Fixture {
    /// Reads the fixture at `path`.
    pub fn read(path: &Path) -> anyhow::Result<Fixture> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read capability fixture {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a capability fixture", path.display()))
    }

    /// The fixture of the kit at `kit`, if it has one.
    pub fn of_kit(kit: &Path) -> anyhow::Result<Option<Fixture>> {
        let path = kit.join(KIT_FILE);
        if path.exists() {
            Fixture::read(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The grants answering from this data.
    pub fn grants(&self) -> Result<Arc<Grants>, GrantError> {
        let password = self.password.as_ref().map(|floors| {
            password::Passwords::new(floors.clone(), Arc::new(tokio::sync::Semaphore::new(2)), 2)
        });
        let kv = self.kv.as_ref().map(|buckets| {
            kv::Buckets::fixed(
                buckets
                    .iter()
                    .map(|(bucket, entries)| {
                        let entries = entries
                            .iter()
                            .map(|(key, value)| (key.clone(), value_bytes(value)))
                            .collect();
                        (bucket.clone(), entries)
                    })
                    .collect(),
            )
        });
        let oidc = if self.oidc.is_empty() {
            None
        } else {
            let issuers = self
                .oidc
                .iter()
                .map(|issuer| (issuer.config(), issuer.jwks.to_string().into_bytes()))
                .collect();
            Some(oidc::Verifier::fixed(issuers)?)
        };
        Ok(Arc::new(Grants {
            nkey: self.nkey,
            password,
            kv,
            oidc,
        }))
    }
}

impl FixtureIssuer {
    fn config(&self) -> OidcIssuerConfig {
        OidcIssuerConfig {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            jwks_url: None,
            jwks_file: None,
            algorithms: self.algorithms.clone(),
            leeway_secs: self.leeway_secs,
            refresh_secs: 3600,
            ca_file: None,
        }
    }
}

/// A KV value's bytes: a string's text, anything else's JSON.
fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::capability::Capability;
    use crate::testing::tokens::{SigningKey, jwks};

    #[tokio::test]
    async fn a_fixture_grants_what_it_names_and_answers_from_its_data() {
        let key = SigningKey::es256("k1");
        let text = json!({
            "kv": {"users": {"alice": {"account": "APP"}, "note": "plain"}},
            "oidc": [{"issuer": "https://idp", "audiences": ["nats"], "jwks": jwks(&[&key])}],
        });
        let fixture: Fixture = serde_json::from_value(text).unwrap();
        let grants = fixture.grants().unwrap();
        assert!(grants.grants(Capability::Kv) && grants.grants(Capability::Oidc));
        assert!(!grants.grants(Capability::Nkey) && !grants.grants(Capability::Password));
        let kv = grants.kv().unwrap();
        assert_eq!(
            kv.get("users", "alice").unwrap().unwrap(),
            br#"{"account":"APP"}"#
        );
        assert_eq!(kv.get("users", "note").unwrap().unwrap(), b"plain");
        assert_eq!(kv.get("users", "bob").unwrap(), None);
        assert!(kv.get("other", "x").is_err());
        let token = key.sign(&json!({"iss": "https://idp", "aud": "nats", "exp": 4102444800u64}));
        let verified = grants.oidc().unwrap().verify(&token).await.unwrap();
        assert_eq!(verified.issuer, "https://idp");
    }

    #[test]
    fn a_fixture_with_unknown_keys_is_refused() {
        let refused = serde_json::from_value::<Fixture>(json!({"redis": {}}));
        assert!(refused.unwrap_err().to_string().contains("redis"));
    }
}
