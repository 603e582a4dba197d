//! The configuration file (`callout.toml`): parsing, path resolution and
//! environment overrides for secrets. Every error names the key or the file.

mod callout;
mod capabilities;

pub use callout::{Callout, Secret};
pub(crate) use capabilities::secure_url;
pub use capabilities::{
    CapabilitiesConfig, KvConfig, OidcIssuerConfig, PasswordConfig, TOKEN_ALGORITHMS,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::authz::rules::{connection_type_named, is_subject};
use crate::authz::{Accounts, Ceiling, GrantRules};
use crate::capability::Grants;
use crate::policy::cache::CompiledCache;
use crate::policy::{PolicyLimits, PolicySource};
use crate::protocol::client_cert::is_subject_attribute;

/// Environment variables that override secrets from the file, for containers.
pub const ENV_ISSUER_SEED: &str = "NATS_CALLOUT_ISSUER_SEED";
pub const ENV_XKEY_SEED: &str = "NATS_CALLOUT_XKEY_SEED";
pub const ENV_NATS_PASSWORD: &str = "NATS_CALLOUT_NATS_PASSWORD";
pub const ENV_NATS_TOKEN: &str = "NATS_CALLOUT_NATS_TOKEN";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read {what} from {path}: {source}")]
    Secret {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub nats: NatsConfig,
    /// The shared callout's keys; needed unless every tenant has its own.
    #[serde(default)]
    pub issuer: IssuerConfig,
    /// The one policy of a single-tenant service (the tenant `default`,
    /// which every request routes to). Exclusive with `[[tenant]]`.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// The tenants of a multi-tenant service, each with its own policy and
    /// route; read `tenants` for either form.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Operator mode: the accounts a policy may place users into, by the
    /// names the policy uses. Absent in config mode.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
}

/// `[[tenant]]`: one tenant's policy, and which requests are its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Shown in every log line of the tenant's requests.
    pub name: String,
    /// Which requests are this tenant's; the first tenant whose route
    /// matches takes a request.
    #[serde(default)]
    pub route: RouteConfig,
    /// Requests of this tenant evaluated at once (default: `[service]
    /// max_in_flight`): a tenant whose policy is slow then waits on its own
    /// share and cannot hold every slot.
    pub max_in_flight: Option<usize>,
    /// Operator mode with several auth accounts: the tenant's own
    /// connection, a user of its own auth account (`servers` may be left
    /// out for those of `[nats]`). Goes with `[tenant.issuer]`.
    pub nats: Option<NatsConfig>,
    /// The keys of the tenant's own auth account (its callout); the tenant
    /// is then alone on its own connection and needs no route.
    pub issuer: Option<IssuerConfig>,
    /// With `[tenant.issuer]` in operator mode: the accounts the tenant's
    /// users are placed into, by the names its policy uses.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    pub policy: PolicyConfig,
}

/// `[tenant.route]`: what a request must show to be the tenant's. Every key
/// given must match; a route with none matches every request (a catch-all,
/// allowed only for the last tenant).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The user name the client sent ends with this (`"@acme"`).
    pub user_suffix: Option<String>,
    /// The user name starts with this.
    pub user_prefix: Option<String>,
    /// The token the client sent starts with this (`"acme_"`).
    pub token_prefix: Option<String>,
    /// The client's connection name starts with this.
    pub connection_name_prefix: Option<String>,
    /// The client certificate nats-server verified (`tls { verify: true }`)
    /// has these subject attributes, each compared exactly: `{ O = "Acme",
    /// OU = "iot" }`. Names: CN, O, OU, C, ST, L, DC.
    pub tls_subject: Option<BTreeMap<String, String>>,
}

impl RouteConfig {
    pub fn is_catch_all(&self) -> bool {
        *self == RouteConfig::default()
    }
}

/// `[accounts.NAME]` (operator mode): the account a policy's name stands
/// for, and the key its users' JWTs are signed with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account's public key (`A...`).
    pub public_key: String,
    /// The file holding the seed (`SA...`) of the account's identity key or
    /// of one of its signing keys (an `.nk` file from `nsc`).
    pub signing_key_file: PathBuf,
    /// The signing key is scoped (`nsc edit signing-key --role`): its
    /// template decides the permissions and limits of the users it signs, and
    /// the host drops those the policy granted.
    #[serde(default)]
    pub scoped: bool,
}

/// `[nats]`: how the service connects to NATS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs, such as `nats://127.0.0.1:4222` (in `[tenant.nats]`,
    /// those of `[nats]` when left out).
    #[serde(default)]
    pub servers: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub nkey_seed_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    /// Queue group shared by replicas; `""` turns it off (every replica answers).
    #[serde(default = "default_queue_group")]
    pub queue_group: String,
    /// Connection name shown in the server's monitoring.
    #[serde(default = "default_connection_name")]
    pub name: String,
    /// CA certificates (PEM) that sign the servers' certificates, when the
    /// system's store does not have them. Any `tls_*` key makes the
    /// connection require TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// The service's own certificate (PEM), for servers that ask clients for
    /// one (`tls { verify: true }`); with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// The key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Answer the NATS services API (`$SRV.PING`, `$SRV.INFO`,
    /// `$SRV.STATS`) on this connection, so `nats micro ls` lists the
    /// replica; the user needs to subscribe to `$SRV.>`.
    #[serde(default = "default_true")]
    pub micro: bool,
}

/// `[policy.shadow]`: a candidate policy that sees the same requests as the
/// enforcing one (all, or a sample) and is held to the same rules, but whose
/// verdicts are only compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub wasm: PathBuf,
    /// Its settings; the enforcing policy's when left out.
    pub settings: Option<toml::Table>,
    /// The fraction of requests it sees, in (0, 1].
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Its deadline and memory cap; the enforcing policy's when left out.
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
}

/// `[policy.audit]`: every decision as a JSON line, published to a NATS
/// subject, written to a file, or both. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Published on the connection that answered the request (in its auth
    /// account), so a JetStream stream can keep the events.
    pub subject: Option<String>,
    /// Appended to, one JSON object per line.
    pub file: Option<PathBuf>,
}

/// `[metrics]`: the HTTP listener for Prometheus and health checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`, such as
    /// `127.0.0.1:9464`; off unless set.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[issuer]`: the keys that sign user JWTs and responses, and open requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// File holding the issuer account seed (`SA...`).
    pub seed_file: Option<PathBuf>,
    /// File holding the xkey seed (`SX...`), when the server encrypts requests.
    pub xkey_seed_file: Option<PathBuf>,
    /// Operator mode: the auth account's public key, when `seed_file` holds
    /// one of its signing keys rather than its identity key.
    pub account: Option<String>,
    /// Operator mode: the auth account's `allowed_accounts` (public keys, or
    /// `"*"`), as `nsc edit authcallout --allowed-account` set them. When
    /// set, every `[accounts]` entry other than the auth account itself must
    /// be allowed, or the service refuses to start.
    pub allowed_accounts: Option<Vec<String>>,
}

