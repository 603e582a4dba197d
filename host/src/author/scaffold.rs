//! `nats-callout new`: a policy project to start from, in any of the four
//! languages. Each one holds the same small policy (users by name and
//! password, from its settings), its native unit tests, a build script
//! that writes `policy.wasm`, a conformance kit it passes, and a README —
//! so an author starts from something that builds and passes, and changes
//! it. The templates live in `host/scaffold/`; CI builds one per language.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The languages a policy can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Go,
    #[value(alias = "typescript", alias = "js")]
    Ts,
    #[value(alias = "py")]
    Python,
}

/// One file of a template: where it goes in the project, and its text with
/// `{{name}}`, `{{crate}}` and `{{sdk}}` still to fill in.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! templates {
    ($($path:literal => $file:literal),* $(,)?) => {
        &[$(Template { path: $path, text: include_str!(concat!("../../scaffold/", $file)) }),*]
    };
}

const KIT: &[Template] = templates![
    "kit/settings.json" => "kit/settings.json",
    "kit/cases/alice.json" => "kit/cases/alice.json",
    "kit/cases/wrong-password.json" => "kit/cases/wrong-password.json",
    "kit/cases/unknown-user.json" => "kit/cases/unknown-user.json",
    "kit/cases/anonymous.json" => "kit/cases/anonymous.json",
    "kit/refused/no-users.json" => "kit/refused/no-users.json",
    "kit/refused/no-account.json" => "kit/refused/no-account.json",
    "kit/refused/extra-field.json" => "kit/refused/extra-field.json",
    "kit/refused/empty-password.json" => "kit/refused/empty-password.json",
];

const README: &str = include_str!("../../scaffold/README.md");

/// What differs between the languages.
struct Flavour {
    /// The language's name in the README.
    title: &'static str,
    /// The SDK's folder under `sdk/`.
    sdk: &'static str,
    /// The file that holds the policy.
    source: &'static str,
    /// How to run the unit tests, from the project's folder.
    test: &'static str,
    files: &'static [Template],
}

impl Language {
    fn flavour(self) -> Flavour {
        match self {
            Language::Rust => Flavour {
                title: "Rust",
                sdk: "rust",
                source: "src/lib.rs",
                test: "cargo test",
                files: templates![
                    "Cargo.toml" => "rust/Cargo.toml",
                    "src/lib.rs" => "rust/src/lib.rs",
                    "build.sh" => "rust/build.sh",
                    ".gitignore" => "rust/gitignore",
                ],
            },
            Language::Go => Flavour {
                title: "Go",
                sdk: "go",
                source: "main.go",
                test: "go test ./...",
                files: templates![
                    "go.mod" => "go/go.mod",
                    "main.go" => "go/main.go",
                    "main_test.go" => "go/main_test.go",
                    "build.sh" => "go/build.sh",
                    ".gitignore" => "go/gitignore",
                ],
            },
            Language::Ts => Flavour {
                title: "TypeScript",
                sdk: "js",
                source: "src/policy.ts",
                test: "npm install && npm test",
                files: templates![
                    "package.json" => "ts/package.json",
                    "tsconfig.json" => "ts/tsconfig.json",
                    "src/policy.ts" => "ts/src/policy.ts",
                    "test/policy.test.ts" => "ts/test/policy.test.ts",
                    "build.sh" => "ts/build.sh",
                    ".gitignore" => "ts/gitignore",
                ],
            },
            Language::Python => Flavour {
                title: "Python",
                sdk: "python",
                source: "app.py",
                test: "pytest",
                files: templates![
                    "app.py" => "python/app.py",
                    "test_app.py" => "python/test_app.py",
                    "pyproject.toml" => "python/pyproject.toml",
                    "build.sh" => "python/build.sh",
                    ".gitignore" => "python/gitignore",
                ],
            },
        }
    }
}

/// Writes a new policy project in `language` into `dir` (which must not
/// exist or be empty), depending on the SDKs in `sdk` (found next to this
/// binary when not given). Returns what to print: the files and the next
/// commands.
pub fn create(dir: &Path, language: Language, sdk: Option<&Path>) -> anyhow::Result<String> {
    let name = project_name(dir)?;
    let flavour = language.flavour();
    let sdk = sdk_folder(sdk, flavour.sdk)?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} is not empty: new writes a project into an empty or new folder",
            dir.display()
        );
    }
    let fill = |text: &str| {
        text.replace("{{name}}", &name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk)
            .replace("{{language}}", flavour.title)
            .replace("{{source}}", flavour.source)
            .replace("{{test}}", &format!("{:<51} # unit tests", flavour.test))
    };
    let readme = Template {
        path: "README.md",
        text: README,
    };
    let mut written = Vec::new();
    for template in flavour.files.iter().chain(KIT).chain([&readme]) {
        let path = dir.join(template.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, fill(template.text))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if template.path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
        written.push(template.path);
    }
    let dir = dir.display();
    Ok(format!(
        "Created {dir}/, a {title} policy: {files}.\n\nNext:\n  cd {dir}\n  {test}\n  ./build.sh\n  nats-callout check --policy policy.wasm --kit kit\n",
        title = flavour.title,
        files = written.join(", "),
        test = flavour.test,
    ))
}

