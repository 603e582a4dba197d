//! Callouts: the configuration grouped the way nats-server sees it. Each
//! auth callout the service answers for — the one of a config-mode server,
//! or each auth account of an operator-mode one — is a connection into it,
//! the issuer keys (and xkey) it was configured with, the accounts users
//! may be placed into, and the tenants whose requests arrive on it.
//!
//! The top-level `[nats]`, `[issuer]` and `[accounts]` are the shared
//! callout of every tenant without tables of its own; a tenant with
//! `[tenant.nats]` and `[tenant.issuer]` (its own auth account) is alone on
//! its own callout. Secrets are resolved here, for one callout at a time.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    AccountConfig, Config, ConfigError, ENV_ISSUER_SEED, ENV_NATS_PASSWORD, ENV_NATS_TOKEN,
    ENV_XKEY_SEED, IssuerConfig, NatsConfig, TenantConfig, is_account_key,
};

/// One auth callout: where its requests come from, the keys that answer
/// them, and the tenants they are for.
#[derive(Debug, Clone)]
pub struct Callout<'a> {
    /// The tenant whose own tables these are; `None` for the shared ones.
    owner: Option<&'a str>,
    /// The connection: `[nats]`, or `[tenant.nats]` with the servers of
    /// `[nats]` when it names none.
    pub nats: NatsConfig,
    pub issuer: &'a IssuerConfig,
    /// Operator mode: the accounts users are placed into, by name.
    pub accounts: &'a BTreeMap<String, AccountConfig>,
    /// In route order.
    pub tenants: Vec<&'a TenantConfig>,
}

impl Config {
    /// Every callout the service answers for: the shared one first (when a
    /// tenant uses it), then one per tenant with its own auth account.
    pub fn callouts(&self) -> Vec<Callout<'_>> {
        let shared = Callout {
            owner: None,
            nats: self.nats.clone(),
            issuer: &self.issuer,
            accounts: &self.accounts,
            tenants: self.tenants.iter().filter(|t| !t.owns_callout()).collect(),
        };
        let owned = self.tenants.iter().filter_map(|tenant| {
            let (Some(nats), Some(issuer)) = (&tenant.nats, &tenant.issuer) else {
                return None;
            };
            let mut nats = nats.clone();
            if nats.servers.is_empty() {
                nats.servers = self.nats.servers.clone();
            }
            Some(Callout {
                owner: Some(&tenant.name),
                nats,
                issuer,
                accounts: &tenant.accounts,
                tenants: vec![tenant],
            })
        });
        (!shared.tenants.is_empty())
            .then_some(shared)
            .into_iter()
            .chain(owned)
            .collect()
    }
}

impl TenantConfig {
    /// Whether the tenant has its own auth account (`[tenant.nats]` and
    /// `[tenant.issuer]`) rather than the shared one.
    pub fn owns_callout(&self) -> bool {
        self.issuer.is_some()
    }
}

/// A secret the service needs. Each comes from a file or the configuration
/// itself; those of the shared callout may come from an environment
/// variable instead (for containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret<'a> {
    IssuerSeed,
    XkeySeed,
    NatsPassword,
    NatsToken,
    NatsNkeySeed,
    /// `[accounts.NAME] signing_key_file`.
    AccountSigningKey(&'a str),
}

