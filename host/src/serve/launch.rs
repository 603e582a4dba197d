//! The composition root: from a configuration to a running service. Keys,
//! a sandbox sized for every tenant, each tenant's policy compiled and
//! initialized, its binding in the registry behind its route; then
//! [`run`](super::run) until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Binding, Registry};
use crate::authz::Decider;
use crate::config::{Config, TenantConfig};
use crate::keys;
use crate::policy::{PolicySource, Sandbox, SandboxLimits};
use crate::protocol::verify::Verifier;
use crate::untrusted::reason_text;

/// Builds the service `config` describes and serves until `shutdown`.
pub async fn launch(config: &Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (_, xkey) = keys::load_issuer(config)?;
    let service = &config.service;
    let sources: Vec<PolicySource> = config
        .tenants
        .iter()
        .map(|tenant| tenant.policy.source(service))
        .collect();
    let sandbox = Sandbox::new(SandboxLimits::for_policies(
        service.max_in_flight,
        sources.iter().map(|source| &source.limits),
    ))
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))?;
    let leeway = Duration::from_millis(service.expiry_leeway_ms);
    let mut registry = Registry::new(Verifier::new(xkey.map(Arc::new), leeway))
        .with_in_flight(service.max_in_flight);
    for (tenant, source) in config.tenants.iter().zip(&sources) {
        let binding = tenant_binding(config, tenant, source, &sandbox).await?;
        let account = binding.account().to_string();
        registry.insert_tenant(
            account,
            &tenant.name,
            tenant.route.clone(),
            tenant.max_in_flight,
            binding,
        );
    }
    release_freed_memory();
    prune_caches(config, &registry);
    super::run(config, Arc::new(registry), shutdown).await
}

/// Removes the snapshots of the tenants' components built with settings no
/// tenant uses any more, cache folder by cache folder.
fn prune_caches(config: &Config, registry: &Registry) {
    let in_use: Vec<_> = registry
        .tenants()
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
    source: &PolicySource,
    sandbox: &Arc<Sandbox>,
) -> anyhow::Result<Binding> {
    let (issuer, _) = keys::load_issuer(config)?;
    let placement = keys::load_placement(config, &issuer.account)?;
    let policy = &tenant.policy;
    let started = Instant::now();
    let loaded = Decider::load(
        sandbox,
        source,
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
