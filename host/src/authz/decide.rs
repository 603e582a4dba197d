//! The one place a request becomes a verdict, for `serve`, `check` and
//! `check --kit` alike: ask the policy, then hold its answer to the rules.

use std::sync::Arc;
use std::time::Instant;

use super::decision::{DenyReason, Verdict, mask_credentials};
use super::rules::GrantRules;
use crate::capability::Grants;
use crate::metrics::Phases;
use crate::policy::cache::CompiledCache;
use crate::policy::request::to_policy_request;
use crate::policy::wit::{AuthRequest, Decision};
use crate::policy::{CallError, LoadError, LoadedPolicy, PolicySource, Sandbox};
use crate::protocol::claims::AuthorizationRequest;
use crate::protocol::verify::VerifiedRequest;

/// A policy and the rules its grants are held to.
pub struct Decider {
    policy: Arc<LoadedPolicy>,
    rules: GrantRules,
}

impl Decider {
    pub fn new(policy: Arc<LoadedPolicy>, rules: GrantRules) -> Decider {
        Decider { policy, rules }
    }

    /// Loads the policy `source` names (see [`LoadedPolicy::load`]) and
    /// holds it to `rules`.
    pub async fn load(
        sandbox: &Arc<Sandbox>,
        source: &PolicySource,
        rules: GrantRules,
        cache: Option<&CompiledCache>,
    ) -> Result<Decider, LoadError> {
        let policy = LoadedPolicy::load(sandbox, source, cache).await?;
        Ok(Decider::new(Arc::new(policy), rules))
    }

    pub fn policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// The same policy and rules, its capabilities answering from `grants`
    /// (see [`LoadedPolicy::with_grants`]).
    pub fn with_grants(&self, grants: Arc<Grants>) -> Result<Decider, LoadError> {
        let policy = self.policy.with_grants(grants)?;
        Ok(Decider::new(Arc::new(policy), self.rules.clone()))
    }

    /// The verdict on a verified request; the time of the policy call and
    /// of the rules go into `phases`.
    pub async fn decide(&self, request: &VerifiedRequest, phases: &mut Phases) -> Verdict {
        if let Some(refusal) = request.refusal {
            return Verdict::Deny(DenyReason::Refused(refusal));
        }
        let nats = request.request();
        let asked = Instant::now();
        let answer = self.ask(&to_policy_request(nats, request.issuer())).await;
        let judged = Instant::now();
        phases.policy = judged - asked;
        let verdict = self.judge(answer, nats);
        phases.rules = judged.elapsed();
        verdict
    }

    /// The policy's own answer, before any rule: what a conformance kit
    /// compares with its expectations.
    pub async fn ask(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        self.policy.evaluate(request).await
    }

    /// The verdict on the policy's answer for the client `request` describes.
    pub fn judge(
        &self,
        answer: Result<Decision, CallError>,
        request: &AuthorizationRequest,
    ) -> Verdict {
        match answer {
            Err(error) => Verdict::Deny(DenyReason::CallFailed(error)),
            // Masked before it is cut: a long credential across the cut
            // would leave its start.
            Ok(Decision::Deny(reason)) => Verdict::Deny(DenyReason::policy(&mask_credentials(
                reason,
                &request.connect_opts,
            ))),
            Ok(Decision::Allow(grant)) => match self.rules.admit(&grant, request) {
                Ok(checked) => Verdict::Allow(Box::new(checked)),
                Err(refusal) => Verdict::Deny(DenyReason::Rule(refusal)),
            },
        }
    }
}
