//! `nats-callout whoami`: connects to NATS as a client would and prints
//! what the callout decided — admitted, with which account and permissions
//! (the server's own `$SYS.REQ.USER.INFO`), or refused, with the server's
//! error. How an operator checks a live set-up without another tool.

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};

/// The credentials a client connects with.
pub(crate) enum Credentials {
    /// A token (`nats://token@host`); never printed.
    Token(String),
    /// A user name (printed) and its password (never printed).
    UserAndPassword { user: String, password: String },
}

/// What `whoami` found.
pub(crate) struct Outcome {
    /// One line: `<who> ADMITTED account=… publish=[…] subscribe=[…]`, or
    /// `<who> REFUSED <error>`, or `<who> UNREACHABLE <error>`.
    pub(crate) line: String,
    pub(crate) admitted: bool,
}

/// Connects to `server` with `credentials` and reads what the server says
/// the connection may do.
pub(crate) async fn run(server: &str, credentials: Credentials) -> Outcome {
    let (options, who) = match credentials {
        Credentials::Token(token) => (ConnectOptions::with_token(token), "token".to_string()),
        Credentials::UserAndPassword { user, password } => (
            ConnectOptions::with_user_and_password(user.clone(), password),
            format!("user {user:?}"),
        ),
    };
    let admitted = |details: String| Outcome {
        line: format!("{who:<16} {:<11} {details}", "ADMITTED"),
        admitted: true,
    };
    // A grant without `$SYS.REQ.USER.INFO` (or `_INBOX.>`) gets a
    // permissions violation from the server: say so at once rather than
    // waiting for the request to time out.
    let (violations, mut violation) = tokio::sync::mpsc::unbounded_channel();
    let connected = options
        .event_callback(move |event| {
            let violations = violations.clone();
            async move {
                if let Event::ServerError(error) = event {
                    let _ = violations.send(error.to_string());
                }
            }
        })
        .connection_timeout(Duration::from_secs(5))
        .connect(server)
        .await;
    let client = match connected {
        Ok(client) => client,
        Err(error) => {
            let verdict = if error.kind() == ConnectErrorKind::AuthorizationViolation {
                "REFUSED"
            } else {
                "UNREACHABLE"
            };
            return Outcome {
                line: format!("{who:<16} {verdict:<11} {error}"),
                admitted: false,
            };
        }
    };
    let reply = tokio::select! {
        reply = client.request("$SYS.REQ.USER.INFO", "".into()) => reply,
        Some(error) = violation.recv() => {
            return admitted(format!("(its grant does not let it ask $SYS.REQ.USER.INFO: {error})"));
        }
    };
    let info = match reply {
        Ok(reply) => {
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap_or_default()
        }
        Err(error) => return admitted(format!("(cannot read USER.INFO: {error})")),
    };
    let data = &info["data"];
    admitted(format!(
        "account={} publish={} subscribe={}",
        data["account"],
        data["permissions"]["publish"]["allow"],
        data["permissions"]["subscribe"]["allow"]
    ))
}
