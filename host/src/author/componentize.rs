//! `nats-callout componentize`: turns a core WebAssembly module built for WASI
//! preview 1 (what `GOOS=wasip1 go build -buildmode=c-shared` produces) into a
//! policy component.
//!
//! It embeds the `policy` world of `wit/policy.wit` (compiled into this binary,
//! so it always matches the host) and adapts the module's preview-1 imports to
//! WASI preview 2 with the reactor adapter of the same wasmtime release. Policy
//! authors need no `wasm-tools` and no copy of the WIT.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

use crate::policy::wit::POLICY_WIT;

/// Why a module could not be turned into a policy component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentizeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is already a component; only core modules need componentizing")]
    AlreadyComponent { path: String },
    #[error("{path} is not a WebAssembly module")]
    NotWasm { path: String },
    #[error("cannot make a policy component from {path}: {reason}")]
    Encode { path: String, reason: String },
}

/// Makes a policy component from the core module `module`.
pub fn componentize(module: &[u8], path: &Path) -> Result<Vec<u8>, ComponentizeError> {
    let path = path.display().to_string();
    if wasmparser::Parser::is_component(module) {
        return Err(ComponentizeError::AlreadyComponent { path });
    }
    if !wasmparser::Parser::is_core_wasm(module) {
        return Err(ComponentizeError::NotWasm { path });
    }
    let encode = |reason: anyhow::Error| ComponentizeError::Encode {
        path: path.clone(),
        reason: format!("{reason:#}"),
    };
    let mut resolve = Resolve::default();
    let package = resolve.push_str("policy.wit", POLICY_WIT).map_err(encode)?;
    let world = resolve
        // Every capability: wit-component keeps only the imports the module
        // uses, so a policy imports just the capabilities it calls.
        .select_world(&[package], Some("policy-with-capabilities"))
        .map_err(encode)?;
    let mut module = module.to_vec();
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).map_err(encode)?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| {
            encoder.adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|mut encoder| encoder.encode())
        .map_err(encode)
}

/// Reads the module at `input` and writes the component to `output`.
pub fn run(input: &Path, output: &Path) -> anyhow::Result<usize> {
    let module = std::fs::read(input).map_err(|source| ComponentizeError::Read {
        path: input.display().to_string(),
        source,
    })?;
    let component = componentize(&module, input)?;
    std::fs::write(output, &component)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
    Ok(component.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_core_module() {
        let path = Path::new("x.wasm");
        assert!(matches!(
            componentize(b"hello", path),
            Err(ComponentizeError::NotWasm { .. })
        ));
        // The preamble of a component: magic, version 0x0d, layer 1.
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(matches!(
            componentize(&component, path),
            Err(ComponentizeError::AlreadyComponent { .. })
        ));
    }

    #[test]
    fn a_module_without_the_exports_is_refused_with_the_missing_name() {
        // An empty core module: it lacks `init` and `authorize`.
        let empty = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let error = componentize(&empty, Path::new("empty.wasm"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("empty.wasm"), "{error}");
        assert!(
            error.contains("init") || error.contains("authorize"),
            "{error}"
        );
    }
}
