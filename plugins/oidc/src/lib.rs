//! Example policy: an OIDC identity broker. A client connects with an ID or
//! access token from the operator's identity provider (Keycloak, Zitadel,
//! Auth0, Entra...) as its NATS token or password; the host verifies it
//! (capability `oidc`), and the first rule whose claim matches places the
//! user, with subjects templated from the token's claims.
//!
//! Host configuration:
//!
//! ```toml
//! [[policy.capabilities.oidc]]
//! issuer = "https://idp.example.com/realms/nats"
//! audiences = ["nats"]
//!
//! [[policy.settings.rules]]
//! claim = "groups"          # a claim (dotted path: "realm_access.roles")
//! value = "ops"             # equal to it, or in it when it is a list
//! account = "OPS"
//! publish = [">"]
//! subscribe = [">"]
//!
//! [[policy.settings.rules]]  # no claim: every verified token
//! account = "APP"
//! publish = ["user.{{sub}}.>"]
//! subscribe = ["user.{{sub}}.>", "_INBOX.>"]
//! name = "{{preferred_username}}"
//! ```
//!
//! A template's claim must be a string or number, and one subject token: a
//! value with `.`, `*`, `>` or a space (a `sub` of `a.>`) is refused, not
//! substituted, so a claim can never widen a permission. The user's
//! connection ends when the token expires (or after `max_lifetime_secs`,
//! when shorter).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nats_callout_sdk::{AuthRequest, Decision, Grant, Policy, export_policy, oidc};
use serde::Deserialize;
use serde_json::Value;

/// Where the client puts its token.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TokenFrom {
    /// The connect token (`nats://<token>@host`, `--token`).
    Token,
    /// The password (any user name), for clients that only take user and
    /// password (MQTT, some libraries).
    Password,
    /// The token, else the password.
    #[default]
    Either,
}

/// One mapping from claims to a grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// Only tokens of this issuer (when several are granted, so one
    /// provider's `sub` never lands in another's subjects).
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    value: Option<String>,
    account: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    max_lifetime_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    token_from: TokenFrom,
    rules: Vec<Rule>,
}

struct OidcBroker {
    settings: Settings,
}

impl Policy for OidcBroker {
    fn init(settings: &str) -> Result<Self, String> {
        let settings: Settings =
            serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
        if settings.rules.is_empty() {
            return Err("settings.rules is empty: no token would ever be admitted".into());
        }
        for (index, rule) in settings.rules.iter().enumerate() {
            if rule.value.is_some() && rule.claim.is_none() {
                return Err(format!("rules[{index}] has a value but no claim"));
            }
        }
        Ok(OidcBroker { settings })
    }

    fn authorize(&self, request: &AuthRequest) -> Decision {
        let Some(token) = self.token(request) else {
            return Decision::deny(
                "no token: connect with the identity provider's token as the NATS token or password",
            );
        };
        let verified = match oidc::verify(token) {
            Ok(verified) => verified,
            Err(error) => return Decision::deny(format!("token refused: {}", error.message())),
        };
        let claims: Value = match serde_json::from_str(&verified.claims) {
            Ok(claims) => claims,
            Err(_) => return Decision::deny("the token's claims are not JSON"),
        };
        let Some(rule) = self
            .settings
            .rules
            .iter()
            .find(|rule| rule.matches(&verified.issuer, &claims))
        else {
            return Decision::deny("no rule matches the token's claims");
        };
        match rule.grant(&claims) {
            Ok(grant) => grant.into(),
            Err(reason) => Decision::deny(reason),
        }
    }
}

impl OidcBroker {
    fn token<'a>(&self, request: &'a AuthRequest) -> Option<&'a str> {
        let password = || request.connect_opts.pass.as_deref();
        match self.settings.token_from {
            TokenFrom::Token => request.token(),
            TokenFrom::Password => password(),
            TokenFrom::Either => request.token().or_else(password),
        }
    }
}

