//! The composition root: from a configuration to a running service. The
//! metrics listener first (alive while policies load); a sandbox sized for
//! every tenant; for each callout (each auth account), its keys read once
//! and a registry holding the binding of each of its tenants — its policy
//! compiled, initialized and through its golden kit — behind its route;
//! then [`run`](super::run) until shutdown, with the [`Reloader`] beside it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use super::reload::{Reloader, Triggers};
use super::{Binding, Observers, Registry, RegistryCell, Shadow};
use crate::author::kit;
use crate::authz::Decider;
use crate::capability::fixture::{Fixture, KIT_FILE};
use crate::capability::{Grants, Services};
use crate::config::{Callout, Config, TenantConfig};
use crate::keys;
use crate::policy::{PolicyLimits, Sandbox, SandboxLimits};
use crate::protocol::mint::{AccountKey, Placement};
use crate::protocol::verify::Verifier;
use crate::untrusted::reason_text;

/// Builds the service the configuration at `path` describes (`config`, as
/// read from it) and serves until `shutdown`, reloading on SIGHUP and on
/// changes of its files.
pub async fn launch(
    path: &Path,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let triggers = Triggers::listen(path, config);
    let observers = Observers::start();
    if let Some(address) = config.metrics.listen {
        super::http::listen(address, observers.metrics.clone(), observers.status.clone()).await?;
        observers
            .metrics
            .register_collector(observers.status.clone());
    }
    let service = &config.service;
    let sandbox_limits = sandbox_limits(config);
    let sandbox = Sandbox::new(sandbox_limits)
        .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))?;
    let parts = Parts {
        sandbox,
        sandbox_limits,
        in_flight: Arc::new(Semaphore::new(service.max_in_flight.max(1))),
        shadow_slots: Arc::new(Semaphore::new(service.shadow_in_flight.max(1))),
        observers: observers.clone(),
        capabilities: Services::new(
            service.password_hashes_in_flight(),
            tokio::runtime::Handle::current(),
            observers.metrics.clone(),
        ),
    };
    let registries = parts.build(config, Start::First).await?;
    release_freed_memory();
    prune_caches(config, registries.iter());
    let cells: Vec<RegistryCell> = registries
        .into_iter()
        .map(|registry| Arc::new(ArcSwap::from_pointee(registry)))
        .collect();
    let served = config
        .callouts()
        .into_iter()
        .zip(cells.iter().cloned())
        .collect();
    let reloader = Reloader::new(path, config.clone(), Arc::new(parts), cells, triggers);
    let reloading = tokio::spawn(reloader.run());
    let ended = super::run(service, served, &observers, shutdown).await;
    // Nothing is swapped until a reload has built everything: stopping one
    // half-way changes nothing, and shutdown does not wait for it.
    reloading.abort();
    ended
}

/// The sandbox's size for every tenant of `config` and their shadows.
pub(super) fn sandbox_limits(config: &Config) -> SandboxLimits {
    let service = &config.service;
    let limits: Vec<PolicyLimits> = config
        .tenants
        .iter()
        .flat_map(|tenant| {
            let shadow = tenant.policy.shadow_source(service);
            std::iter::once(tenant.policy.limits(service)).chain(shadow.map(|source| source.limits))
        })
        .collect();
    let mut sandbox = SandboxLimits::for_policies(
        service
            .max_in_flight
            .saturating_add(service.shadow_in_flight),
        limits.iter(),
    );
    // During a reload, the new policies' idle instances fill up while the
    // old ones still hold theirs.
    sandbox.max_idle_instances = sandbox.max_idle_instances.saturating_mul(2);
    sandbox
}

/// Whether registries are built at start or for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// At start: a tenant whose policy fails is denied with the reason
    /// (unless strict or single), and the others are served.
    First,
    /// For a reload: any failure fails the reload, and the running
    /// registries keep serving.
    Reload,
}

/// What outlives one configuration: the sandbox, the service's slots, the
/// observers and the capabilities' shared state.
pub(super) struct Parts {
    pub(super) sandbox: Arc<Sandbox>,
    pub(super) sandbox_limits: SandboxLimits,
    pub(super) in_flight: Arc<Semaphore>,
    /// Shadow calls running at once, all tenants together.
    pub(super) shadow_slots: Arc<Semaphore>,
    pub(super) observers: Observers,
    pub(super) capabilities: Services,
}

