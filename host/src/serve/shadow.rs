//! Shadow policies: a candidate runs beside a tenant's enforcing policy on
//! live traffic (every request, or a sample), held to the same rules, and
//! never decides. Its verdict is compared with the enforcing one — allow vs
//! deny, another account, another grant — and every disagreement is
//! counted and logged (who connected and both verdicts, never a
//! credential). This is how an operator rolls out a rewritten policy
//! without guessing.
//!
//! It cannot slow the enforcing path: a shadow call is spawned after the
//! enforcing verdict is made and is never waited on, and shadow calls of
//! all tenants share `[service] shadow_in_flight` slots, taken without
//! waiting; a request that finds none free is not shadowed (counted as
//! skipped).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use crate::authz::{DECISION_LOG, Decider, DenyReason, NAME_BYTES, Verdict, mask_credentials};
use crate::metrics::{Metrics, Phases};
use crate::protocol::claims::AuthorizationRequest;
use crate::protocol::verify::VerifiedRequest;
use crate::untrusted::printable;

/// A tenant's candidate policy.
pub struct Shadow {
    tenant: Arc<str>,
    decider: Arc<Decider>,
    sampler: Sampler,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// How a candidate's verdict differs from the enforcing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disagreement {
    /// One allows, the other denies.
    Decision,
    /// Both allow, into different accounts.
    Account,
    /// Both allow into the same account, with different permissions,
    /// limits or name.
    Grant,
}

impl Disagreement {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Disagreement::Decision => "decision",
            Disagreement::Account => "account",
            Disagreement::Grant => "grant",
        }
    }
}

/// How the verdicts of the enforcing policy and its candidate differ, if
/// they do. Two denies agree whatever their reasons.
pub(crate) fn compare(enforcing: &Verdict, candidate: &Verdict) -> Option<Disagreement> {
    match (enforcing, candidate) {
        (Verdict::Deny(_), Verdict::Deny(_)) => None,
        (Verdict::Allow(a), Verdict::Allow(b)) if a.account != b.account => {
            Some(Disagreement::Account)
        }
        (Verdict::Allow(a), Verdict::Allow(b)) => {
            let same = a.user == b.user && a.name == b.name && a.lifetime_secs == b.lifetime_secs;
            (!same).then_some(Disagreement::Grant)
        }
        _ => Some(Disagreement::Decision),
    }
}

impl Shadow {
    /// `decider` shadows tenant `tenant` on `sample` of its requests,
    /// within `slots`.
    pub(crate) fn new(
        tenant: &str,
        decider: Decider,
        sample: f64,
        slots: Arc<Semaphore>,
        metrics: Arc<Metrics>,
    ) -> Shadow {
        Shadow {
            tenant: tenant.into(),
            decider: Arc::new(decider),
            sampler: Sampler::new(sample),
            slots,
            metrics,
        }
    }

    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Offers the request the enforcing policy judged `enforcing` to the
    /// candidate: when sampled and a slot is free, it is judged in a task of
    /// its own and the verdicts compared there.
    pub(crate) fn offer(&self, request: &VerifiedRequest, enforcing: &Verdict) {
        if request.refusal.is_some() || !self.sampler.take() {
            return;
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.metrics.shadow(&self.tenant, "skipped");
            return;
        };
        let request = request.clone();
        let enforcing = enforcing.clone();
        let (tenant, decider, metrics) = (
            self.tenant.clone(),
            self.decider.clone(),
            self.metrics.clone(),
        );
        tokio::spawn(async move {
            let candidate = decider.decide(&request, &mut Phases::default()).await;
            drop(slot);
            if let Verdict::Deny(DenyReason::CallFailed(error)) = &candidate {
                // A candidate that times out or traps is its own finding,
                // not a verdict to compare.
                metrics.shadow(&tenant, "failed");
                tracing::info!(
                    target: DECISION_LOG,
                    tenant = &*tenant,
                    error = mask_credentials(error.to_string(), &request.request().connect_opts),
                    "shadow policy call failed"
                );
                return;
            }
            match compare(&enforcing, &candidate) {
                None => metrics.shadow(&tenant, "agree"),
                Some(disagreement) => {
                    metrics.shadow(&tenant, disagreement.name());
                    log_disagreement(&tenant, &request, &enforcing, &candidate, disagreement);
                }
            }
        });
    }
}

