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

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))
}

/// Generates `issuer.seed` and `xkey.seed` in `dir` and returns the
/// `auth_callout` block for nats-server.conf and the `[issuer]` table.
pub fn generate(dir: &Path, account: &str, auth_user: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let issuer = KeyPair::new_account();
    let xkey = XKey::new();
    let issuer_seed = issuer.seed().map_err(|e| anyhow::anyhow!("{e}"))?;
    let xkey_seed = xkey.seed().map_err(|e| anyhow::anyhow!("{e}"))?;
    let issuer_path = dir.join("issuer.seed");
    let xkey_path = dir.join("xkey.seed");
    write_secret(&issuer_path, &issuer_seed)?;
    write_secret(&xkey_path, &xkey_seed)?;
    Ok(format!(
        "# nats-server.conf\n\
         authorization {{\n  auth_callout {{\n    issuer: {issuer}\n    xkey: {xkey}\n    account: {account}\n    auth_users: [ {auth_user} ]\n  }}\n}}\n\n\
         # callout.toml\n[issuer]\nseed_file = \"{issuer_path}\"\nxkey_seed_file = \"{xkey_path}\"\n",
        issuer = issuer.public_key(),
        xkey = xkey.public_key(),
        issuer_path = issuer_path.display(),
        xkey_path = xkey_path.display(),
    ))
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
