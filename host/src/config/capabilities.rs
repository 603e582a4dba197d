//! `[policy.capabilities]`: what the operator grants a policy beyond
//! `host.log`, with each grant's parameters. A policy that imports a
//! capability its table does not grant does not load (see
//! `capability/mod.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[policy.capabilities]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesConfig {
    /// `nkey = true`: nkey signature checks.
    #[serde(default)]
    pub nkey: bool,
    /// `[policy.capabilities.password]`: password hash checks.
    #[serde(default)]
    pub password: Option<PasswordConfig>,
    /// `[policy.capabilities.kv]`: reads of these NATS KV buckets.
    #[serde(default)]
    pub kv: Option<KvConfig>,
    /// `[[policy.capabilities.oidc]]`: the token issuers the policy trusts.
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
}

/// `[policy.capabilities.password]`: the cost floors under which a hash is
/// refused rather than checked. The defaults are OWASP's minimums (Password
/// Storage Cheat Sheet).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    #[serde(default = "default_argon2_min_memory_kib")]
    pub argon2_min_memory_kib: u32,
    #[serde(default = "default_argon2_min_iterations")]
    pub argon2_min_iterations: u32,
    #[serde(default = "default_bcrypt_min_cost")]
    pub bcrypt_min_cost: u32,
    /// log2 of scrypt's N.
    #[serde(default = "default_scrypt_min_log_n")]
    pub scrypt_min_log_n: u8,
    #[serde(default = "default_pbkdf2_min_iterations")]
    pub pbkdf2_min_iterations: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            argon2_min_memory_kib: default_argon2_min_memory_kib(),
            argon2_min_iterations: default_argon2_min_iterations(),
            bcrypt_min_cost: default_bcrypt_min_cost(),
            scrypt_min_log_n: default_scrypt_min_log_n(),
            pbkdf2_min_iterations: default_pbkdf2_min_iterations(),
        }
    }
}

fn default_argon2_min_memory_kib() -> u32 {
    19 * 1024
}
fn default_argon2_min_iterations() -> u32 {
    2
}
fn default_bcrypt_min_cost() -> u32 {
    10
}
fn default_scrypt_min_log_n() -> u8 {
    15
}
fn default_pbkdf2_min_iterations() -> u32 {
    600_000
}

/// `[policy.capabilities.kv]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Buckets the policy may read, in the callout's account.
    pub buckets: Vec<String>,
}

/// One `[[policy.capabilities.oidc]]` issuer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer exactly as tokens carry it in `iss`, such as
    /// `https://idp.example.com/realms/nats`.
    pub issuer: String,
    /// Audiences a token must name one of (its `aud`): the client ids of
    /// the applications whose tokens may connect.
    pub audiences: Vec<String>,
    /// Where the issuer's keys are; default: the `jwks_uri` of the
    /// issuer's `/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A JWKS file instead of fetching keys (offline, or a fixed key set);
    /// read again on every reload.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Signature algorithms accepted; default: all asymmetric ones.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// How often the keys are fetched again, in seconds.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// A PEM file of CA certificates to trust for the issuer's HTTPS (an
    /// internal identity provider), beside the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_leeway_secs() -> u64 {
    60
}
fn default_refresh_secs() -> u64 {
    3600
}

/// Signature algorithms a token may use: asymmetric only. `none` proves
/// nothing, and HMAC needs a secret the issuer shares with every verifier
/// (a JWKS does not carry it): a key set never makes one valid.
pub const TOKEN_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl CapabilitiesConfig {
    /// Whether any capability is granted.
    pub fn any(&self) -> bool {
        self.nkey || self.password.is_some() || self.kv.is_some() || !self.oidc.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if let Some(kv) = &self.kv {
            if kv.buckets.is_empty() {
                return Err("[policy.capabilities.kv] buckets is empty: list the buckets the policy may read".into());
            }
            if let Some(bad) = kv.buckets.iter().find(|b| !is_bucket_name(b)) {
                return Err(format!(
                    "[policy.capabilities.kv] buckets: {bad:?} is not a KV bucket name (letters, digits, - and _)"
                ));
            }
        }
        if let Some(password) = &self.password
            && password.bcrypt_min_cost > 31
        {
            return Err(
                "[policy.capabilities.password] bcrypt_min_cost is above 31, bcrypt's largest cost"
                    .into(),
            );
        }
        for (index, issuer) in self.oidc.iter().enumerate() {
            issuer
                .validate()
                .map_err(|e| format!("[[policy.capabilities.oidc]] #{}: {e}", index + 1))?;
        }
        let mut issuers: Vec<&str> = self.oidc.iter().map(|i| i.issuer.as_str()).collect();
        issuers.sort_unstable();
        if let Some(pair) = issuers.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!(
                "[[policy.capabilities.oidc]]: issuer {:?} is listed twice",
                pair[0]
            ));
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        for issuer in &mut self.oidc {
            for path in [issuer.jwks_file.as_mut(), issuer.ca_file.as_mut()]
                .into_iter()
                .flatten()
            {
                resolve(path);
            }
        }
    }

    /// Files a reload reads again (watched beside the configuration).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.oidc
            .iter()
            .filter_map(|issuer| issuer.jwks_file.as_deref())
    }
}

