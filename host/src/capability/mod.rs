//! Capabilities: checks the host does natively for a policy, on its
//! operator's grant — nkey signatures, password hashes, NATS KV reads and
//! OIDC tokens (the `nkey`, `password`, `kv` and `oidc` interfaces of
//! `wit/policy.wit`).
//!
//! A policy cannot open a socket or a file, and verifying an RS256 token or
//! an argon2 hash inside an interpreter is slow; so the host does these
//! itself, each behind a narrow interface that reaches only what the
//! operator configured: the issuers listed, the buckets listed. The rules:
//! - a policy importing a capability its `[policy.capabilities]` does not
//!   grant does not load ([`Grants::check_imports`]);
//! - capabilities answer in `authorize` only (`init` is snapshotted: data
//!   read there would be stale forever);
//! - time spent in them counts against the call's deadline (the async ones
//!   are cancelled with the call), and no answer quotes a secret.
//!
//! [`Services`] holds what outlives one configuration (KV mirrors, issuers'
//! cached keys, the hashing slots); [`Grants`] is what one policy was given.

pub mod fixture;
pub(crate) mod kv;
pub(crate) mod nkey;
pub(crate) mod oidc;
pub(crate) mod password;

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::{Callout, CapabilitiesConfig};
use crate::policy::WORLD_PACKAGE;

/// A capability a policy may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Nkey,
    Password,
    Kv,
    Oidc,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Nkey,
        Capability::Password,
        Capability::Kv,
        Capability::Oidc,
    ];

    /// Its WIT interface's name in the `nats:callout` package.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Nkey => "nkey",
            Capability::Password => "password",
            Capability::Kv => "kv",
            Capability::Oidc => "oidc",
        }
    }

    /// The configuration that grants it.
    pub fn how_to_grant(self) -> &'static str {
        match self {
            Capability::Nkey => "[policy.capabilities] nkey = true",
            Capability::Password => "a [policy.capabilities.password] table",
            Capability::Kv => "[policy.capabilities.kv] buckets = [...]",
            Capability::Oidc => "a [[policy.capabilities.oidc]] issuer",
        }
    }

    /// The capability a component import names (`nats:callout/kv@0.1.0`).
    fn imported_as(name: &str) -> Option<Capability> {
        let interface = name.strip_prefix(WORLD_PACKAGE)?.strip_prefix('/')?;
        let interface = interface.split('@').next()?;
        Capability::ALL
            .into_iter()
            .find(|c| c.interface() == interface)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{WORLD_PACKAGE}/{}", self.interface())
    }
}

/// The capabilities one policy was granted, handed to each of its calls.
#[derive(Default, Clone)]
pub struct Grants {
    nkey: bool,
    password: Option<password::Passwords>,
    kv: Option<kv::Buckets>,
    oidc: Option<oidc::Verifier>,
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let granted: Vec<_> = Capability::ALL
            .into_iter()
            .filter(|c| self.grants(*c))
            .map(Capability::interface)
            .collect();
        f.debug_tuple("Grants").field(&granted).finish()
    }
}

impl Grants {
    /// No capability: a policy that imports none.
    pub fn none() -> Arc<Grants> {
        Arc::new(Grants::default())
    }

    /// The same grants for a shadow policy, which must never cost the
    /// enforcing policy anything: its password checks take a hashing slot
    /// only when one is free, and its tokens never make an issuer's keys
    /// be fetched again.
    pub fn for_shadow(&self) -> Arc<Grants> {
        Arc::new(Grants {
            password: self.password.as_ref().map(password::Passwords::for_shadow),
            oidc: self.oidc.as_ref().map(oidc::Verifier::for_shadow),
            ..self.clone()
        })
    }

    /// Whether `capability` is granted.
    pub fn grants(&self, capability: Capability) -> bool {
        match capability {
            Capability::Nkey => self.nkey,
            Capability::Password => self.password.is_some(),
            Capability::Kv => self.kv.is_some(),
            Capability::Oidc => self.oidc.is_some(),
        }
    }

