//! Keys: reading the issuer and xkey seeds the service signs and decrypts
//! with, and generating them (`nats-callout keys`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use nkeys::{KeyPair, KeyPairType, XKey};

use crate::config::{Callout, ENV_ISSUER_SEED, ENV_XKEY_SEED, Secret};
use crate::protocol::jwt::FastSigner;
use crate::protocol::mint::{AccountKey, Placement};
use crate::protocol::xkey::SealedBoxes;

/// The key that signs responses (the callout issuer, or in operator mode
/// the auth account's identity or signing key) and the optional curve key
/// pair, from the callout's `[issuer]`.
pub fn load_issuer(callout: &Callout) -> anyhow::Result<(AccountKey, Option<SealedBoxes>)> {
    let table = callout.table("issuer");
    let seed = callout
        .secret(Secret::IssuerSeed)?
        .with_context(|| format!("{table} seed_file is missing"))?;
    let (seed_from, xkey_from) = match callout.owner() {
        None => (
            format!("{table} seed_file (or {ENV_ISSUER_SEED})"),
            format!("{table} xkey_seed_file (or {ENV_XKEY_SEED})"),
        ),
        Some(_) => (
            format!("{table} seed_file"),
            format!("{table} xkey_seed_file"),
        ),
    };
    let key = account_seed(&seed, &seed_from)?;
    let account = callout
        .issuer
        .account
        .clone()
        .unwrap_or_else(|| key.public_key());
    let issuer = AccountKey {
        account,
        key: FastSigner::new(&key)?,
        scoped: false,
    };
    let xkey = callout
        .secret(Secret::XkeySeed)?
        .map(|seed| {
            SealedBoxes::from_seed(&seed).map_err(|_| {
                anyhow::anyhow!("{xkey_from} does not hold a curve seed (it must start with SX)")
            })
        })
        .transpose()?;
    Ok((issuer, xkey))
}

/// Where users go: by name in config mode; in operator mode by the
/// `[accounts]` table, each account with the key its users are signed with.
/// Refuses an account the auth account's `allowed_accounts` does not allow.
pub fn load_placement(callout: &Callout, auth_account: &str) -> anyhow::Result<Placement> {
    if !callout.operator_mode() {
        return Ok(Placement::Config);
    }
    let mut accounts = BTreeMap::new();
    for (name, account) in callout.accounts {
        let table = callout.table(&format!("accounts.{name}"));
        let allowed = callout
            .issuer
            .allowed_accounts
            .as_ref()
            .is_none_or(|allowed| {
                account.public_key == auth_account
                    || allowed
                        .iter()
                        .any(|key| key == "*" || *key == account.public_key)
            });
        if !allowed {
            bail!(
                "{table} public_key {} is not in {} allowed_accounts: nats-server would refuse every user placed there (nsc edit authcallout --allowed-account)",
                account.public_key,
                callout.table("issuer"),
            );
        }
        let what = format!("{table} signing_key_file");
        let seed = callout
            .secret(Secret::AccountSigningKey(name))?
            .with_context(|| format!("{what} is missing"))?;
        let key = account_seed(&seed, &what)?;
        if account.scoped && key.public_key() == account.public_key {
            // An identity key has no scope: nats-server would apply no
            // template, and users without permissions get the account's
            // defaults (usually everything).
            bail!(
                "{table} scoped = true, but signing_key_file holds the account's identity key, which has no scope: use the scoped signing key's seed"
            );
        }
        accounts.insert(
            name.clone(),
            AccountKey {
                account: account.public_key.clone(),
                key: FastSigner::new(&key)?,
                scoped: account.scoped,
            },
        );
    }
    Ok(Placement::Operator(accounts))
}

/// An account key pair (identity or signing key) from a seed; `what` names
/// where the seed came from in errors.
fn account_seed(seed: &str, what: &str) -> anyhow::Result<KeyPair> {
    let key = KeyPair::from_seed(seed)
        .map_err(|_| anyhow::anyhow!("{what} does not hold an nkey seed"))?;
    if key.key_pair_type() != KeyPairType::Account {
        bail!("{what} is not an account seed (it must start with SA)");
    }
    Ok(key)
}

