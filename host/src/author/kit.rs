//! The conformance kit runner: `nats-callout check --kit <folder>`.
//!
//! A kit is a folder of request fixtures with the decision each must get,
//! so one set of expectations checks a policy written in any language:
//!
//! ```text
//! <kit>/settings.json      settings for the cases (default `{}`; with
//!                          `check --config`, the tenant's settings instead)
//! <kit>/capabilities.json  the capabilities' data (see `capability/fixture.rs`)
//! <kit>/cases/*.json       {"description", "request", "expect"}
//! <kit>/refused/*.json     {"description", "settings", "error_contains"}
//! ```
//!
//! `request` is the `nats` object of an authorization request. `expect` is
//! either `{"decision": "deny", "reason": "..."}` (the policy's exact reason),
//! `{"decision": "allow", ...}` with any of `account`, `name`, `publish`,
//! `subscribe`, `expires_in_secs` (compared when present), or
//! `{"echo": true}`: the policy must deny with a reason that is the request
//! rendered as JSON by [`echo_of`], which proves every field reached the
//! policy intact. `{"call_fails": "..."}` expects the call itself to fail
//! (a timeout, the memory cap, a trap) with a message containing the text.
//! Each `refused` case loads the policy with its `settings`
//! and expects the load to fail with a message containing `error_contains`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check::parse_request;
use crate::authz::{Accounts, Decider, DenyReason, GrantRules, Verdict, mask_credentials};
use crate::capability::Grants;
use crate::capability::fixture::{Fixture, KIT_FILE};
use crate::config::PolicyConfig;
use crate::policy::cache::CompiledCache;
use crate::policy::request::to_policy_request;
use crate::policy::wit::{AuthRequest, Decision, Grant};
use crate::policy::{CallError, LoadError, PolicyLimits, PolicySource, Sandbox};
use crate::untrusted::{CUT_MARK, printable};

/// The issuer the kit's requests are evaluated for.
pub const KIT_ISSUER: &str = "ACONFORMANCEKITISSUER";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    request: Value,
    expect: Expectation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    #[serde(default)]
    echo: bool,
    call_fails: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    account: Option<String>,
    name: Option<String>,
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
    expires_in_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusedCase {
    description: String,
    settings: Value,
    error_contains: String,
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: String,
    pub description: String,
    /// `None` when the case passed, else what differed.
    pub failure: Option<String>,
}

/// The rules a kit's grants are held to: any account, `serve`'s default
/// lifetimes. An allowed case whose grant `serve` would deny fails.
fn kit_rules() -> GrantRules {
    GrantRules {
        accounts: Accounts::Any,
        default_lifetime_secs: 3600,
        max_lifetime_secs: 86400,
        ceiling: Default::default(),
    }
}

/// What a kit's cases are held to.
#[derive(Clone, Copy)]
pub enum KitRules<'a> {
    /// The kit's own: its `settings.json`, any account, `serve`'s default
    /// lifetimes, its capability data granted as it is (`check --kit`).
    Kit,
    /// A tenant's, as `serve` would load it: its settings, accounts,
    /// lifetimes and ceiling, and the kit's capability data only as far as
    /// the tenant is granted (`check --config --kit`).
    Tenant(&'a PolicyConfig),
}

/// Runs every case of the kit in `kit` against the policy at `policy`,
/// under `rules`.
pub async fn run(
    sandbox: &Arc<Sandbox>,
    policy: &Path,
    kit: &Path,
    rules: KitRules<'_>,
    limits: PolicyLimits,
    cache: Option<&CompiledCache>,
) -> anyhow::Result<Vec<CaseResult>> {
    let grants = match Fixture::of_kit(kit)? {
        Some(fixture) => match rules {
            KitRules::Kit => fixture.grants(),
            KitRules::Tenant(tenant) => fixture.grants_under(&tenant.capabilities),
        }
        .with_context(|| format!("{}", kit.join(KIT_FILE).display()))?,
        None => Grants::none(),
    };
    let grant_rules = || match rules {
        KitRules::Kit => kit_rules(),
        KitRules::Tenant(tenant) => tenant.grant_rules(),
    };
    let source = |settings_json: String| PolicySource {
        wasm: policy.to_path_buf(),
        settings_json,
        limits,
        grants: grants.clone(),
    };
    let settings_path = kit.join("settings.json");
    let settings = if let KitRules::Tenant(tenant) = rules {
        tenant.settings_json()
    } else if settings_path.exists() {
        std::fs::read_to_string(&settings_path)
            .with_context(|| format!("cannot read {}", settings_path.display()))?
    } else {
        "{}".to_string()
    };
    let decider = Decider::load(sandbox, &source(settings), grant_rules(), cache).await?;
    let mut results = run_cases(&decider, kit).await?;
    for (file, text) in read_folder(&kit.join("refused"))? {
        let refusal: RefusedCase = serde_json::from_str(&text)
            .with_context(|| format!("{file} is not a settings-refusal case"))?;
        let loaded = Decider::load(
            sandbox,
            &source(refusal.settings.to_string()),
            grant_rules(),
            cache,
        )
        .await;
        results.push(CaseResult {
            failure: refusal_failure(loaded.err(), &refusal.error_contains),
            file,
            description: refusal.description,
        });
    }
    Ok(results)
}

