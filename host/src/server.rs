//! Serving: connects to NATS, subscribes to `$SYS.REQ.USER.AUTH` (in a queue
//! group, so replicas share the load), evaluates requests concurrently up to a
//! bound, and drains in-flight requests on shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use async_nats::{ConnectOptions, Event};
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{self, Config};
use crate::service::{Binding, Outcome, REASON_BYTES};
use crate::untrusted::printable;

/// The subject nats-server publishes authorization requests on.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The longest each shutdown step may take.
const SHUTDOWN_STEP: std::time::Duration = std::time::Duration::from_secs(5);

/// The header that carries the server's curve key on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// Connection options from `[nats]`, with secrets from the environment when set.
pub async fn connect_options(config: &Config) -> anyhow::Result<ConnectOptions> {
    let nats = &config.nats;
    let password = config::read_secret(Some(config::ENV_NATS_PASSWORD), None, "NATS password")
        .map_err(anyhow::Error::msg)?
        .or_else(|| nats.password.clone());
    let token = config::read_secret(Some(config::ENV_NATS_TOKEN), None, "NATS token")
        .map_err(anyhow::Error::msg)?
        .or_else(|| nats.token.clone());
    let mut options = if let Some(path) = &nats.creds_file {
        ConnectOptions::new()
            .credentials_file(path)
            .await
            .with_context(|| format!("[nats] creds_file {}", path.display()))?
    } else if let Some(path) = &nats.nkey_seed_file {
        let seed = config::read_secret(None, Some(path), "[nats] nkey_seed_file")
            .map_err(anyhow::Error::msg)?;
        ConnectOptions::new().nkey(seed.unwrap_or_default())
    } else if let Some(user) = &nats.user {
        ConnectOptions::new().user_and_password(user.clone(), password.unwrap_or_default())
    } else if let Some(token) = token {
        ConnectOptions::new().token(token)
    } else {
        ConnectOptions::new()
    };
    options = options
        .name(&nats.name)
        .retry_on_initial_connect()
        .no_echo()
        .event_callback(|event| async move {
            match event {
                Event::Connected => tracing::info!("connected to NATS"),
                Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                other => tracing::info!(event = %other, "NATS event"),
            }
        });
    Ok(options)
}

/// Serves requests until `shutdown` completes, then stops taking requests,
/// finishes those in flight and flushes their replies.
pub async fn serve(
    config: &Config,
    binding: Arc<Binding>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let options = connect_options(config).await?;
    let client = options
        .connect(config.nats.servers.join(","))
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {}",
                config.nats.servers.join(",")
            )
        })?;
    let mut requests = if config.nats.queue_group.is_empty() {
        client.subscribe(AUTH_SUBJECT).await
    } else {
        client
            .queue_subscribe(AUTH_SUBJECT, config.nats.queue_group.clone())
            .await
    }
    .with_context(|| format!("cannot subscribe to {AUTH_SUBJECT}"))?;
    client.flush().await.context("cannot reach NATS")?;
    tracing::info!(
        subject = AUTH_SUBJECT,
        queue_group = %config.nats.queue_group,
        policy = binding.policy.name(),
        policy_sha256 = binding.policy.digest(),
        issuer = binding.issuer.public(),
        encryption = binding.xkey.is_some(),
        "serving auth callout requests"
    );

    let in_flight = Arc::new(Semaphore::new(config.service.max_in_flight));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            _ = &mut shutdown => break,
            message = requests.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        // Reap finished tasks so the set does not grow with traffic.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let binding = binding.clone();
        let client = client.clone();
        tasks.spawn(async move {
            let Some(reply_to) = message.reply.clone() else {
                tracing::warn!("request without a reply subject dropped");
                return;
            };
            let header = message
                .headers
                .as_ref()
                .and_then(|h| h.get(XKEY_HEADER))
                .map(|v| v.as_str().to_string());
            let payload = message.payload;
            // Inline on the worker: a hand-off to a blocking pool cost more CPU than the
            // whole request (context switches), and a policy call yields every epoch tick.
            let outcome = binding.handle(&payload, header.as_deref()).await;
            drop(permit);
            match outcome {
                Outcome::Reply { payload, record } => {
                    record.log(false);
                    if let Err(error) = client.publish(reply_to, payload.into()).await {
                        tracing::warn!(%error, "cannot publish a reply");
                    }
                }
                Outcome::Silent { record } => record.log(true),
                Outcome::Dropped { reason } => {
                    // The reason may quote what the message carried.
                    let reason = printable(&reason, REASON_BYTES);
                    tracing::warn!(?reason, "request dropped");
                }
            }
        });
    }

    tracing::info!(
        in_flight = tasks.len(),
        "shutting down: finishing requests in flight"
    );
    // Every step is bounded: with NATS unreachable, unsubscribe and flush would wait forever.
    let unsubscribed = tokio::time::timeout(SHUTDOWN_STEP, requests.unsubscribe()).await;
    if !matches!(unsubscribed, Ok(Ok(()))) {
        tracing::warn!("cannot unsubscribe (NATS unreachable?)");
    }
    let drained = tokio::time::timeout(SHUTDOWN_STEP, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            "requests still in flight after {SHUTDOWN_STEP:?}; abandoning them"
        );
    }
    if !matches!(
        tokio::time::timeout(SHUTDOWN_STEP, client.flush()).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("cannot flush the last replies (NATS unreachable?)");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}
