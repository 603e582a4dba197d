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

use async_nats::{Client, Message, Subscriber};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
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
/// Every callout is connected and subscribed before any is served, and a
/// callout whose subscription ends stops them all: the service runs whole
/// or not at all.
pub async fn run(
    service: &ServiceConfig,
    callouts: Vec<(Callout<'_>, Arc<Registry>)>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let subscribed = callouts.into_iter().map(|(callout, registry)| async move {
        let (client, requests) = nats::subscribe(&callout).await?;
        anyhow::Ok(Subscribed {
            callout,
            registry,
            client,
            requests,
        })
    });
    let subscribed = futures::future::try_join_all(subscribed).await?;
    let stop = watch::Sender::new(false);
    let serving = futures::future::join_all(
        subscribed
            .into_iter()
            .map(|subscribed| serve_callout(service, subscribed, &stop)),
    );
    tokio::pin!(serving, shutdown);
    let ended = tokio::select! {
        ended = &mut serving => ended,
        _ = &mut shutdown => {
            stop.send_replace(true);
            serving.await
        }
    };
    ended.into_iter().collect()
}

/// A callout connected and subscribed, ready to serve.
struct Subscribed<'a> {
    callout: Callout<'a>,
    registry: Arc<Registry>,
    client: Client,
    requests: Subscriber,
}

/// Serves one callout until `stop` is set: takes its messages, answers each
/// through its registry, then drains. A subscription that ends by itself
/// sets `stop` for every callout and is an error.
async fn serve_callout(
    service: &ServiceConfig,
    subscribed: Subscribed<'_>,
    stop: &watch::Sender<bool>,
) -> anyhow::Result<()> {
    let Subscribed {
        callout,
        registry,
        client,
        mut requests,
    } = subscribed;
    let label: Arc<str> = callout.label().into();
    for (tenant, binding) in registry.tenants() {
        let policy = binding.decider().map(|decider| decider.policy());
        tracing::info!(
            subject = AUTH_SUBJECT,
            queue_group = %callout.nats.queue_group,
            callout = &*label,
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
    // Messages taken from the subscription and not answered yet: the
    // registries bound the policy calls (per tenant and in all); this bounds
    // the requests waiting for one, per connection, so a storm is held in
    // NATS, not here, and a storm on one auth account does not stop the
    // others from taking their messages.
    let waiting = Arc::new(Semaphore::new(
        service.max_in_flight.saturating_mul(16).max(256),
    ));
    let mut stopped = stop.subscribe();
    let mut tasks = JoinSet::new();
    let ended = loop {
        let message = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break Ok(()),
            message = requests.next() => match message {
                Some(message) => message,
                None => {
                    stop.send_replace(true);
                    break Err(anyhow::anyhow!(
                        "the subscription of callout {label:?} ended (NATS closed the connection): stopping"
                    ));
                }
            },
        };
        // Reap finished tasks so the set does not grow with traffic.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = waiting.clone().acquire_owned().await else {
            break Ok(());
        };
        let (registry, client) = (registry.clone(), client.clone());
        tasks.spawn(answer(label.clone(), registry, client, message, permit));
    };
    shutdown::drain(&label, &client, requests, tasks).await;
    ended
}

/// Answers one message and logs the decision, or why it was dropped. The
/// permit is given back once the decision is made: publishing the reply
/// does not hold a waiting request's place.
async fn answer(
    callout: Arc<str>,
    registry: Arc<Registry>,
    client: Client,
    message: Message,
    permit: OwnedSemaphorePermit,
) {
    let Some(reply_to) = message.reply.clone() else {
        return log_drop(&callout, &DropReason::NoReplySubject);
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
                tracing::warn!(%error, %callout, "cannot publish a reply");
            }
        }
        Err(reason) => log_drop(&callout, &reason),
    }
}

fn log_drop(callout: &str, reason: &DropReason) {
    tracing::warn!(
        target: DECISION_LOG,
        reason = reason.text(),
        kind = reason.kind(),
        callout,
        "request dropped"
    );
}
