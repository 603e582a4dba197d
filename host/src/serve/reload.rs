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

use super::launch::{Parts, Start, release_freed_memory, sandbox_limits};
use super::{Registry, RegistryCell};
use crate::config::{Callout, Config};
use crate::untrusted::reason_text;

/// Builds `config`'s registries on a thread of its own at a lower CPU
/// priority than the workers that answer requests, so a reload takes the
/// CPU sign-ins leave rather than competing with them for a worker.
async fn build_aside(parts: Arc<Parts>, config: Config) -> anyhow::Result<(Vec<Registry>, Config)> {
    let (built, receive) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            lower_this_threads_priority();
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(parts.build(&config, Start::Reload)),
                Err(error) => Err(anyhow::anyhow!(
                    "cannot start the reload's runtime: {error}"
                )),
            };
            let _ = built.send(result.map(|registries| (registries, config)));
        })
        .map_err(|error| anyhow::anyhow!("cannot start the reload thread: {error}"))?;
    receive
        .await
        .map_err(|_| anyhow::anyhow!("the reload thread ended without a result"))?
}

/// The calling thread (and the threads it starts) yields the CPU to the
/// service's workers: nice 10.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority on this thread's id
    // only changes this thread's scheduling priority (Linux's nice is per
    // thread).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// How often watched files are checked.
const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// Rebuilds and swaps the callouts' registries when asked.
pub(super) struct Reloader {
    path: PathBuf,
    /// The configuration in force.
    running: Config,
    parts: Arc<Parts>,
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
    /// The watched files as the reload in progress found them when it read
    /// its configuration.
    read: Fingerprint,
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
        let seen = fingerprint(&watched);
        Triggers {
            hangup,
            read: seen.clone(),
            seen,
            watched,
        }
    }
}

/// The configuration file, every policy file it names and the key sets of
/// the OIDC issuers it reads from files.
fn watched_files(path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![path.to_path_buf()];
    for policy in config.tenants.iter().map(|tenant| &tenant.policy) {
        paths.push(policy.wasm.clone());
        paths.extend(policy.shadow.as_ref().map(|shadow| shadow.wasm.clone()));
        paths.extend(policy.capabilities.files().map(Path::to_path_buf));
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
        parts: Arc<Parts>,
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
                // Neither SIGHUP nor a watch: nothing ever reloads.
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// After a reload that found the files as `before` showed them: those
    /// are seen, so a change made while it ran is a change still to load;
    /// files it newly names are seen as it read them.
    fn settle(&mut self, before: &Fingerprint) {
        let read = &self.triggers.read;
        self.triggers.seen = fingerprint(&self.triggers.watched)
            .into_iter()
            .map(|(path, stamp)| {
                let earlier = before.iter().chain(read).find(|(seen, _)| *seen == path);
                (path, earlier.map_or(stamp, |(_, stamp)| *stamp))
            })
            .collect();
    }

    /// One reload, logged and counted; audit files reopened after it (so a
    /// rotated file is let go on SIGHUP, as daemons do).
    async fn reload(&mut self, trigger: &'static str) {
        let started = Instant::now();
        tracing::info!(trigger, config = %self.path.display(), "reloading");
        let metrics = self.parts.observers.metrics.clone();
        let reloaded = self.try_reload().await;
        self.parts.observers.audit.reopen();
        match reloaded {
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
        self.triggers.read.clear();
        let config = Config::load(&self.path)?;
        self.triggers.watched = watched_files(&self.path, &config);
        self.triggers.read = fingerprint(&self.triggers.watched);
        self.needs_no_restart(&config)?;
        let (registries, config) = build_aside(self.parts.clone(), config).await?;
        let compiled = registries
            .iter()
            .flat_map(Registry::tenants)
            .any(|(_, binding)| {
                binding
                    .decider()
                    .is_some_and(|d| !d.policy().loaded_from_cache())
            });
        for (cell, registry) in self.cells.iter().zip(registries) {
            cell.store(Arc::new(registry));
        }
        // Trimming locks the allocator for a moment: only worth it after
        // a compilation's garbage.
        if compiled {
            release_freed_memory();
        }
        // The compiled cache is pruned at start only: pruning here would
        // throw away the snapshot of a version an operator goes back to
        // (or of one that failed its kit and is being fixed).
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
        // Registries are swapped into the connections in this order.
        let (old, new) = (running.callouts(), config.callouts());
        let owners = |callouts: &[Callout<'_>]| -> Vec<Option<String>> {
            callouts
                .iter()
                .map(|c| c.owner().map(String::from))
                .collect()
        };
        if owners(&old) != owners(&new) {
            return restart(
                "the set or order of NATS connections (tenants with their own [tenant.nats] added, removed or moved)",
            );
        }
        for (old, new) in old.iter().zip(&new) {
            if old.nats != new.nats {
                return restart(&new.table("nats"));
            }
            // In operator mode the connection's user lives in the auth
            // account: another auth account needs another connection.
            if new.operator_mode() && old.issuer.account != new.issuer.account {
                return restart(&format!("{} account", new.table("issuer")));
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