/// Runs the kit's `cases` against a loaded `decider`, with its settings and
/// rules: `check --kit`, and a tenant's golden kit before its policy serves.
pub async fn run_cases(decider: &Decider, kit: &Path) -> anyhow::Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for (file, text) in read_folder(&kit.join("cases"))? {
        let case: Case = serde_json::from_str(&text)
            .with_context(|| format!("{file} is not a conformance case"))?;
        results.push(CaseResult {
            failure: run_case(decider, &case).await,
            file,
            description: case.description,
        });
    }
    Ok(results)
}

/// What went wrong in one case, if anything: the policy's own answer must be
/// the expected one, and an allow must be a grant `serve` would sign.
async fn run_case(decider: &Decider, case: &Case) -> Option<String> {
    let request = match parse_request(&case.request.to_string()) {
        Ok(request) => request,
        Err(error) => return Some(format!("bad fixture: {error:#}")),
    };
    let policy_request = to_policy_request(&request, KIT_ISSUER);
    let answer = decider.ask(&policy_request).await;
    // A golden kit's fixtures hold real credentials, which a policy may
    // quote in its answer: the failure text never shows them.
    if let Some(failure) = compare(&policy_request, answer.clone(), &case.expect) {
        return Some(mask_credentials(failure, &request.connect_opts));
    }
    // Refusals that depend on the client (its address, the hour it connects)
    // would make a case pass or fail with where and when the kit runs.
    match decider.judge(answer, &request) {
        Verdict::Deny(DenyReason::Rule(refusal)) if !refusal.depends_on_client() => Some(format!(
            "the policy allowed, but the host's rules refuse its grant: {}",
            DenyReason::Rule(refusal).text()
        )),
        _ => None,
    }
}

/// What went wrong in a settings-refusal case, given how loading failed.
fn refusal_failure(error: Option<LoadError>, wanted: &str) -> Option<String> {
    match error {
        None => Some("the policy accepted the settings".to_string()),
        Some(LoadError::SettingsRefused { reason, .. }) if reason.contains(wanted) => None,
        Some(LoadError::SettingsRefused { reason, .. }) => Some(format!(
            "refused with {reason:?}, which does not contain {wanted:?}"
        )),
        Some(other) => Some(format!("failed to load instead of refusing: {other}")),
    }
}

/// The `.json` files of a folder, sorted by name; none if it does not exist.
fn read_folder(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, text))
        })
        .collect()
}

fn compare(
    request: &AuthRequest,
    decision: Result<Decision, CallError>,
    expect: &Expectation,
) -> Option<String> {
    if let Some(wanted) = &expect.call_fails {
        return match decision {
            Err(error) if error.to_string().contains(wanted.as_str()) => None,
            Err(error) => Some(format!(
                "the call failed with {error:?}, expected {wanted:?}"
            )),
            Ok(decision) => Some(format!(
                "the call answered {decision:?}, expected it to fail with {wanted:?}"
            )),
        };
    }
    let decision = match decision {
        Ok(decision) => decision,
        Err(error) => return Some(format!("the call failed: {error}")),
    };
    if expect.echo {
        let Decision::Deny(reason) = decision else {
            return Some("an echo policy must deny with the request as its reason".into());
        };
        let echoed: Value = match serde_json::from_str(&reason) {
            Ok(value) => value,
            Err(error) => return Some(format!("the echo is not JSON ({error}): {reason:.200}")),
        };
        let expected = echo_of(request);
        return (echoed != expected).then(|| first_difference("", &expected, &echoed));
    }
    match (expect.decision.as_deref(), decision) {
        (Some("deny"), Decision::Deny(reason)) => match &expect.reason {
            Some(wanted) if *wanted != reason => {
                Some(format!("denied with {reason:?}, expected {wanted:?}"))
            }
            _ => None,
        },
        (Some("allow"), Decision::Allow(grant)) => compare_grant(&grant, expect),
        (Some("allow"), Decision::Deny(reason)) => {
            Some(format!("denied with {reason:?}, expected allow"))
        }
        (Some("deny"), Decision::Allow(grant)) => {
            Some(format!("allowed into {:?}, expected deny", grant.account))
        }
        (other, _) => Some(format!(
            "bad fixture: expect.decision is {other:?}, not \"allow\" or \"deny\""
        )),
    }
}

