//! `nats-callout check`: evaluates a policy offline — no NATS, no keys — and
//! reports the decision and the user-JWT claims the host would mint. This is
//! how policy authors test a component before deploying it.
//!
//! `check` decides through the same [`Binding`] as `serve`, with a throwaway
//! issuer key: the same rules, reason escaping, JWT minting and size limit,
//! so what `check` reports is what `serve` would answer.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::authz::{Decider, GrantRules, Verdict};
use crate::config::DenyMode;
use crate::metrics::Phases;
use crate::policy::cache::CompiledCache;
use crate::policy::request::to_policy_request;
use crate::policy::wit::AuthRequest;
use crate::policy::{LoadedPolicy, PolicyLimits, PolicySource, Sandbox, SandboxLimits};
use crate::protocol::claims::{AuthorizationRequest, AuthorizationResponse, User};
use crate::protocol::jwt::{self, FastSigner};
use crate::protocol::mint::{AccountKey, Placement};
use crate::protocol::verify::VerifiedRequest;
use crate::serve::Binding;

/// What `check` evaluates, and under which limits.
pub struct CheckInput {
    pub source: PolicySource,
    pub request_json: String,
    pub rules: GrantRules,
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
pub fn offline_sandbox(limits: &PolicyLimits) -> anyhow::Result<Arc<Sandbox>> {
    Sandbox::new(SandboxLimits::for_policies(1, [limits]))
        .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))
}

/// Runs the policy once and returns the report printed by `check`.
pub async fn run(input: CheckInput) -> anyhow::Result<Value> {
    let request = parse_request(&input.request_json)?;
    let sandbox = offline_sandbox(&input.source.limits)?;
    let rss_before_load = resident_mib();
    let started = Instant::now();
    let decider = Decider::load(&sandbox, &input.source, input.rules, input.cache.as_ref()).await?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    // A throwaway issuer: the same signing and size limits as `serve`.
    let issuer = AccountKey::identity(FastSigner::new(&nkeys::KeyPair::new_account())?);
    let binding = Binding::new(
        Arc::new(issuer),
        Arc::new(Placement::Config),
        decider,
        DenyMode::Error,
    );
    let policy = decider_policy(&binding)?;
    let verified = VerifiedRequest::unsigned(request, binding.account());
    let mut verdict = binding.decide(&verified, &mut Phases::default()).await;
    let reply = binding.respond(&verified, &mut verdict, None);
    let mut report = json!({ "policy": { "name": policy.name(), "sha256": policy.digest() } });
    if input.repeat > 0 {
        let policy_request = to_policy_request(verified.request(), binding.account());
        let mut timing = time_calls(policy, &policy_request, input.repeat).await;
        timing["load_ms"] = json!(load_ms.round());
        timing["from_cache"] = json!(policy.loaded_from_cache());
        if let (Some(before), Some(after)) = (rss_before_load, resident_mib()) {
            // What the loaded policy and its idle instances keep resident.
            timing["policy_rss_mib"] = json!(((after - before) * 10.0).round() / 10.0);
        }
        report["timing"] = timing;
    }
    let fields = match &verdict {
        Verdict::Deny(reason) => {
            let (source, kind) = reason.class();
            json!({ "decision": "deny", "reason": reason.text(), "reason_class": source, "reason_kind": kind })
        }
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

/// The policy of a binding built from a loaded decider.
fn decider_policy(binding: &Binding) -> anyhow::Result<&LoadedPolicy> {
    binding
        .decider()
        .map(crate::authz::Decider::policy)
        .context("the policy is loaded")
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
