//! The sandbox every policy call runs in: one wasmtime `Engine` for the
//! process (pooling allocator, epoch deadlines), the `Linker` that gives a
//! policy its only capability (`host.log`) and a deny-all WASI, and the
//! per-call state (`CallState`) that owns a call's limits and output.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::PolicyLimits;
use super::wit::{LogLevel, Policy as PolicyWorld, nats::callout};
use crate::capability::Grants;
use crate::untrusted::printable;

/// One epoch tick: how often running guest code checks its deadline and
/// yields to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes a policy may write to stdout and stderr (each) in one call; writing
/// more traps, which denies the request.
pub const OUTPUT_CAPACITY: usize = 64 * 1024;

/// `host.log` lines a policy may write in one call, and their length.
pub const LOG_LINES_PER_CALL: u32 = 64;
pub const LOG_LINE_BYTES: usize = 1024;

/// What one log event shows of a call's stdout or stderr.
pub const OUTPUT_EVENT_BYTES: usize = 4096;

/// How the sandbox is sized.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Policy calls running at once.
    pub max_in_flight: usize,
    /// Initialized instances kept idle for reuse, on top of those in flight.
    pub max_idle_instances: usize,
    /// Largest memory any policy may use, in bytes.
    pub max_memory_bytes: usize,
}

impl SandboxLimits {
    /// A sandbox for `max_in_flight` calls at once to any of `policies`:
    /// room for every policy's idle instances, and memories as large as the
    /// largest cap.
    pub fn for_policies<'a>(
        max_in_flight: usize,
        policies: impl IntoIterator<Item = &'a PolicyLimits>,
    ) -> SandboxLimits {
        let mut limits = SandboxLimits {
            max_in_flight,
            max_idle_instances: 0,
            max_memory_bytes: 0,
        };
        for policy in policies {
            limits.max_idle_instances = limits
                .max_idle_instances
                .saturating_add(policy.max_idle_instances);
            limits.max_memory_bytes = limits.max_memory_bytes.max(policy.memory_bytes);
        }
        limits
    }
}

/// Linear memories one instance slot may hold (a language runtime has a few).
const MEMORIES_PER_SLOT: u32 = 4;

/// The engine's configuration for `slots` instances at once.
fn engine_config(limits: SandboxLimits, slots: u32, layout: MemoryLayout) -> Config {
    // Language runtimes are many core modules: a Python component
    // instantiates 65 core instances and a handful of memories and tables.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_stacks(slots)
        .total_core_instances(slots.saturating_mul(128))
        .total_memories(slots.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(slots.saturating_mul(8))
        .max_core_instances_per_component(128)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        .table_elements(100_000)
        .max_component_instance_size(10 << 20)
        .max_core_instance_size(10 << 20)
        .max_memory_size(limits.max_memory_bytes)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(512 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .wasm_threads(false)
        .wasm_memory64(false)
        .max_wasm_stack(512 << 10);
    if layout == MemoryLayout::Compact {
        let cap = u64::try_from(limits.max_memory_bytes).unwrap_or(u64::MAX);
        config
            .memory_reservation(cap.next_multiple_of(WASM_PAGE))
            .memory_reservation_for_growth(0)
            .memory_guard_size(WASM_PAGE);
    }
    config
}

/// The size of a WebAssembly memory page.
const WASM_PAGE: u64 = 64 << 10;

/// The process-wide engine and linker.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
}

/// How the pooling allocator lays out policy memories in the process's
/// virtual address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLayout {
    /// Each memory slot reserves 4 GiB plus guard pages, so compiled policies
    /// need no bounds checks: the fastest, and about 4 GiB of address space
    /// per slot (hundreds of GiB for a large `max_in_flight`).
    Guarded,
    /// Each memory slot reserves only the memory cap, and compiled policies
    /// check bounds: slower, for machines whose address space is small (a
    /// 39-bit virtual address space, or a `ulimit -v`).
    Compact,
}