/// What the service does with a denied request.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DenyMode {
    /// Send a signed error response: the client fails at once.
    #[default]
    Error,
    /// Send nothing: the client fails after the server's auth timeout, which
    /// slows down guessing.
    Silent,
}

/// `[policy]`: the WebAssembly policy and what it may grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Path to the policy component (`.wasm`).
    pub wasm: PathBuf,
    /// Handed to the policy's `init` as JSON.
    #[serde(default = "empty_table")]
    pub settings: toml::Table,
    /// Accounts the policy may place users into, by name.
    pub accounts: Vec<String>,
    /// Deadline of one `authorize` call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory cap of one call, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Calls one instance of the policy serves before it is dropped. 1 (the
    /// default) runs every call in a fresh instance. Above 1, an instance
    /// that answered is reused for later requests, so state a call leaves
    /// behind is visible to later calls of this policy (never of another
    /// one); an instance that trapped or timed out is always dropped. Worth
    /// it for runtimes that are slow to instantiate (Python).
    #[serde(default = "default_calls_per_instance")]
    pub calls_per_instance: u32,
    /// Initialized instances kept for reuse between calls (with
    /// `calls_per_instance` above 1). Calls run on the worker threads and
    /// rarely wait, so about two per thread serve a busy service; each costs
    /// the memory of one instance. Default: twice the worker threads.
    #[serde(default)]
    pub max_idle_instances: Option<usize>,
    /// Where compiled policies are cached; `""` turns the cache off. Default:
    /// `$NATS_CALLOUT_CACHE_DIR`, else `$XDG_CACHE_HOME/nats-callout`, else
    /// `~/.cache/nats-callout`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// User JWT lifetime when the policy does not set one.
    #[serde(default = "default_lifetime_secs")]
    pub default_lifetime_secs: u64,
    /// Longest user JWT lifetime; longer grants are shortened to it.
    #[serde(default = "default_max_lifetime_secs")]
    pub max_lifetime_secs: u64,
    #[serde(default)]
    pub deny: DenyMode,
    /// A conformance kit (a folder with `cases/*.json`) this policy must
    /// pass, with its settings and the tenant's rules, before it serves: at
    /// start, and at every reload before it replaces the running one.
    #[serde(default)]
    pub golden_kit: Option<PathBuf>,
    /// A candidate policy run beside this one on live traffic, never
    /// deciding: its disagreements are counted and logged.
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// Where every decision of this policy is recorded as a JSON event.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// The most the policy may ever grant.
    #[serde(default)]
    pub ceiling: CeilingConfig,
    /// What the policy may use beyond `host.log`: nkey, password, KV and
    /// OIDC checks done by the host.
    #[serde(default)]
    pub capabilities: CapabilitiesConfig,
}

/// `[policy.ceiling]`: the most the policy may ever grant; each key is
/// optional. See `authz/ceiling.rs` for how subjects are compared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeilingConfig {
    /// Subject patterns every granted publish subject must be inside.
    pub publish: Option<Vec<String>>,
    /// Subject patterns every granted subscribe subject must be inside.
    pub subscribe: Option<Vec<String>>,
    /// Whether the policy may grant reply permissions under a publish
    /// ceiling (they let a user publish to any received message's reply
    /// subject, which no ceiling covers).
    #[serde(default)]
    pub responses: bool,
    /// The longest lifetime a policy may ask for.
    pub max_lifetime_secs: Option<u64>,
    /// Connection types a user may be allowed (`STANDARD`, `WEBSOCKET`,
    /// `LEAFNODE`, `LEAFNODE_WS`, `MQTT`, `MQTT_WS`, `IN_PROCESS`).
    pub connection_types: Option<Vec<String>>,
}

impl CeilingConfig {
    fn validate(&self) -> Result<(), String> {
        for (what, list) in [
            ("publish", &self.publish),
            ("subscribe", &self.subscribe),
            ("connection_types", &self.connection_types),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!(
                    "[policy.ceiling] {what} is empty, which a user JWT would read as no restriction at all: list what is allowed, or leave the key out for no ceiling"
                ));
            }
        }
        for (what, patterns) in [("publish", &self.publish), ("subscribe", &self.subscribe)] {
            if let Some(bad) = patterns.iter().flatten().find(|p| !is_subject(p)) {
                return Err(format!(
                    "[policy.ceiling] {what} has {bad:?}, which is not a subject pattern"
                ));
            }
        }
        if self.max_lifetime_secs == Some(0) {
            return Err("[policy.ceiling] max_lifetime_secs must be above 0".into());
        }
        if let Some(bad) = self
            .connection_types
            .iter()
            .flatten()
            .find(|t| connection_type_named(t).is_none())
        {
            return Err(format!(
                "[policy.ceiling] connection_types has {bad:?}: use STANDARD, WEBSOCKET, LEAFNODE, LEAFNODE_WS, MQTT, MQTT_WS or IN_PROCESS"
            ));
        }
        Ok(())
    }

    /// The ceiling the rules hold grants to.
    pub fn to_ceiling(&self) -> Ceiling {
        Ceiling {
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
            responses: self.responses,
            max_lifetime_secs: self.max_lifetime_secs,
            connection_types: self.connection_types.as_ref().map(|names| {
                names
                    .iter()
                    .filter_map(|name| connection_type_named(name))
                    .collect()
            }),
        }
    }
}

/// `[service]`: how the service runs (all optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Requests evaluated at the same time; more wait in line.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Requests older than their `exp` by more than this are dropped unanswered:
    /// the server has already given up on them.
    #[serde(default = "default_expiry_leeway_ms")]
    pub expiry_leeway_ms: u64,
    /// Threads that run requests (NATS I/O, crypto and policy calls); default:
    /// one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// With tenants: stop at start-up when any tenant's policy fails to load,
    /// instead of denying that tenant's requests and serving the others. (A
    /// single `[policy]` always stops.)
    #[serde(default)]
    pub strict_start: bool,
    /// Reload when the configuration or a policy file changes (checked
    /// every second), as on SIGHUP.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Shadow policy calls running at once, all tenants together; a request
    /// that finds none free is not shadowed (counted as skipped).
    #[serde(default = "default_shadow_in_flight")]
    pub shadow_in_flight: usize,
    /// Password hashes checked at once, all policies together (each takes
    /// milliseconds of a core, by design); a call waits for a slot within
    /// its deadline. Default: half the cores, at least 1.
    #[serde(default)]
    pub password_hashes_in_flight: Option<usize>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_in_flight: default_max_in_flight(),
            expiry_leeway_ms: default_expiry_leeway_ms(),
            worker_threads: None,
            strict_start: false,
            watch: true,
            shadow_in_flight: default_shadow_in_flight(),
            password_hashes_in_flight: None,
        }
    }
}

impl ServiceConfig {
    /// Password hashes checked at once.
    pub fn password_hashes_in_flight(&self) -> usize {
        self.password_hashes_in_flight.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            (cores / 2).max(1)
        })
    }
}