impl Parts {
    /// One registry per callout of `config`, in the order of
    /// [`Config::callouts`]: its keys read, every tenant's policy loaded.
    pub(super) async fn build(
        &self,
        config: &Config,
        start: Start,
    ) -> anyhow::Result<Vec<Registry>> {
        let leeway = Duration::from_millis(config.service.expiry_leeway_ms);
        let mut built: Vec<Registry> = Vec::new();
        let callouts = config.callouts();
        for (index, callout) in callouts.iter().enumerate() {
            let (issuer, xkey) = keys::load_issuer(callout)?;
            let shared = callouts[..index]
                .iter()
                .zip(&built)
                .find(|(other, registry)| {
                    other.nats.servers == callout.nats.servers
                        && registry.accounts().any(|a| a == issuer.account)
                });
            if let Some((other, _)) = shared {
                bail!(
                    "{} and {} hold keys of the same account {}: on the same servers, nats-server would split that account's requests between them; give the tenants of one auth account one [issuer] and routes",
                    other.table("issuer"),
                    callout.table("issuer"),
                    issuer.account
                );
            }
            let placement = Arc::new(keys::load_placement(callout, &issuer.account)?);
            let issuer = Arc::new(issuer);
            let label: Arc<str> = callout.label().into();
            let mut registry = Registry::new(Verifier::new(xkey.map(Arc::new), leeway))
                .with_in_flight(self.in_flight.clone())
                .with_gauges(self.observers.metrics.callout_gauges(&label));
            for tenant in &callout.tenants {
                let binding = self
                    .tenant_binding(config, callout, tenant, &issuer, &placement, start)
                    .await?;
                registry.insert_tenant(
                    issuer.account.clone(),
                    &tenant.name,
                    tenant.route.clone(),
                    tenant.max_in_flight,
                    binding,
                );
            }
            built.push(registry);
        }
        Ok(built)
    }

    /// One tenant's binding: its policy loaded and through its golden kit,
    /// or — when that fails at start and the service has several tenants,
    /// not started strictly — a binding that denies the tenant's requests
    /// with the reason, so the others are served.
    async fn tenant_binding(
        &self,
        config: &Config,
        callout: &Callout<'_>,
        tenant: &TenantConfig,
        issuer: &Arc<AccountKey>,
        placement: &Arc<Placement>,
        start: Start,
    ) -> anyhow::Result<Binding> {
        let (issuer, placement) = (issuer.clone(), placement.clone());
        let policy = &tenant.policy;
        let grants = self
            .capabilities
            .grants(&policy.capabilities, callout, &self.observers.metrics)
            .await;
        let loaded = match grants {
            Ok(grants) => self
                .load_decider(config, tenant, &grants)
                .await
                .map(|decider| (decider, grants)),
            Err(error) => Err(error.into()),
        };
        match loaded {
            Ok((decider, grants)) => {
                let mut binding = Binding::new(issuer, placement, decider, policy.deny);
                if let Some(shadow) = self.load_shadow(config, tenant, &grants).await {
                    binding = binding.with_shadow(shadow);
                }
                Ok(with_audit(binding, tenant))
            }
            Err(error)
                if start == Start::First
                    && !config.single_policy()
                    && !config.service.strict_start =>
            {
                // The error may quote the tenant's component: escaped and bounded.
                tracing::error!(
                    tenant = %tenant.name,
                    error = reason_text(&format!("{error:#}")),
                    "the tenant's policy did not load: its requests are denied, the other tenants are served"
                );
                let binding =
                    Binding::unavailable(issuer, placement, &format!("{error:#}"), policy.deny);
                Ok(with_audit(binding, tenant))
            }
            Err(error) if config.single_policy() => Err(error),
            Err(error) => Err(error.context(format!("tenant {}", tenant.name))),
        }
    }

    /// Loads the tenant's policy with its capabilities, and runs its
    /// golden kit if it has one.
    async fn load_decider(
        &self,
        config: &Config,
        tenant: &TenantConfig,
        grants: &Arc<Grants>,
    ) -> anyhow::Result<Decider> {
        let policy = &tenant.policy;
        let mut source = policy.source(&config.service);
        source.grants = grants.clone();
        let started = Instant::now();
        let decider = Decider::load(
            &self.sandbox,
            &source,
            policy.grant_rules(),
            policy.cache().as_ref(),
        )
        .await?;
        let loaded = decider.policy();
        self.observers
            .metrics
            .policy_loaded(&tenant.name, loaded.loaded_from_cache());
        if let Some(golden) = &policy.golden_kit {
            // A kit with capability data runs against it, not against live
            // buckets and issuers (still loading at start, and not the
            // kit's to depend on): the same loaded policy, re-bound to the
            // fixture's grants.
            match Fixture::of_kit(golden)? {
                Some(fixture) => {
                    let offline =
                        fixture
                            .grants_under(&policy.capabilities)
                            .with_context(|| {
                                format!("golden kit {}", golden.join(KIT_FILE).display())
                            })?;
                    pass_golden_kit(&decider.with_grants(offline)?, golden).await?;
                }
                None => pass_golden_kit(&decider, golden).await?,
            }
        }
        tracing::info!(
            tenant = %tenant.name,
            policy = loaded.name(),
            sha256 = loaded.digest(),
            from_cache = loaded.loaded_from_cache(),
            load_ms = started.elapsed().as_millis() as u64,
            calls_per_instance = source.limits.calls_per_instance,
            golden_kit = policy.golden_kit.as_ref().map(|kit| kit.display().to_string()),
            "policy loaded"
        );
        Ok(decider)
    }
}