impl Sandbox {
    /// Builds the engine and starts its epoch ticker, which stops by itself
    /// when the engine is dropped. Tries the [`MemoryLayout::Guarded`]
    /// layout first and falls back to [`MemoryLayout::Compact`] when the
    /// address space cannot hold it.
    pub fn new(limits: SandboxLimits) -> wasmtime::Result<Arc<Sandbox>> {
        let slots = u32::try_from(
            limits
                .max_in_flight
                .saturating_add(limits.max_idle_instances),
        )
        .unwrap_or(u32::MAX)
        .saturating_add(4);
        let memories = slots.saturating_mul(MEMORIES_PER_SLOT);
        let engine = match Engine::new(&engine_config(limits, slots, MemoryLayout::Guarded)) {
            Ok(engine) => engine,
            Err(guarded) => {
                let engine = Engine::new(&engine_config(limits, slots, MemoryLayout::Compact))
                    .map_err(|compact| {
                        wasmtime::format_err!(
                            "cannot reserve virtual address space for {memories} policy memories of up to {} MiB \
                             ({slots} instance slots: [service] max_in_flight and shadow_in_flight, twice the policies' max_idle_instances (for reloads), and 4): {compact:#}; \
                             lower those or [policy] memory_mb, or raise the address-space limit (ulimit -v)",
                            limits.max_memory_bytes >> 20
                        )
                    })?;
                tracing::warn!(
                    reason = %format!("{guarded:#}"),
                    memories,
                    "not enough virtual address space for guarded policy memories; using compact memories with bounds checks (slower calls)"
                );
                engine
            }
        };

        let weak = engine.weak();
        thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker: {e}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        PolicyWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
        Ok(Arc::new(Sandbox { engine, linker }))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }
}

/// Everything one call owns; dropped with the call's `Store`.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: TrackedLimits,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_flushed: usize,
    stderr_flushed: usize,
    policy_name: Arc<str>,
    log_lines_left: u32,
    /// When the current phase (start, `init` or a call) must have ended, by
    /// the wall clock: checked at every epoch tick while guest code runs.
    pub(crate) deadline: Instant,
    /// An `authorize` call's pacing (see
    /// [`LONG_CALL_TICKS`](super::call::LONG_CALL_TICKS)); `None` while
    /// loading.
    pub(crate) pace: Option<super::call::Pace>,
    /// The capabilities the policy was granted, during `authorize` calls
    /// only (`None` while loading).
    grants: Option<Arc<Grants>>,
}

impl CallState {
    /// A fresh state: no filesystem, network, environment, arguments or stdin;
    /// bounded stdout and stderr; memory capped at `memory_bytes`; a deadline.
    pub fn new(policy_name: Arc<str>, memory_bytes: usize, deadline: Instant) -> CallState {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(1024)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .table_elements(100_000)
            .instances(128)
            .memories(16)
            .tables(32)
            .trap_on_grow_failure(true)
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limits: TrackedLimits {
                limits,
                largest_memory: 0,
                refused_growth: false,
            },
            stdout,
            stderr,
            stdout_flushed: 0,
            stderr_flushed: 0,
            policy_name,
            log_lines_left: LOG_LINES_PER_CALL,
            deadline,
            pace: None,
            grants: None,
        }
    }

    /// Readies the state for an `authorize` call: a new deadline, a new
    /// allowance of log lines, the policy's capabilities.
    pub fn start_call(&mut self, deadline: Instant, grants: &Arc<Grants>) {
        self.deadline = deadline;
        self.log_lines_left = LOG_LINES_PER_CALL;
        self.grants = Some(grants.clone());
    }

    /// The policy's capabilities, in an `authorize` call.
    pub(crate) fn grants(&self) -> Option<&Grants> {
        self.grants.as_deref()
    }

    /// Whether the memory cap refused a growth: the call ran out of memory
    /// (known from the limiter itself, not from an error's text).
    pub fn ran_out_of_memory(&self) -> bool {
        self.limits.refused_growth
    }

    /// The size of the instance's largest linear memory, in bytes.
    pub fn largest_memory(&self) -> usize {
        self.limits.largest_memory
    }

    /// Bytes the instance has written to stdout and stderr so far (the larger).
    pub fn output_bytes(&self) -> usize {
        self.stdout_flushed.max(self.stderr_flushed)
    }

    /// Sends what the policy printed since the last flush to the host's log,
    /// one event per stream. (The pipes keep everything an instance wrote, so
    /// `OUTPUT_CAPACITY` bounds the output of a reused instance's whole life.)
    pub fn flush_output(&mut self) {
        for (stream, pipe, flushed) in [
            ("stdout", &self.stdout, &mut self.stdout_flushed),
            ("stderr", &self.stderr, &mut self.stderr_flushed),
        ] {
            let bytes = pipe.contents();
            if let Some(new) = bytes.get(*flushed..).filter(|new| !new.is_empty()) {
                let text = String::from_utf8_lossy(new);
                let output = printable(text.trim_end(), OUTPUT_EVENT_BYTES);
                tracing::info!(policy = %self.policy_name, stream, ?output, "policy output");
            }
            *flushed = bytes.len();
        }
    }
}

