//! A binding: what answers for one auth account — the key it signs
//! responses with, where its users go and who signs their JWTs, the
//! [`Decider`] that judges its requests, and what it does with a deny.

use std::sync::Arc;

use super::audit::AuditTarget;
use super::shadow::Shadow;
use crate::authz::{Decider, DenyReason, RuleRefusal, Verdict};
use crate::config::DenyMode;
use crate::metrics::Phases;
use crate::protocol::mint::{self, AccountKey, Placement, Seal};
use crate::protocol::verify::{VerifiedRequest, unix_now};
use crate::untrusted::{Quoted, reason_text};

/// One auth account's policy, rules and keys.
pub struct Binding {
    /// Shared by the tenants of one callout: their keys are read once.
    issuer: Arc<AccountKey>,
    placement: Arc<Placement>,
    /// The decider, or why the tenant's policy did not load (its requests
    /// are then denied with that reason).
    decider: Result<Decider, Arc<str>>,
    deny_mode: DenyMode,
    /// A candidate policy judging the same requests, never deciding.
    shadow: Option<Shadow>,
    /// Where each decision is recorded, if anywhere.
    audit: Option<Arc<AuditTarget>>,
}

impl Binding {
    /// `issuer` signs the responses (and, in config mode, the user JWTs).
    pub fn new(
        issuer: Arc<AccountKey>,
        placement: Arc<Placement>,
        decider: Decider,
        deny_mode: DenyMode,
    ) -> Binding {
        Binding {
            issuer,
            placement,
            decider: Ok(decider),
            deny_mode,
            shadow: None,
            audit: None,
        }
    }

    /// The same, with `shadow` judging its requests beside its policy.
    pub(crate) fn with_shadow(mut self, shadow: Shadow) -> Binding {
        self.shadow = Some(shadow);
        self
    }

    /// The same, recording each decision to `audit`.
    pub(crate) fn with_audit(mut self, audit: Arc<AuditTarget>) -> Binding {
        self.audit = Some(audit);
        self
    }

    /// Its shadow policy, if any.
    pub(crate) fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
    }

    /// Where its decisions are recorded, if anywhere.
    pub(crate) fn audit(&self) -> Option<&Arc<AuditTarget>> {
        self.audit.as_ref()
    }

    /// A binding whose policy did not load, for `why`: it denies every
    /// request, and the other tenants are served.
    pub fn unavailable(
        issuer: Arc<AccountKey>,
        placement: Arc<Placement>,
        why: &str,
        deny_mode: DenyMode,
    ) -> Binding {
        Binding {
            issuer,
            placement,
            decider: Err(reason_text(&why).into()),
            deny_mode,
            shadow: None,
            audit: None,
        }
    }

    /// The auth account's public key (config mode: the callout issuer),
    /// which requests name in `sub`.
    pub fn account(&self) -> &str {
        &self.issuer.account
    }

    /// The public key that signs the responses.
    pub fn signer(&self) -> &str {
        self.issuer.key.public()
    }

    /// The decider, unless the policy did not load.
    pub fn decider(&self) -> Option<&Decider> {
        self.decider.as_ref().ok()
    }

    /// Asks the policy and checks its grant (timed into `phases`).
    pub async fn decide(&self, request: &VerifiedRequest, phases: &mut Phases) -> Verdict {
        match &self.decider {
            Ok(decider) => decider.decide(request, phases).await,
            Err(why) => Verdict::Deny(DenyReason::TenantUnavailable(why.clone())),
        }
    }

    /// Signs (and seals) the response to `verdict`; `None` for a silent deny.
    /// An allow whose response cannot be made becomes a deny, and `verdict`
    /// says so.
    pub fn respond(
        &self,
        request: &VerifiedRequest,
        verdict: &mut Verdict,
        seal: Seal<'_>,
    ) -> Option<Vec<u8>> {
        let now = unix_now();
        let nats = request.request();
        if let Verdict::Allow(grant) = verdict {
            let signed = match self.user_issuer(&grant.account) {
                None => Err(DenyReason::Rule(RuleRefusal::AccountNotAllowed(
                    Quoted::new(&grant.account),
                ))),
                Some(user_issuer) => {
                    if user_issuer.scoped {
                        // The scope's template decides; the host has already
                        // checked networks, windows and connection types.
                        grant.from_scope_template = true;
                        grant.user.strip_permissions_and_limits();
                    }
                    let mut user = mint::user_claims(nats, &grant.to_mint(), now);
                    mint::sign_allow(nats, &mut user, user_issuer, &self.issuer, now, seal)
                        .map_err(|error| DenyReason::Response(error.into()))
                }
            };
            match signed {
                Ok(payload) => return Some(payload),
                Err(reason) => *verdict = Verdict::Deny(reason),
            }
        }
        let Verdict::Deny(reason) = verdict else {
            return None;
        };
        if self.deny_mode == DenyMode::Silent {
            return None;
        }
        match mint::sign_deny(nats, &reason.text(), &self.issuer, now, seal) {
            Ok(payload) => Some(payload),
            Err(error) => {
                tracing::error!(%error, "cannot sign a deny response");
                None
            }
        }
    }

    /// The key that signs the JWT of a user placed into `account`.
    fn user_issuer(&self, account: &str) -> Option<&AccountKey> {
        match &*self.placement {
            Placement::Config => Some(&self.issuer),
            Placement::Operator(accounts) => accounts.get(account),
        }
    }
}