fn default_shadow_in_flight() -> usize {
    2
}
fn default_sample() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_queue_group() -> String {
    "nats-callout".into()
}
fn default_connection_name() -> String {
    "nats-callout".into()
}
fn empty_table() -> toml::Table {
    toml::Table::new()
}
fn default_timeout_ms() -> u64 {
    100
}
fn default_memory_mb() -> u64 {
    32
}
fn default_calls_per_instance() -> u32 {
    1
}
fn default_lifetime_secs() -> u64 {
    3600
}
fn default_max_lifetime_secs() -> u64 {
    24 * 3600
}
fn default_max_in_flight() -> usize {
    64
}
fn default_expiry_leeway_ms() -> u64 {
    2000
}

impl Config {
    /// Reads and checks the configuration at `path`; relative paths inside it
    /// are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(&text, &e),
        })?;
        config
            .gather_tenants()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Makes a single `[policy]` the tenant `default`, so the rest of the
    /// host sees tenants only.
    fn gather_tenants(&mut self) -> Result<(), String> {
        match (self.policy.take(), self.tenants.is_empty()) {
            (Some(_), false) => Err("[policy] and [[tenant]] are exclusive: a single policy, or tenants each with their own".into()),
            (None, true) => Err("missing [policy] (or [[tenant]] tables)".into()),
            (Some(policy), true) => {
                self.policy = Some(policy.clone());
                self.tenants = vec![TenantConfig {
                    name: DEFAULT_TENANT.into(),
                    route: RouteConfig::default(),
                    max_in_flight: None,
                    nats: None,
                    issuer: None,
                    accounts: BTreeMap::new(),
                    policy,
                }];
                Ok(())
            }
            (None, false) => Ok(()),
        }
    }

    /// Whether the configuration has one `[policy]` rather than tenants.
    pub fn single_policy(&self) -> bool {
        self.policy.is_some()
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for policy in self
            .tenants
            .iter_mut()
            .map(|t| &mut t.policy)
            .chain(self.policy.as_mut())
        {
            resolve(&mut policy.wasm);
            policy.capabilities.resolve_paths(resolve);
            if let Some(kit) = policy.golden_kit.as_mut() {
                resolve(kit);
            }
            if let Some(shadow) = policy.shadow.as_mut() {
                resolve(&mut shadow.wasm);
            }
            if let Some(file) = policy.audit.as_mut().and_then(|a| a.file.as_mut()) {
                resolve(file);
            }
            if let Some(dir) = policy
                .cache_dir
                .as_mut()
                .filter(|d| !d.as_os_str().is_empty())
            {
                resolve(dir);
            }
        }
        let tables = self.tenants.iter_mut().map(|tenant| {
            (
                tenant.nats.as_mut(),
                tenant.issuer.as_mut(),
                &mut tenant.accounts,
            )
        });
        let shared = (
            Some(&mut self.nats),
            Some(&mut self.issuer),
            &mut self.accounts,
        );
        for (nats, issuer, accounts) in tables.chain([shared]) {
            let nats = nats.into_iter().flat_map(|nats| {
                [
                    &mut nats.nkey_seed_file,
                    &mut nats.creds_file,
                    &mut nats.tls_ca_file,
                    &mut nats.tls_cert_file,
                    &mut nats.tls_key_file,
                ]
            });
            let issuer = issuer
                .into_iter()
                .flat_map(|issuer| [&mut issuer.seed_file, &mut issuer.xkey_seed_file]);
            for p in nats.chain(issuer).flatten() {
                resolve(p);
            }
            for account in accounts.values_mut() {
                resolve(&mut account.signing_key_file);
            }
        }
    }

    /// Checks what parsing cannot: each table's values and how they fit.
    fn validate(&self) -> Result<(), String> {
        if self.nats.servers.is_empty() {
            return Err("[nats] servers is empty: name at least one server URL".into());
        }
        self.validate_tenants()?;
        let callouts = self.callouts();
        if callouts.iter().all(|callout| callout.owner().is_some())
            && (self.issuer.seed_file.is_some()
                || self.issuer.xkey_seed_file.is_some()
                || !self.accounts.is_empty())
        {
            return Err("[issuer] and [accounts] are unused: every tenant has its own [tenant.issuer] (and [tenant.accounts]); remove them".into());
        }
        for callout in &callouts {
            callout.validate()?;
        }
        for (i, callout) in callouts.iter().enumerate() {
            let same_servers = |other: &&Callout| other.nats.servers == callout.nats.servers;
            let earlier = &callouts[..i];
            if callout.owner().is_some()
                && !callout.operator_mode()
                && earlier.iter().any(|other| same_servers(&other))
            {
                return Err(format!(
                    "{} is in config mode on the servers of another callout: a config-mode nats-server has one auth callout, so this tenant's connection would get no requests or another's; route the tenant instead, or map its accounts in [tenant.accounts] (operator mode)",
                    callout.table("issuer")
                ));
            }
            if let Some(account) = &callout.issuer.account
                && let Some(other) = earlier.iter().find(|other| {
                    other.issuer.account.as_ref() == Some(account) && same_servers(other)
                })
            {
                return Err(format!(
                    "{} and {} both name the auth account {account}: nats-server would split its requests between them; give the tenants of one auth account one [issuer] and routes",
                    other.table("issuer"),
                    callout.table("issuer")
                ));
            }
        }
        self.validate_service()
    }

    fn validate_tenants(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let single = self.single_policy();
            let named = |message: String| {
                if single {
                    message
                } else {
                    format!("[[tenant]] {:?}: {message}", tenant.name)
                }
            };
            if tenant.name.is_empty()
                || !crate::untrusted::is_printable(&tenant.name)
                || !names.insert(tenant.name.as_str())
            {
                return Err(format!(
                    "[[tenant]] name {:?} is empty, not printable or used twice",
                    tenant.name
                ));
            }
            if tenant.name == "-" {
                return Err("[[tenant]] name \"-\" is what decision lines show for a request no route takes: choose another".into());
            }
            let route = &tenant.route;
            let subject = route.tls_subject.iter().flatten();
            if [
                &route.user_suffix,
                &route.user_prefix,
                &route.token_prefix,
                &route.connection_name_prefix,
            ]
            .into_iter()
            .flatten()
            .chain(subject.clone().map(|(_, value)| value))
            .any(String::is_empty)
                || route.tls_subject.as_ref().is_some_and(BTreeMap::is_empty)
            {
                return Err(named("its route has an empty value, which would match every request: leave the key out instead".into()));
            }
            if let Some((name, value)) = subject.clone().find(|(_, value)| value.trim() != *value) {
                return Err(named(format!(
                    "its route's tls_subject {name} = {value:?} starts or ends with spaces, which no certificate's value would match: remove them"
                )));
            }
            if let Some((bad, _)) = subject
                .clone()
                .find(|(name, _)| !is_subject_attribute(name))
            {
                return Err(named(format!(
                    "its route's tls_subject names {bad:?}: use CN, O, OU, C, ST, L or DC"
                )));
            }
            if tenant.owns_callout() {
                if tenant.nats.is_none() {
                    return Err(named("[tenant.issuer] needs [tenant.nats]: a tenant with its own auth account connects as a user of that account".into()));
                }
                if !tenant.route.is_catch_all() {
                    return Err(named("it has its own [tenant.issuer], so it is alone on its own connection: a route there could only deny; leave it out".into()));
                }
            } else if tenant.nats.is_some() || !tenant.accounts.is_empty() {
                return Err(named("[tenant.nats] and [tenant.accounts] go with [tenant.issuer]: the tenant's own auth account (without them, the tenant shares [nats], [issuer] and [accounts])".into()));
            }
            let shared_after = self.tenants[i + 1..].iter().any(|t| !t.owns_callout());
            if tenant.route.is_catch_all() && !tenant.owns_callout() && shared_after {
                return Err(named("its route matches every request, so the tenants after it would never be reached: give it a route, or move it last".into()));
            }
            if let Some(share) = tenant.max_in_flight
                && !(1..=self.service.max_in_flight).contains(&share)
            {
                return Err(named(format!(
                    "max_in_flight = {share} is outside 1..=[service] max_in_flight ({})",
                    self.service.max_in_flight
                )));
            }
            tenant.policy.validate().map_err(named)?;
        }
        Ok(())
    }
}

