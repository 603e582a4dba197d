//! The composition root: from a configuration to a running service. A
//! sandbox sized for every tenant; for each callout (each auth account),
//! its keys read once and a registry holding the binding of each of its
//! tenants — its policy compiled and initialized — behind its route; then
//! [`run`](super::run) until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::Semaphore;

use super::{Binding, Registry};
use crate::authz::Decider;
use crate::config::{Callout, Config, TenantConfig};
use crate::keys;
use crate::policy::{PolicyLimits, Sandbox, SandboxLimits};
use crate::protocol::mint::{AccountKey, Placement};
use crate::protocol::verify::Verifier;
use crate::untrusted::reason_text;

/// Builds the service `config` describes and serves until `shutdown`.
pub async fn launch(config: &Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let service = &config.service;
    let limits: Vec<PolicyLimits> = config
        .tenants
        .iter()
        .map(|tenant| tenant.policy.limits(service))
        .collect();
    let sandbox = Sandbox::new(SandboxLimits::for_policies(
        service.max_in_flight,
        limits.iter(),
    ))
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))?;
    let leeway = Duration::from_millis(service.expiry_leeway_ms);
    let in_flight = Arc::new(Semaphore::new(service.max_in_flight.max(1)));
    let mut served: Vec<(Callout, Arc<Registry>)> = Vec::new();
    for callout in config.callouts() {
        let (issuer, xkey) = keys::load_issuer(&callout)?;
        if let Some((other, _)) = served.iter().find(|(other, registry)| {
            other.nats.servers == callout.nats.servers
                && registry.accounts().any(|a| a == issuer.account)
        }) {
            bail!(
                "{} and {} hold keys of the same account {}: on the same servers, nats-server would split that account's requests between them; give the tenants of one auth account one [issuer] and routes",
                other.table("issuer"),
                callout.table("issuer"),
                issuer.account
            );
        }
        let placement = Arc::new(keys::load_placement(&callout, &issuer.account)?);
        let issuer = Arc::new(issuer);
        let mut registry = Registry::new(Verifier::new(xkey.map(Arc::new), leeway))
            .with_in_flight(in_flight.clone());
        for tenant in &callout.tenants {
            let binding = tenant_binding(config, tenant, &issuer, &placement, &sandbox).await?;
            registry.insert_tenant(
                issuer.account.clone(),
                &tenant.name,
                tenant.route.clone(),
                tenant.max_in_flight,
                binding,
            );
        }
        served.push((callout, Arc::new(registry)));
    }
    release_freed_memory();
    prune_caches(config, served.iter().map(|(_, registry)| &**registry));
    super::run(service, served, shutdown).await
}

/// Removes the snapshots of the tenants' components built with settings no
/// tenant uses any more, cache folder by cache folder.
fn prune_caches<'a>(config: &Config, registries: impl Iterator<Item = &'a Registry>) {
    let in_use: Vec<_> = registries
        .flat_map(Registry::tenants)
        .filter_map(|(_, binding)| {
            let key = binding.decider()?.policy().cache_key().clone();
            Some(key)
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

/// One tenant's binding: its policy loaded, or — when it fails to load and
/// the service has several tenants, not started strictly — a binding that
/// denies the tenant's requests with the reason, so the others are served.
async fn tenant_binding(
    config: &Config,
    tenant: &TenantConfig,
    issuer: &Arc<AccountKey>,
    placement: &Arc<Placement>,
    sandbox: &Arc<Sandbox>,
) -> anyhow::Result<Binding> {
    let (issuer, placement) = (issuer.clone(), placement.clone());
    let policy = &tenant.policy;
    let source = policy.source(&config.service);
    let started = Instant::now();
    let loaded = Decider::load(
        sandbox,
        &source,
        policy.grant_rules(),
        policy.cache().as_ref(),
    )
    .await;
    let decider = match loaded {
        Ok(decider) => decider,
        Err(error) if !config.single_policy() && !config.service.strict_start => {
            // The error may quote the tenant's component: escaped and bounded.
            tracing::error!(
                tenant = %tenant.name,
                error = reason_text(&error),
                "the tenant's policy did not load: its requests are denied, the other tenants are served"
            );
            return Ok(Binding::unavailable(
                issuer,
                placement,
                &error.to_string(),
                policy.deny,
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let loaded = decider.policy();
    tracing::info!(
        tenant = %tenant.name,
        policy = loaded.name(),
        sha256 = loaded.digest(),
        from_cache = loaded.loaded_from_cache(),
        load_ms = started.elapsed().as_millis() as u64,
        calls_per_instance = source.limits.calls_per_instance,
        "policy loaded"
    );
    Ok(Binding::new(issuer, placement, decider, policy.deny))
}

/// Hands the heap memory freed after compiling a policy (hundreds of MiB for a
/// JavaScript or Python runtime) back to the OS: glibc keeps it otherwise, and
/// the service's resident memory would stay at the compiler's peak.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's
    // heaps; it does not touch allocated blocks.
    unsafe {
        libc::malloc_trim(0);
    }
}
