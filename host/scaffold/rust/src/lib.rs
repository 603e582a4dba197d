//! {{name}}: a nats-callout policy. It admits the users listed in its
//! settings, by user name and password, with their account and permissions,
//! and denies everyone else.
//!
//! Settings (the `[policy.settings]` table of callout.toml):
//!
//! ```toml
//! [policy.settings.users.alice]
//! password = "wonderland"
//! account = "APP"
//! publish = ["app.alice.>"]
//! subscribe = ["app.>", "_INBOX.>"]
//! ```
//!
//! Store password hashes rather than passwords in real settings: the
//! `password` capability verifies them (see the README's "Capabilities").

use std::collections::BTreeMap;

use nats_callout_sdk::{AuthRequest, Decision, Grant, Policy, export_policy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    password: String,
    account: String,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    users: BTreeMap<String, User>,
}

pub struct Users {
    settings: Settings,
}

/// Compares secrets in time that does not depend on where they first differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Policy for Users {
    /// Runs once, when the host loads the policy; an error refuses it.
    fn init(settings: &str) -> Result<Self, String> {
        let settings: Settings =
            serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
        if settings.users.is_empty() {
            return Err("invalid settings: no users, so every client would be denied".into());
        }
        let empty = settings.users.iter().find(|(_, user)| user.password.is_empty());
        if let Some((name, _)) = empty {
            return Err(format!("invalid settings: user {name:?} has an empty password"));
        }
        Ok(Users { settings })
    }

    /// Runs for every connecting client, in a fresh sandbox.
    fn authorize(&self, request: &AuthRequest) -> Decision {
        let Some((name, password)) = request.user_and_password() else {
            return Decision::deny("no user name and password");
        };
        match self.settings.users.get(name) {
            Some(user) if same_secret(&user.password, password) => Grant::to(&user.account)
                .named(name)
                .publish(&user.publish)
                .subscribe(&user.subscribe)
                .allow(),
            _ => Decision::deny("unknown user or wrong password"),
        }
    }
}

export_policy!(Users);

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = r#"{"users": {"alice": {
        "password": "wonderland", "account": "APP", "publish": ["app.alice.>"]
    }}}"#;

    fn policy() -> Users {
        Users::init(SETTINGS).expect("the settings are valid")
    }

    #[test]
    fn a_user_with_the_right_password_gets_a_grant() {
        let request = AuthRequest::for_test().with_user_and_password("alice", "wonderland");
        let decision = policy().authorize(&request);
        let grant = decision.grant().expect("allowed");
        assert_eq!(grant.account, "APP");
        assert_eq!(grant.publish.allow, ["app.alice.>"]);
    }

    #[test]
    fn a_wrong_password_is_denied() {
        let request = AuthRequest::for_test().with_user_and_password("alice", "guess");
        let decision = policy().authorize(&request);
        assert_eq!(decision.deny_reason(), Some("unknown user or wrong password"));
    }

    #[test]
    fn settings_without_users_are_refused() {
        let error = Users::init(r#"{"users": {}}"#).err().expect("refused");
        assert!(error.contains("no users"), "{error}");
    }
}