/// One line per disagreement: who connected (as the decision line shows
/// them) and both verdicts; never a token, password or JWT.
fn log_disagreement(
    tenant: &str,
    request: &VerifiedRequest,
    enforcing: &Verdict,
    candidate: &Verdict,
    disagreement: Disagreement,
) {
    let nats = request.request();
    let user = nats
        .connect_opts
        .user
        .as_deref()
        .or(nats.connect_opts.name.as_deref())
        .map(|user| printable(user, NAME_BYTES).into_owned());
    tracing::info!(
        target: DECISION_LOG,
        tenant,
        client_id = nats.client_info.id,
        client_host = nats.client_info.host.as_deref().unwrap_or("-"),
        user = user.as_deref().unwrap_or("-"),
        differs_in = disagreement.name(),
        enforcing = verdict_text(enforcing, nats),
        shadow = verdict_text(candidate, nats),
        "shadow policy disagrees"
    );
}

/// A verdict as a disagreement line shows it: `allow ACCOUNT` or
/// `deny: reason` (escaped, bounded, the client's credentials masked).
fn verdict_text(verdict: &Verdict, request: &AuthorizationRequest) -> String {
    match verdict {
        Verdict::Allow(grant) => format!("allow {}", grant.account),
        Verdict::Deny(reason) => format!(
            "deny: {}",
            mask_credentials(reason.text(), &request.connect_opts)
        ),
    }
}

/// Takes about `sample` of the requests, spread at random: a fixed stride
/// would see only one of a few clients that reconnect in turn. (A
/// SplitMix64 sequence: well mixed, no dependency, no lock.)
struct Sampler {
    sample: f64,
    state: AtomicU64,
}

impl Sampler {
    fn new(sample: f64) -> Sampler {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        Sampler {
            sample: sample.clamp(0.0, 1.0),
            state: AtomicU64::new(seed),
        }
    }

    fn take(&self) -> bool {
        if self.sample >= 1.0 {
            return true;
        }
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction in [0, 1).
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::CheckedGrant;
    use crate::authz::DenyReason;

    fn allow(account: &str, publish: &[&str]) -> Verdict {
        let mut grant = CheckedGrant {
            account: account.into(),
            name: None,
            lifetime_secs: 3600,
            shortened_from: None,
            from_scope_template: false,
            user: serde_json::from_str(r#"{"type": "user", "version": 2}"#).expect("a user"),
        };
        grant.user.publish.allow = publish.iter().map(|s| s.to_string()).collect();
        Verdict::Allow(Box::new(grant))
    }

    #[test]
    fn verdicts_are_compared_by_decision_account_and_grant() {
        let deny = |why: &str| Verdict::Deny(DenyReason::policy(why));
        assert_eq!(compare(&deny("a"), &deny("b")), None);
        assert_eq!(
            compare(&allow("APP", &["a.>"]), &allow("APP", &["a.>"])),
            None
        );
        assert_eq!(
            compare(&allow("APP", &["a.>"]), &deny("no")),
            Some(Disagreement::Decision)
        );
        assert_eq!(
            compare(&deny("no"), &allow("APP", &[])),
            Some(Disagreement::Decision)
        );
        assert_eq!(
            compare(&allow("APP", &["a.>"]), &allow("OTHER", &["a.>"])),
            Some(Disagreement::Account)
        );
        assert_eq!(
            compare(&allow("APP", &["a.>"]), &allow("APP", &["b.>"])),
            Some(Disagreement::Grant)
        );
    }

    #[test]
    fn the_sampler_takes_the_fraction_asked_spread_at_random() {
        let every = Sampler::new(1.0);
        assert!((0..100).all(|_| every.take()));
        let quarter = Sampler::new(0.25);
        let taken: Vec<bool> = (0..20_000).map(|_| quarter.take()).collect();
        let count = taken.iter().filter(|t| **t).count();
        // 5000 expected; 6 standard deviations (about 61) either side.
        assert!((4600..=5400).contains(&count), "{count}");
        // Four clients reconnecting in turn are each sampled.
        for client in 0..4 {
            let seen = taken.iter().skip(client).step_by(4).filter(|t| **t).count();
            assert!(seen > 1000, "client {client} sampled {seen} times");
        }
    }
}
