//! The on-disk cache of compiled policies.
//!
//! Compiling a policy runs its `init` and compiles the snapshot twice with
//! Cranelift: a fraction of a second for Rust, tens of seconds for a
//! JavaScript or Python runtime. The cache keeps the compiled, initialized
//! snapshot, keyed by everything it depends on (the component's bytes, the
//! settings baked in by `init`, this host's version and the engine's
//! configuration), so a restart with the same policy loads in milliseconds.
//!
//! A cached file is native code the host maps and runs, and the snapshot in
//! it holds the policy's parsed settings (secrets included): the folder must
//! belong to the service's user and be closed to everyone else. The cache
//! creates it with mode 0700, and refuses (logs, then compiles as if there
//! were no cache) a folder that is a symlink, belongs to another user or is
//! open to group or others. Entries are written 0600 under a unique temporary
//! name and renamed, so a crash or a concurrent writer never leaves a
//! half-written entry under a real name. `serve` removes, once every tenant
//! is loaded, the entries of its components built with settings no tenant
//! uses ([`CompiledCache::retain`]), so rotated secrets do not linger.

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
    /// The cache a setting asks for: `dir`, none for an empty path, and
    /// [`default_dir`] when unset.
    pub fn configured(dir: Option<&Path>) -> Option<CompiledCache> {
        match dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(CompiledCache::new(dir)),
            None => default_dir().map(CompiledCache::new),
        }
    }
}

/// What an entry holds: the component compiled after `init` ran, or the
/// component instrumented to run `init` (which does not depend on settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Snapshot,
    Instrumented,
}

/// Names one entry: `<kind>-<component digest>-<digest of everything>.cwasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// `<kind>-<component digest>-`: shared by the builds of one component.
    family: String,
    /// The digest of everything the compiled entry depends on.
    full: String,
}

impl CacheKey {
    fn file_name(&self) -> String {
        format!("{}{}.cwasm", self.family, self.full)
    }
}