impl Rule {
    fn matches(&self, issuer: &str, claims: &Value) -> bool {
        if self
            .issuer
            .as_deref()
            .is_some_and(|wanted| wanted != issuer)
        {
            return false;
        }
        let Some(path) = &self.claim else {
            return true;
        };
        let Some(found) = claim(claims, path) else {
            return false;
        };
        match (&self.value, found) {
            (None, _) => true,
            (Some(wanted), Value::Array(items)) => items
                .iter()
                .any(|item| text(item).as_deref() == Some(wanted)),
            (Some(wanted), other) => text(other).as_deref() == Some(wanted),
        }
    }

    fn grant(&self, claims: &Value) -> Result<Grant, String> {
        let fill_all = |patterns: &[String]| -> Result<Vec<String>, String> {
            patterns.iter().map(|p| fill(p, claims)).collect()
        };
        let mut grant = Grant::to(&self.account)
            .publish(fill_all(&self.publish)?)
            .subscribe(fill_all(&self.subscribe)?);
        if let Some(name) = &self.name {
            grant = grant.named(fill_name(name, claims)?);
        }
        // The connection ends when the token does (`exp` may be fractional).
        let expires = claims.get("exp").and_then(|exp| {
            exp.as_u64()
                .or_else(|| exp.as_f64().map(|secs| secs as u64))
        });
        if let Some(expires) = expires {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            let mut left = expires.saturating_sub(now).max(1);
            if let Some(max) = self.max_lifetime_secs {
                left = left.min(max);
            }
            grant = grant.expires_in(Duration::from_secs(left));
        }
        Ok(grant)
    }
}

/// The claim at a dotted `path`.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(claims, |value, key| value.get(key))
}

/// A claim as text, if it is a string or a number.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `pattern` with each `{{claim}}` replaced by the claim's value, which must
/// be one subject token.
fn fill(pattern: &str, claims: &Value) -> Result<String, String> {
    substitute(pattern, claims, "a single subject token", |value| {
        !value.is_empty()
            && !value.contains(|c: char| {
                matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control()
            })
    })
}

/// A user name from `pattern`: any claim without control characters (an
/// email, a dotted name), since a name is shown, never matched.
fn fill_name(pattern: &str, claims: &Value) -> Result<String, String> {
    substitute(
        pattern,
        claims,
        "a name (it has control characters)",
        |value| !value.contains(char::is_control),
    )
}

/// `pattern` with each `{{claim}}` replaced by the claim's value, when
/// `acceptable` (else refused, never substituted).
fn substitute(
    pattern: &str,
    claims: &Value,
    what: &str,
    acceptable: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let mut filled = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else {
            return Err(format!("template {pattern:?} has an unclosed {{{{"));
        };
        let name = rest[start + 2..start + length].trim();
        let value = claim(claims, name)
            .and_then(text)
            .ok_or_else(|| format!("the token has no text claim {name:?} for {pattern:?}"))?;
        if !acceptable(&value) {
            return Err(format!(
                "the claim {name:?} is not {what}; refused rather than substituted"
            ));
        }
        filled.push_str(&rest[..start]);
        filled.push_str(&value);
        rest = &rest[start + length + 2..];
    }
    filled.push_str(rest);
    Ok(filled)
}

export_policy!(OidcBroker);

#[cfg(test)]
mod tests {
    use nats_callout_sdk::oidc::TokenError;
    use nats_callout_sdk::testing;

    use super::*;