impl PolicyConfig {
    fn validate(&self) -> Result<(), String> {
        let policy = self;
        policy.ceiling.validate()?;
        policy.capabilities.validate()?;
        if policy.accounts.is_empty() {
            return Err(
                "[policy] accounts is empty: list the accounts the policy may place users into"
                    .into(),
            );
        }
        if let Some(bad) = policy
            .accounts
            .iter()
            .find(|a| a.is_empty() || a.contains(char::is_whitespace))
        {
            return Err(format!(
                "[policy] accounts has an invalid account name {bad:?}"
            ));
        }
        if policy.timeout_ms == 0 || policy.timeout_ms > 10_000 {
            return Err(format!(
                "[policy] timeout_ms = {} is outside 1..=10000",
                policy.timeout_ms
            ));
        }
        if policy.memory_mb == 0 || policy.memory_mb > 4096 {
            return Err(format!(
                "[policy] memory_mb = {} is outside 1..=4096",
                policy.memory_mb
            ));
        }
        if policy.calls_per_instance == 0 || policy.calls_per_instance > 1_000_000 {
            return Err(format!(
                "[policy] calls_per_instance = {} is outside 1..=1000000",
                policy.calls_per_instance
            ));
        }
        if policy.max_lifetime_secs == 0 {
            return Err("[policy] max_lifetime_secs must be above 0".into());
        }
        if policy.default_lifetime_secs == 0
            || policy.default_lifetime_secs > policy.max_lifetime_secs
        {
            return Err(format!(
                "[policy] default_lifetime_secs = {} must be above 0 and at most max_lifetime_secs = {}",
                policy.default_lifetime_secs, policy.max_lifetime_secs
            ));
        }
        if let Some(shadow) = &policy.shadow {
            if !(shadow.sample > 0.0 && shadow.sample <= 1.0) {
                return Err(format!(
                    "[policy.shadow] sample = {} is outside (0, 1]: the fraction of requests the candidate sees",
                    shadow.sample
                ));
            }
            if shadow.timeout_ms.is_some_and(|ms| ms == 0 || ms > 10_000) {
                return Err("[policy.shadow] timeout_ms is outside 1..=10000".into());
            }
            if shadow.memory_mb.is_some_and(|mb| mb == 0 || mb > 4096) {
                return Err("[policy.shadow] memory_mb is outside 1..=4096".into());
            }
        }
        if let Some(audit) = &policy.audit {
            match &audit.subject {
                Some(subject) if !is_subject(subject) || subject.contains(['*', '>']) => {
                    return Err(format!(
                        "[policy.audit] subject {subject:?} is not a subject to publish on"
                    ));
                }
                None if audit.file.is_none() => {
                    return Err(
                        "[policy.audit] needs a subject, a file or both: where the events go"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The shadow policy to load, if any: its component, its settings (or
    /// this policy's), its limits (or this policy's).
    pub fn shadow_source(&self, service: &ServiceConfig) -> Option<PolicySource> {
        let shadow = self.shadow.as_ref()?;
        let mut limits = self.limits(service);
        if let Some(ms) = shadow.timeout_ms {
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = shadow.memory_mb {
            limits.memory_bytes = usize::try_from(mb << 20).unwrap_or(usize::MAX);
        }
        // A candidate's calls are few and must not hold instances idle.
        limits.calls_per_instance = 1;
        limits.max_idle_instances = 0;
        let settings = shadow.settings.as_ref().unwrap_or(&self.settings);
        Some(PolicySource {
            wasm: shadow.wasm.clone(),
            settings_json: serde_json::to_string(settings).unwrap_or_else(|_| "{}".into()),
            limits,
            grants: Grants::none(),
        })
    }
}

impl Config {
    fn validate_service(&self) -> Result<(), String> {
        if self.service.max_in_flight == 0 || self.service.max_in_flight > 4096 {
            return Err(format!(
                "[service] max_in_flight = {} is outside 1..=4096",
                self.service.max_in_flight
            ));
        }
        if !(1..=64).contains(&self.service.shadow_in_flight) {
            return Err(format!(
                "[service] shadow_in_flight = {} is outside 1..=64",
                self.service.shadow_in_flight
            ));
        }
        if let Some(workers) = self.service.worker_threads
            && !(1..=1024).contains(&workers)
        {
            return Err(format!(
                "[service] worker_threads = {workers} is outside 1..=1024"
            ));
        }
        Ok(())
    }
}

/// A TOML error as `line L, column C: message`, without the lines of the
/// file the parser quotes: a typo beside a password or a token table would
/// otherwise put the secret in the log.
fn parse_message(text: &str, error: &toml::de::Error) -> String {
    let message = without_value(error.message().trim_end());
    let Some(before) = error.span().and_then(|span| text.get(..span.start)) else {
        return message.to_string();
    };
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    // The key of that line when it is one of this file's own keys, never
    // its value: a policy's settings may have tokens for keys.
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|text| text.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| CONFIG_KEYS.contains(key));
    match key {
        Some(key) => format!("line {line}, column {column}, key {key}: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// serde's "invalid type: string \"…\", expected …" without the value,
/// which may be a secret in the wrong place.
fn without_value(message: &str) -> String {
    for prefix in ["invalid type", "invalid value"] {
        if message.starts_with(prefix)
            && let Some((_, expected)) = message.split_once(", expected")
        {
            return format!("{prefix} (not shown), expected{expected}");
        }
    }
    message.to_string()
}

/// The keys of `callout.toml`'s own tables: a parse error names one of
/// these, never another (in a policy's settings, a key may be a token).
const CONFIG_KEYS: &[&str] = &[
    // [nats]
    "servers",
    "user",
    "password",
    "token",
    "nkey_seed_file",
    "creds_file",
    "queue_group",
    "name",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "micro",
    // [issuer]
    "seed_file",
    "xkey_seed_file",
    "account",
    "allowed_accounts",
    // [policy], [policy.ceiling], [policy.shadow], [policy.audit]
    "wasm",
    "settings",
    "accounts",
    "timeout_ms",
    "memory_mb",
    "calls_per_instance",
    "max_idle_instances",
    "cache_dir",
    "default_lifetime_secs",
    "max_lifetime_secs",
    "deny",
    "ceiling",
    "golden_kit",
    "shadow",
    "audit",
    "publish",
    "subscribe",
    "responses",
    "connection_types",
    "sample",
    "subject",
    "file",
    // [policy.capabilities] and its tables
    "capabilities",
    "nkey",
    "kv",
    "buckets",
    "oidc",
    "audiences",
    "jwks_url",
    "jwks_file",
    "algorithms",
    "leeway_secs",
    "refresh_secs",
    "ca_file",
    "argon2_min_memory_kib",
    "argon2_min_iterations",
    "bcrypt_min_cost",
    "scrypt_min_log_n",
    "pbkdf2_min_iterations",
    "password_hashes_in_flight",
    // [service], [metrics]
    "max_in_flight",
    "expiry_leeway_ms",
    "worker_threads",
    "strict_start",
    "watch",
    "shadow_in_flight",
    "listen",
    // [[tenant]], route, [accounts.NAME]
    "route",
    "nats",
    "issuer",
    "policy",
    "user_suffix",
    "user_prefix",
    "token_prefix",
    "connection_name_prefix",
    "tls_subject",
    "public_key",
    "signing_key_file",
    "scoped",
];

/// The name of the one tenant of a single-policy configuration.
pub const DEFAULT_TENANT: &str = "default";

impl PolicyConfig {
    /// Instances kept idle for reuse: none without reuse, else the setting or
    /// twice the worker threads, never more than `max_in_flight`.
    pub fn max_idle_instances(&self, service: &ServiceConfig) -> usize {
        if self.calls_per_instance <= 1 {
            return 0;
        }
        let workers = service.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        self.max_idle_instances
            .unwrap_or(2 * workers)
            .min(service.max_in_flight)
    }

    /// The compiled-policy cache this policy asks for, if any.
    pub fn cache(&self) -> Option<CompiledCache> {
        CompiledCache::configured(self.cache_dir.as_deref())
    }

    /// The policy to load, with its settings and limits.
    pub fn source(&self, service: &ServiceConfig) -> PolicySource {
        PolicySource {
            wasm: self.wasm.clone(),
            settings_json: self.settings_json(),
            limits: self.limits(service),
            grants: Grants::none(),
        }
    }

    /// The limits of each call of the policy.
    pub fn limits(&self, service: &ServiceConfig) -> PolicyLimits {
        PolicyLimits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: usize::try_from(self.memory_mb << 20).unwrap_or(usize::MAX),
            calls_per_instance: self.calls_per_instance,
            max_idle_instances: self.max_idle_instances(service),
        }
    }

    /// What the policy may grant.
    pub fn grant_rules(&self) -> GrantRules {
        GrantRules {
            accounts: Accounts::Listed(self.accounts.clone()),
            default_lifetime_secs: self.default_lifetime_secs,
            max_lifetime_secs: self.max_lifetime_secs,
            ceiling: self.ceiling.to_ceiling(),
        }
    }

    /// The policy's settings as the JSON text handed to its `init`.
    pub fn settings_json(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_else(|_| "{}".into())
    }
}

/// Whether `key` is an account public key (`A...`).
fn is_account_key(key: &str) -> bool {
    nkeys::from_public_key(key)
        .is_ok_and(|(prefix, _)| nkeys::KeyPairType::from(prefix) == nkeys::KeyPairType::Account)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy of a single-policy configuration.
    fn policy(config: &Config) -> &PolicyConfig {
        &config.tenants[0].policy
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("callout.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const GOOD: &str = r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
user = "auth"
password = "pwd"

[issuer]
seed_file = "keys/issuer.seed"

[policy]
wasm = "policy.wasm"
accounts = ["APP"]
[policy.settings]
tokens = { s3cr3t = { account = "APP" } }
"#;

    /// `GOOD` with more lines in its `[policy]` table.
    #[test]
    fn a_syntax_error_names_its_place_but_quotes_no_line_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let broken = GOOD.replace(
            "user = \"auth\"",
            "user = \"auth\"\npassword = \"hunter2\" oops",
        );
        let error = Config::load(&write(dir.path(), &broken))
            .expect_err("a syntax error")
            .to_string();
        assert!(error.contains("line 5, column"), "{error}");
        assert!(error.contains("key password"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        // In a policy's settings, a key may be a token: not named.
        let broken = GOOD.replace(
            "tokens = { s3cr3t = { account = \"APP\" } }",
            "s3cr3t = { account = \"APP\" } oops",
        );
        let error = Config::load(&write(dir.path(), &broken))
            .expect_err("a syntax error")
            .to_string();
        assert!(error.contains("line 14, column 30:"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
        // A value of the wrong type is not quoted either.
        let broken = GOOD.replace("password = \"pwd\"", "password = 123456");
        let error = Config::load(&write(dir.path(), &broken))
            .expect_err("a wrong type")
            .to_string();
        assert!(
            error.contains("key password: invalid type (not shown), expected"),
            "{error}"
        );
        assert!(!error.contains("123456"), "{error}");
    }

    fn with_policy_lines(lines: &str) -> String {
        GOOD.replace(
            "accounts = [\"APP\"]",
            &format!("accounts = [\"APP\"]\n{lines}"),
        )
    }

    #[test]
    fn resolves_relative_paths_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(policy(&config).wasm, dir.path().join("policy.wasm"));
        assert_eq!(
            config.issuer.seed_file.as_deref(),
            Some(dir.path().join("keys/issuer.seed").as_path())
        );
        assert_eq!(config.nats.queue_group, "nats-callout");
        assert_eq!(policy(&config).deny, DenyMode::Error);
        assert_eq!(policy(&config).timeout_ms, 100);
        assert_eq!(policy(&config).calls_per_instance, 1);
    }

    #[test]
    fn the_policy_cache_can_be_moved_or_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let moved = with_policy_lines("cache_dir = \"cache\"");
        let config = Config::load(&write(dir.path(), &moved)).unwrap();
        let cache = policy(&config).cache().expect("a cache");
        assert_eq!(cache.dir(), dir.path().join("cache"));
        let off = with_policy_lines("cache_dir = \"\"");
        let config = Config::load(&write(dir.path(), &off)).unwrap();
        assert!(policy(&config).cache().is_none());
    }

    #[test]
    fn idle_instances_only_with_reuse_and_never_above_max_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(policy(&config).max_idle_instances(&config.service), 0);
        let reuse = with_policy_lines("calls_per_instance = 10\nmax_idle_instances = 500")
            + "[service]\nmax_in_flight = 8\nworker_threads = 3\n";
        let mut config = Config::load(&write(dir.path(), &reuse)).unwrap();
        assert_eq!(policy(&config).max_idle_instances(&config.service), 8);
        config.tenants[0].policy.max_idle_instances = None;
        assert_eq!(policy(&config).max_idle_instances(&config.service), 6);
    }

    #[test]
    fn shadow_audit_and_metrics_are_checked_and_their_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let tables = "\n[policy.shadow]\nwasm = \"candidate.wasm\"\nsample = 0.5\ntimeout_ms = 50\n\n\
                      [policy.audit]\nsubject = \"audit.callout\"\nfile = \"audit.jsonl\"\n\n\
                      [metrics]\nlisten = \"127.0.0.1:9464\"\n";
        let config = Config::load(&write(dir.path(), &(GOOD.to_string() + tables))).unwrap();
        let policy = policy(&config);
        let shadow = policy.shadow.as_ref().expect("a shadow");
        assert_eq!(shadow.wasm, dir.path().join("candidate.wasm"));
        let audit = policy.audit.as_ref().expect("an audit");
        assert_eq!(
            audit.file.as_deref(),
            Some(dir.path().join("audit.jsonl").as_path())
        );
        let source = policy
            .shadow_source(&config.service)
            .expect("a shadow source");
        assert_eq!(
            source.settings_json,
            policy.settings_json(),
            "the enforcing settings"
        );
        assert_eq!(source.limits.timeout, Duration::from_millis(50));
        assert_eq!(source.limits.calls_per_instance, 1);
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(config.service.watch && config.nats.micro, "on by default");

        for (bad, says) in [
            (
                "[policy.shadow]\nwasm = \"c.wasm\"\nsample = 0.0\n",
                "sample = 0",
            ),
            (
                "[policy.shadow]\nwasm = \"c.wasm\"\nsample = 1.5\n",
                "sample = 1.5",
            ),
            ("[policy.audit]\n", "needs a subject, a file or both"),
            (
                "[policy.audit]\nsubject = \"audit.>\"\n",
                "is not a subject to publish on",
            ),
            ("[service]\nshadow_in_flight = 0\n", "shadow_in_flight = 0"),
            ("[metrics]\nlisten = \"nowhere\"\n", "listen"),
        ] {
            let error = Config::load(&write(dir.path(), &format!("{GOOD}\n{bad}")))
                .expect_err(bad)
                .to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn calls_per_instance_must_be_positive() {
        let dir = tempfile::tempdir().unwrap();
        let zero = with_policy_lines("calls_per_instance = 0");
        let err = Config::load(&write(dir.path(), &zero))
            .unwrap_err()
            .to_string();
        assert!(err.contains("calls_per_instance = 0"), "{err}");
    }

    #[test]
    fn secrets_come_from_their_file_or_the_configuration_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/issuer.seed"), "SAFAKE\n").unwrap();
        let config = Config::load(&write(dir.path(), GOOD)).unwrap();
        let shared = &config.callouts()[0];
        assert_eq!(
            shared.secret(Secret::IssuerSeed).unwrap().as_deref(),
            Some("SAFAKE")
        );
        assert_eq!(
            shared.secret(Secret::NatsPassword).unwrap().as_deref(),
            Some("pwd")
        );
        assert_eq!(shared.secret(Secret::NatsToken).unwrap(), None);
        assert_eq!(shared.secret(Secret::XkeySeed).unwrap(), None);

        let mut missing = config.clone();
        missing.issuer.xkey_seed_file = Some(dir.path().join("keys/nope.seed"));
        let error = missing.callouts()[0]
            .secret(Secret::XkeySeed)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[issuer] xkey_seed_file") && error.contains("nope.seed"),
            "{error}"
        );
    }

    #[test]
    fn operator_mode_needs_every_account_mapped_to_real_keys() {
        let dir = tempfile::tempdir().unwrap();
        let app = nkeys::KeyPair::new_account().public_key();
        let auth = nkeys::KeyPair::new_account().public_key();
        let with_account = GOOD.replace(
            "seed_file = \"keys/issuer.seed\"",
            &format!("seed_file = \"keys/issuer.seed\"\naccount = \"{auth}\""),
        );
        let mapped = format!(
            "{with_account}\n[accounts.APP]\npublic_key = \"{app}\"\nsigning_key_file = \"app.nk\"\n"
        );
        let no_account = mapped.replace(&format!("account = \"{auth}\"\n"), "");
        let error = Config::load(&write(dir.path(), &no_account))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[issuer] account is required in operator mode"),
            "{error}"
        );
        let mixed = mapped.replace(
            &format!("account = \"{auth}\""),
            &format!("account = \"{auth}\"\nallowed_accounts = [\"*\", \"{app}\"]"),
        );
        let error = Config::load(&write(dir.path(), &mixed))
            .unwrap_err()
            .to_string();
        assert!(error.contains("mixes \"*\""), "{error}");
        let config = Config::load(&write(dir.path(), &mapped)).unwrap();
        assert!(config.callouts()[0].operator_mode());
        assert_eq!(
            config.accounts["APP"].signing_key_file,
            dir.path().join("app.nk")
        );
        assert!(!config.accounts["APP"].scoped);

        let unmapped = mapped.replace("[accounts.APP]", "[accounts.OTHER]");
        let error = Config::load(&write(dir.path(), &unmapped))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[policy] accounts names \"APP\", which has no [accounts.APP] table"),
            "{error}"
        );

        let user_key = nkeys::KeyPair::new_user().public_key();
        let not_an_account = mapped.replace(&app, &user_key);
        let error = Config::load(&write(dir.path(), &not_an_account))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[accounts.APP] public_key")
                && error.contains("not an account public key"),
            "{error}"
        );

        let bad_allowed = mapped.replace(
            "seed_file = \"keys/issuer.seed\"",
            "seed_file = \"keys/issuer.seed\"\nallowed_accounts = [\"APP\"]",
        );
        let error = Config::load(&write(dir.path(), &bad_allowed))
            .unwrap_err()
            .to_string();
        assert!(error.contains("allowed_accounts has \"APP\""), "{error}");
    }

    #[test]
    fn operator_mode_keys_in_config_mode_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stray = GOOD.replace(
            "seed_file = \"keys/issuer.seed\"",
            "seed_file = \"keys/issuer.seed\"\nallowed_accounts = [\"*\"]",
        );
        let error = Config::load(&write(dir.path(), &stray))
            .unwrap_err()
            .to_string();
        assert!(error.contains("are for operator mode"), "{error}");
    }

    #[test]
    fn a_ceiling_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ceiling = format!(
            "{GOOD}\n[policy.ceiling]\npublish = [\"app.>\"]\nconnection_types = [\"STANDARD\", \"MQTT_WS\"]\n"
        );
        let config = Config::load(&write(dir.path(), &ceiling)).unwrap();
        let rules = policy(&config).grant_rules().ceiling;
        assert_eq!(rules.publish, Some(vec!["app.>".to_string()]));
        assert_eq!(rules.subscribe, None);
        assert_eq!(rules.connection_types.map(|t| t.len()), Some(2));

        let bad_subject = ceiling.replace("\"app.>\"", "\"app. x\"");
        let error = Config::load(&write(dir.path(), &bad_subject))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[policy.ceiling] publish has \"app. x\""),
            "{error}"
        );
        let empty = ceiling.replace("[\"app.>\"]", "[]");
        let error = Config::load(&write(dir.path(), &empty))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[policy.ceiling] publish is empty"),
            "{error}"
        );
        let bad_type = ceiling.replace("MQTT_WS", "CARRIER_PIGEON");
        let error = Config::load(&write(dir.path(), &bad_type))
            .unwrap_err()
            .to_string();
        assert!(error.contains("CARRIER_PIGEON"), "{error}");
    }