/// The store's limits, remembering how large the instance's memories grew, so
/// a reused instance can be retired before it reaches its cap, and whether
/// the cap refused a growth.
pub(crate) struct TrackedLimits {
    limits: StoreLimits,
    largest_memory: usize,
    refused_growth: bool,
}

impl ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        match allowed {
            Ok(true) => self.largest_memory = self.largest_memory.max(desired),
            _ => self.refused_growth = true,
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused_growth = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl callout::types::Host for CallState {}

impl callout::host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.log_lines_left == 0 {
            return;
        }
        self.log_lines_left -= 1;
        // Escaped, bounded and quoted: a policy can neither write a line of
        // its own nor make its message read as the host's fields.
        let message = printable(&message, LOG_LINE_BYTES);
        let policy = &*self.policy_name;
        match level {
            LogLevel::Trace => tracing::trace!(policy, "{message:?}"),
            LogLevel::Debug => tracing::debug!(policy, "{message:?}"),
            LogLevel::Info => tracing::info!(policy, "{message:?}"),
            LogLevel::Warn => tracing::warn!(policy, "{message:?}"),
            LogLevel::Error => tracing::error!(policy, "{message:?}"),
        }
        if self.log_lines_left == 0 {
            tracing::warn!(
                policy,
                "policy reached {LOG_LINES_PER_CALL} log lines in one call; further lines are dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(memory_mb: usize, idle: usize) -> PolicyLimits {
        PolicyLimits {
            timeout: Duration::from_millis(100),
            memory_bytes: memory_mb << 20,
            calls_per_instance: if idle > 0 { 10 } else { 1 },
            max_idle_instances: idle,
        }
    }

    #[test]
    fn the_pool_has_room_for_every_policy() {
        let limits =
            SandboxLimits::for_policies(64, &[policy(32, 0), policy(128, 8), policy(16, 4)]);
        assert_eq!(limits.max_in_flight, 64);
        assert_eq!(limits.max_idle_instances, 12);
        assert_eq!(limits.max_memory_bytes, 128 << 20);
    }

    #[test]
    fn a_call_state_knows_when_its_memory_cap_refused_a_growth() {
        let mut state = CallState::new("p".into(), 1 << 20, Instant::now());
        assert!(!state.ran_out_of_memory());
        assert!(state.limits.memory_growing(0, 512 << 10, None).unwrap());
        assert_eq!(state.largest_memory(), 512 << 10);
        assert!(!state.ran_out_of_memory());
        // Over the cap: refused (trap_on_grow_failure turns it into an error).
        let refused = state.limits.memory_growing(512 << 10, 2 << 20, None);
        assert!(!matches!(refused, Ok(true)));
        assert!(state.ran_out_of_memory());
        assert_eq!(
            state.largest_memory(),
            512 << 10,
            "a refused growth is not counted"
        );
    }
}
