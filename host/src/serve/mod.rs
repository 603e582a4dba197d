//! Serving: the service's request path on NATS. [`launch`] builds it from a
//! configuration; [`run`] takes requests from each callout's subscription,
//! answers up to `max_in_flight` at once through the callout's
//! [`Registry`], and drains on shutdown.

mod binding;
mod launch;
mod nats;
mod registry;
mod route;
mod shutdown;

use std::future::Future;
use std::sync::Arc;

use async_nats::{Client, Message};
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

pub use binding::Binding;
pub use launch::launch;
pub use nats::{AUTH_SUBJECT, XKEY_HEADER};
pub use registry::{Handled, Registry};
pub use shutdown::shutdown_signal;

use crate::authz::DECISION_LOG;
use crate::config::{Callout, ServiceConfig};
use crate::protocol::verify::DropReason;

/// Serves every callout's requests until `shutdown` completes, then stops
/// taking requests, finishes those in flight and flushes their replies.
pub async fn run(
    service: &ServiceConfig,
    callouts: Vec<(Callout<'_>, Arc<Registry>)>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Messages taken from the subscriptions and not answered yet: the
    // registries bound the policy calls (per tenant and in all); this bounds
    // the requests waiting for one, so a storm is held in NATS, not here.
    let waiting = Arc::new(Semaphore::new(
        service.max_in_flight.saturating_mul(16).max(256),
    ));
    let shutdown = shutdown.shared();
    let serving = callouts.into_iter().map(|(callout, registry)| {
        serve_callout(callout, registry, waiting.clone(), shutdown.clone())
    });
    futures::future::try_join_all(serving).await?;
    Ok(())
}

/// Serves one callout: its connection, its subscription, its registry.
async fn serve_callout(
    callout: Callout<'_>,
    registry: Arc<Registry>,
    waiting: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (client, mut requests) = nats::subscribe(&callout).await?;
    for (tenant, binding) in registry.tenants() {
        let policy = binding.decider().map(|decider| decider.policy());
        tracing::info!(
            subject = AUTH_SUBJECT,
            queue_group = %callout.nats.queue_group,
            callout = callout.label(),
            tenant,
            policy = policy.map_or("(unavailable)", |p| p.name()),
            policy_sha256 = policy.map_or("-", |p| p.digest()),
            account = binding.account(),
            signer = binding.signer(),
            operator_mode = callout.operator_mode(),
            encryption = registry.verifier().xkey().is_some(),
            "serving auth callout requests"
        );
    }
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
        let Ok(permit) = waiting.clone().acquire_owned().await else {
            break;
        };
        let (registry, client) = (registry.clone(), client.clone());
        tasks.spawn(answer(registry, client, message, permit));
    }
    shutdown::drain(callout.label(), &client, requests, tasks).await;
    Ok(())
}

/// Answers one message and logs the decision, or why it was dropped. The
/// permit is given back once the decision is made: publishing the reply
/// does not hold a waiting request's place.
async fn answer(
    registry: Arc<Registry>,
    client: Client,
    message: Message,
    permit: OwnedSemaphorePermit,
) {
    let Some(reply_to) = message.reply.clone() else {
        return log_drop(&DropReason::NoReplySubject);
    };
    let header = message
        .headers
        .as_ref()
        .and_then(|h| h.get(XKEY_HEADER))
        .map(|v| v.as_str().to_string());
    // Inline on the worker: a hand-off to a blocking pool cost more CPU than the
    // whole request (context switches), and a policy call yields every epoch tick.
    let handled = registry.handle(&message.payload, header.as_deref()).await;
    drop(permit);
    match handled {
        Ok(Handled { reply, record }) => {
            record.log();
            if let Some(payload) = reply
                && let Err(error) = client.publish(reply_to, payload.into()).await
            {
                tracing::warn!(%error, "cannot publish a reply");
            }
        }
        Err(reason) => log_drop(&reason),
    }
}

fn log_drop(reason: &DropReason) {
    tracing::warn!(
        target: DECISION_LOG,
        reason = reason.text(),
        kind = reason.kind(),
        "request dropped"
    );
}