/// The first field of an allowed grant that differs from the expectation.
fn compare_grant(grant: &Grant, expect: &Expectation) -> Option<String> {
    let checks: [(&str, Option<Value>, Value); 5] = [
        (
            "account",
            expect.account.clone().map(Value::from),
            json!(grant.account),
        ),
        (
            "name",
            expect.name.clone().map(Value::from),
            json!(grant.name),
        ),
        (
            "publish",
            expect.publish.clone().map(Value::from),
            json!(grant.publish.allow),
        ),
        (
            "subscribe",
            expect.subscribe.clone().map(Value::from),
            json!(grant.subscribe.allow),
        ),
        (
            "expires_in_secs",
            expect.expires_in_secs.map(Value::from),
            json!(grant.expires_in_secs),
        ),
    ];
    checks.into_iter().find_map(|(field, wanted, got)| {
        let wanted = wanted?;
        (wanted != got).then(|| format!("allowed with {field} = {got}, expected {wanted}"))
    })
}

/// Names the first place where two JSON values differ.
fn first_difference(path: &str, expected: &Value, got: &Value) -> String {
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let inner = format!("{path}.{key}");
                match b.get(key) {
                    None => return format!("the echo lacks {inner}"),
                    Some(other) if other != value => return first_difference(&inner, value, other),
                    _ => {}
                }
            }
            match b.keys().find(|key| !a.contains_key(*key)) {
                Some(extra) => format!("the echo has an unexpected {path}.{extra}"),
                None => format!("{path} differs"),
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y))
            .unwrap_or_else(|| format!("{path} differs")),
        _ => {
            let shorten = |v: &Value| {
                let text = v.to_string();
                let shown = printable(&text, 120);
                if shown.ends_with(CUT_MARK) {
                    format!("{shown} ({} bytes)", text.len())
                } else {
                    shown.into_owned()
                }
            };
            format!(
                "{path}: echoed {}, expected {}",
                shorten(got),
                shorten(expected)
            )
        }
    }
}

/// The request as an echo policy must render it: every WIT field under its
/// WIT name (`-` written `_`), `null` for an absent option, and the one u64
/// (`client_info.id`) as a decimal string, since JavaScript numbers cannot
/// hold every u64.
pub fn echo_of(request: &AuthRequest) -> Value {
    let server = &request.server;
    let info = &request.client_info;
    let opts = &request.connect_opts;
    json!({
        "server": {
            "name": server.name,
            "host": server.host,
            "id": server.id,
            "version": server.version,
            "cluster": server.cluster,
            "tags": server.tags,
            "xkey": server.xkey,
        },
        "user_nkey": request.user_nkey,
        "client_info": {
            "host": info.host,
            "id": info.id.map(|id| id.to_string()),
            "user": info.user,
            "name": info.name,
            "tags": info.tags,
            "name_tag": info.name_tag,
            "kind": info.kind,
            "client_type": info.client_type,
            "mqtt_id": info.mqtt_id,
            "nonce": info.nonce,
        },
        "connect_opts": {
            "jwt": opts.jwt,
            "nkey": opts.nkey,
            "sig": opts.sig,
            "auth_token": opts.auth_token,
            "user": opts.user,
            "pass": opts.pass,
            "name": opts.name,
            "lang": opts.lang,
            "version": opts.version,
            "protocol": opts.protocol,
        },
        "client_tls": request.client_tls.as_ref().map(|tls| json!({
            "version": tls.version,
            "cipher": tls.cipher,
            "certs": tls.certs,
            "verified_chains": tls.verified_chains,
        })),
        "issuer": request.issuer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_named_by_path() {
        let expected = json!({"a": {"b": [1, 2]}, "c": "x"});
        assert_eq!(
            first_difference("", &expected, &json!({"a": {"b": [1, 3]}, "c": "x"})),
            ".a.b[1]: echoed 3, expected 2"
        );
        assert_eq!(
            first_difference("", &expected, &json!({"a": {"b": [1, 2]}})),
            "the echo lacks .c"
        );
        assert_eq!(
            first_difference(
                "",
                &expected,
                &json!({"a": {"b": [1, 2]}, "c": "x", "d": 1})
            ),
            "the echo has an unexpected .d"
        );
    }
}
