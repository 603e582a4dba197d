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
use crate::config::{CapabilitiesConfig, KvConfig, OidcIssuerConfig, PasswordConfig};

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

    /// The grants answering from this data, under the rules it states
    /// itself (`check --capabilities`, a kit's `capabilities.json`).
    pub fn grants(&self) -> Result<Arc<Grants>, GrantError> {
        let mut rules = CapabilitiesConfig {
            nkey: self.nkey,
            password: self.password.clone(),
            kv: self.kv.as_ref().map(|buckets| KvConfig {
                buckets: buckets.keys().cloned().collect(),
            }),
            oidc: self.oidc.iter().map(FixtureIssuer::config).collect(),
        };
        rules.oidc.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        for issuer in &rules.oidc {
            issuer.validate().map_err(|reason| GrantError::Oidc {
                issuer: issuer.issuer.clone(),
                reason,
            })?;
        }
        self.grants_under(&rules)
    }

    /// The grants a tenant's `config` describes, answering from this data (a
    /// golden kit): the tenant's floors and issuers' rules, the fixture's KV
    /// entries and key sets. Data for a bucket or an issuer the tenant is not
    /// granted is an error: the kit would prove what the live policy cannot
    /// do. A granted bucket or issuer without data is empty.
    pub fn grants_under(&self, config: &CapabilitiesConfig) -> Result<Arc<Grants>, GrantError> {
        let granted_buckets: Vec<&String> = config.kv.iter().flat_map(|kv| &kv.buckets).collect();
        if let Some(extra) = self
            .kv
            .iter()
            .flat_map(|buckets| buckets.keys())
            .find(|bucket| !granted_buckets.contains(bucket))
        {
            return Err(GrantError::Kv(format!(
                "the data holds bucket {extra:?}, which the policy is not granted"
            )));
        }
        if let Some(extra) = self
            .oidc
            .iter()
            .find(|fixture| !config.oidc.iter().any(|i| i.issuer == fixture.issuer))
        {
            return Err(GrantError::Oidc {
                issuer: extra.issuer.clone(),
                reason: "the data holds this issuer, which the policy is not granted".into(),
            });
        }
        let password = config.password.as_ref().map(|floors| {
            password::Passwords::new(floors.clone(), Arc::new(tokio::sync::Semaphore::new(2)), 2)
        });
        let kv = config.kv.as_ref().map(|kv| {
            let buckets = kv
                .buckets
                .iter()
                .map(|bucket| {
                    let entries = self
                        .kv
                        .as_ref()
                        .and_then(|data| data.get(bucket))
                        .map(|entries| {
                            entries
                                .iter()
                                .map(|(key, value)| (key.clone(), value_bytes(value)))
                                .collect()
                        })
                        .unwrap_or_default();
                    (bucket.clone(), entries)
                })
                .collect();
            kv::Buckets::fixed(buckets)
        });
        let oidc = if config.oidc.is_empty() {
            None
        } else {
            let issuers = config
                .oidc
                .iter()
                .map(|issuer| {
                    let jwks = self
                        .oidc
                        .iter()
                        .find(|fixture| fixture.issuer == issuer.issuer)
                        .map(|fixture| fixture.jwks.to_string().into_bytes());
                    (issuer.clone(), jwks)
                })
                .collect();
            Some(oidc::Verifier::fixed(issuers)?)
        };
        Ok(Arc::new(Grants {
            nkey: config.nkey,
            password,
            kv,
            oidc,
        }))
    }
}

impl FixtureIssuer {
    fn config(&self) -> OidcIssuerConfig {
        OidcIssuerConfig {
            algorithms: self.algorithms.clone(),
            leeway_secs: self.leeway_secs,
            ..OidcIssuerConfig::new(&self.issuer, self.audiences.clone())
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

    #[tokio::test]
    async fn a_golden_kit_answers_under_the_tenants_rules_and_holds_no_more_than_it_grants() {
        let key = SigningKey::es256("k1");
        let fixture: Fixture = serde_json::from_value(json!({
            "kv": {"users": {"alice": "a"}},
            "oidc": [{"issuer": "https://idp", "audiences": ["any"], "jwks": jwks(&[&key])}],
        }))
        .unwrap();
        let issuer = |audience: &str| OidcIssuerConfig::new("https://idp", vec![audience.into()]);
        let tenant = CapabilitiesConfig {
            kv: Some(KvConfig {
                buckets: vec!["users".into(), "devices".into()],
            }),
            oidc: vec![issuer("nats")],
            ..Default::default()
        };
        let grants = fixture.grants_under(&tenant).unwrap();
        let kv = grants.kv().unwrap();
        assert_eq!(kv.get("users", "alice").unwrap().unwrap(), b"a");
        assert_eq!(
            kv.get("devices", "x").unwrap(),
            None,
            "granted, no data: empty"
        );
        // The tenant's audience, not the fixture's.
        let token =
            |aud: &str| key.sign(&json!({"iss": "https://idp", "aud": aud, "exp": 4102444800u64}));
        let verifier = grants.oidc().unwrap();
        assert!(verifier.verify(&token("nats")).await.is_ok());
        assert!(verifier.verify(&token("any")).await.is_err());
        // Data the tenant is not granted.
        let narrower = CapabilitiesConfig {
            kv: Some(KvConfig {
                buckets: vec!["devices".into()],
            }),
            oidc: vec![issuer("nats")],
            ..Default::default()
        };
        let refused = fixture.grants_under(&narrower).err().unwrap().to_string();
        assert!(refused.contains("bucket \"users\""), "{refused}");
        let no_oidc = CapabilitiesConfig {
            kv: tenant.kv.clone(),
            ..Default::default()
        };
        assert!(fixture.grants_under(&no_oidc).is_err());
    }

    #[test]
    fn a_fixture_with_unknown_keys_is_refused() {
        let refused = serde_json::from_value::<Fixture>(json!({"redis": {}}));
        assert!(refused.unwrap_err().to_string().contains("redis"));
    }
}
