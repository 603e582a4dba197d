//! The composition root: from a configuration to a running service. Keys,
//! a sandbox sized for every binding, the policy compiled and initialized,
//! its binding in the registry; then [`run`](super::run) until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Binding, Registry};
use crate::authz::Decider;
use crate::config::Config;
use crate::keys;
use crate::policy::{Sandbox, SandboxLimits};
use crate::protocol::verify::Verifier;

/// Builds the service `config` describes and serves until `shutdown`.
pub async fn launch(config: &Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (issuer, xkey) = keys::load_issuer(config)?;
    let source = config.policy_source();
    let sandbox = Sandbox::new(SandboxLimits::for_policies(
        config.service.max_in_flight,
        [&source.limits],
    ))
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))?;
    let started = Instant::now();
    let decider = Decider::load(
        &sandbox,
        &source,
        config.grant_rules(),
        config.policy_cache().as_ref(),
    )
    .await?;
    release_freed_memory();
    let policy = decider.policy();
    tracing::info!(
        policy = policy.name(),
        sha256 = policy.digest(),
        from_cache = policy.loaded_from_cache(),
        load_ms = started.elapsed().as_millis() as u64,
        calls_per_instance = source.limits.calls_per_instance,
        "policy loaded"
    );
    let placement = keys::load_placement(config, &issuer.account)?;
    let binding = Binding::new(issuer, placement, decider, config.policy.deny);
    let leeway = Duration::from_millis(config.service.expiry_leeway_ms);
    let mut registry = Registry::new(Verifier::new(xkey.map(Arc::new), leeway));
    registry.add(binding);
    super::run(config, Arc::new(registry), shutdown).await
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
