//! Serving: the service's request path on NATS. [`launch`] builds it from a
//! configuration; [`run`] takes requests from each callout's subscription,
//! answers up to `max_in_flight` at once through the callout's
//! [`Registry`], and drains on shutdown.

mod audit;
mod binding;
mod http;
mod launch;
pub(crate) mod nats;
mod registry;
mod reload;
mod route;
mod shadow;
mod shutdown;
mod status;

use std::future::Future;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use async_nats::Client;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

pub(crate) use audit::Auditor;
pub use binding::Binding;
pub use launch::launch;
pub use nats::{AUTH_SUBJECT, XKEY_HEADER};
pub use registry::{Handled, Registry};
pub(crate) use shadow::Shadow;
pub use shutdown::shutdown_signal;
pub(crate) use status::Status;

use crate::authz::DECISION_LOG;
use crate::config::{Callout, ServiceConfig};
use crate::metrics::{Decided, Metrics};
use crate::protocol::verify::DropReason;
use nats::{Incoming, MicroCounts, Requests};

/// A callout's registry, which a reload replaces whole: each request is
/// answered by the registry current when it arrived.
pub(crate) type RegistryCell = Arc<ArcSwap<Registry>>;

/// What every callout's serving shares: the metrics, the live status and
/// the decision audit.
#[derive(Clone)]
pub(crate) struct Observers {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<Status>,
    pub(crate) audit: Arc<Auditor>,
}

impl Observers {
    /// Starts the audit's writers (on the current runtime).
    pub(crate) fn start() -> Observers {
        let metrics = Arc::new(Metrics::new());
        Observers {
            audit: Arc::new(Auditor::start(metrics.clone())),
            metrics,
            status: Arc::default(),
        }
    }
}

/// Serves every callout's requests until `shutdown` completes, then stops
/// taking requests, finishes those in flight and flushes their replies.
/// Every callout is connected and subscribed before any is served, and a
/// callout whose subscription ends stops them all: the service runs whole
/// or not at all.
pub(crate) async fn run(
    service: &ServiceConfig,
    callouts: Vec<(Callout<'_>, RegistryCell)>,
    observers: &Observers,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let subscribed = callouts.into_iter().map(|(callout, registry)| async move {
        let counts = Arc::new(MicroCounts::default());
        let (client, requests) = nats::subscribe(&callout, &observers.metrics, &counts).await?;
        anyhow::Ok(Subscribed {
            callout,
            registry,
            client,
            requests,
            counts,
        })
    });
    let subscribed = futures::future::try_join_all(subscribed).await?;
    for subscribed in &subscribed {
        observers.status.serving(
            subscribed.callout.label().into(),
            subscribed.client.clone(),
            subscribed.registry.clone(),
        );
    }
    let stop = watch::Sender::new(false);
    let serving = futures::future::join_all(
        subscribed
            .into_iter()
            .map(|subscribed| serve_callout(service, subscribed, observers, &stop)),
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
    registry: RegistryCell,
    client: Client,
    requests: Requests,
    counts: Arc<MicroCounts>,
}

/// Serves one callout until `stop` is set: takes its messages, answers each
/// through its registry, then drains. A subscription that ends by itself
/// sets `stop` for every callout and is an error.
async fn serve_callout(
    service: &ServiceConfig,
    subscribed: Subscribed<'_>,
    observers: &Observers,
    stop: &watch::Sender<bool>,
) -> anyhow::Result<()> {
    let Subscribed {
        callout,
        registry,
        client,
        mut requests,
        counts,
    } = subscribed;
    let label: Arc<str> = callout.label().into();
    let answering = Answering {
        callout: label.clone(),
        client: client.clone(),
        metrics: observers.metrics.clone(),
        audit: observers.audit.clone(),
        counts,
    };
    for (tenant, binding) in registry.load().tenants() {
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
            encryption = registry.load().verifier().xkey().is_some(),
            micro = matches!(requests, Requests::Micro(_)),
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
        tasks.spawn(
            answering
                .clone()
                .answer(registry.load_full(), message, permit),
        );
    };
    observers.status.shutting_down();
    shutdown::drain(&label, &client, requests, tasks).await;
    ended
}

/// What answering a callout's requests needs besides its registry.
#[derive(Clone)]
struct Answering {
    callout: Arc<str>,
    client: Client,
    metrics: Arc<Metrics>,
    audit: Arc<Auditor>,
    counts: Arc<MicroCounts>,
}

impl Answering {
    /// Answers one message, logs and counts the decision (or why it was
    /// dropped). The permit is given back once the decision is made:
    /// publishing the reply does not hold a waiting request's place.
    async fn answer(
        self,
        registry: Arc<Registry>,
        incoming: Incoming,
        permit: OwnedSemaphorePermit,
    ) {
        let message = incoming.message();
        if message.reply.is_none() {
            return self.dropped(&DropReason::NoReplySubject);
        }
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get(XKEY_HEADER))
            .map(|v| v.as_str().to_string());
        // Inline on the worker: a hand-off to a blocking pool cost more CPU than the
        // whole request (context switches), and a policy call yields every epoch tick.
        let handled = registry.handle(&message.payload, header.as_deref()).await;
        drop(permit);
        let Handled {
            reply,
            record,
            phases,
            binding,
        } = match handled {
            Ok(handled) => handled,
            Err(reason) => return self.dropped(&reason),
        };
        record.log();
        let decided = Decided {
            decision: record.decision(),
            class: record.deny.as_ref().map(|deny| deny.class()),
            micros: record.micros,
        };
        self.metrics
            .decision(&self.callout, &record.tenant, decided, &phases);
        let count = match (record.allowed(), record.silent) {
            (true, _) => &self.counts.allowed,
            (false, false) => &self.counts.denied,
            (false, true) => &self.counts.denied_silently,
        };
        count.fetch_add(1, Ordering::Relaxed);
        // A request no route takes is audited by the account's first
        // tenant, whose key signs its deny; no policy judged it.
        if let Some(target) = binding.audit() {
            let judged = binding.decider().filter(|_| &*record.tenant != "-");
            let sha256 = judged.map_or("-", |d| d.policy().digest());
            self.audit
                .record(&self.client, target, &self.callout, sha256, &record);
        }
        if let Some(payload) = reply
            && let Err(error) = incoming.respond(&self.client, payload).await
        {
            tracing::warn!(%error, callout = &*self.callout, "cannot publish a reply");
        }
    }

    fn dropped(&self, reason: &DropReason) {
        tracing::warn!(
            target: DECISION_LOG,
            reason = reason.text(),
            kind = reason.kind(),
            callout = &*self.callout,
            "request dropped"
        );
        self.metrics.dropped(&self.callout, reason.kind());
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