    /// The first capability among a component's `imports` that is not
    /// granted: such a policy must not load.
    pub fn first_refused<'a>(
        &self,
        imports: impl IntoIterator<Item = &'a str>,
    ) -> Option<Capability> {
        imports
            .into_iter()
            .filter_map(Capability::imported_as)
            .find(|capability| !self.grants(*capability))
    }

    pub(crate) fn password(&self) -> Option<&password::Passwords> {
        self.password.as_ref()
    }

    pub(crate) fn kv(&self) -> Option<&kv::Buckets> {
        self.kv.as_ref()
    }

    pub(crate) fn oidc(&self) -> Option<&oidc::Verifier> {
        self.oidc.as_ref()
    }
}

/// Why a grant could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("[[policy.capabilities.oidc]] {issuer}: {reason}")]
    Oidc { issuer: String, reason: String },
    #[error("[policy.capabilities.kv]: {0}")]
    Kv(String),
}

/// What capabilities keep between configurations: the password hashing
/// slots, each connection's KV mirrors and each issuer's cached keys, so a
/// reload neither refetches nor reloads what did not change.
pub struct Services {
    hashing: Arc<Semaphore>,
    hashes_in_flight: usize,
    mirrors: kv::Mirrors,
    issuers: oidc::Issuers,
}

impl Services {
    /// Services with `hashes_in_flight` password hashes at once, whose
    /// connections, watches and fetches run on `runtime` (the service's).
    pub fn new(
        hashes_in_flight: usize,
        runtime: tokio::runtime::Handle,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Services {
        Services {
            hashing: Arc::new(Semaphore::new(hashes_in_flight.max(1))),
            hashes_in_flight: hashes_in_flight.max(1),
            mirrors: kv::Mirrors::new(runtime.clone()),
            issuers: oidc::Issuers::new(runtime, metrics),
        }
    }

    /// The grants `config` describes for a policy of `callout` (whose NATS
    /// connection reads its KV buckets).
    pub async fn grants(
        &self,
        config: &CapabilitiesConfig,
        callout: &Callout<'_>,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> Result<Arc<Grants>, GrantError> {
        if !config.any() {
            return Ok(Grants::none());
        }
        let password = config.password.as_ref().map(|floors| {
            password::Passwords::new(floors.clone(), self.hashing.clone(), self.hashes_in_flight)
        });
        let kv = match &config.kv {
            Some(kv) => Some(self.mirrors.buckets(callout, &kv.buckets, metrics).await?),
            None => None,
        };
        let oidc = if config.oidc.is_empty() {
            None
        } else {
            Some(self.issuers.verifier(&config.oidc)?)
        };
        Ok(Arc::new(Grants {
            nkey: config.nkey,
            password,
            kv,
            oidc,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_name_capabilities_by_interface() {
        assert_eq!(
            Capability::imported_as("nats:callout/kv@0.1.0"),
            Some(Capability::Kv)
        );
        assert_eq!(
            Capability::imported_as("nats:callout/oidc"),
            Some(Capability::Oidc)
        );
        assert_eq!(Capability::imported_as("nats:callout/host@0.1.0"), None);
        assert_eq!(Capability::imported_as("other:callout/kv@0.1.0"), None);
        assert_eq!(Capability::imported_as("wasi:io/poll@0.2.0"), None);
        assert_eq!(Capability::Kv.to_string(), "nats:callout/kv");
    }

    #[test]
    fn only_granted_imports_pass() {
        let grants = Grants {
            nkey: true,
            ..Default::default()
        };
        let imports = [
            "wasi:cli/environment@0.2.0",
            "nats:callout/host@0.1.0",
            "nats:callout/nkey@0.1.0",
        ];
        assert_eq!(grants.first_refused(imports), None);
        let with_kv = ["nats:callout/nkey@0.1.0", "nats:callout/kv@0.1.0"];
        assert_eq!(grants.first_refused(with_kv), Some(Capability::Kv));
        assert_eq!(
            Grants::none().first_refused(imports),
            Some(Capability::Nkey)
        );
        assert_eq!(format!("{grants:?}"), "Grants([\"nkey\"])");
    }
}