/// The project's name: its folder's, which every ecosystem must accept as
/// a package name.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} does not end in a folder name", dir.display()))?;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "the folder's name {name:?} becomes the package's name: use lowercase letters, digits, '-' and '_', starting with a letter"
        );
    }
    Ok(name.to_string())
}

/// The SDKs' folder (`<checkout>/sdk`) as the generated files name it:
/// `given`, else `$NATS_CALLOUT_SDK`, else the `sdk` folder of the checkout
/// this binary was built in.
fn sdk_folder(given: Option<&Path>, language: &str) -> anyhow::Result<String> {
    let found = match given {
        Some(path) => Some(path.to_path_buf()),
        None => std::env::var_os("NATS_CALLOUT_SDK")
            .map(PathBuf::from)
            .or_else(sdk_beside_binary),
    };
    let Some(sdk) = found else {
        bail!(
            "cannot find the SDKs: pass --sdk <nats-callout checkout>/sdk (or set NATS_CALLOUT_SDK)"
        );
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("the SDK folder {} is not there", sdk.display()))?;
    if !sdk.join(language).is_dir() {
        bail!(
            "{} holds no {language} SDK ({}/{language} is missing): --sdk names the sdk folder of a nats-callout checkout",
            sdk.display(),
            sdk.display()
        );
    }
    let text = sdk
        .to_str()
        .with_context(|| format!("the SDK folder {} is not UTF-8", sdk.display()))?;
    // Written inside TOML and JSON strings, go.mod and double-quoted shell.
    let unsafe_char =
        |c: char| matches!(c, '"' | '\\' | '$' | '`') || c.is_whitespace() || c.is_control();
    if text.contains(unsafe_char) {
        bail!(
            "the SDK folder {text:?} holds a space, quote, backslash, '$' or '`', which the generated go.mod, Cargo.toml and scripts cannot hold: use a path without them"
        );
    }
    Ok(text.to_string())
}

/// `<checkout>/sdk` when this binary runs from `<checkout>/target/...`.
fn sdk_beside_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|folder| folder.join("sdk"))
        .find(|sdk| sdk.join("rust").join("Cargo.toml").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sdk(root: &Path) -> PathBuf {
        let sdk = root.join("sdk");
        for language in ["rust", "go", "js", "python"] {
            std::fs::create_dir_all(sdk.join(language)).unwrap();
        }
        sdk
    }

    #[test]
    fn every_language_fills_every_placeholder_and_makes_its_script_executable() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let sdk = fake_sdk(root.path());
        for language in [Language::Rust, Language::Go, Language::Ts, Language::Python] {
            let dir = root.path().join(format!("my-{language:?}").to_lowercase());
            let printed = create(&dir, language, Some(&sdk)).unwrap();
            assert!(printed.contains("./build.sh"), "{printed}");
            for template in language.flavour().files.iter().chain(KIT) {
                let text = std::fs::read_to_string(dir.join(template.path)).unwrap();
                assert!(!text.contains("{{"), "{language:?} {}", template.path);
            }
            let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
            assert!(!readme.contains("{{"), "{readme}");
            let mode = std::fs::metadata(dir.join("build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111);
        }
        let cargo = std::fs::read_to_string(root.path().join("my-rust/Cargo.toml")).unwrap();
        let canonical = std::fs::canonicalize(&sdk).unwrap();
        assert!(cargo.contains(&format!("path = \"{}/rust\"", canonical.display())));
        assert!(cargo.contains("name = \"my-rust\""));
    }

    #[test]
    fn bad_names_full_folders_and_missing_sdks_are_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let sdk = fake_sdk(root.path());
        let error = |dir: &Path, sdk: &Path| {
            create(dir, Language::Go, Some(sdk))
                .err()
                .unwrap()
                .to_string()
        };
        let upper = error(&root.path().join("MyPolicy"), &sdk);
        assert!(
            upper.contains("\"MyPolicy\" becomes the package's name"),
            "{upper}"
        );
        let full = root.path().join("full");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("keep.txt"), "mine").unwrap();
        assert!(error(&full, &sdk).contains("is not empty"));
        assert_eq!(
            std::fs::read_to_string(full.join("keep.txt")).unwrap(),
            "mine"
        );
        let missing = error(&root.path().join("ok"), &root.path().join("nowhere"));
        assert!(missing.contains("is not there"), "{missing}");
        std::fs::remove_dir_all(sdk.join("go")).unwrap();
        let no_go = error(&root.path().join("ok"), &sdk);
        assert!(no_go.contains("holds no go SDK"), "{no_go}");
    }
}
