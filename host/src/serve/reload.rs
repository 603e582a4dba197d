//! Reloading without a restart: on SIGHUP, or when the configuration file or
//! a policy file changes (checked every second, so a Kubernetes ConfigMap's
//! symlink swap is seen as well as an editor's write), the configuration is
//! read again and every callout's registry is built anew beside the running
//! one — keys read again (rotation), each tenant's policy compiled (or taken
//! from the cache), initialized and run through its golden kit. Only when
//! all of it succeeded are the registries swapped; requests in flight
//! finish on the registry they started with. Any failure leaves everything
//! as it was, logs why (with the failing golden case) and counts a failed
//! reload.
//!
//! What a reload cannot change, because it is fixed when the process starts
//! — `[service]`, `[metrics]`, the connections (`[nats]`, each
//! `[tenant.nats]`) and a sandbox large enough for the new limits — fails
//! the reload with the reason: it takes a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::RegistryCell;
use super::launch::{Parts, Start, prune_caches, release_freed_memory, sandbox_limits};
use crate::config::Config;
use crate::untrusted::reason_text;

/// How often watched files are checked.
const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// Rebuilds and swaps the callouts' registries when asked.
pub(super) struct Reloader {
    path: PathBuf,
    /// The configuration in force.
    running: Config,
    parts: Parts,
    /// One per callout, in the order of [`Config::callouts`].
    cells: Vec<RegistryCell>,
}

/// The files a reload reads, with their size and modification time when
/// they could be read.
type Fingerprint = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

impl Reloader {
    pub(super) fn new(
        path: &Path,
        running: Config,
        parts: Parts,
        cells: Vec<RegistryCell>,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            running,
            parts,
            cells,
        }
    }

    /// Reloads on SIGHUP and, with `[service] watch`, when a watched file
    /// changes and has stayed unchanged for a check (so a file being written
    /// is not read half-way), until `stop` is set.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: reload by file changes only");
                None
            }
        };
        let mut ticker = tokio::time::interval(WATCH_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.fingerprint();
        let mut settling: Option<Fingerprint> = None;
        loop {
            tokio::select! {
                _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    self.reload("SIGHUP").await;
                    seen = self.fingerprint();
                }
                _ = ticker.tick(), if self.running.service.watch => {
                    let now = self.fingerprint();
                    if now == seen {
                        settling = None;
                    } else if settling.as_ref() == Some(&now) {
                        settling = None;
                        self.reload("file change").await;
                        // A failed reload is not retried until a file
                        // changes again (or SIGHUP).
                        seen = self.fingerprint();
                    } else {
                        settling = Some(now);
                    }
                }
            }
        }
    }

    /// The configuration file and every tenant's policy file.
    fn fingerprint(&self) -> Fingerprint {
        let mut paths = vec![self.path.clone()];
        paths.extend(
            self.running
                .tenants
                .iter()
                .map(|tenant| tenant.policy.wasm.clone()),
        );
        paths
            .into_iter()
            .map(|path| {
                let stamp = std::fs::metadata(&path)
                    .ok()
                    .and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
                (path, stamp)
            })
            .collect()
    }

    /// One reload, logged and counted.
    async fn reload(&mut self, trigger: &'static str) {
        let started = Instant::now();
        tracing::info!(trigger, config = %self.path.display(), "reloading");
        let metrics = self.parts.observers.metrics.clone();
        match self.try_reload().await {
            Ok(()) => {
                metrics.reload(true);
                tracing::info!(
                    trigger,
                    reload_ms = started.elapsed().as_millis() as u64,
                    tenants = self.running.tenants.len(),
                    "reloaded: new requests are answered by the new configuration"
                );
            }
            Err(error) => {
                metrics.reload(false);
                // The error may quote a policy's output: escaped and bounded.
                tracing::error!(
                    trigger,
                    error = reason_text(&format!("{error:#}")),
                    "reload failed: the running configuration and policies keep serving"
                );
            }
        }
    }

    /// Builds everything the new configuration needs, then swaps it in.
    async fn try_reload(&mut self) -> anyhow::Result<()> {
        let config = Config::load(&self.path)?;
        self.needs_no_restart(&config)?;
        let registries = self.parts.build(&config, Start::Reload).await?;
        for (cell, registry) in self.cells.iter().zip(registries) {
            cell.store(Arc::new(registry));
        }
        release_freed_memory();
        let current: Vec<_> = self.cells.iter().map(|cell| cell.load_full()).collect();
        prune_caches(&config, current.iter().map(|registry| &**registry));
        self.running = config;
        Ok(())
    }

    /// Refuses a configuration that changes what only a restart changes.
    fn needs_no_restart(&self, config: &Config) -> anyhow::Result<()> {
        let running = &self.running;
        let restart = |what: &str| {
            Err(anyhow::anyhow!(
                "{what} changed, which takes a restart (it is fixed when the service starts)"
            ))
        };
        if config.service != running.service {
            return restart("[service]");
        }
        if config.metrics != running.metrics {
            return restart("[metrics]");
        }
        let (old, new) = (running.callouts(), config.callouts());
        if old.len() != new.len() {
            return restart("the set of NATS connections (tenants with their own [tenant.nats])");
        }
        for (old, new) in old.iter().zip(&new) {
            if old.owner() != new.owner() || old.nats != new.nats {
                return restart(&new.table("nats"));
            }
        }
        let (have, need) = (self.parts.sandbox_limits, sandbox_limits(config));
        if need.max_memory_bytes > have.max_memory_bytes
            || need.max_idle_instances > have.max_idle_instances
        {
            anyhow::bail!(
                "the new limits need a larger sandbox than the service started with \
                 (memory cap {} MiB, {} idle instances; it has {} MiB, {}): it takes a restart",
                need.max_memory_bytes >> 20,
                need.max_idle_instances,
                have.max_memory_bytes >> 20,
                have.max_idle_instances
            );
        }
        Ok(())
    }
}
