//! The on-disk cache of compiled policies.
//!
//! Compiling a policy runs its `init` and compiles the snapshot twice with
//! Cranelift: a fraction of a second for Rust, tens of seconds for a
//! JavaScript or Python runtime. The cache keeps the compiled, initialized
//! snapshot, keyed by everything it depends on (the component's bytes, the
//! settings baked in by `init`, this host's version and the engine's
//! configuration), so a restart with the same policy loads in milliseconds.
//!
//! A cached file is native code the host maps and runs: the cache folder must
//! be writable by the service only. It is created with mode 0700, and entries
//! are written to a temporary name and renamed, so a crash never leaves a
//! half-written entry under a real key.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where the cache lives when nothing says otherwise:
/// `$NATS_CALLOUT_CACHE_DIR`, else `$XDG_CACHE_HOME/nats-callout`, else
/// `~/.cache/nats-callout`. An empty `NATS_CALLOUT_CACHE_DIR` turns it off.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NATS_CALLOUT_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("nats-callout"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("nats-callout"))
}

/// A folder of compiled policies.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
}

impl CompiledCache {
    pub fn new(dir: impl Into<PathBuf>) -> CompiledCache {
        CompiledCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of a policy built from `wasm` and initialized with `settings`.
    pub fn key(engine: &Engine, wasm: &[u8], settings: &str) -> String {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut digest = Sha256::new();
        for part in [
            env!("CARGO_PKG_VERSION").as_bytes(),
            &engine_hash.finish().to_le_bytes(),
            &Sha256::digest(wasm),
            &Sha256::digest(settings.as_bytes()),
        ] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        format!("{:x}", digest.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The compiled policy stored under `key`, if there is a usable one. A
    /// corrupt or incompatible entry is logged, removed and treated as absent.
    pub fn get(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key);
        if !path.is_file() {
            return None;
        }
        // SAFETY: entries are written only by `put` below, into a folder only
        // the service may write to (see the module documentation); wasmtime
        // still checks the header and the engine compatibility on load.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "ignoring an unusable compiled-policy cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled policy. Failing to store only costs the next start
    /// a compile, so errors are logged, not returned.
    pub fn put(&self, key: &str, component: &Component) {
        if let Err(error) = self.try_put(key, component) {
            tracing::warn!(dir = %self.dir.display(), error = %error, "cannot store the compiled policy in the cache");
        }
    }

    fn try_put(&self, key: &str, component: &Component) -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        create_private_dir(&self.dir)?;
        let temporary = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.path(key))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_the_component_and_the_settings() {
        let engine = Engine::default();
        let key = CompiledCache::key(&engine, b"wasm", "{}");
        assert_eq!(key, CompiledCache::key(&engine, b"wasm", "{}"));
        assert_ne!(key, CompiledCache::key(&engine, b"wasm2", "{}"));
        assert_ne!(key, CompiledCache::key(&engine, b"wasm", "{\"a\":1}"));
        // Length-prefixed parts: moving bytes across the boundary changes it.
        assert_ne!(
            CompiledCache::key(&engine, b"ab", "c"),
            CompiledCache::key(&engine, b"a", "bc")
        );
    }

    #[test]
    fn a_corrupt_entry_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        create_private_dir(cache.dir()).unwrap();
        std::fs::write(cache.path("k"), b"not a compiled component").unwrap();
        assert!(cache.get(&engine, "k").is_none());
        assert!(!cache.path("k").exists());
    }

    #[test]
    fn a_stored_component_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        // The smallest component: magic, version 0x0d, layer 1.
        let component = Component::new(&engine, [0, b'a', b's', b'm', 0x0d, 0, 1, 0]).unwrap();
        cache.put("k", &component);
        assert!(cache.get(&engine, "k").is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
