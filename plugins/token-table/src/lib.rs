//! Example policy: admits clients listed in a table in its settings, by token or
//! by user name and password, and denies everyone else with a reason.
//!
//! Settings (the `[policy.settings]` table of the host's configuration):
//!
//! ```toml
//! [policy.settings.tokens.s3cr3t]
//! account = "APP"
//! publish = ["app.>"]
//! subscribe = ["app.>", "_INBOX.>"]
//!
//! [policy.settings.users.alice]
//! password = "wonderland"
//! account = "APP"
//! publish = ["app.alice.>"]
//! expires_in_secs = 600
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use nats_callout_sdk::{AuthRequest, Decision, Grant, Policy, export_policy};
use serde::Deserialize;

/// What a matching client gets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entitlement {
    account: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    password: String,
    #[serde(flatten)]
    entitlement: Entitlement,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    tokens: BTreeMap<String, Entitlement>,
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
}

#[derive(Debug)]
pub struct TokenTable {
    settings: Settings,
}

impl Entitlement {
    fn grant(&self, default_name: &str) -> Decision {
        let mut grant = Grant::to(&self.account)
            .named(self.name.as_deref().unwrap_or(default_name))
            .publish(&self.publish)
            .subscribe(&self.subscribe);
        if let Some(secs) = self.expires_in_secs {
            grant = grant.expires_in(Duration::from_secs(secs));
        }
        grant.allow()
    }
}

/// Compares secrets in time that does not depend on where they first differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Policy for TokenTable {
    fn init(settings: &str) -> Result<Self, String> {
        let settings: Settings =
            serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
        if settings.tokens.is_empty() && settings.users.is_empty() {
            return Err(
                "invalid settings: no `tokens` and no `users`, so every client would be denied"
                    .into(),
            );
        }
        Ok(TokenTable { settings })
    }

    fn authorize(&self, request: &AuthRequest) -> Decision {
        if let Some(token) = request.token() {
            return match self
                .settings
                .tokens
                .iter()
                .find(|(known, _)| same_secret(known, token))
            {
                Some((_, entitlement)) => entitlement.grant("token"),
                None => Decision::deny("unknown token"),
            };
        }
        if let Some((user, password)) = request.user_and_password() {
            return match self.settings.users.get(user) {
                Some(entry) if same_secret(&entry.password, password) => {
                    entry.entitlement.grant(user)
                }
                Some(_) => Decision::deny(format!("wrong password for user {user:?}")),
                None => Decision::deny(format!("unknown user {user:?}")),
            };
        }
        Decision::deny("no token and no user name and password")
    }
}

export_policy!(TokenTable);

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = r#"{
        "tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"], "subscribe": ["_INBOX.>"]}},
        "users": {"alice": {"password": "wonderland", "account": "APP", "expires_in_secs": 60}}
    }"#;

    fn policy() -> TokenTable {
        TokenTable::init(SETTINGS).unwrap()
    }

    #[test]
    fn a_known_token_gets_its_grant() {
        let decision = policy().authorize(&AuthRequest::for_test().with_token("s3cr3t"));
        let grant = decision.grant().expect("allowed");
        assert_eq!(grant.account, "APP");
        assert_eq!(grant.publish.allow, ["app.>"]);
        assert_eq!(grant.subscribe.allow, ["_INBOX.>"]);
    }

    #[test]
    fn an_unknown_token_is_denied() {
        let decision = policy().authorize(&AuthRequest::for_test().with_token("guess"));
        assert_eq!(decision.deny_reason(), Some("unknown token"));
    }

    #[test]
    fn users_need_the_right_password() {
        let ok = policy()
            .authorize(&AuthRequest::for_test().with_user_and_password("alice", "wonderland"));
        assert_eq!(ok.grant().and_then(|g| g.expires_in_secs), Some(60));
        assert_eq!(ok.grant().and_then(|g| g.name.as_deref()), Some("alice"));
        let wrong =
            policy().authorize(&AuthRequest::for_test().with_user_and_password("alice", "x"));
        assert_eq!(
            wrong.deny_reason(),
            Some("wrong password for user \"alice\"")
        );
        let unknown =
            policy().authorize(&AuthRequest::for_test().with_user_and_password("bob", "x"));
        assert_eq!(unknown.deny_reason(), Some("unknown user \"bob\""));
    }

    #[test]
    fn anonymous_clients_are_denied() {
        let decision = policy().authorize(&AuthRequest::for_test());
        assert!(!decision.is_allow());
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(TokenTable::init("{}").unwrap_err().contains("no `tokens`"));
        assert!(
            TokenTable::init(r#"{"tokens": 3}"#)
                .unwrap_err()
                .starts_with("invalid settings")
        );
        assert!(
            TokenTable::init(r#"{"tokenz": {}}"#)
                .unwrap_err()
                .contains("tokenz")
        );
    }
}
