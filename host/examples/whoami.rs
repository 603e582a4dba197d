//! Connects to a NATS server with the given credentials and prints who the
//! server says we are (`$SYS.REQ.USER.INFO`): account and permissions, or why
//! the connection was refused. Used by the quick start (`scripts/demo.sh`).
//!
//! `cargo run --release --example whoami -- nats://127.0.0.1:4222 token s3cr3t`
//! `cargo run --release --example whoami -- nats://127.0.0.1:4222 user alice wonderland`

use std::time::Duration;

use async_nats::{ConnectOptions, Event};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, options, who) = match args.as_slice() {
        [url, kind, token] if kind == "token" => (
            url,
            ConnectOptions::with_token(token.clone()),
            format!("token {token:?}"),
        ),
        [url, kind, user, password] if kind == "user" => (
            url,
            ConnectOptions::with_user_and_password(user.clone(), password.clone()),
            format!("user {user:?}"),
        ),
        _ => {
            eprintln!("usage: whoami URL token TOKEN | whoami URL user NAME PASSWORD");
            std::process::exit(2);
        }
    };
    // A grant without `$SYS.REQ.USER.INFO` (or `_INBOX.>`) gets a
    // permissions violation from the server: say so at once rather than
    // waiting for the request to time out.
    let (violations, mut violation) = tokio::sync::mpsc::unbounded_channel();
    let client = match options
        .event_callback(move |event| {
            let violations = violations.clone();
            async move {
                if let Event::ServerError(error) = event {
                    let _ = violations.send(error.to_string());
                }
            }
        })
        .connection_timeout(Duration::from_secs(5))
        .connect(url.as_str())
        .await
    {
        Ok(client) => client,
        Err(error) => {
            println!("{who:<22} REFUSED   {error}");
            return;
        }
    };
    let reply = tokio::select! {
        reply = client.request("$SYS.REQ.USER.INFO", "".into()) => reply,
        Some(error) = violation.recv() => {
            println!("{who:<22} ADMITTED  (its grant does not let it ask $SYS.REQ.USER.INFO: {error})");
            return;
        }
    };
    let info = match reply {
        Ok(reply) => {
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap_or_default()
        }
        Err(error) => {
            println!("{who:<22} ADMITTED  (cannot read USER.INFO: {error})");
            return;
        }
    };
    let data = &info["data"];
    println!(
        "{who:<22} ADMITTED  account={} publish={} subscribe={}",
        data["account"],
        data["permissions"]["publish"]["allow"],
        data["permissions"]["subscribe"]["allow"]
    );
}
