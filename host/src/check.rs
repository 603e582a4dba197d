//! `nats-callout check`: evaluates a policy offline — no NATS, no keys — and
//! reports the decision and the user-JWT claims the host would mint. This is
//! how policy authors test a component before deploying it.
//!
//! `check` decides through the same [`Binding`] as `serve`, with a throwaway
//! issuer key: the same rules, reason escaping, JWT minting and size limit,
//! so what `check` reports is what `serve` would answer.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::bindings::AuthRequest;
use crate::cache::CompiledCache;
use crate::claims::{AuthorizationRequest, AuthorizationResponse, User};
use crate::config::DenyMode;
use crate::jwt::{self, FastSigner};
use crate::policy::{LoadedPolicy, PolicyLimits};
use crate::request::{VerifiedRequest, to_policy_request};
use crate::rules::{Accounts, GrantRules};
use crate::sandbox::{Sandbox, SandboxLimits};
use crate::service::{Binding, Verdict};

/// What `check` evaluates, and under which limits.
pub struct CheckInput<'a> {
    pub policy: &'a Path,
    pub settings_json: String,
    pub request_json: String,
    /// Accounts the policy may grant; `None` accepts whatever it grants.
    pub accounts: Option<Vec<String>>,
    pub limits: PolicyLimits,
    pub default_lifetime_secs: u64,
    pub max_lifetime_secs: u64,
    /// Where compiled policies are cached, if anywhere.
    pub cache: Option<CompiledCache>,
    /// Evaluate the request this many more times and report call timings.
    pub repeat: u32,
}

/// Reads a request as either the `nats` object of an authorization request or
/// the whole decoded JWT payload that holds it.
pub fn parse_request(text: &str) -> anyhow::Result<AuthorizationRequest> {
    let value: Value = serde_json::from_str(text).context("request is not JSON")?;
    let nats = match value.get("nats") {
        Some(inner) => inner.clone(),
        None => value,
    };
    serde_json::from_value(nats)
        .context("request does not have the shape of an authorization request")
}

/// A sandbox for one caller at a time, as `check` and `check --kit` use.
pub fn offline_sandbox(limits: PolicyLimits) -> anyhow::Result<Arc<Sandbox>> {
    Sandbox::new(SandboxLimits {
        max_in_flight: 1,
        max_idle_instances: limits.max_idle_instances,
        max_memory_bytes: limits.memory_bytes,
    })
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))
}

/// Runs the policy once and returns the report printed by `check`.
pub async fn run(input: CheckInput<'_>) -> anyhow::Result<Value> {
    let request = parse_request(&input.request_json)?;
    let sandbox = offline_sandbox(input.limits)?;
    let rss_before_load = resident_mib();
    let started = Instant::now();
    let policy = LoadedPolicy::load(
        &sandbox,
        input.policy,
        &input.settings_json,
        input.limits,
        input.cache.as_ref(),
    )
    .await?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let binding = Binding {
        issuer: FastSigner::new(&nkeys::KeyPair::new_account())?,
        xkey: None,
        server_keys: Default::default(),
        policy: Arc::new(policy),
        rules: GrantRules {
            accounts: input.accounts.map_or(Accounts::Any, Accounts::Listed),
            default_lifetime_secs: input.default_lifetime_secs,
            max_lifetime_secs: input.max_lifetime_secs,
        },
        deny_mode: DenyMode::Error,
        expiry_leeway: Duration::ZERO,
    };
    let policy = &binding.policy;
    let verified = VerifiedRequest::unsigned(request);
    let mut verdict = binding.decide(&verified).await;
    let reply = binding.respond(&verified, &mut verdict);
    let mut report = json!({ "policy": { "name": policy.name(), "sha256": policy.digest() } });
    if input.repeat > 0 {
        let policy_request = to_policy_request(verified.request(), binding.issuer.public());
        let mut timing = time_calls(policy, &policy_request, input.repeat).await;
        timing["load_ms"] = json!(load_ms.round());
        timing["from_cache"] = json!(policy.from_cache());
        if let (Some(before), Some(after)) = (rss_before_load, resident_mib()) {
            // What the loaded policy and its idle instances keep resident.
            timing["policy_rss_mib"] = json!(((after - before) * 10.0).round() / 10.0);
        }
        report["timing"] = timing;
    }
    let fields = match &verdict {
        Verdict::Deny(reason) => json!({ "decision": "deny", "reason": reason }),
        Verdict::Allow(checked) => {
            // Read back from the signed response, as nats-server would.
            let response = reply.context("an allowed request has a signed response")?;
            let response = String::from_utf8(response).context("the response is a JWT")?;
            let response: jwt::Claims<AuthorizationResponse> = jwt::decode(&response)?;
            let user_jwt = response
                .nats
                .jwt
                .context("the response carries a user JWT")?;
            let mut claims: jwt::Claims<User> = jwt::decode(&user_jwt)?;
            claims.iss = "<issuer account>".into();
            json!({
                "decision": "allow",
                "account": checked.account,
                "lifetime_secs": checked.lifetime_secs,
                "note": checked.shortened_from.map(|asked| format!("lifetime shortened from {asked}s")),
                "user_jwt_bytes": user_jwt.len(),
                "user_claims": claims,
            })
        }
    };
    if let (Some(report), Some(fields)) = (report.as_object_mut(), fields.as_object()) {
        report.extend(fields.clone());
    }
    Ok(report)
}

/// Calls the policy `repeat` times in a row and reports the median and 99th
/// percentile of one call (fresh instance included) and the calls per second
/// one thread achieves.
async fn time_calls(policy: &LoadedPolicy, request: &AuthRequest, repeat: u32) -> Value {
    let mut micros = Vec::with_capacity(repeat as usize);
    let all = Instant::now();
    for _ in 0..repeat {
        let started = Instant::now();
        let _ = policy.evaluate(request).await;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let calls_per_sec = f64::from(repeat) / all.elapsed().as_secs_f64();
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    json!({
        "calls": repeat,
        "call_p50_us": at(0.5).round(),
        "call_p99_us": at(0.99).round(),
        "calls_per_sec": calls_per_sec.round(),
    })
}

/// This process's resident memory in MiB (Linux), from `/proc/self/status`.
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