    /// `GOOD` with its `[policy]` made the tables of tenants, each given as
    /// (name, route line, extra policy lines).
    fn with_tenants(tenants: &[(&str, &str, &str)]) -> String {
        let head = &GOOD[..GOOD.find("[policy]").unwrap()];
        let mut text = head.to_string();
        for (name, route, extra) in tenants {
            text += &format!(
                "[[tenant]]\nname = \"{name}\"\n{route}\n[tenant.policy]\nwasm = \"{name}.wasm\"\naccounts = [\"APP\"]\n{extra}\n"
            );
        }
        text
    }

    #[test]
    fn tenants_are_read_in_order_with_their_routes() {
        let dir = tempfile::tempdir().unwrap();
        let text = with_tenants(&[
            (
                "acme",
                "route = { user_suffix = \"@acme\" }\nmax_in_flight = 8",
                "",
            ),
            ("rest", "", "timeout_ms = 50"),
        ]);
        let config = Config::load(&write(dir.path(), &text)).unwrap();
        assert!(!config.single_policy());
        let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["acme", "rest"]);
        assert_eq!(
            config.tenants[0].route.user_suffix.as_deref(),
            Some("@acme")
        );
        assert_eq!(config.tenants[0].max_in_flight, Some(8));
        assert!(config.tenants[1].route.is_catch_all());
        assert_eq!(config.tenants[1].policy.timeout_ms, 50);
        assert_eq!(config.tenants[1].policy.wasm, dir.path().join("rest.wasm"));

