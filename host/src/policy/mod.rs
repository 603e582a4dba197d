//! Loading and evaluating one policy component.
//!
//! Loading runs the policy's `init(settings)` once and snapshots the
//! initialized instance (wasmtime-wizer), so every later call starts from a
//! fresh instance that already holds the parsed settings and a warmed-up
//! language runtime. The compiled snapshot is kept in the compiled-policy
//! cache (`cache.rs`), so the next start skips `init` and Cranelift.
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
//! every phase runs as a future raced against it (`call.rs`).
//!
//! A policy may opt into reusing an instance for up to `calls_per_instance`
//! calls (see [`PolicyLimits`]): state left by one call is then visible to
//! the next calls *of the same policy*, and an instance that trapped or timed
//! out is never reused.

pub(crate) mod cache;
mod call;
mod load;
pub(crate) mod request;
pub(crate) mod sandbox;
pub(crate) mod wit;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use call::CallError;
pub use load::{LoadError, WORLD_PACKAGE, WORLD_VERSION};
pub use sandbox::{Sandbox, SandboxLimits};

use crate::capability::Grants;
use call::WarmInstance;
use sandbox::CallState;
use wit::PolicyPre;

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

/// A policy to load: its component, the settings its `init` receives and the
/// limits it runs under.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub wasm: PathBuf,
    /// The settings, as the JSON text handed to `init`.
    pub settings_json: String,
    pub limits: PolicyLimits,
    /// The capabilities the operator granted it.
    pub grants: Arc<Grants>,
}

/// When a phase (starting an instance, `init`, a call) must have ended, by
/// the wall clock, and the budget it was set from (which errors name).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now (a budget too large for the clock is
    /// a year: never reached).
    pub(crate) fn after(budget: Duration) -> Deadline {
        let now = Instant::now();
        let at = now
            .checked_add(budget)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        Deadline { at, budget }
    }

    pub(crate) fn at(self) -> Instant {
        self.at
    }

    /// The budget in milliseconds, as errors show it.
    pub(crate) fn budget_ms(self) -> u64 {
        u64::try_from(self.budget.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A loaded, initialized policy, ready to evaluate requests concurrently.
pub struct LoadedPolicy {
    name: Arc<str>,
    /// The component's file, for errors.
    path: PathBuf,
    /// The component's top-level imports (capabilities among them).
    imports: Vec<String>,
    digest: String,
    sandbox: Arc<Sandbox>,
    pre: PolicyPre<CallState>,
    limits: PolicyLimits,
    grants: Arc<Grants>,
    idle: Mutex<Vec<WarmInstance>>,
    pool: PoolCounts,
    from_cache: bool,
    /// How long loading took (reading, compiling or the cache, `init`).
    load_time: Duration,
    /// Where its compiled snapshot is cached.
    cache_key: cache::CacheKey,
}

impl LoadedPolicy {
    /// The policy's name (its file name without extension), used in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the component as loaded from disk.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The cache entry of its compiled snapshot.
    pub(crate) fn cache_key(&self) -> &cache::CacheKey {
        &self.cache_key
    }

    /// Whether the compiled snapshot came from the cache (`init` did not run).
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// How long loading took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Its instances so far: started, reused, idle now.
    pub fn pool(&self) -> PoolStats {
        PoolStats {
            started: self.pool.started.load(Ordering::Relaxed),
            reused: self.pool.reused.load(Ordering::Relaxed),
            idle: self.idle.lock().map_or(0, |idle| idle.len()),
        }
    }
}

/// Counts of a policy's instances, for metrics.
#[derive(Debug, Default)]
struct PoolCounts {
    /// Instances started for a call.
    started: AtomicU64,
    /// Calls served by an idle instance (with `calls_per_instance` above 1).
    reused: AtomicU64,
}

/// A policy's instances so far, read for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub started: u64,
    pub reused: u64,
    pub idle: usize,
}
