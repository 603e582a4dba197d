//! The `nats-callout` command line: `serve`, `check`, `keys`, `new`,
//! `whoami`, `componentize` and `load`, parsed and dispatched.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::author::{check, componentize, kit, scaffold};
use crate::authz::{Accounts, GrantRules};
use crate::capability::Grants;
use crate::capability::fixture::Fixture;
use crate::config::{Config, PolicyConfig};
use crate::keys;
use crate::policy::cache::CompiledCache;
use crate::policy::{PolicyLimits, PolicySource, WORLD_PACKAGE, WORLD_VERSION};
use crate::serve;
use crate::whoami;

/// `--version`: the host's version and the policy WIT it implements, which
/// a component must be built against (same major and minor version).
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (policy WIT {WORLD_PACKAGE}@{WORLD_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
});

#[derive(Parser)]
#[command(
    name = "nats-callout",
    version = VERSION.as_str(),
    about = "NATS auth callout with sandboxed WebAssembly policies"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer auth callout requests from nats-server.
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Evaluate a policy offline and print the decision as JSON.
    Check(CheckArgs),
    /// Generate the service's keys (issuer, xkey, its own user nkey) and a
    /// complete nats-server.conf and callout.toml that work together.
    Keys {
        /// Folder to write the seeds and both configurations into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// The account the service itself connects to (auth_callout account).
        #[arg(long, default_value = "AUTH")]
        account: String,
        /// The accounts the policy may place clients in (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "APP")]
        accounts: Vec<String>,
        /// The port nats-server listens on (on 127.0.0.1).
        #[arg(long, default_value_t = 4222, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// The policy component callout.toml names (default: policy.wasm
        /// beside it; a path given here is written absolute).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Write a new policy project: the policy, its unit tests, a build
    /// script and a conformance kit it passes, in the language chosen.
    New {
        /// The project's folder (new or empty); its name is the package's.
        dir: PathBuf,
        #[arg(long, value_enum)]
        lang: scaffold::Language,
        /// The SDKs' folder (`sdk` in a nats-callout checkout). Default:
        /// $NATS_CALLOUT_SDK, else the checkout this binary was built in.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Connect to NATS as a client and print what the callout decided: the
    /// account and permissions granted, or the server's refusal.
    Whoami {
        /// The server's URL.
        #[arg(long, short, default_value = "nats://127.0.0.1:4222")]
        server: String,
        /// Connect with this token.
        #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Connect with this user name and --password (rather than a token).
        #[arg(long)]
        user: Option<String>,
        #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Turn a core WebAssembly module built for WASI preview 1 (such as a Go
    /// policy) into a policy component.
    Componentize {
        /// The core module (`go build` output).
        module: PathBuf,
        /// Where to write the component.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Open many client connections through a nats-server and report
    /// connects/s, latency percentiles and CPU per connect.
    Load(nats_callout_loadgen::LoadArgs),
}

/// Arguments of `nats-callout check`.
#[derive(clap::Args)]
struct CheckArgs {
    /// The service's configuration: evaluate a tenant's policy with exactly
    /// its settings, accounts, lifetimes, ceiling, limits and cache, as
    /// `serve` loads it.
    #[arg(long, conflicts_with_all = ["settings", "accounts", "timeout_ms", "memory_mb", "default_lifetime_secs", "max_lifetime_secs", "calls_per_instance", "cache_dir"])]
    config: Option<PathBuf>,
    /// With --config: the tenant (`[[tenant]] name`), when it has several.
    #[arg(long, requires = "config")]
    tenant: Option<String>,
    /// The policy component. With --config: a build to try in the tenant's
    /// place (default: the tenant's `wasm`).
    #[arg(long, required_unless_present = "config")]
    policy: Option<PathBuf>,
    /// The policy's settings, as a JSON file (default `{}`).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// The request: the `nats` object of an authorization request, as JSON.
    #[arg(long, required_unless_present = "kit")]
    request: Option<PathBuf>,
    /// The capabilities' data (KV entries, OIDC key sets...), as JSON: what
    /// the policy's capabilities answer from, offline. A kit reads its own
    /// `capabilities.json`.
    #[arg(long)]
    capabilities: Option<PathBuf>,
    /// Run a conformance kit instead: a folder of request fixtures with
    /// their expected decisions (see tests/conformance/README.md).
    #[arg(long, conflicts_with_all = ["request", "settings", "capabilities", "repeat", "accounts", "default_lifetime_secs", "max_lifetime_secs"])]
    kit: Option<PathBuf>,
    /// Accounts the policy may grant (comma-separated); default: any.
    #[arg(long, value_delimiter = ',')]
    accounts: Option<Vec<String>>,
    #[arg(long, default_value_t = 100)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 32)]
    memory_mb: u64,
    #[arg(long, default_value_t = 3600)]
    default_lifetime_secs: u64,
    #[arg(long, default_value_t = 86400)]
    max_lifetime_secs: u64,
    /// Calls one instance serves before it is dropped (see `[policy]
    /// calls_per_instance`).
    #[arg(long, default_value_t = 1)]
    calls_per_instance: u32,
    /// Compiled-policy cache folder. Default as for `serve`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Do not use the compiled-policy cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Also call the policy this many more times and report its load
    /// time and per-call latency.
    #[arg(long, default_value_t = 0)]
    repeat: u32,
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check(args) => check(args),
        Command::Keys {
            out,
            account,
            accounts,
            port,
            policy,
        } => {
            let policy = match policy {
                Some(path) => std::path::absolute(&path)
                    .with_context(|| format!("--policy {}", path.display()))?,
                None => PathBuf::from("policy.wasm"),
            };
            print!(
                "{}",
                keys::generate(&keys::KeysRequest {
                    out: &out,
                    auth_account: &account,
                    accounts: &accounts,
                    port,
                    policy: &policy,
                })?
            );
            Ok(())
        }
        Command::New { dir, lang, sdk } => {
            print!("{}", scaffold::create(&dir, lang, sdk.as_deref())?);
            Ok(())
        }
        Command::Whoami {
            server,
            token,
            user,
            password,
        } => {
            let credentials = match (user, password, token) {
                (Some(user), Some(password), _) => {
                    whoami::Credentials::UserAndPassword { user, password }
                }
                (Some(_), None, _) => anyhow::bail!("--user needs --password (or NATS_PASSWORD)"),
                (None, _, Some(token)) => whoami::Credentials::Token(token),
                (None, _, None) => {
                    anyhow::bail!("--token (or NATS_TOKEN), or --user with --password, is required")
                }
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let outcome = runtime.block_on(whoami::run(&server, credentials));
            println!("{}", outcome.line);
            if !outcome.admitted {
                // Scripts read the status: refused and unreachable both fail.
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Componentize { module, out } => {
            let size = componentize::run(&module, &out)?;
            eprintln!("wrote {} ({size} bytes)", out.display());
            Ok(())
        }
        Command::Load(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(nats_callout_loadgen::run(args))
        }
    }
}

/// The policy `check` evaluates and what it is held to: given on the command
/// line, or one tenant of the service's configuration.
struct Subject {
    /// The component: --policy, else the tenant's.
    wasm: PathBuf,
    /// Each call's deadline, memory cap and instance reuse.
    limits: PolicyLimits,
    /// The compiled-policy cache, unless --no-cache.
    cache: Option<CompiledCache>,
    /// The settings handed to `init`: --settings (default `{}`), or the
    /// tenant's.
    settings_json: String,
    /// The tenant's policy, with `--config`.
    tenant: Option<PolicyConfig>,
}

impl Subject {
    fn of(args: &CheckArgs) -> anyhow::Result<Subject> {
        let Some(path) = &args.config else {
            let Some(wasm) = args.policy.clone() else {
                anyhow::bail!("--policy or --config is required");
            };
            let settings_json = match &args.settings {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read settings {}", path.display()))?,
                None => "{}".into(),
            };
            return Ok(Subject {
                wasm,
                settings_json,
                limits: PolicyLimits {
                    timeout: Duration::from_millis(args.timeout_ms),
                    memory_bytes: usize::try_from(args.memory_mb << 20).unwrap_or(usize::MAX),
                    calls_per_instance: args.calls_per_instance.max(1),
                    max_idle_instances: 1,
                },
                cache: (!args.no_cache)
                    .then(|| CompiledCache::configured(args.cache_dir.as_deref()))
                    .flatten(),
                tenant: None,
            });
        };
        let config = Config::load(path)?;
        let tenant = tenant_policy(&config, args.tenant.as_deref())
            .with_context(|| format!("{}", path.display()))?;
        let mut limits = tenant.limits(&config.service);
        // One caller at a time: `serve`'s idle pool has nothing to reuse here.
        limits.max_idle_instances = limits.max_idle_instances.min(1);
        Ok(Subject {
            wasm: args.policy.clone().unwrap_or_else(|| tenant.wasm.clone()),
            limits,
            cache: if args.no_cache { None } else { tenant.cache() },
            settings_json: tenant.settings_json(),
            tenant: Some(tenant),
        })
    }

    /// The policy to load, with no capability granted yet.
    fn source(&self) -> PolicySource {
        PolicySource {
            wasm: self.wasm.clone(),
            settings_json: self.settings_json.clone(),
            limits: self.limits,
            grants: Grants::none(),
        }
    }
}

/// The policy of the tenant `name` of `config` (its only one when `name` is
/// not given).
fn tenant_policy(config: &Config, name: Option<&str>) -> anyhow::Result<PolicyConfig> {
    let names = || {
        config
            .tenants
            .iter()
            .map(|tenant| tenant.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tenant = match (name, config.tenants.as_slice()) {
        (None, [only]) => only,
        (None, _) => anyhow::bail!(
            "it has several tenants: choose one with --tenant ({})",
            names()
        ),
        (Some(name), tenants) => tenants
            .iter()
            .find(|tenant| tenant.name == name)
            .with_context(|| format!("it has no tenant {name:?} (it has: {})", names()))?,
    };
    Ok(tenant.policy.clone())
}

/// `check`: one request, or with `--kit` a whole conformance kit.
fn check(args: CheckArgs) -> anyhow::Result<()> {
    let subject = Subject::of(&args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(kit) = &args.kit {
        return run_kit(&runtime, &subject, kit);
    }
    pass_golden_kit(&runtime, &subject)?;
    let Some(request) = &args.request else {
        anyhow::bail!("--request or --kit is required");
    };
    let request_json = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read request {}", request.display()))?;
    let mut source = subject.source();
    if let Some(path) = &args.capabilities {
        let fixture = Fixture::read(path)?;
        source.grants = runtime
            .block_on(async {
                match &subject.tenant {
                    Some(tenant) => fixture.grants_under(&tenant.capabilities),
                    None => fixture.grants(),
                }
            })
            .with_context(|| format!("{}", path.display()))?;
    }
    let rules = match &subject.tenant {
        Some(tenant) => tenant.grant_rules(),
        None => GrantRules {
            accounts: args.accounts.map_or(Accounts::Any, Accounts::Listed),
            default_lifetime_secs: args.default_lifetime_secs,
            max_lifetime_secs: args.max_lifetime_secs,
            ceiling: Default::default(),
        },
    };
    let report = runtime.block_on(check::run(check::CheckInput {
        source,
        request_json,
        rules,
        cache: subject.cache,
        repeat: args.repeat,
    }))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `check --kit`: runs a conformance kit and prints one line per case.
fn run_kit(runtime: &tokio::runtime::Runtime, subject: &Subject, kit: &Path) -> anyhow::Result<()> {
    if subject.tenant.is_some() && kit.join("settings.json").exists() {
        eprintln!(
            "note: {}/settings.json is not used: the cases run with the tenant's settings",
            kit.display()
        );
    }
    let results = kit_results(runtime, subject, kit)?;
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for result in &results {
        match &result.failure {
            None => println!("ok    {} — {}", result.file, result.description),
            Some(failure) => println!("FAIL  {} — {}: {failure}", result.file, result.description),
        }
    }
    println!(
        "{}: {} cases, {} passed, {failed} failed",
        kit.display(),
        results.len(),
        results.len() - failed
    );
    if results.is_empty() {
        anyhow::bail!("{} holds no cases", kit.display());
    }
    if failed > 0 {
        anyhow::bail!("{failed} conformance case(s) failed");
    }
    Ok(())
}

/// The cases of `kit` run against the subject: under the kit's own rules,
/// or the tenant's with --config.
fn kit_results(
    runtime: &tokio::runtime::Runtime,
    subject: &Subject,
    kit: &Path,
) -> anyhow::Result<Vec<kit::CaseResult>> {
    let rules = match &subject.tenant {
        Some(tenant) => kit::KitRules::Tenant(tenant),
        None => kit::KitRules::Kit,
    };
    runtime.block_on(async {
        let sandbox = check::offline_sandbox(&subject.limits)?;
        kit::run(
            &sandbox,
            &subject.wasm,
            kit,
            rules,
            subject.limits,
            subject.cache.as_ref(),
        )
        .await
    })
}

/// With --config, what `serve` requires before the tenant's policy serves:
/// its golden kit, when it has one, passes (reported on stderr, so the
/// decision stays the only output).
fn pass_golden_kit(runtime: &tokio::runtime::Runtime, subject: &Subject) -> anyhow::Result<()> {
    let Some(golden) = subject
        .tenant
        .as_ref()
        .and_then(|tenant| tenant.golden_kit.as_ref())
    else {
        return Ok(());
    };
    let results = kit_results(runtime, subject, golden)?;
    let failed: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
    if let Some(first) = failed.first() {
        anyhow::bail!(
            "golden kit {}: {} of {} cases failed, so serve would not start this policy; {} ({}): {}",
            golden.display(),
            failed.len(),
            results.len(),
            first.file,
            first.description,
            first.failure.as_deref().unwrap_or_default()
        );
    }
    eprintln!(
        "golden kit {}: {} cases passed",
        golden.display(),
        results.len()
    );
    Ok(())
}

/// `serve`: the runtime the configuration asks for, then the service until
/// SIGINT or SIGTERM.
fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.service.worker_threads {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(serve::launch(
        config_path,
        &config,
        serve::shutdown_signal(),
    ))
}