impl OidcIssuerConfig {
    /// An issuer with its defaults (leeway, refresh, every asymmetric
    /// algorithm), its keys found through discovery.
    pub fn new(issuer: &str, audiences: Vec<String>) -> OidcIssuerConfig {
        OidcIssuerConfig {
            issuer: issuer.into(),
            audiences,
            jwks_url: None,
            jwks_file: None,
            algorithms: None,
            leeway_secs: default_leeway_secs(),
            refresh_secs: default_refresh_secs(),
            ca_file: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        secure_url("issuer", &self.issuer)?;
        if let Some(url) = &self.jwks_url {
            secure_url("jwks_url", url)?;
        }
        if self.jwks_url.is_some() && self.jwks_file.is_some() {
            return Err("jwks_url and jwks_file are exclusive: keys come from one place".into());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(
                "audiences is empty: list the client ids whose tokens may connect (a token for another application must not)"
                    .into(),
            );
        }
        if let Some(algorithms) = &self.algorithms {
            if algorithms.is_empty() {
                return Err("algorithms is empty".into());
            }
            if let Some(bad) = algorithms
                .iter()
                .find(|a| !TOKEN_ALGORITHMS.contains(&a.as_str()))
            {
                return Err(format!(
                    "algorithms: {bad:?} is not accepted (one of {})",
                    TOKEN_ALGORITHMS.join(", ")
                ));
            }
        }
        if self.refresh_secs < 10 {
            return Err("refresh_secs is below 10".into());
        }
        if self.leeway_secs > 600 {
            return Err(format!(
                "leeway_secs = {} is above 600: clocks that far apart need fixing, not a leeway",
                self.leeway_secs
            ));
        }
        Ok(())
    }

    /// The algorithms accepted.
    pub fn algorithms(&self) -> Vec<String> {
        match &self.algorithms {
            Some(listed) => listed.clone(),
            None => TOKEN_ALGORITHMS.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// KV bucket names, as nats-server's JetStream accepts them.
fn is_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `url` is HTTPS, or plain HTTP to this machine (a test issuer, a sidecar):
/// keys fetched over plain HTTP from elsewhere could be anyone's.
pub(crate) fn secure_url(key: &str, url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return Ok(());
        }
        return Err(format!(
            "{key} {url:?} is plain HTTP to another machine: use https:// (keys fetched over HTTP could be anyone's)"
        ));
    }
    Err(format!("{key} {url:?} is not an https:// URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(url: &str) -> OidcIssuerConfig {
        OidcIssuerConfig::new(url, vec!["nats".into()])
    }

    #[test]
    fn issuers_are_https_or_loopback() {
        assert!(
            issuer("https://idp.example.com/realms/x")
                .validate()
                .is_ok()
        );
        assert!(issuer("http://127.0.0.1:8080/x").validate().is_ok());
        assert!(issuer("http://localhost/x").validate().is_ok());
        let remote = issuer("http://idp.example.com").validate().unwrap_err();
        assert!(remote.contains("plain HTTP"), "{remote}");
        // A user-info part cannot smuggle a remote host past the check.
        assert!(issuer("http://127.0.0.1@evil.example").validate().is_err());
        assert!(issuer("ftp://x").validate().is_err());
    }

    #[test]
    fn an_issuer_needs_audiences_and_asymmetric_algorithms() {
        let mut config = issuer("https://idp");
        config.audiences.clear();
        assert!(config.validate().unwrap_err().contains("audiences"));
        let mut config = issuer("https://idp");
        config.algorithms = Some(vec!["HS256".into()]);
        assert!(config.validate().unwrap_err().contains("\"HS256\""));
        config.algorithms = Some(vec!["ES256".into()]);
        assert!(config.validate().is_ok());
        assert_eq!(config.algorithms(), ["ES256"]);
        assert_eq!(issuer("https://idp").algorithms().len(), 9);
    }

    #[test]
    fn buckets_and_issuers_are_checked() {
        let mut config = CapabilitiesConfig {
            kv: Some(KvConfig {
                buckets: vec!["users".into(), "bad.name".into()],
            }),
            ..Default::default()
        };
        assert!(config.validate().unwrap_err().contains("\"bad.name\""));
        config.kv = Some(KvConfig { buckets: vec![] });
        assert!(config.validate().unwrap_err().contains("buckets is empty"));
        config.kv = None;
        config.oidc = vec![issuer("https://a"), issuer("https://a")];
        assert!(config.validate().unwrap_err().contains("listed twice"));
        config.oidc.pop();
        assert!(config.validate().is_ok());
        assert!(config.any());
        assert!(!CapabilitiesConfig::default().any());
    }
}
