//! Regenerates the Go bindings in `sdk/go/internal/wit` from `wit/` with
//! wit-bindgen's Go generator, used as a library (the wit-bindgen CLI takes a
//! quarter of an hour to build here). Run through `sdk/go/regenerate.sh`; the
//! output is committed, so policy authors never run this.
//!
//! Usage: go-bindgen <wit dir> <out dir> <Go package path of out dir>

use anyhow::Context as _;
use wit_bindgen_core::{Files, wit_parser::Resolve};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, wit, out, package] = args.as_slice() else {
        anyhow::bail!("usage: go-bindgen <wit dir> <out dir> <Go package path of out dir>");
    };
    let mut resolve = Resolve::default();
    let (package_id, _) = resolve.push_dir(wit)?;
    let world = resolve.select_world(&[package_id], Some("policy-with-capabilities"))?;
    let mut generator = wit_bindgen_go::Opts {
        generate_stubs: true,
        pkg_name: Some(package.clone()),
        ..Default::default()
    }
    .build();
    let mut files = Files::default();
    generator.generate(&mut resolve, world, &mut files)?;
    for (name, contents) in files.iter() {
        let path = std::path::Path::new(out).join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