        // A single [policy] is the tenant "default", taking everything.
        let single = Config::load(&write(dir.path(), GOOD)).unwrap();
        assert!(single.single_policy());
        assert_eq!(single.tenants.len(), 1);
        assert_eq!(single.tenants[0].name, DEFAULT_TENANT);
        assert!(single.tenants[0].route.is_catch_all());
    }

    #[test]
    fn tenant_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = |text: String| {
            Config::load(&write(dir.path(), &text))
                .unwrap_err()
                .to_string()
        };
        let catch_all_first = with_tenants(&[
            ("rest", "", ""),
            ("acme", "route = { user_suffix = \"@acme\" }", ""),
        ]);
        assert!(error(catch_all_first).contains("\"rest\": its route matches every request"));
        let twice = with_tenants(&[("a", "route = { user_prefix = \"a\" }", ""), ("a", "", "")]);
        assert!(error(twice).contains("used twice"));
        let greedy = with_tenants(&[("a", "max_in_flight = 65", "")]);
        assert!(
            error(greedy)
                .contains("max_in_flight = 65 is outside 1..=[service] max_in_flight (64)")
        );
        let bad_policy = with_tenants(&[("a", "", "timeout_ms = 0")]);
        assert!(error(bad_policy).contains("[[tenant]] \"a\": [policy] timeout_ms = 0"));
        let both = GOOD.to_string()
            + "\n[[tenant]]\nname = \"x\"\n[tenant.policy]\nwasm = \"x\"\naccounts = [\"APP\"]\n";
        assert!(error(both).contains("[policy] and [[tenant]] are exclusive"));
        let neither = GOOD[..GOOD.find("[policy]").unwrap()].to_string();
        assert!(error(neither).contains("missing [policy] (or [[tenant]] tables)"));
        let empty_route = with_tenants(&[("a", "route = { user_suffix = \"\" }", "")]);
        assert!(error(empty_route).contains("its route has an empty value"));
        let dash = with_tenants(&[("-", "", "")]);
        assert!(error(dash).contains("name \"-\""));
        let unknown_route = with_tenants(&[("a", "route = { header = \"x\" }", "")]);
        assert!(error(unknown_route).contains("unknown field `header`"));
        let subject = |table: &str| {
            with_tenants(&[("a", &format!("route = {{ tls_subject = {table} }}"), "")])
        };
        assert!(
            error(subject("{ SERIAL = \"1\" }"))
                .contains("tls_subject names \"SERIAL\": use CN, O")
        );
        assert!(error(subject("{}")).contains("its route has an empty value"));
        assert!(error(subject("{ O = \"\" }")).contains("its route has an empty value"));
        assert!(error(subject("{ O = \"Acme \" }")).contains("starts or ends with spaces"));
        let config = Config::load(&write(
            dir.path(),
            &subject("{ O = \"Acme\", OU = \"iot\" }"),
        ))
        .unwrap();
        assert_eq!(
            config.tenants[0]
                .route
                .tls_subject
                .as_ref()
                .map(BTreeMap::len),
            Some(2)
        );
        let half_tls = GOOD.replace(
            "password = \"pwd\"",
            "password = \"pwd\"\ntls_cert_file = \"c.pem\"",
        );
        assert!(error(half_tls).contains("[nats] tls_cert_file and tls_key_file go together"));
    }

    /// Tables that give a tenant its own auth account (appended after its
    /// policy lines): a connection, keys, and in operator mode its accounts.
    fn own_callout(tenant: &str, operator: bool) -> String {
        let servers = if operator {
            String::new()
        } else {
            // A config-mode server has one callout: another server.
            format!("servers = [\"nats://{tenant}.example:4222\"]\n")
        };
        let auth = nkeys::KeyPair::new_account().public_key();
        let app = nkeys::KeyPair::new_account().public_key();
        let accounts = if operator {
            format!(
                "account = \"{auth}\"\n[tenant.accounts.APP]\npublic_key = \"{app}\"\nsigning_key_file = \"{tenant}-app.nk\"\n"
            )
        } else {
            String::new()
        };
        format!(
            "[tenant.nats]\n{servers}creds_file = \"{tenant}.creds\"\n[tenant.issuer]\nseed_file = \"{tenant}.nk\"\n{accounts}"
        )
    }

    #[test]
    fn a_tenant_with_its_own_auth_account_is_its_own_callout() {
        let dir = tempfile::tempdir().unwrap();
        let text = with_tenants(&[
            ("acme", "route = { user_suffix = \"@acme\" }", ""),
            ("rest", "", ""),
            ("b", "", &own_callout("b", true)),
            ("c", "", &own_callout("c", false)),
        ]);
        let config = Config::load(&write(dir.path(), &text)).unwrap();
        let callouts = config.callouts();
        let tenants = |i: usize| -> Vec<&str> {
            callouts[i]
                .tenants
                .iter()
                .map(|t| t.name.as_str())
                .collect()
        };
        assert_eq!(callouts.len(), 3);
        assert_eq!(
            (callouts[0].owner(), tenants(0)),
            (None, vec!["acme", "rest"])
        );
        assert_eq!((callouts[1].owner(), tenants(1)), (Some("b"), vec!["b"]));
        assert_eq!(callouts[2].owner(), Some("c"));
        assert!(!callouts[0].operator_mode() && callouts[1].operator_mode());
        assert!(!callouts[2].operator_mode());
        // Its own credentials and keys, the servers of [nats] unless it
        // names its own, paths resolved.
        let b = &callouts[1];
        assert_eq!(b.nats.servers, config.nats.servers);
        assert_eq!(callouts[2].nats.servers, ["nats://c.example:4222"]);
        assert_eq!(b.nats.creds_file, Some(dir.path().join("b.creds")));
        assert_eq!(b.nats.user, None, "credentials are never inherited");
        assert_eq!(b.issuer.seed_file, Some(dir.path().join("b.nk")));
        assert_eq!(
            b.accounts["APP"].signing_key_file,
            dir.path().join("b-app.nk")
        );
        let error = b.secret(Secret::IssuerSeed).unwrap_err().to_string();
        assert!(
            error.contains("[[tenant]] \"b\" [tenant.issuer] seed_file"),
            "{error}"
        );
        // Without shared tenants there is no shared callout.
        let alone = with_tenants(&[("b", "", &own_callout("b", false))]);
        let error = Config::load(&write(dir.path(), &alone)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("[issuer] and [accounts] are unused"),
            "{error}"
        );
        let head = &GOOD[..GOOD.find("[issuer]").unwrap()];
        let alone = format!(
            "{head}[[tenant]]\nname = \"b\"\n[tenant.policy]\nwasm = \"b.wasm\"\naccounts = [\"APP\"]\n{}",
            own_callout("b", false)
        );
        let config = Config::load(&write(dir.path(), &alone)).unwrap();
        let callouts = config.callouts();
        assert_eq!(callouts.len(), 1);
        assert_eq!(callouts[0].label(), "b");
    }

    #[test]
    fn own_callout_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = |text: String| {
            Config::load(&write(dir.path(), &text))
                .unwrap_err()
                .to_string()
        };
        let issuer_only = with_tenants(&[("b", "", "[tenant.issuer]\nseed_file = \"b.nk\"")]);
        assert!(error(issuer_only).contains("\"b\": [tenant.issuer] needs [tenant.nats]"));
        let nats_only = with_tenants(&[("b", "", "[tenant.nats]\ncreds_file = \"b.creds\"")]);
        assert!(
            error(nats_only)
                .contains("\"b\": [tenant.nats] and [tenant.accounts] go with [tenant.issuer]")
        );
        let routed = with_tenants(&[(
            "b",
            "route = { user_prefix = \"b\" }",
            &own_callout("b", false),
        )]);
        assert!(error(routed).contains("alone on its own connection"));
        let two_logins = with_tenants(&[("b", "", &(own_callout("b", false) + "[tenant.nats]\n"))]);
        assert!(error(two_logins).contains("duplicate"));
        let mut two_methods = own_callout("b", false);
        two_methods = two_methods.replace("[tenant.issuer]", "token = \"t\"\n[tenant.issuer]");
        let two_methods = with_tenants(&[("a", "", ""), ("b", "", &two_methods)]);
        assert!(
            error(two_methods).contains("[[tenant]] \"b\" [tenant.nats] sets more than one of")
        );
        // Operator mode: the tenant's policy names an account its own
        // [tenant.accounts] does not map (the shared one's do not count).
        let unmapped = with_tenants(&[
            ("a", "", ""),
            (
                "b",
                "",
                &own_callout("b", true).replace("accounts.APP", "accounts.ELSE"),
            ),
        ]);
        let unmapped = error(unmapped);
        assert!(
            unmapped.contains("[[tenant]] \"b\" [tenant.policy] accounts names \"APP\", which has no [[tenant]] \"b\" [tenant.accounts.APP] table"),
            "{unmapped}"
        );
        // A shared catch-all may come before tenants with their own callout.
        let fine = with_tenants(&[("rest", "", ""), ("b", "", &own_callout("b", true))]);
        assert!(Config::load(&write(dir.path(), &fine)).is_ok());
        // Its connection must log in as someone.
        let anonymous = with_tenants(&[
            ("a", "", ""),
            (
                "b",
                "",
                &own_callout("b", true).replace("creds_file = \"b.creds\"\n", ""),
            ),
        ]);
        assert!(error(anonymous).contains("[[tenant]] \"b\" [tenant.nats] has no credentials"));
        // A config-mode server has one callout: not two on the same servers.
        let same_server = with_tenants(&[
            ("a", "", ""),
            (
                "b",
                "",
                &own_callout("b", false).replace("servers = [\"nats://b.example:4222\"]\n", ""),
            ),
        ]);
        assert!(error(same_server).contains(
            "[[tenant]] \"b\" [tenant.issuer] is in config mode on the servers of another callout"
        ));
        // One auth account, one callout.
        let auth_account = |tables: &str| tables.split('"').nth(5).unwrap().to_string();
        let (b, c) = (own_callout("b", true), own_callout("c", true));
        let c = c.replace(&auth_account(&c), &auth_account(&b));
        let twice = with_tenants(&[("b", "", &b), ("c", "", &c)]);
        let twice = twice.replace("[issuer]\nseed_file = \"keys/issuer.seed\"\n", "");
        let twice = error(twice);
        assert!(
            twice.contains("[[tenant]] \"b\" [tenant.issuer] and [[tenant]] \"c\" [tenant.issuer] both name the auth account"),
            "{twice}"
        );
    }

    #[test]
    fn settings_become_json() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(
            policy(&config).settings_json(),
            r#"{"tokens":{"s3cr3t":{"account":"APP"}}}"#
        );
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = GOOD.replace("user = \"auth\"", "user = \"auth\"\nusr = 1");
        let err = Config::load(&write(dir.path(), &unknown))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `usr`"), "{err}");

        let missing = GOOD.replace("accounts = [\"APP\"]", "");
        let err = Config::load(&write(dir.path(), &missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `accounts`"), "{err}");

        let bad = with_policy_lines("timeout_ms = 0");
        let err = Config::load(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout_ms"), "{err}");

        let err = Config::load(&dir.path().join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }
}
