//! A decision and its reasons, typed: what the host signs, logs and counts.
//! Every deny has a [`DenyReason`] with one rendering ([`DenyReason::text`]),
//! escaped and bounded once, and a stable class for metrics and audit.

use std::sync::Arc;

use super::rules::{CheckedGrant, RuleRefusal};
use crate::policy::CallError;
use crate::protocol::claims::{AuthorizationRequest, ConnectOpts};
use crate::protocol::mint::ResponseError;
use crate::protocol::verify::Refusal;
use crate::untrusted::{printable, reason_text};

/// What a deny reason may hold of the policy's own words.
pub const POLICY_REASON_BYTES: usize = 512;

/// The log target of decision lines and dropped requests: a name of its
/// own, so `RUST_LOG` filters on it survive moves of the code.
pub const DECISION_LOG: &str = "nats_callout::decision";

/// The longest user or host name shown in a decision line.
pub const NAME_BYTES: usize = 256;

/// The host's verdict on a verified request.
#[derive(Debug, Clone)]
pub enum Verdict {
    Allow(Box<CheckedGrant>),
    Deny(DenyReason),
}

/// Why the host denies a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DenyReason {
    /// The policy said no, in its own words (escaped and bounded when made:
    /// see [`DenyReason::policy`]).
    #[error("policy denied: {0}")]
    Policy(String),
    /// The policy did not answer: a timeout, its memory cap, a trap.
    #[error(transparent)]
    CallFailed(CallError),
    /// The policy's grant broke an operator rule.
    #[error(transparent)]
    Rule(RuleRefusal),
    /// The request was refused before any policy ran.
    #[error(transparent)]
    Refused(Refusal),
    /// The grant passed the rules, but its response could not be made (a
    /// user JWT larger than nats-server accepts).
    #[error(transparent)]
    Response(Arc<ResponseError>),
    /// No tenant's route takes the request.
    #[error("no tenant's route takes this request")]
    NoRoute,
    /// The tenant's policy did not load; the other tenants are served.
    #[error("the tenant's policy is unavailable: {0}")]
    TenantUnavailable(Arc<str>),
}

impl DenyReason {
    /// The policy's own deny reason, escaped and cut to [`POLICY_REASON_BYTES`].
    pub fn policy(reason: &str) -> DenyReason {
        DenyReason::Policy(printable(reason, POLICY_REASON_BYTES).into_owned())
    }

    /// The reason as logged and as sent to nats-server: however much of it a
    /// policy or a client wrote, it holds no control character and fits in
    /// [`REASON_BYTES`](crate::untrusted::REASON_BYTES).
    pub fn text(&self) -> String {
        reason_text(self)
    }

    /// Stable names for where the deny came from and of what kind, for
    /// metrics labels and audit events: `("policy", "denied")`,
    /// `("call", "timeout")`, `("rule", "time_window")`...
    pub fn class(&self) -> (&'static str, &'static str) {
        match self {
            DenyReason::Policy(_) => ("policy", "denied"),
            DenyReason::CallFailed(error) => ("call", error.kind()),
            DenyReason::Rule(refusal) => ("rule", refusal.kind()),
            DenyReason::Refused(Refusal::NotEncrypted) => ("request", "not_encrypted"),
            DenyReason::NoRoute => ("tenant", "no_route"),
            DenyReason::TenantUnavailable(_) => ("tenant", "unavailable"),
            DenyReason::Response(error) => (
                "response",
                match **error {
                    ResponseError::TooLarge(_) => "too_large",
                    ResponseError::Seal(_) => "seal",
                    ResponseError::Jwt(_) => "sign",
                },
            ),
        }
    }
}

/// One decision, as logged. Holds no credential, and every text in it is
/// escaped and bounded.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// The tenant whose policy decided (`-` when no route took the request).
    pub tenant: Arc<str>,
    pub client_id: Option<u64>,
    pub client_host: Option<String>,
    /// The user name the client sent, else its connection name.
    pub user: Option<String>,
    /// The user name the client sent.
    pub user_name: Option<String>,
    /// The client's connection name.
    pub client_name: Option<String>,
    /// The account the user was placed into, when allowed.
    pub account: Option<String>,
    /// Why it was denied, when denied.
    pub deny: Option<DenyReason>,
    /// What the host changed in an allowed grant.
    pub note: Option<String>,
    /// The deny's text (else the note) as logged and audited: escaped,
    /// bounded, and with the client's own credentials masked, should a
    /// policy quote them.
    pub reason: Option<String>,
    /// Whether the deny was silent (no response sent).
    pub silent: bool,
    pub micros: u64,
}

