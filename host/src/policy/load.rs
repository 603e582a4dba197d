//! Loading a policy: read the component, refuse another world version, run
//! its `init(settings)` once and snapshot the initialized instance
//! (wasmtime-wizer), or take the compiled snapshot from the cache. Compiling
//! runs on the blocking pool, never on the async workers that answer
//! requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Instance};
use wasmtime::{Engine, Trap};
use wasmtime_wizer::{ComponentContext, WasmtimeWizerComponent, Wizer};

use super::cache::{CacheKey, CompiledCache, EntryKind};
use super::call::{bounded, describe, new_store, start_instance};
use super::sandbox::Sandbox;
use super::wit::PolicyPre;
use super::{Deadline, LoadedPolicy, PolicySource, PoolCounts};
use crate::capability::{Capability, Grants};
use crate::untrusted::printable;

/// The deadline of a policy's `init`, which may parse large settings.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a load error shows of a message the policy wrote (its `init` error).
const POLICY_MESSAGE_BYTES: usize = 1024;

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
    #[error(
        "policy {path} imports the capability {capability}, which its configuration does not grant: grant it with {} (offline: `check --capabilities <data.json>`, or a kit's capabilities.json), or build the policy without it",
        capability.how_to_grant()
    )]
    NotGranted {
        path: PathBuf,
        capability: Capability,
    },
}

impl LoadedPolicy {
    /// Reads the component `source` names, runs its `init(settings)` and
    /// snapshots the result, or takes the compiled snapshot from `cache`.
    pub async fn load(
        sandbox: &Arc<Sandbox>,
        source: &PolicySource,
        cache: Option<&CompiledCache>,
    ) -> Result<LoadedPolicy, LoadError> {
        let started = Instant::now();
        let path = source.wasm.as_path();
        let wasm = std::fs::read(path).map_err(|error| LoadError::Read {
            path: path.to_path_buf(),
            source: error,
        })?;
        let name: Arc<str> = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy".into())
            .into();
        let imports = component_imports(&wasm);
        if let Some(built_for) = foreign_world_version(&imports) {
            return Err(LoadError::WrongVersion {
                path: path.to_path_buf(),
                built_for,
            });
        }
        if let Some(capability) = source
            .grants
            .first_refused(imports.iter().map(String::as_str))
        {
            return Err(LoadError::NotGranted {
                path: path.to_path_buf(),
                capability,
            });
        }
        let limits = source.limits;
        let (component, from_cache, cache_key) =
            snapshot(sandbox, &wasm, source, &name, cache).await?;
        let pre = sandbox
            .linker()
            .instantiate_pre(&component)
            .and_then(PolicyPre::new)
            .map_err(|e| invalid(path, e))?;
        // Instantiate once now, so a policy that cannot start under these
        // limits (a snapshot bigger than the memory cap, more core instances
        // than the pool allows) fails the load rather than every request.
        start_instance(
            sandbox,
            &pre,
            &name,
            limits.memory_bytes,
            Deadline::after(INIT_TIMEOUT),
        )
        .await
        .map_err(|error| LoadError::CannotStart {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Ok(LoadedPolicy {
            name,
            path: path.to_path_buf(),
            imports,
            digest: format!("{:x}", Sha256::digest(&wasm)),
            sandbox: sandbox.clone(),
            pre,
            limits,
            grants: source.grants.clone(),
            idle: Mutex::new(Vec::new()),
            pool: PoolCounts::default(),
            from_cache,
            load_time: started.elapsed(),
            cache_key,
        })
    }
}

impl LoadedPolicy {
    /// The same policy, answering with `grants`' capabilities instead (a
    /// golden kit's offline data): its compiled snapshot and
    /// pre-instantiation are shared, not loaded again — `init` cannot reach
    /// the capabilities that differ, so the snapshot is the same. Refused,
    /// as at load, when the component imports a capability `grants` lacks.
    pub fn with_grants(&self, grants: Arc<Grants>) -> Result<LoadedPolicy, LoadError> {
        if let Some(capability) = grants.first_refused(self.imports.iter().map(String::as_str)) {
            return Err(LoadError::NotGranted {
                path: self.path.clone(),
                capability,
            });
        }
        Ok(LoadedPolicy {
            name: self.name.clone(),
            path: self.path.clone(),
            imports: self.imports.clone(),
            digest: self.digest.clone(),
            sandbox: self.sandbox.clone(),
            pre: self.pre.clone(),
            limits: self.limits,
            grants,
            idle: Mutex::new(Vec::new()),
            pool: PoolCounts::default(),
            from_cache: self.from_cache,
            load_time: self.load_time,
            cache_key: self.cache_key.clone(),
        })
    }
}

/// The compiled snapshot of the policy initialized with its settings, from
/// the cache or made now; whether it came from the cache; its cache key.
async fn snapshot(
    sandbox: &Sandbox,
    wasm: &[u8],
    source: &PolicySource,
    name: &Arc<str>,
    cache: Option<&CompiledCache>,
) -> Result<(Component, bool, CacheKey), LoadError> {
    let engine = sandbox.engine();
    let key = CompiledCache::key(
        engine,
        EntryKind::Snapshot,
        wasm,
        &source.settings_json,
        source.limits.memory_bytes,
    );
    if let Some(component) = cache.and_then(|cache| cache.get(engine, &key)) {
        return Ok((component, true, key));
    }
    let snapshot = initialize(sandbox, wasm, source, name, cache).await?;
    let component = compile(engine, snapshot, &source.wasm).await?;
    if let Some(cache) = cache {
        cache.put(&key, &component);
    }
    Ok((component, false, key))
}

/// The policy at `path` is not a component of the policy world.
fn invalid(path: &Path, error: impl std::fmt::Display) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        reason: format!("{error:#}"),
    }
}