impl<'a> Callout<'a> {
    /// The tenant whose callout this is, `None` for the shared one.
    pub fn owner(&self) -> Option<&'a str> {
        self.owner
    }

    /// How log lines name the callout: its tenant, or `-` for the shared
    /// one (a name no tenant may have).
    pub fn label(&self) -> &'a str {
        self.owner.unwrap_or("-")
    }

    /// Operator mode: `[accounts]` maps the policies' account names to
    /// account keys.
    pub fn operator_mode(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// How errors name one of its tables (`issuer`, `accounts.APP`):
    /// `[issuer]`, or `[[tenant]] "acme" [tenant.issuer]`.
    pub fn table(&self, name: &str) -> String {
        match self.owner {
            None => format!("[{name}]"),
            Some(tenant) => format!("[[tenant]] {tenant:?} [tenant.{name}]"),
        }
    }

    /// Resolves a secret: its environment variable (the shared callout's,
    /// for those that have one), else its file, else the value written in
    /// the configuration; `None` when none is set. Errors name the file,
    /// never the secret.
    pub fn secret(&self, which: Secret<'_>) -> Result<Option<String>, ConfigError> {
        let (env, file, inline, what): (_, Option<&Path>, Option<&str>, _) = match which {
            Secret::IssuerSeed => (
                Some(ENV_ISSUER_SEED),
                self.issuer.seed_file.as_deref(),
                None,
                format!("{} seed_file", self.table("issuer")),
            ),
            Secret::XkeySeed => (
                Some(ENV_XKEY_SEED),
                self.issuer.xkey_seed_file.as_deref(),
                None,
                format!("{} xkey_seed_file", self.table("issuer")),
            ),
            Secret::NatsPassword => (
                Some(ENV_NATS_PASSWORD),
                None,
                self.nats.password.as_deref(),
                format!("{} password", self.table("nats")),
            ),
            Secret::NatsToken => (
                Some(ENV_NATS_TOKEN),
                None,
                self.nats.token.as_deref(),
                format!("{} token", self.table("nats")),
            ),
            Secret::NatsNkeySeed => (
                None,
                self.nats.nkey_seed_file.as_deref(),
                None,
                format!("{} nkey_seed_file", self.table("nats")),
            ),
            Secret::AccountSigningKey(name) => (
                None,
                self.accounts
                    .get(name)
                    .map(|account| account.signing_key_file.as_path()),
                None,
                format!(
                    "{} signing_key_file",
                    self.table(&format!("accounts.{name}"))
                ),
            ),
        };
        let env = env.filter(|_| self.owner.is_none());
        if let Some(value) = env.and_then(|name| std::env::var(name).ok()) {
            return Ok(Some(value.trim().to_string()));
        }
        if let Some(path) = file {
            return std::fs::read_to_string(path)
                .map(|text| Some(text.trim().to_string()))
                .map_err(|source| ConfigError::Secret {
                    what,
                    path: path.to_path_buf(),
                    source,
                });
        }
        Ok(inline.map(str::to_string))
    }

    /// Checks the callout's tables and how its tenants use them.
    pub(super) fn validate(&self) -> Result<(), String> {
        self.validate_nats()?;
        let has_seed = self.issuer.seed_file.is_some()
            || (self.owner.is_none() && std::env::var_os(ENV_ISSUER_SEED).is_some());
        if !has_seed {
            let or_env = match self.owner {
                None => format!(" (or set the environment variable {ENV_ISSUER_SEED})"),
                Some(_) => String::new(),
            };
            return Err(format!(
                "{} seed_file is missing{or_env}",
                self.table("issuer")
            ));
        }
        self.validate_accounts()
    }

    fn validate_nats(&self) -> Result<(), String> {
        let nats = &self.nats;
        let table = self.table("nats");
        if nats.servers.is_empty() {
            return Err(format!(
                "{table} servers is empty: name at least one server URL"
            ));
        }
        let methods = [
            nats.user.is_some() || nats.password.is_some(),
            nats.token.is_some(),
            nats.nkey_seed_file.is_some(),
            nats.creds_file.is_some(),
        ];
        if self.owner.is_some() && !methods.contains(&true) {
            // Without, the connection would be anonymous, or the server's
            // no_auth_user: not a user of the tenant's auth account.
            return Err(format!(
                "{table} has no credentials: log in as a user of the tenant's auth account (creds_file, nkey_seed_file, user/password or token)"
            ));
        }
        if nats.tls_cert_file.is_some() != nats.tls_key_file.is_some() {
            return Err(format!(
                "{table} tls_cert_file and tls_key_file go together: the service's certificate and its key"
            ));
        }
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(format!(
                "{table} sets more than one of user/password, token, nkey_seed_file and creds_file: choose one"
            ));
        }
        if nats.password.is_some() && nats.user.is_none() {
            return Err(format!("{table} password is set without user"));
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), String> {
        let issuer = self.table("issuer");
        if !self.operator_mode() {
            if self.issuer.account.is_some() || self.issuer.allowed_accounts.is_some() {
                return Err(format!(
                    "{issuer} account and allowed_accounts are for operator mode: add an {} table for each account the policy places users into",
                    self.table("accounts.NAME")
                ));
            }
            return Ok(());
        }
        for tenant in &self.tenants {
            let Some(missing) = tenant
                .policy
                .accounts
                .iter()
                .find(|name| !self.accounts.contains_key(*name))
            else {
                continue;
            };
            let policy = if tenant.name == super::DEFAULT_TENANT && self.tenants.len() == 1 {
                "[policy]".to_string()
            } else {
                format!("[[tenant]] {:?} [tenant.policy]", tenant.name)
            };
            return Err(format!(
                "{policy} accounts names {missing:?}, which has no {} table: in operator mode every account needs its public_key and signing_key_file",
                self.table(&format!("accounts.{missing}"))
            ));
        }
        let keys = self.accounts.iter().map(|(name, account)| {
            (
                format!("{} public_key", self.table(&format!("accounts.{name}"))),
                &account.public_key,
            )
        });
        let auth = self
            .issuer
            .account
            .iter()
            .map(|key| (format!("{issuer} account"), key));
        for (what, key) in keys.chain(auth) {
            if !is_account_key(key) {
                return Err(format!(
                    "{what} = {key:?} is not an account public key (A...)"
                ));
            }
        }
        if self.issuer.account.is_none() {
            return Err(format!(
                "{issuer} account is required in operator mode: the auth account's public key (A...), which requests name and responses are signed for"
            ));
        }
        let allowed = self.issuer.allowed_accounts.iter().flatten();
        if allowed.clone().count() > 1 && allowed.clone().any(|key| key == "*") {
            return Err(format!(
                "{issuer} allowed_accounts mixes \"*\" with account keys: nats-server honours \"*\" only alone"
            ));
        }
        if let Some(bad) = allowed
            .clone()
            .find(|key| *key != "*" && !is_account_key(key))
        {
            return Err(format!(
                "{issuer} allowed_accounts has {bad:?}, which is neither an account public key nor \"*\""
            ));
        }
        Ok(())
    }
}