/// Creates `path` with `content`, refusing to replace a file, readable by
/// its owner only when `private`.
fn write_new(path: &Path, content: &str, private: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What `nats-callout keys` generates a starting configuration for.
pub struct KeysRequest<'a> {
    /// The folder the seeds and both configurations are written to.
    pub out: &'a Path,
    /// The account the service connects to (`auth_callout { account }`).
    pub auth_account: &'a str,
    /// The accounts the policy may place clients in.
    pub accounts: &'a [String],
    /// The port nats-server listens on (loopback).
    pub port: u16,
    /// The policy component `callout.toml` names.
    pub policy: &'a Path,
}

/// The secrets `keys` writes (mode 0600), in the order it writes them.
const SEED_FILES: [&str; 3] = ["issuer.seed", "xkey.seed", "service.nk"];
/// The nats-server configuration `keys` writes.
const SERVER_CONF: &str = "nats-server.conf";
/// The service's configuration `keys` writes.
const CALLOUT_TOML: &str = "callout.toml";
/// The system account `keys` writes into nats-server.conf.
const SYSTEM_ACCOUNT: &str = "SYS";

/// Refuses accounts that would break the configuration or hand clients the
/// service's own account or the system account.
fn check_accounts(request: &KeysRequest<'_>) -> anyhow::Result<()> {
    let auth = request.auth_account;
    for name in std::iter::once(auth).chain(request.accounts.iter().map(String::as_str)) {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain {
            bail!(
                "account name {name:?}: use letters, digits, '_' and '-' (it is written into nats-server.conf as it is)"
            );
        }
        if name == SYSTEM_ACCOUNT {
            bail!(
                "{SYSTEM_ACCOUNT} is the system account: neither the service nor its clients belong there"
            );
        }
    }
    if request.accounts.iter().any(|account| account == auth) {
        bail!(
            "--accounts lists {auth}, the service's own account (--account): a client placed there could answer auth requests"
        );
    }
    if request.accounts.is_empty() {
        bail!("--accounts is empty: the policy would have nowhere to place clients");
    }
    Ok(())
}

/// Generates the issuer, xkey and service user keys, and writes them with a
/// complete `nats-server.conf` and `callout.toml` that work together into
/// `request.out`. Returns what to print: both configurations (which hold
/// public keys and file names, never a seed) and the next steps.
pub fn generate(request: &KeysRequest<'_>) -> anyhow::Result<String> {
    check_accounts(request)?;
    let dir = request.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Refuse before writing anything, so a second run changes nothing.
    for name in SEED_FILES.iter().chain([&SERVER_CONF, &CALLOUT_TOML]) {
        let path = dir.join(name);
        if path.exists() {
            bail!(
                "{} already exists: keys never replaces keys or configuration (choose another --out)",
                path.display()
            );
        }
    }
    let issuer = KeyPair::new_account();
    let xkey = XKey::new();
    let service = KeyPair::new_user();
    let seeds = [issuer.seed(), xkey.seed(), service.seed()]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("cannot encode a generated seed: {e}"))?;
    for (name, seed) in SEED_FILES.iter().zip(&seeds) {
        write_new(&dir.join(name), &format!("{seed}\n"), true)?;
    }
    let server_conf = server_conf(
        request,
        &issuer.public_key(),
        &xkey.public_key(),
        &service.public_key(),
    );
    let callout_toml = callout_toml(request);
    write_new(&dir.join(SERVER_CONF), &server_conf, false)?;
    write_new(&dir.join(CALLOUT_TOML), &callout_toml, false)?;
    let dir = dir.display();
    Ok(format!(
        "# Wrote {dir}/: issuer.seed, xkey.seed and service.nk (mode 0600: keep them secret),\n\
         # {SERVER_CONF} and {CALLOUT_TOML}, printed here.\n\
         #\n\
         # Next:\n\
         #   nats-server -c {dir}/{SERVER_CONF}\n\
         #   nats-callout serve --config {dir}/{CALLOUT_TOML}   (once [policy.settings] holds your policy's settings)\n\n\
         # ---- {dir}/{SERVER_CONF} ----\n{server_conf}\n\
         # ---- {dir}/{CALLOUT_TOML} ----\n{callout_toml}"
    ))
}

