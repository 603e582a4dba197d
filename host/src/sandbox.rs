//! The sandbox every policy call runs in: one wasmtime `Engine` for the
//! process (pooling allocator, epoch deadlines), the `Linker` that gives a
//! policy its only capability (`host.log`) and a deny-all WASI, and the
//! per-call state (`CallState`) that owns a call's limits and output.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{LogLevel, Policy as PolicyWorld, nats::callout};

/// One epoch tick: the resolution of policy deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes a policy may write to stdout and stderr (each) in one call; writing
/// more traps, which denies the request.
pub const OUTPUT_CAPACITY: usize = 64 * 1024;

/// `host.log` lines a policy may write in one call, and their length.
pub const LOG_LINES_PER_CALL: u32 = 64;
pub const LOG_LINE_BYTES: usize = 1024;

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

/// The process-wide engine and linker.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
}

impl Sandbox {
    /// Builds the engine and starts its epoch ticker, which stops by itself
    /// when the engine is dropped.
    pub fn new(limits: SandboxLimits) -> wasmtime::Result<Arc<Sandbox>> {
        let slots = u32::try_from(
            limits
                .max_in_flight
                .saturating_add(limits.max_idle_instances),
        )
        .unwrap_or(u32::MAX)
        .saturating_add(4);
        // Language runtimes are many core modules: a Python component
        // instantiates 65 core instances and a handful of memories and tables.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_stacks(slots)
            .total_core_instances(slots.saturating_mul(128))
            .total_memories(slots.saturating_mul(4))
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
        let engine = Engine::new(&config)?;

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

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }
}

/// Everything one call owns; dropped with the call's `Store`.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: TrackedLimits,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_flushed: usize,
    stderr_flushed: usize,
    policy_name: Arc<str>,
    log_lines_left: u32,
    /// Epoch ticks this call may still run for.
    pub(crate) ticks_left: u64,
}

impl CallState {
    /// A fresh state: no filesystem, network, environment, arguments or stdin;
    /// bounded stdout and stderr; memory capped at `memory_bytes`; a deadline
    /// of `ticks_left` epoch ticks.
    pub fn new(policy_name: Arc<str>, memory_bytes: usize, ticks_left: u64) -> CallState {
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
            },
            stdout,
            stderr,
            stdout_flushed: 0,
            stderr_flushed: 0,
            policy_name,
            log_lines_left: LOG_LINES_PER_CALL,
            ticks_left,
        }
    }

    /// Readies a reused instance's state for its next call: a new deadline
    /// and a new allowance of log lines.
    pub fn start_call(&mut self, ticks_left: u64) {
        self.ticks_left = ticks_left;
        self.log_lines_left = LOG_LINES_PER_CALL;
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
                tracing::info!(policy = %self.policy_name, stream, output = ?text.trim_end(), "policy output");
            }
            *flushed = bytes.len();
        }
    }
}

/// The store's limits, remembering how large the instance's memories grew, so
/// a reused instance can be retired before it reaches its cap.
pub struct TrackedLimits {
    limits: StoreLimits,
    largest_memory: usize,
}

impl ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.largest_memory = self.largest_memory.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
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
        let mut message = message;
        if message.len() > LOG_LINE_BYTES {
            let mut end = LOG_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let policy = &*self.policy_name;
        match level {
            LogLevel::Trace => tracing::trace!(policy, "{message}"),
            LogLevel::Debug => tracing::debug!(policy, "{message}"),
            LogLevel::Info => tracing::info!(policy, "{message}"),
            LogLevel::Warn => tracing::warn!(policy, "{message}"),
            LogLevel::Error => tracing::error!(policy, "{message}"),
        }
        if self.log_lines_left == 0 {
            tracing::warn!(
                policy,
                "policy reached {LOG_LINES_PER_CALL} log lines in one call; further lines are dropped"
            );
        }
    }
}
