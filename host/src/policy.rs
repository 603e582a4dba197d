//! Loading and evaluating one policy component.
//!
//! Loading runs the policy's `init(settings)` once and snapshots the
//! initialized instance (wasmtime-wizer), so every later call starts from a
//! fresh instance that already holds the parsed settings and a warmed-up
//! language runtime. The compiled snapshot is kept in the [`CompiledCache`],
//! so the next start skips `init` and Cranelift.
//!
//! Evaluating creates a new `Store` per call from the pre-instantiated
//! snapshot: nothing survives from one request to the next, a deadline and a
//! memory cap bound each call, and any failure comes back as a [`CallError`]
//! that the caller turns into a deny.
//!
//! Deadlines are wall-clock and cover every phase (instantiation, `init`,
//! `authorize`) wherever the time goes: guest code is interrupted at the
//! first epoch tick past the deadline, and a guest blocked in a WASI call
//! (a sleep, a poll) is cancelled when the deadline's timer fires, because
//! every phase runs as a future raced against it ([`bounded`]).
//!
//! A policy may opt into reusing an instance for up to `calls_per_instance`
//! calls (see [`PolicyLimits`]): state left by one call is then visible to
//! the next calls *of the same policy*, and an instance that trapped or timed
//! out is never reused.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::bindings::{AuthRequest, Decision, Policy, PolicyPre};
use crate::cache::{CompiledCache, EntryKind};
use crate::sandbox::{CallState, OUTPUT_CAPACITY, Sandbox};
use crate::untrusted::printable;

/// The deadline of a policy's `init`, which may parse large settings.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a load error shows of a message the policy wrote (its `init` error).
pub const POLICY_MESSAGE_BYTES: usize = 1024;

/// The version of the `nats:callout` WIT package this host implements
/// (`wit/policy.wit`). A policy built for another minor version is refused.
pub const WORLD_PACKAGE: &str = "nats:callout";
pub const WORLD_VERSION: &str = "0.1.0";

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "policy {path} is not a component implementing the nats:callout/policy world: {reason}"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("policy {path} refused its settings: {reason}")]
    SettingsRefused { path: PathBuf, reason: String },
    #[error("policy {path} failed in init: {reason}")]
    InitFailed { path: PathBuf, reason: String },
    #[error("policy {path} cannot start under the configured limits: {reason}")]
    CannotStart { path: PathBuf, reason: String },
    #[error(
        "policy {path} was built for {WORLD_PACKAGE}@{built_for}, but this host implements {WORLD_PACKAGE}@{WORLD_VERSION}: rebuild it with an SDK for {WORLD_VERSION}"
    )]
    WrongVersion { path: PathBuf, built_for: String },
}

/// Why one call did not produce a decision. Every variant denies the request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("policy timed out after {0} ms")]
    Timeout(u64),
    #[error("policy exceeded its memory cap of {0} MiB")]
    OutOfMemory(u64),
    #[error("policy overflowed its stack")]
    StackOverflow,
    #[error("policy trapped: {0}")]
    Trap(String),
    /// The host refused something the policy asked of it (a WASI call over
    /// its limits, too many resource handles).
    #[error("policy call failed in the host: {0}")]
    Host(String),
}

/// Per-policy resource limits.
#[derive(Debug, Clone, Copy)]
pub struct PolicyLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    /// Calls one instance serves before it is dropped. 1 (the default) gives
    /// every call a fresh instance. More trades isolation between the calls
    /// of this policy for speed, for runtimes whose instantiation is costly.
    pub calls_per_instance: u32,
    /// Initialized instances kept idle for reuse (with `calls_per_instance`
    /// above 1).
    pub max_idle_instances: usize,
}

/// An initialized instance kept for further calls.
struct WarmInstance {
    store: Store<CallState>,
    policy: Policy,
    calls_left: u32,
    /// Its largest memory when it started, in bytes.
    start_memory: usize,
}

/// A loaded, initialized policy, ready to evaluate requests concurrently.
pub struct LoadedPolicy {
    name: Arc<str>,
    digest: String,
    sandbox: Arc<Sandbox>,
    pre: PolicyPre<CallState>,
    limits: PolicyLimits,
    idle: Mutex<Vec<WarmInstance>>,
    from_cache: bool,
}