/// A complete nats-server configuration (config mode) that sends every
/// client but the service itself to the callout.
fn server_conf(request: &KeysRequest<'_>, issuer: &str, xkey: &str, service: &str) -> String {
    let auth = request.auth_account;
    let accounts: String = request
        .accounts
        .iter()
        .map(|account| format!("  {account} {{}}\n"))
        .collect();
    format!(
        "# nats-server configuration written by `nats-callout keys`. It is complete:\n\
         # run it as it is to try the callout. To add the callout to a server you\n\
         # already run, merge the two blocks marked MERGE into its configuration\n\
         # (your own listen, accounts and system_account stay).\n\
         listen: 127.0.0.1:{port}\n\
         \n\
         accounts {{\n\
         \x20 # MERGE (1/2): the account nats-callout connects to, with its user: the\n\
         \x20 # nkey whose seed is service.nk. Its users never go through the callout.\n\
         \x20 {auth} {{ users: [ {{ nkey: {service} }} ] }}\n\
         \x20 # The accounts the policy places clients in (callout.toml [policy] accounts).\n\
         {accounts}\
         \x20 {SYSTEM_ACCOUNT} {{}}\n\
         }}\n\
         system_account: {SYSTEM_ACCOUNT}\n\
         \n\
         # MERGE (2/2): every other client is authenticated by nats-callout.\n\
         authorization {{\n\
         \x20 auth_callout {{\n\
         \x20   # The account key user JWTs are signed with (issuer.seed).\n\
         \x20   issuer: {issuer}\n\
         \x20   # The curve key requests are sealed to (xkey.seed).\n\
         \x20   xkey: {xkey}\n\
         \x20   account: {auth}\n\
         \x20   auth_users: [ {service} ]\n\
         \x20 }}\n\
         }}\n",
        port = request.port,
    )
}

/// A complete `callout.toml` for [`server_conf`]: paths relative to its own
/// folder, where the seeds are.
fn callout_toml(request: &KeysRequest<'_>) -> String {
    let accounts = request
        .accounts
        .iter()
        .map(|account| toml_string(account))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# nats-callout configuration written by `nats-callout keys`, for the\n\
         # nats-server.conf beside it. Reference: the README's \"Configuration reference\".\n\
         [nats]\n\
         servers = [\"nats://127.0.0.1:{port}\"]\n\
         nkey_seed_file = \"service.nk\"\n\
         \n\
         [issuer]\n\
         seed_file = \"issuer.seed\"\n\
         xkey_seed_file = \"xkey.seed\"\n\
         \n\
         [policy]\n\
         # The policy component: an example's, or your own (`nats-callout new`).\n\
         wasm = {wasm}\n\
         # The accounts the policy may place clients in.\n\
         accounts = [{accounts}]\n\
         \n\
         # The policy's settings, handed to it as JSON, go in this table.\n\
         [policy.settings]\n",
        port = request.port,
        wasm = toml_string(&request.policy.display().to_string()),
    )
}