/// Compiles a component with Cranelift on the blocking pool: seconds for a
/// language runtime, which must not hold an async worker that answers
/// requests.
async fn compile(engine: &Engine, wasm: Vec<u8>, path: &Path) -> Result<Component, LoadError> {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || Component::new(&engine, &wasm)).await {
        Ok(compiled) => compiled.map_err(|e| invalid(path, format!("{e:#}"))),
        // A panic in the compiler is a bug in it, not in the policy.
        Err(failed) => match failed.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(cancelled) => Err(invalid(
                path,
                format!("compiling was cancelled: {cancelled}"),
            )),
        },
    }
}

/// Runs the policy's `init(settings)` in an instrumented instance and
/// returns the component rewritten to start in the state `init` left.
async fn initialize(
    sandbox: &Sandbox,
    wasm: &[u8],
    source: &PolicySource,
    name: &Arc<str>,
    cache: Option<&CompiledCache>,
) -> Result<Vec<u8>, LoadError> {
    let path = source.wasm.as_path();
    let memory_bytes = source.limits.memory_bytes;
    let (context, component) = instrument(sandbox.engine(), wasm, path, cache).await?;

    // Starting the component and `init` share one deadline.
    let deadline = Deadline::after(INIT_TIMEOUT);
    let init_failed = |error: &wasmtime::Error, out_of_memory: bool| LoadError::InitFailed {
        path: path.to_path_buf(),
        reason: describe(error, deadline, memory_bytes, out_of_memory).to_string(),
    };
    let mut store = new_store(sandbox, name, memory_bytes, deadline);
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
        Err(error) => return Err(invalid(path, error)),
    };
    let init = instance
        .get_typed_func::<(&str,), (Result<(), String>,)>(&mut store, "init")
        .map_err(|e| invalid(path, format!("init: {e:#}")))?;
    let settings = source.settings_json.as_str();
    let called = bounded(deadline, init.call_async(&mut store, (settings,))).await;
    store.data_mut().flush_output();
    let out_of_memory = store.data().ran_out_of_memory();
    let (outcome,) = called.map_err(|error| init_failed(&error, out_of_memory))?;
    outcome.map_err(|reason| LoadError::SettingsRefused {
        path: path.to_path_buf(),
        reason: printable(&reason, POLICY_MESSAGE_BYTES).into_owned(),
    })?;
    wizer()
        .snapshot_component(
            &context,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(|e| invalid(path, format!("snapshot after init: {e:#}")))
}

/// The component instrumented by wizer to run `init` and be snapshotted,
/// compiled. It does not depend on the settings, so it is cached too: loading
/// the same policy with other settings skips a compile. (Instrumenting is a
/// linear pass over the bytes and stays inline; compiling does not.)
async fn instrument<'a>(
    engine: &Engine,
    wasm: &'a [u8],
    path: &Path,
    cache: Option<&CompiledCache>,
) -> Result<(ComponentContext<'a>, Component), LoadError> {
    let (context, instrumented) = wizer()
        .instrument_component(wasm)
        .map_err(|e| invalid(path, e))?;
    let key = CompiledCache::key(engine, EntryKind::Instrumented, wasm, "", 0);
    let component = match cache.and_then(|cache| cache.get(engine, &key)) {
        Some(component) => component,
        None => {
            let component = compile(engine, instrumented, path).await?;
            if let Some(cache) = cache {
                cache.put(&key, &component);
            }
            component
        }
    };
    Ok((context, component))
}

/// Wizer set to run the policy's `init` (and keep it exported: the snapshot
/// is still a component of the policy world).
fn wizer() -> Wizer {
    let mut wizer = Wizer::new();
    wizer.init_func("init").keep_init_func(true);
    wizer
}

/// The names a component imports at its top level (`nats:callout/kv@0.1.0`,
/// `wasi:io/poll@0.2.0`...); what does not parse is left out (loading
/// refuses it later, as not a component).
fn component_imports(wasm: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 0 => {
                names.extend(
                    imports
                        .into_iter()
                        .flatten()
                        .map(|import| import.name.name.to_string()),
                );
            }
            _ => {}
        }
    }
    names
}

/// The `nats:callout` version a component imports when it is not one this
/// host implements (another minor version, or another major one), from the
/// component's top-level `imports`.
fn foreign_world_version(imports: &[String]) -> Option<String> {
    let prefix = format!("{WORLD_PACKAGE}/");
    let ours = minor_of(WORLD_VERSION);
    imports.iter().find_map(|name| {
        let rest = name.strip_prefix(&prefix)?;
        let version = rest.split_once('@').map_or("", |(_, v)| v);
        (minor_of(version) != ours).then(|| {
            if version.is_empty() {
                "(no version)".into()
            } else {
                version.into()
            }
        })
    })
}

/// `major.minor` of a semantic version: what must match for a component
/// built for one `0.x` version to be compatible with another.
fn minor_of(version: &str) -> &str {
    match version.match_indices('.').nth(1) {
        Some((second_dot, _)) => &version[..second_dot],
        None => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_version_is_the_one_in_wit() {
        let declared = format!("package {WORLD_PACKAGE}@{WORLD_VERSION};");
        assert!(
            crate::policy::wit::POLICY_WIT
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
        assert!(component_imports(&empty_module).is_empty());
        assert!(component_imports(b"garbage").is_empty());
        assert_eq!(foreign_world_version(&[]), None);
        let foreign = ["nats:callout/host@0.2.0".to_string()];
        assert_eq!(foreign_world_version(&foreign), Some("0.2.0".into()));
    }
}
