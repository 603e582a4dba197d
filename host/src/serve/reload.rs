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

use tokio::signal::unix::{Signal, SignalKind, signal};

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
    triggers: Triggers,
}

/// What starts a reload: SIGHUP, and changes of the watched files.
pub(super) struct Triggers {
    hangup: Option<Signal>,
    /// The configuration file and the policy files of the last
    /// configuration read (tried, if it failed: fixing a file it names is
    /// a change).
    watched: Vec<PathBuf>,
    /// The watched files as last loaded (or tried).
    seen: Fingerprint,
}

/// The files a reload reads, with their size and modification time when
/// they could be read.
type Fingerprint = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

impl Triggers {
    /// Listens for SIGHUP from now on (a SIGHUP while policies load is
    /// then a reload once they have, not the end of the process) and
    /// fingerprints the files `config` was read from, before they are.
    pub(super) fn listen(path: &Path, config: &Config) -> Triggers {
        let hangup = match signal(SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: reload by file changes only");
                None
            }
        };
        let watched = watched_files(path, config);
        Triggers {
            hangup,
            seen: fingerprint(&watched),
            watched,
        }
    }
}

/// The configuration file and every policy file it names.
fn watched_files(path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![path.to_path_buf()];
    for policy in config.tenants.iter().map(|tenant| &tenant.policy) {
        paths.push(policy.wasm.clone());
        paths.extend(policy.shadow.as_ref().map(|shadow| shadow.wasm.clone()));
    }
    paths
}

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    paths
        .iter()
        .map(|path| {
            let stamp = std::fs::metadata(path)
                .ok()
                .and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
            (path.clone(), stamp)
        })
        .collect()
}

impl Reloader {
    pub(super) fn new(
        path: &Path,
        running: Config,
        parts: Parts,
        cells: Vec<RegistryCell>,
        triggers: Triggers,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            running,
            parts,
            cells,
            triggers,
        }
    }

    /// Reloads on SIGHUP and, with `[service] watch`, when a watched file
    /// changes and has stayed unchanged for a check (so a file being written
    /// is not read half-way). Runs until dropped.
    pub(super) async fn run(mut self) {
        let mut ticker = tokio::time::interval(WATCH_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settling: Option<Fingerprint> = None;
        loop {
            tokio::select! {
                Some(()) = async { self.triggers.hangup.as_mut()?.recv().await } => {
                    let before = fingerprint(&self.triggers.watched);
                    self.reload("SIGHUP").await;
                    self.settle(&before);
                }
                _ = ticker.tick(), if self.running.service.watch => {
                    let now = fingerprint(&self.triggers.watched);
                    if now == self.triggers.seen {
                        settling = None;
                    } else if settling.as_ref() == Some(&now) {
                        settling = None;
                        // A failed reload is not retried until a file
                        // changes again (or SIGHUP).
                        self.reload("file change").await;
                        self.settle(&now);
                    } else {
                        settling = Some(now);
                    }
                }
            }
        }
    }

    /// After a reload that read the files as `before` showed them: those
    /// are seen, so a change made while it ran is a change still to load;
    /// files it newly names are seen as they are now.
    fn settle(&mut self, before: &Fingerprint) {
        let now = fingerprint(&self.triggers.watched);
        self.triggers.seen = now
            .into_iter()
            .map(|(path, stamp)| {
                let earlier = before.iter().find(|(seen, _)| *seen == path);
                (path, earlier.map_or(stamp, |(_, stamp)| *stamp))
            })
            .collect();
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
        self.triggers.watched = watched_files(&self.path, &config);
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