impl DecisionRecord {
    /// The record of `verdict` on `request`.
    pub fn new(
        request: &AuthorizationRequest,
        tenant: &str,
        verdict: &Verdict,
        silent: bool,
        micros: u64,
    ) -> DecisionRecord {
        let shown = |text: &Option<String>| {
            text.as_deref()
                .map(|text| printable(text, NAME_BYTES).into_owned())
        };
        let (account, deny, note) = match verdict {
            Verdict::Allow(grant) => (Some(grant.account.clone()), None, allow_note(grant)),
            Verdict::Deny(reason) => (None, Some(reason.clone()), None),
        };
        let reason = match &deny {
            Some(deny) => Some(mask_credentials(deny.text(), &request.connect_opts)),
            None => note.clone(),
        };
        DecisionRecord {
            tenant: tenant.into(),
            client_id: request.client_info.id,
            client_host: shown(&request.client_info.host),
            user: shown(&request.connect_opts.user).or_else(|| shown(&request.connect_opts.name)),
            user_name: shown(&request.connect_opts.user),
            client_name: shown(&request.connect_opts.name),
            account,
            deny,
            note,
            reason,
            silent,
            micros,
        }
    }

    pub fn allowed(&self) -> bool {
        self.account.is_some()
    }

    /// `allow`, `deny` or `deny_silent`.
    pub fn decision(&self) -> &'static str {
        match (self.allowed(), self.silent) {
            (true, _) => "allow",
            (false, false) => "deny",
            (false, true) => "deny_silent",
        }
    }

    /// Writes the one log line of this decision.
    pub fn log(&self) {
        let decision = match self.decision() {
            // As decision lines have always shown it.
            "deny_silent" => "deny-silent",
            other => other,
        };
        let reason = &self.reason;
        let class = self.deny.as_ref().map(DenyReason::class);
        tracing::info!(
            target: DECISION_LOG,
            tenant = &*self.tenant,
            client_id = self.client_id,
            client_host = self.client_host.as_deref().unwrap_or("-"),
            user = self.user.as_deref().unwrap_or("-"),
            decision,
            account = self.account.as_deref().unwrap_or("-"),
            reason = reason.as_deref().unwrap_or("-"),
            reason_class = class.map_or("-", |(source, _)| source),
            reason_kind = class.map_or("-", |(_, kind)| kind),
            micros = self.micros,
            "authorization"
        );
    }
}

/// The shortest credential masked: shorter ones would mask ordinary words.
const MASKED_FROM_BYTES: usize = 4;

/// `text` with every credential the client sent (token, password, JWT,
/// signature) replaced by `[redacted]`.
pub(crate) fn mask_credentials(mut text: String, opts: &ConnectOpts) -> String {
    let credentials = [&opts.auth_token, &opts.pass, &opts.jwt, &opts.sig];
    for credential in credentials.into_iter().flatten() {
        if credential.len() >= MASKED_FROM_BYTES && text.contains(credential.as_str()) {
            text = text.replace(credential.as_str(), "[redacted]");
        }
    }
    text
}

/// What the host changed in an allowed grant, if anything.
fn allow_note(grant: &CheckedGrant) -> Option<String> {
    let shortened = grant.shortened_from.map(|asked| {
        format!(
            "lifetime shortened from {asked}s to {}s",
            grant.lifetime_secs
        )
    });
    let scoped = grant.from_scope_template.then(|| {
        "signed with a scoped signing key: permissions and limits come from its template"
            .to_string()
    });
    match (shortened, scoped) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_render_once_escaped_and_bounded() {
        let forged =
            DenyReason::policy(&format!("no\nINFO decision=\"allow\"{}", "x".repeat(4096)));
        let text = forged.text();
        assert!(text.starts_with("policy denied: no\\nINFO"), "{text}");
        assert!(!text.contains('\n'));
        assert!(text.len() <= POLICY_REASON_BYTES + "policy denied: ".len() + 4);
        assert_eq!(forged.class(), ("policy", "denied"));
        let timeout = DenyReason::CallFailed(CallError::Timeout(100));
        assert_eq!(timeout.text(), "policy timed out after 100 ms");
        assert_eq!(timeout.class(), ("call", "timeout"));
        let mut request = AuthorizationRequest::default();
        request.connect_opts.pass = Some("hunter2".into());
        let echoed = Verdict::Deny(DenyReason::policy("wrong password hunter2 for alice"));
        let record = DecisionRecord::new(&request, "t", &echoed, false, 1);
        assert_eq!(
            record.reason.as_deref(),
            Some("policy denied: wrong password [redacted] for alice")
        );
        let refused = DenyReason::Refused(Refusal::NotEncrypted);
        assert!(refused.text().contains("requires encryption"));
        assert_eq!(refused.class(), ("request", "not_encrypted"));
    }
}
