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
//! that the caller turns into a deny. A policy may opt into reusing an
//! instance for up to `calls_per_instance` calls (see [`PolicyLimits`]): state
//! left by one call is then visible to the next calls *of the same policy*,
//! and an instance that trapped or timed out is never reused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::bindings::{AuthRequest, Decision, Policy, PolicyPre};
use crate::cache::{CompiledCache, EntryKind};
use crate::sandbox::{CallState, EPOCH_TICK, OUTPUT_CAPACITY, Sandbox};

/// The deadline of a policy's `init`, which may parse large settings.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

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

fn ticks(duration: Duration) -> u64 {
    // +1: the next tick may come at once, so the first one only counts partly.
    u64::try_from(duration.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
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
        start_instance(sandbox, &pre, &name, limits.memory_bytes, INIT_TIMEOUT)
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
    /// runtime every epoch tick until its deadline.
    pub async fn evaluate(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        let warm = self.take_idle();
        let mut warm = match warm {
            Some(mut warm) => {
                warm.store.data_mut().start_call(ticks(self.limits.timeout));
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
        let result = warm.policy.call_authorize(&mut warm.store, request).await;
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

    let mut store = new_store(sandbox, name, limits.memory_bytes, INIT_TIMEOUT);
    let instance: Instance = sandbox
        .linker()
        .instantiate_async(&mut store, &component)
        .await
        .map_err(|e| invalid(format!("{e:#}")))?;
    let init = instance
        .get_typed_func::<(&str,), (Result<(), String>,)>(&mut store, "init")
        .map_err(|e| invalid(format!("init: {e:#}")))?;
    let called = init.call_async(&mut store, (settings_json,)).await;
    store.data_mut().flush_output();
    let (outcome,) = called.map_err(|e| LoadError::InitFailed {
        path: path.to_path_buf(),
        reason: describe(&e, INIT_TIMEOUT, limits.memory_bytes).to_string(),
    })?;
    outcome.map_err(|reason| LoadError::SettingsRefused {
        path: path.to_path_buf(),
        reason,
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

/// A new instance of the snapshot in a store of its own, with a deadline of
/// `timeout`.
async fn start_instance(
    sandbox: &Sandbox,
    pre: &PolicyPre<CallState>,
    name: &Arc<str>,
    memory_bytes: usize,
    timeout: Duration,
) -> Result<(Store<CallState>, Policy), CallError> {
    let mut store = new_store(sandbox, name, memory_bytes, timeout);
    let started = pre.instantiate_async(&mut store).await;
    store.data_mut().flush_output();
    match started {
        Ok(policy) => Ok((store, policy)),
        Err(error) => Err(describe(&error, timeout, memory_bytes)),
    }
}

/// A store for one call: fresh state, memory limiter, and a deadline of
/// `timeout` checked every epoch tick, yielding to the runtime at each tick.
fn new_store(
    sandbox: &Sandbox,
    name: &Arc<str>,
    memory_bytes: usize,
    timeout: Duration,
) -> Store<CallState> {
    let state = CallState::new(name.clone(), memory_bytes, ticks(timeout));
    let mut store = Store::new(sandbox.engine(), state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        state.ticks_left = state.ticks_left.saturating_sub(1);
        if state.ticks_left == 0 {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Names what went wrong in a failed call.
fn describe(error: &wasmtime::Error, timeout: Duration, memory_bytes: usize) -> CallError {
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
    let text = format!("{error:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory limit") {
        return CallError::OutOfMemory((memory_bytes >> 20) as u64);
    }
    // The first line names the failure; the rest is a wasm backtrace.
    CallError::Trap(text.lines().next().unwrap_or("unknown failure").to_string())
}