impl Parts {
    /// The tenant's shadow policy, if it has one, with the tenant's
    /// capabilities. One that fails to load is logged and the tenant is
    /// served without it, at start and at a reload alike: a candidate must
    /// never cost a sign-in or a fix.
    async fn load_shadow(
        &self,
        config: &Config,
        tenant: &TenantConfig,
        grants: &Arc<Grants>,
    ) -> Option<Shadow> {
        let (Some(mut source), Some(shadow)) = (
            tenant.policy.shadow_source(&config.service),
            &tenant.policy.shadow,
        ) else {
            return None;
        };
        source.grants = grants.for_shadow();
        let loaded = Decider::load(
            &self.sandbox,
            &source,
            tenant.policy.grant_rules(),
            tenant.policy.cache().as_ref(),
        )
        .await;
        match loaded {
            Ok(decider) => {
                tracing::info!(
                    tenant = %tenant.name,
                    shadow = decider.policy().name(),
                    sha256 = decider.policy().digest(),
                    sample = shadow.sample,
                    "shadow policy loaded: it sees live requests and never decides"
                );
                Some(Shadow::new(
                    &tenant.name,
                    decider,
                    shadow.sample,
                    self.shadow_slots.clone(),
                    self.observers.metrics.clone(),
                ))
            }
            Err(error) => {
                tracing::error!(
                    tenant = %tenant.name,
                    error = reason_text(&error),
                    "the shadow policy did not load: the tenant is served without it"
                );
                None
            }
        }
    }
}

/// `binding`, recording its decisions where the tenant's `[policy.audit]` says.
fn with_audit(binding: Binding, tenant: &TenantConfig) -> Binding {
    match &tenant.policy.audit {
        Some(audit) => binding.with_audit(Arc::new(audit.into())),
        None => binding,
    }
}

/// Runs the golden kit at `kit` against `decider`; an error names the first
/// failing case (and how many failed).
async fn pass_golden_kit(decider: &Decider, kit: &Path) -> anyhow::Result<()> {
    let results = kit::run_cases(decider, kit)
        .await
        .map_err(|e| anyhow::anyhow!("golden kit {}: {e:#}", kit.display()))?;
    if results.is_empty() {
        bail!(
            "golden kit {}: no cases (expected {}/cases/*.json)",
            kit.display(),
            kit.display()
        );
    }
    let failed: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
    if let Some(first) = failed.first() {
        bail!(
            "golden kit {}: {} of {} cases failed; {} ({}): {}",
            kit.display(),
            failed.len(),
            results.len(),
            first.file,
            first.description,
            first.failure.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Removes the snapshots of the tenants' components (and their shadows')
/// built with settings none uses any more, cache folder by cache folder.
fn prune_caches<'a>(config: &Config, registries: impl Iterator<Item = &'a Registry>) {
    let in_use: Vec<_> = registries
        .flat_map(Registry::tenants)
        .flat_map(|(_, binding)| {
            let shadow = binding.shadow().map(Shadow::decider);
            let deciders = binding.decider().into_iter().chain(shadow);
            deciders
                .map(|decider| decider.policy().cache_key().clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut dirs: Vec<_> = config
        .tenants
        .iter()
        .filter_map(|tenant| tenant.policy.cache())
        .collect();
    dirs.sort_by(|a, b| a.dir().cmp(b.dir()));
    dirs.dedup_by(|a, b| a.dir() == b.dir());
    for cache in dirs {
        cache.retain(&in_use);
    }
}

/// Hands the heap memory freed after compiling a policy (hundreds of MiB for a
/// JavaScript or Python runtime) back to the OS: glibc keeps it otherwise, and
/// the service's resident memory would stay at the compiler's peak.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's
    // heaps; it does not touch allocated blocks.
    unsafe {
        libc::malloc_trim(0);
    }
}
