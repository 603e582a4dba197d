//! Shutting down: the signal that starts it, and the bounded steps that
//! finish the requests in flight and flush their replies.

use std::time::Duration;

use async_nats::Client;
use tokio::task::JoinSet;

use super::nats::Requests;

/// The longest each shutdown step may take: with NATS unreachable,
/// unsubscribing and flushing would otherwise wait forever.
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

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

/// Stops taking requests, finishes those in flight and flushes their
/// replies, each step bounded by [`SHUTDOWN_STEP`].
pub(super) async fn drain(
    callout: &str,
    client: &Client,
    requests: Requests,
    mut tasks: JoinSet<()>,
) {
    // Tasks that finished but were not reaped are not in flight.
    while tasks.try_join_next().is_some() {}
    tracing::info!(
        in_flight = tasks.len(),
        callout,
        "shutting down: finishing requests in flight"
    );
    let unsubscribed = tokio::time::timeout(SHUTDOWN_STEP, requests.unsubscribe()).await;
    if !matches!(unsubscribed, Ok(true)) {
        tracing::warn!(callout, "cannot unsubscribe (NATS unreachable?)");
    }
    let drained = tokio::time::timeout(SHUTDOWN_STEP, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            callout,
            "requests still in flight after {SHUTDOWN_STEP:?}; abandoning them"
        );
    }
    if !matches!(
        tokio::time::timeout(SHUTDOWN_STEP, client.flush()).await,
        Ok(Ok(()))
    ) {
        tracing::warn!(callout, "cannot flush the last replies (NATS unreachable?)");
    }
    tracing::info!(callout, "stopped");
}