    const SETTINGS: &str = r#"{"rules": [
        {"claim": "groups", "value": "ops", "account": "OPS", "publish": [">"], "subscribe": [">"]},
        {"account": "APP", "publish": ["user.{{sub}}.>"], "subscribe": ["user.{{sub}}.>", "_INBOX.>"], "name": "{{preferred_username}}"}
    ]}"#;

    fn allowed(decision: Decision) -> nats_callout_sdk::Grant {
        match decision {
            Decision::Allow(grant) => grant,
            Decision::Deny(reason) => panic!("denied: {reason}"),
        }
    }

    fn denied(decision: Decision) -> String {
        match decision {
            Decision::Deny(reason) => reason,
            Decision::Allow(grant) => panic!("allowed: {grant:?}"),
        }
    }

    #[test]
    fn claims_choose_the_rule_and_fill_the_subjects() {
        testing::reset();
        let policy = OidcBroker::init(SETTINGS).unwrap();
        testing::accept_token(
            "alice-token",
            "https://idp",
            r#"{"sub": "alice", "preferred_username": "Alice", "groups": ["dev"], "exp": 4102444800}"#,
        );
        testing::accept_token(
            "olga-token",
            "https://idp",
            r#"{"sub": "olga", "groups": ["ops", "dev"]}"#,
        );

        let alice = allowed(policy.authorize(&AuthRequest::for_test().with_token("alice-token")));
        assert_eq!(alice.account, "APP");
        assert_eq!(alice.publish.allow, ["user.alice.>"]);
        assert_eq!(alice.subscribe.allow, ["user.alice.>", "_INBOX.>"]);
        assert_eq!(alice.name.as_deref(), Some("Alice"));
        assert!(alice.expires_in_secs.is_some_and(|secs| secs > 3600));

        // The token as a password, for clients that only send user and password.
        let olga = allowed(
            policy.authorize(&AuthRequest::for_test().with_user_and_password("olga", "olga-token")),
        );
        assert_eq!(olga.account, "OPS");
        assert_eq!(olga.expires_in_secs, None);
    }

    #[test]
    fn refused_tokens_and_hostile_claims_deny() {
        testing::reset();
        let policy = OidcBroker::init(SETTINGS).unwrap();
        testing::refuse_token("old", TokenError::Expired);
        testing::accept_token(
            "sneaky",
            "https://idp",
            r#"{"sub": "a.>", "preferred_username": "x"}"#,
        );
        testing::accept_token("nameless", "https://idp", r#"{"sub": "bob"}"#);

        assert!(denied(policy.authorize(&AuthRequest::for_test())).contains("no token"));
        assert!(
            denied(policy.authorize(&AuthRequest::for_test().with_token("old")))
                .contains("token refused: expired")
        );
        assert!(
            denied(policy.authorize(&AuthRequest::for_test().with_token("forged")))
                .contains("token refused: bad signature")
        );
        assert!(
            denied(policy.authorize(&AuthRequest::for_test().with_token("sneaky")))
                .contains("not a single subject token")
        );
        assert!(
            denied(policy.authorize(&AuthRequest::for_test().with_token("nameless")))
                .contains("preferred_username")
        );
    }

    #[test]
    fn rules_may_name_their_issuer_and_names_may_hold_dots() {
        testing::reset();
        let settings = r#"{"rules": [
            {"issuer": "https://a", "account": "A", "publish": ["a.{{sub}}.>"], "name": "{{email}}"},
            {"issuer": "https://b", "account": "B", "publish": ["b.{{sub}}.>"]}
        ]}"#;
        let policy = OidcBroker::init(settings).unwrap();
        let claims = r#"{"sub": "x", "email": "x.y@example.com", "exp": 4102444800.5}"#;
        testing::accept_token("from-a", "https://a", claims);
        testing::accept_token("from-b", "https://b", claims);
        testing::accept_token("from-c", "https://c", claims);
        let a = allowed(policy.authorize(&AuthRequest::for_test().with_token("from-a")));
        assert_eq!(
            (a.account.as_str(), a.name.as_deref()),
            ("A", Some("x.y@example.com"))
        );
        assert!(
            a.expires_in_secs.is_some(),
            "a fractional exp still ends the connection"
        );
        let b = allowed(policy.authorize(&AuthRequest::for_test().with_token("from-b")));
        assert_eq!(b.publish.allow, ["b.x.>"]);
        assert!(
            denied(policy.authorize(&AuthRequest::for_test().with_token("from-c")))
                .contains("no rule")
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(
            OidcBroker::init(r#"{"rules": []}"#)
                .err()
                .unwrap()
                .contains("empty")
        );
        assert!(
            OidcBroker::init(r#"{"rules": [{"value": "x", "account": "A"}]}"#)
                .err()
                .unwrap()
                .contains("no claim")
        );
        assert!(OidcBroker::init(r#"{"rules": [{"account": "A", "extra": 1}]}"#).is_err());
    }
}