impl CompiledCache {
    pub fn new(dir: impl Into<PathBuf>) -> CompiledCache {
        CompiledCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `wasm` compiled as `kind`, initialized with `settings` under
    /// a memory cap of `memory_bytes` (a snapshot depends on both; pass
    /// nothing for them with `EntryKind::Instrumented`). Settings count by
    /// their meaning, not their text: `check`'s JSON file and `serve`'s TOML
    /// table with the same settings share one entry.
    pub fn key(
        engine: &Engine,
        kind: EntryKind,
        wasm: &[u8],
        settings: &str,
        memory_bytes: usize,
    ) -> CacheKey {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let kind_name = match kind {
            EntryKind::Snapshot => "snapshot",
            EntryKind::Instrumented => "instrumented",
        };
        let wasm_digest = Sha256::digest(wasm);
        let mut digest = Sha256::new();
        for part in [
            kind_name.as_bytes(),
            env!("CARGO_PKG_VERSION").as_bytes(),
            &engine_hash.finish().to_le_bytes(),
            &wasm_digest,
            &Sha256::digest(canonical_settings(settings).as_bytes()),
            &(memory_bytes as u64).to_le_bytes(),
        ] {
            // Length-prefixed, so no two different lists hash alike.
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        let wasm_hex = format!("{wasm_digest:x}");
        CacheKey {
            family: format!("{kind_name}-{}-", &wasm_hex[..16]),
            full: format!("{:x}", digest.finalize()),
        }
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The compiled policy stored under `key`, if there is a usable one. A
    /// corrupt or incompatible entry is logged, removed and treated as absent.
    pub fn get(&self, engine: &Engine, key: &CacheKey) -> Option<Component> {
        let path = self.path(key);
        if !path.is_file() || !self.folder_is_private() {
            return None;
        }
        // SAFETY: the folder belongs to this user and is closed to others
        // (checked just above), and entries are written only by `put` below;
        // wasmtime still checks the header and the engine compatibility.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "ignoring an unusable compiled-policy cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled policy. Failing to store only costs the next start a
    /// compile, so errors are logged, not returned.
    pub fn put(&self, key: &CacheKey, component: &Component) {
        if let Err(error) = self.try_put(key, component) {
            tracing::warn!(dir = %self.dir.display(), error = %error, "cannot store the compiled policy in the cache");
        }
    }

    fn try_put(&self, key: &CacheKey, component: &Component) -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        create_private_dir(&self.dir)?;
        if !self.folder_is_private() {
            return Err(std::io::Error::other(
                "the folder is not private to this user",
            ));
        }
        // A unique name, created 0600.
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes the entries built from the same components as `in_use` with
    /// other settings, keeping `in_use`: what `serve` calls once every
    /// tenant is loaded, so rotated secrets do not linger in old snapshots
    /// while tenants sharing a component with different settings keep
    /// theirs. (Storing does not prune: `check` and `serve` of one policy
    /// with different settings would evict each other.)
    pub fn retain(&self, in_use: &[CacheKey]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = name.ends_with(".cwasm")
                && in_use.iter().any(|key| name.starts_with(&key.family))
                && !in_use.iter().any(|key| *name == key.file_name());
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Whether the folder is a real directory of this user, closed to others.
    fn folder_is_private(&self) -> bool {
        let private = folder_is_private(&self.dir);
        if !private {
            tracing::warn!(
                dir = %self.dir.display(),
                "not using the compiled-policy cache: the folder must be a directory owned by this user with mode 0700"
            );
        }
        private
    }
}

#[cfg(unix)]
fn folder_is_private(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::symlink_metadata(dir) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Ok(meta) => {
            meta.is_dir() && meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o077 == 0
        }
        Err(_) => false,
    }
}

#[cfg(not(unix))]
fn folder_is_private(dir: &Path) -> bool {
    dir.is_dir()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// JSON text with the same meaning as `settings`, the same for every
/// spelling of it: objects' keys sorted, no whitespace. Text that is not
/// JSON is its own canonical form.
fn canonical_settings(settings: &str) -> String {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(object) => {
                let mut entries: Vec<_> = object.into_iter().collect();
                entries.sort_by(|(a, _), (b, _)| a.cmp(b));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    match serde_json::from_str::<serde_json::Value>(settings) {
        Ok(value) => sorted(value).to_string(),
        Err(_) => settings.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(wasm: &[u8], settings: &str) -> CacheKey {
        CompiledCache::key(
            &Engine::default(),
            EntryKind::Snapshot,
            wasm,
            settings,
            1 << 20,
        )
    }

    /// The smallest component: magic, version 0x0d, layer 1.
    const EMPTY_COMPONENT: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    #[test]
    fn the_key_changes_with_everything_the_entry_depends_on() {
        let engine = Engine::default();
        let base = key(b"wasm", "{}");
        assert_eq!(base, key(b"wasm", "{}"));
        assert_ne!(base, key(b"wasm2", "{}"));
        assert_ne!(base, key(b"wasm", "{\"a\":1}"));
        assert_ne!(
            base,
            CompiledCache::key(&engine, EntryKind::Snapshot, b"wasm", "{}", 2 << 20)
        );
        assert_ne!(
            base,
            CompiledCache::key(&engine, EntryKind::Instrumented, b"wasm", "{}", 1 << 20)
        );
        // Length-prefixed parts: moving bytes across the boundary changes it.
        assert_ne!(key(b"ab", "c"), key(b"a", "bc"));
        // Builds of one component share a family; other components do not.
        assert_eq!(base.family, key(b"wasm", "{\"a\":1}").family);
        assert_ne!(base.family, key(b"wasm2", "{}").family);
    }

    #[test]
    fn a_corrupt_entry_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path().join("cache"));
        create_private_dir(cache.dir()).unwrap();
        let key = key(b"wasm", "{}");
        std::fs::write(cache.path(&key), b"not a compiled component").unwrap();
        assert!(cache.get(&Engine::default(), &key).is_none());
        assert!(!cache.path(&key).exists());
    }

    #[test]
    fn settings_spelled_differently_share_a_key_and_different_ones_do_not() {
        let a = r#"{"tokens": {"s3cr3t": {"account": "APP", "publish": ["a.>"]}}, "mode": 1}"#;
        let b = "{\"mode\":1,\"tokens\":{\"s3cr3t\":{\"publish\":[\"a.>\"],\"account\":\"APP\"}}}";
        assert_eq!(key(b"wasm", a), key(b"wasm", b));
        assert_eq!(canonical_settings(a), canonical_settings(b));
        let other =
            r#"{"tokens": {"s3cr3t": {"account": "OTHER", "publish": ["a.>"]}}, "mode": 1}"#;
        assert_ne!(key(b"wasm", a), key(b"wasm", other));
        // Lists keep their order: it may mean something to a policy.
        assert_ne!(
            canonical_settings(r#"{"l": [1, 2]}"#),
            canonical_settings(r#"{"l": [2, 1]}"#)
        );
        assert_eq!(canonical_settings("not json"), "not json");
    }

    #[test]
    fn a_stored_component_comes_back_and_stale_settings_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let (old, new, other) = (key(b"w", "old"), key(b"w", "new"), key(b"x", "old"));
        let second_tenant = key(b"w", "tenant two");
        cache.put(&old, &component);
        cache.put(&other, &component);
        cache.put(&new, &component);
        cache.put(&second_tenant, &component);
        assert!(cache.get(&engine, &new).is_some());
        assert!(cache.path(&old).exists(), "storing prunes nothing");
        cache.retain(&[new.clone(), second_tenant.clone()]);
        assert!(
            !cache.path(&old).exists(),
            "the entry with the old settings is gone"
        );
        assert!(
            cache.path(&second_tenant).exists(),
            "another tenant's settings of the same component stay"
        );
        assert!(
            cache.path(&other).exists(),
            "another component's entry stays"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(cache.dir()), 0o700);
            assert_eq!(mode(&cache.path(&new)), 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_open_to_others_is_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = CompiledCache::new(&open);
        let engine = Engine::default();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let key = key(b"w", "{}");
        cache.put(&key, &component);
        assert!(
            !cache.path(&key).exists(),
            "nothing is written into an open folder"
        );
        // An entry someone else put there is not loaded either.
        std::fs::write(cache.path(&key), component.serialize().unwrap()).unwrap();
        assert!(cache.get(&engine, &key).is_none());
        // Nor through a symlink to a private folder.
        let private = dir.path().join("private");
        create_private_dir(&private).unwrap();
        std::os::unix::fs::symlink(&private, dir.path().join("link")).unwrap();
        let linked = CompiledCache::new(dir.path().join("link"));
        linked.put(&key, &component);
        assert!(linked.get(&engine, &key).is_none());
    }
}
