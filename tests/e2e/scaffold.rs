//! `nats-callout new`, as an author meets it: in a folder outside the
//! checkout, the project of each language passes its own unit tests, builds
//! with its own script, passes its own conformance kit, and passes it again
//! under the `callout.toml` its README has `keys` write.

use std::path::Path;
use std::process::Command;

use super::run_cli;

/// Runs `program args` in `dir`, failing with its output.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("NATS_CALLOUT", env!("CARGO_BIN_EXE_nats-callout"))
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed in {}:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Passes when the project `new` writes for `lang` passes `tests` (each a
/// command run in the project's folder), builds, and passes its kit.
fn a_new_project_builds_and_passes_its_kit(lang: &str, tests: &[&[&str]]) {
    let root = tempfile::tempdir().expect("a folder");
    let dir = root.path().join(format!("my-{lang}-policy"));
    // No --sdk: the SDKs of the checkout this binary was built in.
    let created = run_cli(&["new", "--lang", lang, dir.to_str().unwrap()]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("./build.sh"));
    for test in tests {
        run_in(&dir, test[0], &test[1..]);
    }
    run_in(&dir, "./build.sh", &[]);
    let policy = dir.join("policy.wasm");
    assert!(policy.is_file(), "build.sh wrote no policy.wasm");
    let kit = |extra: &[&str]| {
        let mut args = vec!["check", "--kit", "kit"];
        args.extend(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_nats-callout"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("nats-callout runs");
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{report}");
        assert!(report.contains("8 cases, 8 passed, 0 failed"), "{report}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    kit(&["--policy", "policy.wasm"]);

    // The README's "Run it": keys writes callout.toml naming the policy,
    // the settings are appended, and the kit passes under them.
    run_in(
        &dir,
        env!("CARGO_BIN_EXE_nats-callout"),
        &["keys", "--out", "service", "--policy", "policy.wasm"],
    );
    let settings = "[policy.settings.users.alice]\npassword = \"wonderland\"\naccount = \"APP\"\npublish = [\"app.alice.>\"]\nsubscribe = [\"app.>\", \"_INBOX.>\"]\n";
    let config = dir.join("service/callout.toml");
    let text = std::fs::read_to_string(&config).expect("callout.toml");
    std::fs::write(&config, format!("{text}{settings}")).expect("append settings");
    let stderr = kit(&["--config", "service/callout.toml"]);
    assert!(
        stderr.contains("kit/settings.json is not used: the cases run with the tenant's settings"),
        "{stderr}"
    );
}

#[test]
fn a_new_rust_project_builds_and_passes_its_kit() {
    a_new_project_builds_and_passes_its_kit("rust", &[&["cargo", "test", "--quiet"]]);
}

#[test]
fn a_new_go_project_builds_and_passes_its_kit() {
    a_new_project_builds_and_passes_its_kit("go", &[&["go", "vet", "."], &["go", "test", "./..."]]);
}

#[test]
fn a_new_typescript_project_builds_and_passes_its_kit() {
    a_new_project_builds_and_passes_its_kit(
        "ts",
        &[
            &["npm", "install", "--no-audit", "--no-fund"],
            &["npm", "test", "--silent"],
        ],
    );
}

#[test]
fn a_new_python_project_builds_and_passes_its_kit() {
    a_new_project_builds_and_passes_its_kit("python", &[&["python", "-m", "pytest", "-q"]]);
}
