//! Calling a loaded policy: a fresh instance per call (or a warm one, when
//! the policy allows reuse), every phase raced against its deadline, and any
//! failure named as a [`CallError`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::sandbox::{CallState, EPOCH_TICK, OUTPUT_CAPACITY, Sandbox};
use super::wit::{AuthRequest, Decision, Policy, PolicyPre};
use super::{Deadline, LoadedPolicy};
use crate::untrusted::printable;

/// What an error shows of a message the policy or the host wrote.
const MESSAGE_BYTES: usize = 1024;

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

impl CallError {
    /// A stable name for the kind of failure, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::OutOfMemory(_) => "out_of_memory",
            CallError::StackOverflow => "stack_overflow",
            CallError::Trap(_) => "trap",
            CallError::Host(_) => "host",
        }
    }
}

/// An initialized instance kept for further calls.
pub(super) struct WarmInstance {
    store: Store<CallState>,
    policy: Policy,
    calls_left: u32,
    /// Its largest memory when it started, in bytes.
    start_memory: usize,
}

impl LoadedPolicy {
    /// Runs `authorize` in a fresh instance (or a warm one, when the policy
    /// allows reuse). The guest runs on a fiber and yields to the async
    /// runtime every epoch tick; instantiation and the call together end by
    /// the policy's deadline, by the wall clock.
    pub async fn evaluate(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        let deadline = Deadline::after(self.limits.timeout);
        let warm = self.take_idle();
        let mut warm = match warm {
            Some(mut warm) => {
                self.pool.reused.fetch_add(1, Ordering::Relaxed);
                warm.store.set_epoch_deadline(1);
                warm
            }
            None => {
                let (store, policy) = start_instance(
                    &self.sandbox,
                    &self.pre,
                    &self.name,
                    self.limits.memory_bytes,
                    deadline,
                )
                .await?;
                self.pool.started.fetch_add(1, Ordering::Relaxed);
                WarmInstance {
                    start_memory: store.data().largest_memory(),
                    store,
                    policy,
                    calls_left: self.limits.calls_per_instance.max(1),
                }
            }
        };
        warm.store
            .data_mut()
            .start_call(deadline.at(), &self.grants);
        warm.store.data_mut().pace = Some(Pace::default());
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
                deadline,
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

/// A new instance of the snapshot in a store of its own, started by
/// `deadline`.
pub(super) async fn start_instance(
    sandbox: &Sandbox,
    pre: &PolicyPre<CallState>,
    name: &Arc<str>,
    memory_bytes: usize,
    deadline: Deadline,
) -> Result<(Store<CallState>, Policy), CallError> {
    let mut store = new_store(sandbox, name, memory_bytes, deadline);
    let started = bounded(deadline, pre.instantiate_async(&mut store)).await;
    store.data_mut().flush_output();
    match started {
        Ok(policy) => Ok((store, policy)),
        Err(error) => Err(describe(
            &error,
            deadline,
            memory_bytes,
            store.data().ran_out_of_memory(),
        )),
    }
}

/// How many epoch ticks an `authorize` call runs at full speed. Past them,
/// the call is paced: it sleeps an epoch tick after each tick in which it
/// ran, which leaves it about a quarter of a core (it runs until the next
/// tick, half a tick on average, then sleeps one to two ticks). A policy
/// that burns its whole deadline on every call then takes a fraction of the
/// CPU it would, leaving the rest to other tenants, while calls that need
/// less than about 10 ms of CPU (a few milliseconds, even for JavaScript
/// and Python) never notice. Ticks are counted while the call runs, not
/// while it waits for a worker, so a busy service does not pace calls that
/// merely waited. Loading and `init` are not paced.
pub const LONG_CALL_TICKS: u32 = 10;

/// A call's pacing: the ticks in which it ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    ticks_run: u32,
}

/// What a call does at an epoch tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// Yield behind the tasks ready to run, and go on.
    Yield,
    /// Sleep a tick: the call is past [`LONG_CALL_TICKS`].
    Sleep,
}

impl Pace {
    /// Counts a tick in which the call ran, and says how it pauses.
    fn tick(&mut self) -> Pause {
        self.ticks_run = self.ticks_run.saturating_add(1);
        if self.ticks_run > LONG_CALL_TICKS {
            Pause::Sleep
        } else {
            Pause::Yield
        }
    }
}

/// A store for one call: fresh state, memory limiter, and `deadline` checked
/// against the wall clock every epoch tick, yielding to the runtime at each
/// tick. (Counting ticks instead would stretch the deadline whenever a busy
/// machine delays the ticker or the fiber.) The yield is tokio's own, which
/// puts the call behind every task ready on its worker: wasmtime's default
/// wakes the task at once, and tokio then polls it again first (its LIFO
/// slot), so a spinning policy held its worker for several ticks while other
/// tenants' requests waited. A call that has run for [`LONG_CALL_TICKS`] is
/// paced: it sleeps a tick after each tick it runs.
pub(super) fn new_store(
    sandbox: &Sandbox,
    name: &Arc<str>,
    memory_bytes: usize,
    deadline: Deadline,
) -> Store<CallState> {
    let state = CallState::new(name.clone(), memory_bytes, deadline.at());
    let mut store = Store::new(sandbox.engine(), state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        if Instant::now() >= state.deadline {
            return Err(Trap::Interrupt.into());
        }
        let pause: Pin<Box<dyn Future<Output = ()> + Send>> =
            match state.pace.as_mut().map(Pace::tick) {
                Some(Pause::Sleep) => Box::pin(tokio::time::sleep(EPOCH_TICK)),
                Some(Pause::Yield) | None => Box::pin(tokio::task::yield_now()),
            };
        Ok(UpdateDeadline::YieldCustom(1, pause))
    });
    store
}

/// Runs one phase of a policy (instantiation, `init`, a call) until
/// `deadline`. Epoch interruption only fires while guest code runs; a guest
/// blocked in a WASI sleep or poll is pending in a host future instead, and
/// is cancelled here when the timer fires. Dropping the phase's future
/// unwinds the guest's fiber; its store is not used again.
pub(super) async fn bounded<T>(
    deadline: Deadline,
    phase: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match tokio::time::timeout_at(deadline.at().into(), phase).await {
        Ok(result) => result,
        Err(_elapsed) => Err(Trap::Interrupt.into()),
    }
}

/// Names what went wrong in a failed call; `out_of_memory` is what the
/// call's limiter saw.
pub(super) fn describe(
    error: &wasmtime::Error,
    deadline: Deadline,
    memory_bytes: usize,
    out_of_memory: bool,
) -> CallError {
    if out_of_memory {
        return CallError::OutOfMemory((memory_bytes >> 20) as u64);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return CallError::Timeout(deadline.budget_ms());
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
    CallError::Host(printable(first_line, MESSAGE_BYTES).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_paced_only_past_its_ticks_at_full_speed() {
        let mut pace = Pace::default();
        for _ in 0..LONG_CALL_TICKS {
            assert_eq!(pace.tick(), Pause::Yield);
        }
        assert_eq!(pace.tick(), Pause::Sleep);
        assert_eq!(pace.tick(), Pause::Sleep);
        // A warm instance's next call starts afresh.
        assert_eq!(Pace::default().tick(), Pause::Yield);
    }
}