impl LoadedPolicy {
    /// Reads the component at `path`, runs its `init(settings)` and snapshots
    /// the result, or takes the compiled snapshot from `cache`. Compiling
    /// blocks the thread: load before serving.
    pub async fn load(
        sandbox: &Arc<Sandbox>,
        path: &Path,
        settings_json: &str,
        limits: PolicyLimits,
        cache: Option<&CompiledCache>,
    ) -> Result<LoadedPolicy, LoadError> {
        let wasm = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name: Arc<str> = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy".into())
            .into();
        let invalid = |reason: String| LoadError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(built_for) = foreign_world_version(&wasm) {
            return Err(LoadError::WrongVersion {
                path: path.to_path_buf(),
                built_for,
            });
        }

        let engine = sandbox.engine();
        let key = CompiledCache::key(
            engine,
            EntryKind::Snapshot,
            &wasm,
            settings_json,
            limits.memory_bytes,
        );
        let cached = cache.and_then(|cache| cache.get(engine, &key));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => {
                let snapshot =
                    initialize(sandbox, &wasm, path, &name, settings_json, limits, cache).await?;
                let component =
                    Component::new(engine, &snapshot).map_err(|e| invalid(format!("{e:#}")))?;
                if let Some(cache) = cache {
                    cache.put(&key, &component);
                }
                component
            }
        };
        let pre = sandbox
            .linker()
            .instantiate_pre(&component)
            .and_then(PolicyPre::new)
            .map_err(|e| invalid(format!("{e:#}")))?;
        // Instantiate once now, so a policy that cannot start under these
        // limits (a snapshot bigger than the memory cap, more core instances
        // than the pool allows) fails the load rather than every request.
        start_instance(
            sandbox,
            &pre,
            &name,
            limits.memory_bytes,
            INIT_TIMEOUT,
            Instant::now() + INIT_TIMEOUT,
        )
        .await
        .map_err(|error| LoadError::CannotStart {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Ok(LoadedPolicy {
            name,
            digest: format!("{:x}", Sha256::digest(&wasm)),
            sandbox: sandbox.clone(),
            pre,
            limits,
            idle: Mutex::new(Vec::new()),
            from_cache,
        })
    }

    /// The policy's name (its file name without extension), used in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the component as loaded from disk.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the compiled snapshot came from the cache (`init` did not run).
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Runs `authorize` in a fresh instance (or a warm one, when the policy
    /// allows reuse). The guest runs on a fiber and yields to the async
    /// runtime every epoch tick; instantiation and the call together end by
    /// the policy's deadline, by the wall clock.
    pub async fn evaluate(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        let deadline = Instant::now() + self.limits.timeout;
        let warm = self.take_idle();
        let mut warm = match warm {
            Some(mut warm) => {
                warm.store.data_mut().start_call(deadline);
                warm.store.set_epoch_deadline(1);
                warm
            }
            None => {
                let (store, policy) = start_instance(
                    &self.sandbox,
                    &self.pre,
                    &self.name,
                    self.limits.memory_bytes,
                    self.limits.timeout,
                    deadline,
                )
                .await?;
                WarmInstance {
                    start_memory: store.data().largest_memory(),
                    store,
                    policy,
                    calls_left: self.limits.calls_per_instance.max(1),
                }
            }
        };
        let result = bounded(
            deadline,
            warm.policy.call_authorize(&mut warm.store, request),
        )
        .await;
        warm.store.data_mut().flush_output();
        match result {
            Ok(decision) => {
                warm.calls_left -= 1;
                self.keep_idle(warm);
                Ok(decision)
            }
            // A failed call leaves the instance in an unknown state: drop it.
            Err(error) => Err(describe(
                &error,
                self.limits.timeout,
                self.limits.memory_bytes,
                warm.store.data().ran_out_of_memory(),
            )),
        }
    }

    fn take_idle(&self) -> Option<WarmInstance> {
        if self.limits.calls_per_instance <= 1 {
            return None;
        }
        self.idle.lock().ok()?.pop()
    }

    fn keep_idle(&self, warm: WarmInstance) {
        // Output and memory limits hold for an instance's whole life: retire
        // it while a next call still has room, so reuse does not deny valid
        // requests as the instance fills up.
        let state = warm.store.data();
        let memory_room = self.limits.memory_bytes.saturating_sub(warm.start_memory);
        if warm.calls_left == 0
            || state.output_bytes() > OUTPUT_CAPACITY / 2
            || state.largest_memory() > warm.start_memory + memory_room / 2
        {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.limits.max_idle_instances
        {
            idle.push(warm);
        }
    }
}

/// Runs the policy's `init(settings)` in an instrumented instance and
/// returns the component rewritten to start in the state `init` left.
async fn initialize(
    sandbox: &Sandbox,
    wasm: &[u8],
    path: &Path,
    name: &Arc<str>,
    settings_json: &str,
    limits: PolicyLimits,
    cache: Option<&CompiledCache>,
) -> Result<Vec<u8>, LoadError> {
    let invalid = |reason: String| LoadError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut wizer = Wizer::new();
    wizer.init_func("init").keep_init_func(true);
    let (context, instrumented) = wizer
        .instrument_component(wasm)
        .map_err(|e| invalid(format!("{e:#}")))?;
    // The instrumented component does not depend on the settings: cache it
    // too, so loading the same policy with other settings skips a compile.
    let engine = sandbox.engine();
    let key = CompiledCache::key(engine, EntryKind::Instrumented, wasm, "", 0);
    let component = match cache.and_then(|cache| cache.get(engine, &key)) {
        Some(component) => component,
        None => {
            let component =
                Component::new(engine, &instrumented).map_err(|e| invalid(format!("{e:#}")))?;
            if let Some(cache) = cache {
                cache.put(&key, &component);
            }
            component
        }
    };

    // Starting the component and `init` share one deadline.
    let deadline = Instant::now() + INIT_TIMEOUT;
    let init_failed = |error: &wasmtime::Error, out_of_memory: bool| LoadError::InitFailed {
        path: path.to_path_buf(),
        reason: describe(error, INIT_TIMEOUT, limits.memory_bytes, out_of_memory).to_string(),
    };
    let mut store = new_store(sandbox, name, limits.memory_bytes, deadline);
    let started = bounded(
        deadline,
        sandbox.linker().instantiate_async(&mut store, &component),
    )
    .await;
    store.data_mut().flush_output();
    let out_of_memory = store.data().ran_out_of_memory();
    let instance: Instance = match started {
        Ok(instance) => instance,
        // Guest code ran (a start function) and failed: not a shape problem.
        Err(error) if out_of_memory || error.downcast_ref::<Trap>().is_some() => {
            return Err(init_failed(&error, out_of_memory));
        }
        Err(error) => return Err(invalid(format!("{error:#}"))),
    };
    let init = instance
        .get_typed_func::<(&str,), (Result<(), String>,)>(&mut store, "init")
        .map_err(|e| invalid(format!("init: {e:#}")))?;
    let called = bounded(deadline, init.call_async(&mut store, (settings_json,))).await;
    store.data_mut().flush_output();
    let out_of_memory = store.data().ran_out_of_memory();
    let (outcome,) = called.map_err(|error| init_failed(&error, out_of_memory))?;
    outcome.map_err(|reason| LoadError::SettingsRefused {
        path: path.to_path_buf(),
        reason: printable(&reason, POLICY_MESSAGE_BYTES).into_owned(),
    })?;
    wizer
        .snapshot_component(
            &context,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(|e| invalid(format!("snapshot after init: {e:#}")))
}

/// A new instance of the snapshot in a store of its own, started by
/// `deadline` (`timeout` is what the deadline was set from, for the error).
async fn start_instance(
    sandbox: &Sandbox,
    pre: &PolicyPre<CallState>,
    name: &Arc<str>,
    memory_bytes: usize,
    timeout: Duration,
    deadline: Instant,
) -> Result<(Store<CallState>, Policy), CallError> {
    let mut store = new_store(sandbox, name, memory_bytes, deadline);
    let started = bounded(deadline, pre.instantiate_async(&mut store)).await;
    store.data_mut().flush_output();
    match started {
        Ok(policy) => Ok((store, policy)),
        Err(error) => Err(describe(
            &error,
            timeout,
            memory_bytes,
            store.data().ran_out_of_memory(),
        )),
    }
}

/// A store for one call: fresh state, memory limiter, and `deadline` checked
/// against the wall clock every epoch tick, yielding to the runtime at each
/// tick. (Counting ticks instead would stretch the deadline whenever a busy
/// machine delays the ticker or the fiber.)
fn new_store(
    sandbox: &Sandbox,
    name: &Arc<str>,
    memory_bytes: usize,
    deadline: Instant,
) -> Store<CallState> {
    let state = CallState::new(name.clone(), memory_bytes, deadline);
    let mut store = Store::new(sandbox.engine(), state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|context| {
        if Instant::now() >= context.data().deadline {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Runs one phase of a policy (instantiation, `init`, a call) until
/// `deadline`. Epoch interruption only fires while guest code runs; a guest
/// blocked in a WASI sleep or poll is pending in a host future instead, and
/// is cancelled here when the timer fires. Dropping the phase's future
/// unwinds the guest's fiber; its store is not used again.
async fn bounded<T>(
    deadline: Instant,
    phase: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match tokio::time::timeout_at(deadline.into(), phase).await {
        Ok(result) => result,
        Err(_elapsed) => Err(Trap::Interrupt.into()),
    }
}

/// The `nats:callout` version a component imports when it is not one this
/// host implements (another minor version, or another major one), read from
/// the component's own top-level imports.
fn foreign_world_version(wasm: &[u8]) -> Option<String> {
    let prefix = format!("{WORLD_PACKAGE}/");
    let ours = minor_of(WORLD_VERSION);
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 0 => {
                for import in imports.into_iter().flatten() {
                    let Some(rest) = import.name.name.strip_prefix(&prefix) else {
                        continue;
                    };
                    let version = rest.split_once('@').map_or("", |(_, v)| v);
                    if minor_of(version) != ours {
                        return Some(if version.is_empty() {
                            "(no version)".into()
                        } else {
                            version.into()
                        });
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// `major.minor` of a semantic version: what must match for a component
/// built for one `0.x` version to be compatible with another.
fn minor_of(version: &str) -> &str {
    match version.match_indices('.').nth(1) {
        Some((second_dot, _)) => &version[..second_dot],
        None => version,
    }
}

/// Names what went wrong in a failed call; `out_of_memory` is what the
/// call's limiter saw.
fn describe(
    error: &wasmtime::Error,
    timeout: Duration,
    memory_bytes: usize,
    out_of_memory: bool,
) -> CallError {
    if out_of_memory {
        return CallError::OutOfMemory((memory_bytes >> 20) as u64);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return CallError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }
        Some(Trap::StackOverflow) => return CallError::StackOverflow,
        Some(trap) => {
            tracing::debug!(error = ?error, "policy trap with backtrace");
            return CallError::Trap(trap.to_string());
        }
        None => {}
    }
    // A host function failed: its error is the root cause; the outer
    // contexts only say "error while executing at wasm backtrace".
    tracing::debug!(error = ?error, "policy call failed in the host, with backtrace");
    let cause = error.root_cause().to_string();
    let first_line = cause.lines().next().unwrap_or("unknown failure");
    CallError::Host(printable(first_line, POLICY_MESSAGE_BYTES).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_version_is_the_one_in_wit() {
        let declared = format!("package {WORLD_PACKAGE}@{WORLD_VERSION};");
        assert!(
            crate::componentize::POLICY_WIT
                .lines()
                .any(|line| line.trim() == declared),
            "wit/policy.wit does not declare {declared}"
        );
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert_eq!(minor_of("0.1.0"), "0.1");
        assert_eq!(minor_of("0.1.7"), minor_of(WORLD_VERSION));
        assert_ne!(minor_of("0.2.0"), minor_of(WORLD_VERSION));
        assert_eq!(minor_of("1"), "1");
        assert_eq!(minor_of(""), "");
    }

    #[test]
    fn a_core_module_is_not_read_as_a_foreign_world() {
        // No component imports at all: nothing to refuse here (loading
        // refuses it later, as not a component).
        let empty_module = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert_eq!(foreign_world_version(&empty_module), None);
        assert_eq!(foreign_world_version(b"garbage"), None);
    }
}
