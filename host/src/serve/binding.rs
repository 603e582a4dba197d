//! A binding: what answers for one issuer account — the key it signs with,
//! the [`Decider`] that judges its requests, and what it does with a deny.

use crate::authz::{Decider, DenyReason, Verdict};
use crate::config::DenyMode;
use crate::protocol::jwt::FastSigner;
use crate::protocol::mint::{self, Seal};
use crate::protocol::verify::{VerifiedRequest, unix_now};

/// One issuer account's policy, rules and key.
pub struct Binding {
    signer: FastSigner,
    decider: Decider,
    deny_mode: DenyMode,
}

impl Binding {
    pub fn new(signer: FastSigner, decider: Decider, deny_mode: DenyMode) -> Binding {
        Binding {
            signer,
            decider,
            deny_mode,
        }
    }

    /// The issuer account's public key, which requests name in `sub`.
    pub fn issuer(&self) -> &str {
        self.signer.public()
    }

    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Asks the policy and checks its grant.
    pub async fn decide(&self, request: &VerifiedRequest) -> Verdict {
        self.decider.decide(request).await
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
            let mut user = mint::user_claims(nats, &grant.to_mint(), now);
            match mint::sign_allow(nats, &mut user, &self.signer, now, seal) {
                Ok(payload) => return Some(payload),
                Err(error) => *verdict = Verdict::Deny(DenyReason::Response(error.into())),
            }
        }
        let Verdict::Deny(reason) = verdict else {
            return None;
        };
        if self.deny_mode == DenyMode::Silent {
            return None;
        }
        match mint::sign_deny(nats, &reason.text(), &self.signer, now, seal) {
            Ok(payload) => Some(payload),
            Err(error) => {
                tracing::error!(%error, "cannot sign a deny response");
                None
            }
        }
    }
}
