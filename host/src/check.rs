//! `nats-callout check`: evaluates a policy offline — no NATS, no keys — and
//! reports the decision and the user-JWT claims the host would mint. This is
//! how policy authors test a component before deploying it.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::claims::AuthorizationRequest;
use crate::policy::{LoadedPolicy, PolicyLimits};
use crate::request::{to_policy_request, unix_now};
use crate::response::user_claims;
use crate::rules::GrantRules;
use crate::sandbox::{Sandbox, SandboxLimits};

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

/// Runs the policy once and returns the report printed by `check`.
pub async fn run(input: CheckInput<'_>) -> anyhow::Result<Value> {
    let request = parse_request(&input.request_json)?;
    let sandbox = Sandbox::new(SandboxLimits {
        max_in_flight: 1,
        max_memory_bytes: input.limits.memory_bytes,
    })
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))?;
    let policy =
        LoadedPolicy::load(&sandbox, input.policy, &input.settings_json, input.limits).await?;
    let decision = policy
        .evaluate(&to_policy_request(&request, "ACHECKISSUER"))
        .await;
    let report_base = json!({ "policy": { "name": policy.name(), "sha256": policy.digest() } });
    let mut report = report_base;
    let fields = match decision {
        Err(error) => json!({ "decision": "deny", "reason": error.to_string() }),
        Ok(crate::bindings::Decision::Deny(reason)) => {
            json!({ "decision": "deny", "reason": format!("policy denied: {reason}") })
        }
        Ok(crate::bindings::Decision::Allow(grant)) => {
            let rules = GrantRules {
                accounts: input
                    .accounts
                    .clone()
                    .unwrap_or_else(|| vec![grant.account.clone()]),
                default_lifetime_secs: input.default_lifetime_secs,
                max_lifetime_secs: input.max_lifetime_secs,
            };
            match rules.check(&grant, request.client_info.host.as_deref()) {
                Err(reason) => json!({ "decision": "deny", "reason": reason }),
                Ok(checked) => {
                    let mut claims = user_claims(&request, &checked, unix_now());
                    claims.iss = "<issuer account>".into();
                    json!({
                        "decision": "allow",
                        "account": checked.account,
                        "lifetime_secs": checked.lifetime_secs,
                        "note": checked.shortened_from.map(|asked| format!("lifetime shortened from {asked}s")),
                        "user_claims": claims,
                    })
                }
            }
        }
    };
    if let (Some(report), Some(fields)) = (report.as_object_mut(), fields.as_object()) {
        report.extend(fields.clone());
    }
    Ok(report)
}
