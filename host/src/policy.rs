//! Loading and evaluating one policy component.
//!
//! Loading runs the policy's `init(settings)` once and snapshots the
//! initialized instance (wasmtime-wizer), so every later call starts from a
//! fresh instance that already holds the parsed settings. Evaluating creates a
//! new `Store` per call from a pre-instantiated snapshot: nothing survives from
//! one request to the next, a deadline and a memory cap bound each call, and
//! any failure comes back as a [`CallError`] that the caller turns into a deny.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::bindings::{AuthRequest, Decision, PolicyPre};
use crate::sandbox::{CallState, EPOCH_TICK, Sandbox};

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
}

/// A loaded, initialized policy, ready to evaluate requests concurrently.
pub struct LoadedPolicy {
    name: Arc<str>,
    digest: String,
    sandbox: Arc<Sandbox>,
    pre: PolicyPre<CallState>,
    limits: PolicyLimits,
}

fn ticks(duration: Duration) -> u64 {
    // +1: the next tick may come at once, so the first one only counts partly.
    u64::try_from(duration.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

impl LoadedPolicy {
    /// Reads the component at `path`, runs its `init(settings)` and snapshots
    /// the result. Compiling blocks the thread: load before serving.
    pub async fn load(
        sandbox: &Arc<Sandbox>,
        path: &Path,
        settings_json: &str,
        limits: PolicyLimits,
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

        let mut wizer = Wizer::new();
        wizer.init_func("init").keep_init_func(true);
        let (context, instrumented) = wizer
            .instrument_component(&wasm)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let engine = sandbox.engine();
        let component =
            Component::new(engine, &instrumented).map_err(|e| invalid(format!("{e:#}")))?;

        let mut store = new_store(sandbox, &name, limits.memory_bytes, INIT_TIMEOUT);
        let snapshot = async {
            let instance: Instance = sandbox
                .linker()
                .instantiate_async(&mut store, &component)
                .await
                .map_err(|e| invalid(format!("{e:#}")))?;
            let init = instance
                .get_typed_func::<(&str,), (Result<(), String>,)>(&mut store, "init")
                .map_err(|e| invalid(format!("init: {e:#}")))?;
            let (outcome,) = init
                .call_async(&mut store, (settings_json,))
                .await
                .map_err(|e| LoadError::InitFailed {
                    path: path.to_path_buf(),
                    reason: describe(&e, INIT_TIMEOUT, limits.memory_bytes).to_string(),
                })?;
            store.data().flush_output();
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
        .await?;

        let component = Component::new(engine, &snapshot).map_err(|e| invalid(format!("{e:#}")))?;
        let pre = sandbox
            .linker()
            .instantiate_pre(&component)
            .and_then(PolicyPre::new)
            .map_err(|e| invalid(format!("{e:#}")))?;
        Ok(LoadedPolicy {
            name,
            digest: format!("{:x}", Sha256::digest(&wasm)),
            sandbox: sandbox.clone(),
            pre,
            limits,
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

    /// Runs `authorize` in a fresh instance. The guest runs on a fiber and
    /// yields to the async runtime every epoch tick until its deadline.
    pub async fn evaluate(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        let mut store = new_store(
            &self.sandbox,
            &self.name,
            self.limits.memory_bytes,
            self.limits.timeout,
        );
        let result = match self.pre.instantiate_async(&mut store).await {
            Ok(policy) => policy.call_authorize(&mut store, request).await,
            Err(error) => Err(error),
        };
        store.data().flush_output();
        result.map_err(|e| describe(&e, self.limits.timeout, self.limits.memory_bytes))
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
