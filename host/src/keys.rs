//! Keys: reading the issuer and xkey seeds the service signs and decrypts
//! with, and generating them (`nats-callout keys`).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use nkeys::{KeyPair, KeyPairType, XKey};

use crate::config::{Config, ENV_ISSUER_SEED, ENV_XKEY_SEED, Secret};
use crate::protocol::xkey::SealedBoxes;

/// The issuer account key pair and the optional curve key pair from `[issuer]`.
pub fn load_issuer(config: &Config) -> anyhow::Result<(KeyPair, Option<SealedBoxes>)> {
    let seed = config
        .secret(Secret::IssuerSeed)?
        .context("[issuer] seed_file is missing")?;
    let issuer = KeyPair::from_seed(&seed).map_err(|_| {
        anyhow::anyhow!("[issuer] seed_file (or {ENV_ISSUER_SEED}) does not hold an nkey seed")
    })?;
    if issuer.key_pair_type() != KeyPairType::Account {
        bail!("[issuer] seed is not an account seed (it must start with SA)");
    }
    let xkey = config
        .secret(Secret::XkeySeed)?
        .map(|seed| {
            SealedBoxes::from_seed(&seed).map_err(|_| {
                anyhow::anyhow!(
                    "[issuer] xkey_seed_file (or {ENV_XKEY_SEED}) does not hold a curve seed (it must start with SX)"
                )
            })
        })
        .transpose()?;
    Ok((issuer, xkey))
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