/// `text` as a TOML string, quoted and escaped.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A configuration in operator mode whose APP account is `app`, signed
    /// by `app_key`, under `allowed` (an `allowed_accounts` line or nothing).
    fn operator_config(dir: &Path, app: &str, app_key: &KeyPair, allowed: &str) -> Config {
        let auth = KeyPair::new_account();
        std::fs::write(dir.join("issuer.seed"), auth.seed().unwrap()).unwrap();
        std::fs::write(dir.join("app.nk"), app_key.seed().unwrap()).unwrap();
        let text = format!(
            r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
[issuer]
seed_file = "issuer.seed"
account = "{auth}"
{allowed}
[policy]
wasm = "p.wasm"
accounts = ["APP"]
[accounts.APP]
public_key = "{app}"
signing_key_file = "app.nk"
scoped = true
"#,
            auth = auth.public_key()
        );
        std::fs::write(dir.join("callout.toml"), text).unwrap();
        Config::load(&dir.join("callout.toml")).unwrap()
    }

    #[test]
    fn operator_mode_signs_each_account_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (app, app_signing) = (KeyPair::new_account(), KeyPair::new_account());
        let config = operator_config(dir.path(), &app.public_key(), &app_signing, "");
        let (issuer, _) = load_issuer(&config.callouts()[0]).unwrap();
        assert_eq!(issuer.issuer_account(), None, "the identity key signs");
        let Placement::Operator(accounts) =
            load_placement(&config.callouts()[0], &issuer.account).unwrap()
        else {
            panic!("operator mode");
        };
        let key = &accounts["APP"];
        assert_eq!(key.account, app.public_key());
        assert_eq!(key.key.public(), app_signing.public_key());
        assert_eq!(key.issuer_account(), Some(app.public_key().as_str()));
        assert!(key.scoped);
    }

    #[test]
    fn an_account_outside_allowed_accounts_is_refused_and_star_allows_all() {
        let dir = tempfile::tempdir().unwrap();
        let (app, app_signing) = (KeyPair::new_account(), KeyPair::new_account());
        let other = KeyPair::new_account().public_key();
        let refused = operator_config(
            dir.path(),
            &app.public_key(),
            &app_signing,
            &format!("allowed_accounts = [\"{other}\"]"),
        );
        let error = load_placement(&refused.callouts()[0], "AAUTH")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("[accounts.APP] public_key") && error.contains("allowed_accounts"),
            "{error}"
        );
        let star = operator_config(
            dir.path(),
            &app.public_key(),
            &app_signing,
            "allowed_accounts = [\"*\"]",
        );
        assert!(load_placement(&star.callouts()[0], "AAUTH").is_ok());
        // The auth account itself needs no entry.
        assert!(load_placement(&refused.callouts()[0], &app.public_key()).is_ok());
    }

    #[test]
    fn keys_refuses_accounts_that_would_break_or_open_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Path::new("policy.wasm");
        let refused = |auth: &str, accounts: &[&str]| {
            let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
            generate(&KeysRequest {
                out: dir.path(),
                auth_account: auth,
                accounts: &accounts,
                port: 4222,
                policy,
            })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert!(refused("AUTH", &["APP", "AUTH"]).contains("the service's own account"));
        assert!(refused("AUTH", &["SYS"]).contains("system account"));
        assert!(refused("SYS", &["APP"]).contains("system account"));
        assert!(refused("AUTH", &["A B"]).contains("\"A B\": use letters"));
        assert!(refused("AUTH", &["X}"]).contains("use letters"));
        assert!(refused("AUTH", &[]).contains("--accounts is empty"));
        // Nothing was written by the refusals.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A path that needs quoting in TOML reads back as it was.
        for path in ["a\"b\tc", "it's\\here", "ümlaut/'\"/x.wasm"] {
            let table: toml::Table =
                toml::from_str(&format!("wasm = {}", toml_string(path))).unwrap();
            assert_eq!(table["wasm"].as_str(), Some(path));
        }
    }

    #[test]
    fn a_scoped_identity_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let app = KeyPair::new_account();
        // `scoped = true` with the account's own identity key.
        let config = operator_config(dir.path(), &app.public_key(), &app, "");
        let error = load_placement(&config.callouts()[0], "AAUTH")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("holds the account's identity key, which has no scope"),
            "{error}"
        );
    }
}
