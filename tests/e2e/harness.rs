//! Test harness: real nats-server processes, a real `nats-callout` process and
//! real clients. Nothing is mocked; missing tools fail loudly.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nkeys::KeyPair;
use nkeys::XKey;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on PATH.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "nats-server >= 2.10 is required: run scripts/setup.sh, or set NATS_SERVER_BIN"
    );
    PathBuf::from(path)
}

/// A policy component built by `scripts/build-policies.sh`: a Rust crate's
/// in `target/wasm32-wasip2/release`, another language's in `target/policies`.
pub fn policy_wasm(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let other_language = workspace().join("target/policies").join(&file);
    let path = if other_language.exists() {
        other_language
    } else {
        workspace().join("target/wasm32-wasip2/release").join(file)
    };
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-policies.sh first",
        path.display()
    );
    path
}

/// The compiled-policy cache the tests share, so each policy compiles once
/// per build rather than once per test.
pub fn policy_cache_dir() -> PathBuf {
    workspace().join("target/policy-cache")
}

/// A free TCP port on the loopback interface.
/// The `[metrics]` table of a service listening on `port`.
pub fn metrics_table(port: u16) -> String {
    format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// Waits until `log()` contains `needle`; panics with the log if it does not.
fn wait_for_log(what: &str, log: impl Fn() -> String, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the {what} log has no {needle:?} after {timeout:?}:\n{}",
        log()
    );
}

/// The keys a test's nats-server and callout share.
pub struct Keys {
    pub issuer: KeyPair,
    pub xkey: XKey,
    /// The service's own user nkey, for NATS nkey authentication.
    pub service: KeyPair,
    /// The service's user JWT, for an operator-mode server: when set, the
    /// callout logs in with a creds file holding it and `service`'s seed.
    pub service_jwt: Option<String>,
}

impl Keys {
    pub fn new() -> Keys {
        Keys {
            issuer: KeyPair::new_account(),
            xkey: XKey::new(),
            service: KeyPair::new_user(),
            service_jwt: None,
        }
    }
}

/// A `.creds` file as `nsc` writes it: the user JWT, then the user's seed.
pub fn creds_file(jwt: &str, user: &KeyPair) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        seed = user.seed().expect("seed"),
    )
}

/// How the test's nats-server is configured.
pub struct ServerSpec {
    pub issuer_public: String,
    /// The service's user nkey, accepted besides `auth`/`pwd`.
    pub service_nkey: String,
    /// The xkey the server seals requests to, if any.
    pub xkey_public: Option<String>,
    pub auth_timeout_secs: u64,
}

/// A nats-server in config mode with accounts AUTH (the service), INJECT (a
/// tester that can publish to the service's subject), APP, OTHER and SYS.
pub struct NatsServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start(spec: &ServerSpec) -> NatsServer {
        let xkey = spec
            .xkey_public
            .as_ref()
            .map(|x| format!("xkey: {x}"))
            .unwrap_or_default();
        let conf = format!(
            r#"
server_name: test
max_payload: 4MB
accounts {{
  AUTH {{
    users: [ {{ user: auth, password: pwd }}, {{ nkey: {service_nkey} }} ]
    exports: [ {{ service: "$SYS.REQ.USER.AUTH" }} ]
  }}
  # Lets tests publish raw payloads to the service, as an attacker inside NATS could.
  INJECT {{
    users: [ {{ user: tester, password: pwd }} ]
    imports: [ {{ service: {{ account: AUTH, subject: "$SYS.REQ.USER.AUTH" }} }} ]
  }}
  APP {{}}
  OTHER {{}}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: {timeout}s
  auth_callout {{
    issuer: {issuer}
    account: AUTH
    auth_users: [ auth, tester, {service_nkey} ]
    {xkey}
  }}
}}
"#,
            timeout = spec.auth_timeout_secs,
            issuer = spec.issuer_public,
            service_nkey = spec.service_nkey,
        );
        NatsServer::with_conf(&conf)
    }

    /// A nats-server running the configuration `conf`, to which this adds
    /// only the `listen` line (on a free port).
    pub fn with_conf(conf: &str) -> NatsServer {
        let port = free_port();
        NatsServer::exactly(&format!("listen: 127.0.0.1:{port}\n{conf}"), port)
    }

    /// A nats-server running the configuration `conf` as it is, which
    /// listens on `port`.
    pub fn exactly(conf: &str, port: u16) -> NatsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("server.conf"), conf).expect("write server.conf");
        let mut server = NatsServer {
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("server.log");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(self.dir.path().join("server.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Waits until the server's log contains `needle`; panics with the log if it does not.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        wait_for_log("nats-server", || self.log(), needle, timeout);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running `nats-callout serve`.
pub struct Callout {
    dir: tempfile::TempDir,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

/// Which curve key the test's nats-server seals requests to.
pub enum ServerXkey {
    /// No encryption.
    None,
    /// The service's own key.
    Service,
    /// A key the service does not hold.
    Stranger,
}

/// A nats-server and a callout wired to it with fresh keys.
pub fn stack(
    server_xkey: ServerXkey,
    auth_timeout_secs: u64,
    spec: &CalloutSpec<'_>,
) -> (NatsServer, Callout) {
    let keys = Keys::new();
    let server = NatsServer::start(&ServerSpec {
        issuer_public: keys.issuer.public_key(),
        service_nkey: keys.service.public_key(),
        xkey_public: match server_xkey {
            ServerXkey::None => None,
            ServerXkey::Service => Some(keys.xkey.public_key()),
            ServerXkey::Stranger => Some(XKey::new().public_key()),
        },
        auth_timeout_secs,
    });
    let callout = Callout::start(&server.url(), &keys, spec);
    (server, callout)
}

/// How the callout is configured, beyond the server URL and keys.
pub struct CalloutSpec<'a> {
    pub policy: &'a str,
    pub settings_toml: &'a str,
    pub accounts: &'a [&'a str],
    pub with_xkey: bool,
    pub extra_policy_toml: &'a str,
    /// Connect to NATS with the service's nkey instead of `auth`/`pwd`
    /// (ignored when `Keys::service_jwt` asks for a creds file).
    pub nkey_auth: bool,
    /// More lines of the `[issuer]` table.
    pub extra_issuer_toml: &'a str,
    /// More tables, after all the others (such as `[accounts.NAME]`).
    pub extra_toml: &'a str,
    /// Instead of `[policy]`: `[[tenant]]` tables (and anything else), as
    /// written.
    pub tenants_toml: Option<&'a str>,
}

impl<'a> CalloutSpec<'a> {
    /// The hostile test policy, allowed to grant `APP`.
    pub fn hostile(settings_toml: &'a str, extra_policy_toml: &'a str) -> CalloutSpec<'a> {
        CalloutSpec {
            policy: "hostile-policy",
            settings_toml,
            accounts: &["APP"],
            with_xkey: false,
            extra_policy_toml,
            nkey_auth: false,
            extra_issuer_toml: "",
            extra_toml: "",
            tenants_toml: None,
        }
    }

    /// The same, with the service holding an xkey seed.
    pub fn with_xkey(self) -> CalloutSpec<'a> {
        CalloutSpec {
            with_xkey: true,
            ..self
        }
    }
}

