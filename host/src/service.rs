//! One authorization, start to finish, independent of NATS: open and verify
//! the request, ask the policy, check its grant against the operator's rules,
//! sign (and seal) the response. `server.rs` feeds it messages; `check` and the
//! benchmarks call it directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::DenyMode;
use crate::jwt::{FastSigner, IssuerKeys};
use crate::policy::LoadedPolicy;
use crate::request::{RequestCheck, VerifiedRequest, to_policy_request, unix_now};
use crate::response::{self, Answer};
use crate::rules::{CheckedGrant, GrantRules};
use crate::sealed_box::SealedBoxes;
use crate::untrusted::printable;

/// What a deny reason may hold of the policy's own words.
pub const POLICY_REASON_BYTES: usize = 512;

/// The longest deny reason, as logged and as sent to nats-server (which logs
/// it): the host's words plus what they quote.
pub const REASON_BYTES: usize = 1024;

/// The longest user or host name shown in a decision line.
pub const NAME_BYTES: usize = 256;

/// A policy bound to the keys it signs with and the rules it is held to.
/// Several bindings, one per issuer account, can serve one NATS connection.
pub struct Binding {
    pub issuer: FastSigner,
    pub xkey: Option<SealedBoxes>,
    /// Server identity keys already seen.
    pub server_keys: IssuerKeys,
    pub policy: Arc<LoadedPolicy>,
    pub rules: GrantRules,
    pub deny_mode: DenyMode,
    pub expiry_leeway: Duration,
}

/// The verdict on a verified request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Box<CheckedGrant>),
    /// Denied, for this reason: escaped and bounded (see [`Verdict::deny`]).
    Deny(String),
}

impl Verdict {
    /// A deny whose reason is safe to log and to send: however much of it a
    /// policy or a client wrote, it holds no control character and fits in
    /// [`REASON_BYTES`].
    pub fn deny(reason: impl AsRef<str>) -> Verdict {
        Verdict::Deny(printable(reason.as_ref(), REASON_BYTES).into_owned())
    }
}

/// What to do with one message, and what to log about it.
pub enum Outcome {
    /// Publish `payload` to the message's reply subject.
    Reply {
        payload: Vec<u8>,
        record: DecisionRecord,
    },
    /// Denied silently: publish nothing.
    Silent { record: DecisionRecord },
    /// Not a request that can be answered; the reason says why.
    Dropped { reason: String },
}

/// One decision, as logged. Holds no credential, and every text in it is
/// escaped and bounded.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub client_id: Option<u64>,
    pub client_host: Option<String>,
    /// The user name the client sent, else its connection name.
    pub user: Option<String>,
    pub allowed: bool,
    pub account: Option<String>,
    pub reason: Option<String>,
    pub micros: u64,
}

impl Binding {
    fn check(&self) -> RequestCheck<'_> {
        RequestCheck {
            issuer: self.issuer.public(),
            xkey: self.xkey.as_ref(),
            server_keys: &self.server_keys,
            expiry_leeway: self.expiry_leeway,
        }
    }

    /// Phase 1: opens and verifies a raw message.
    pub fn open(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<VerifiedRequest, String> {
        self.check().open(payload, xkey_header)
    }

    /// Phase 2: asks the policy and checks its grant.
    pub async fn decide(&self, request: &VerifiedRequest) -> Verdict {
        if let Some(refusal) = &request.refusal {
            return Verdict::deny(refusal);
        }
        let nats = request.request();
        let decision = match self
            .policy
            .evaluate(&to_policy_request(nats, self.issuer.public()))
            .await
        {
            Ok(decision) => decision,
            Err(error) => return Verdict::deny(error.to_string()),
        };
        match decision {
            crate::bindings::Decision::Deny(reason) => Verdict::deny(format!(
                "policy denied: {}",
                printable(&reason, POLICY_REASON_BYTES)
            )),
            crate::bindings::Decision::Allow(grant) => match self.rules.check(&grant, nats) {
                Ok(checked) => Verdict::Allow(Box::new(checked)),
                Err(reason) => Verdict::deny(reason),
            },
        }
    }

    /// Phase 3: signs (and seals) the response; `None` for a silent deny.
    pub fn respond(&self, request: &VerifiedRequest, verdict: &mut Verdict) -> Option<Vec<u8>> {
        let now = unix_now();
        let nats = request.request();
        let seal = match (&self.xkey, &request.server_xkey) {
            (Some(own), Some(server)) => Some((own, server.as_str())),
            _ => None,
        };
        if let Verdict::Allow(grant) = verdict {
            let mut user = response::user_claims(nats, grant, now);
            match response::sign(nats, Answer::Allow(&mut user), &self.issuer, now, seal) {
                Ok(payload) => return Some(payload),
                Err(error) => *verdict = Verdict::deny(error.to_string()),
            }
        }
        let Verdict::Deny(reason) = verdict else {
            return None;
        };
        if self.deny_mode == DenyMode::Silent {
            return None;
        }
        match response::sign(nats, Answer::Deny(reason), &self.issuer, now, seal) {
            Ok(payload) => Some(payload),
            Err(error) => {
                tracing::error!(%error, "cannot sign a deny response");
                None
            }
        }
    }

    /// All three phases for one message.
    pub async fn handle(&self, payload: &[u8], xkey_header: Option<&str>) -> Outcome {
        let started = Instant::now();
        let request = match self.open(payload, xkey_header) {
            Ok(request) => request,
            Err(reason) => return Outcome::Dropped { reason },
        };
        let mut verdict = self.decide(&request).await;
        let reply = self.respond(&request, &mut verdict);
        let nats = request.request();
        let shown = |text: &Option<String>| {
            text.as_deref()
                .map(|text| printable(text, NAME_BYTES).into_owned())
        };
        let record = DecisionRecord {
            client_id: nats.client_info.id,
            client_host: shown(&nats.client_info.host),
            user: shown(&nats.connect_opts.user).or_else(|| shown(&nats.connect_opts.name)),
            allowed: matches!(verdict, Verdict::Allow(_)),
            account: match &verdict {
                Verdict::Allow(grant) => Some(grant.account.clone()),
                Verdict::Deny(_) => None,
            },
            reason: match &verdict {
                Verdict::Allow(grant) => grant.shortened_from.map(|asked| {
                    format!(
                        "lifetime shortened from {asked}s to {}s",
                        grant.lifetime_secs
                    )
                }),
                Verdict::Deny(reason) => Some(reason.clone()),
            },
            micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        match reply {
            Some(payload) => Outcome::Reply { payload, record },
            None => Outcome::Silent { record },
        }
    }
}

impl DecisionRecord {
    /// Writes the one log line of this decision.
    pub fn log(&self, silent: bool) {
        let decision = match (self.allowed, silent) {
            (true, _) => "allow",
            (false, false) => "deny",
            (false, true) => "deny-silent",
        };
        tracing::info!(
            client_id = self.client_id,
            client_host = self.client_host.as_deref().unwrap_or("-"),
            user = self.user.as_deref().unwrap_or("-"),
            decision,
            account = self.account.as_deref().unwrap_or("-"),
            reason = self.reason.as_deref().unwrap_or("-"),
            micros = self.micros,
            "authorization"
        );
    }
}