impl Callout {
    /// Writes a configuration and starts the service, without waiting.
    pub fn spawn(server_url: &str, keys: &Keys, spec: &CalloutSpec<'_>) -> Callout {
        Callout::spawn_prepared(server_url, keys, spec, |_| {})
    }

    /// The same, after `prepare` has written more files into the service's
    /// folder (which relative paths in the configuration name).
    pub fn spawn_prepared(
        server_url: &str,
        keys: &Keys,
        spec: &CalloutSpec<'_>,
        prepare: impl FnOnce(&Path),
    ) -> Callout {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        std::fs::write(
            dir.path().join("issuer.seed"),
            keys.issuer.seed().expect("seed"),
        )
        .expect("write seed");
        std::fs::write(
            dir.path().join("xkey.seed"),
            keys.xkey.seed().expect("seed"),
        )
        .expect("write xkey");
        std::fs::write(
            dir.path().join("service.nk"),
            keys.service.seed().expect("seed"),
        )
        .expect("write nkey");
        let nats_auth = if let Some(jwt) = &keys.service_jwt {
            std::fs::write(
                dir.path().join("service.creds"),
                creds_file(jwt, &keys.service),
            )
            .expect("write creds");
            "creds_file = \"service.creds\""
        } else if spec.nkey_auth {
            "nkey_seed_file = \"service.nk\""
        } else {
            "user = \"auth\"\npassword = \"pwd\""
        };
        let xkey_line = if spec.with_xkey {
            "xkey_seed_file = \"xkey.seed\""
        } else {
            ""
        };
        let accounts = spec
            .accounts
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let conf = format!(
            r#"
[nats]
servers = ["{server_url}"]
{nats_auth}

[issuer]
seed_file = "issuer.seed"
{xkey_line}
{extra_issuer}

{policy}

{extra_toml}
"#,
            policy = match spec.tenants_toml {
                Some(tenants) => tenants.to_string(),
                None => format!(
                    "[policy]\nwasm = \"{wasm}\"\naccounts = [{accounts}]\n{extra}\n\n[policy.settings]\n{settings}\n",
                    wasm = policy_wasm(spec.policy).display(),
                    extra = spec.extra_policy_toml,
                    settings = spec.settings_toml,
                ),
            },
            extra_issuer = spec.extra_issuer_toml,
            extra_toml = spec.extra_toml,
        );
        Callout::spawn_in(dir, &conf)
    }

    /// Writes `files` (name, content) and the configuration `conf` as it is
    /// into a folder of their own, and starts the service there, without
    /// waiting.
    pub fn spawn_with_files(conf: &str, files: &[(&str, String)]) -> Callout {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a file");
        }
        Callout::spawn_in(dir, conf)
    }

    fn spawn_in(dir: tempfile::TempDir, conf: &str) -> Callout {
        std::fs::write(dir.path().join("callout.toml"), conf).expect("write callout.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_nats-callout"))
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("callout.toml"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("NATS_CALLOUT_CACHE_DIR", policy_cache_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-callout starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Callout {
            dir,
            child: Some(child),
            log,
        }
    }

    /// Starts the service and waits until it is subscribed.
    pub fn start(server_url: &str, keys: &Keys, spec: &CalloutSpec<'_>) -> Callout {
        let callout = Callout::spawn(server_url, keys, spec);
        // A JavaScript or Python policy compiles for tens of seconds the first
        // time (later starts take it from the shared cache).
        callout.wait_for_log("serving auth callout requests", Duration::from_secs(240));
        callout
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Waits until the log contains `needle`; panics with the log if it does not.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        wait_for_log("nats-callout", || self.log(), needle, timeout);
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                // Let the reader thread catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "nats-callout did not exit within {timeout:?}:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The folder holding its configuration (`callout.toml`) and files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Callout {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
