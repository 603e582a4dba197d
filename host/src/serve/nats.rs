//! The NATS side: connecting with a callout's credentials and subscribing
//! to `$SYS.REQ.USER.AUTH` in a queue group, so replicas share the load.
//! Each callout (each auth account, in operator mode) has its own
//! connection: nats-server publishes its requests in that account.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use async_nats::service::{self, Service, ServiceExt as _, endpoint::Endpoint};
use async_nats::{Client, ConnectOptions, Event, Message, Subscriber};
use futures::StreamExt as _;

use x509_cert::Certificate;

use crate::config::{Callout, Secret};
use crate::metrics::Metrics;

/// The subject nats-server publishes authorization requests on.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The header that carries the server's curve key on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connection {
    /// The callout's own: requests and replies.
    Callout,
    /// The callout's KV mirrors (`capability/kv.rs`): same servers and
    /// credentials, its own socket, named `<name> kv`, events logged but
    /// not counted as the callout's.
    KvMirror,
}

/// Connection options from the callout's `[nats]`, with secrets from the
/// environment when set.
pub(crate) async fn connect_options(
    callout: &Callout<'_>,
    metrics: &Arc<Metrics>,
    purpose: Connection,
) -> anyhow::Result<ConnectOptions> {
    let nats = &callout.nats;
    let table = callout.table("nats");
    let mut options = if let Some(path) = &nats.creds_file {
        ConnectOptions::new()
            .credentials_file(path)
            .await
            .with_context(|| format!("{table} creds_file {}", path.display()))?
    } else if nats.nkey_seed_file.is_some() {
        let seed = callout.secret(Secret::NatsNkeySeed)?.unwrap_or_default();
        ConnectOptions::new().nkey(seed)
    } else if let Some(user) = &nats.user {
        let password = callout.secret(Secret::NatsPassword)?.unwrap_or_default();
        ConnectOptions::new().user_and_password(user.clone(), password)
    } else if let Some(token) = callout.secret(Secret::NatsToken)? {
        ConnectOptions::new().token(token)
    } else {
        ConnectOptions::new()
    };
    // Read here, so a missing or malformed file stops the start with its
    // name rather than failing every connect attempt in the background.
    let files = [
        ("tls_ca_file", &nats.tls_ca_file, Pem::Certificates),
        ("tls_cert_file", &nats.tls_cert_file, Pem::Certificates),
        ("tls_key_file", &nats.tls_key_file, Pem::PrivateKey),
    ];
    for (key, file, pem) in &files {
        let Some(path) = file else { continue };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{table} {key} {}", path.display()))?;
        if !pem.found_in(&text) {
            anyhow::bail!(
                "{table} {key} {} holds no PEM {}",
                path.display(),
                pem.name()
            );
        }
    }
    if let Some(ca) = &nats.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&nats.tls_cert_file, &nats.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options = options.require_tls(files.iter().any(|(_, file, _)| file.is_some()));
    let label: Arc<str> = callout.label().into();
    let metrics = metrics.clone();
    let name = match purpose {
        Connection::Callout => nats.name.clone(),
        Connection::KvMirror => format!("{} kv", nats.name),
    };
    let role = match purpose {
        Connection::Callout => "callout",
        Connection::KvMirror => "kv mirrors",
    };
    options = options
        .name(name)
        .retry_on_initial_connect()
        .no_echo()
        .event_callback(move |event| {
            let callout = label.clone();
            if purpose == Connection::Callout {
                metrics.nats_event(&callout, event_name(&event));
            }
            async move {
                match event {
                    Event::Connected => tracing::info!(%callout, connection = role, "connected to NATS"),
                    Event::Disconnected => {
                        tracing::warn!(%callout, connection = role, "disconnected from NATS; reconnecting")
                    }
                    other => tracing::info!(event = %other, %callout, connection = role, "NATS event"),
                }
            }
        });
    Ok(options)
}

/// A NATS event's name, as metrics label it.
fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Connected => "connected",
        Event::Disconnected => "disconnected",
        Event::LameDuckMode => "lame_duck_mode",
        Event::Draining => "draining",
        Event::Closed => "closed",
        Event::SlowConsumer(_) => "slow_consumer",
        Event::ServerError(_) => "server_error",
        Event::ClientError(_) => "client_error",
    }
}

/// What a TLS file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

impl Pem {
    fn name(self) -> &'static str {
        match self {
            Pem::Certificates => "certificate",
            Pem::PrivateKey => "private key",
        }
    }

    fn found_in(self, text: &str) -> bool {
        match self {
            Pem::Certificates => {
                Certificate::load_pem_chain(text.as_bytes()).is_ok_and(|chain| !chain.is_empty())
            }
            Pem::PrivateKey => text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----"),
        }
    }
}

/// Connects and subscribes to the callout's authorization requests: as the
/// endpoint `authorize` of the NATS service `nats-callout` (so `nats micro
/// ls` and `nats micro stats` list this replica) unless `[nats] micro` is
/// off or there is no queue group (micro endpoints are queue subscriptions).
pub(crate) async fn subscribe(
    callout: &Callout<'_>,
    metrics: &Arc<Metrics>,
    counts: &Arc<MicroCounts>,
) -> anyhow::Result<(Client, Requests)> {
    let servers = callout.nats.servers.join(",");
    let client = connect_options(callout, metrics, Connection::Callout)
        .await?
        .connect(&servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {servers}"))?;
    let queue_group = &callout.nats.queue_group;
    let requests = if callout.nats.micro && !queue_group.is_empty() {
        let counts = counts.clone();
        let metadata = HashMap::from([("callout".to_string(), callout.label().to_string())]);
        let service = client
            .service_builder()
            .description("NATS auth callout: authorization by sandboxed WebAssembly policies")
            .metadata(metadata)
            .queue_group(queue_group)
            .stats_handler(move |_endpoint, _stats| counts.to_json())
            .start(MICRO_SERVICE, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the NATS service {MICRO_SERVICE}: {e}"))?;
        let endpoint = service
            .endpoint_builder()
            .name("authorize")
            .queue_group(queue_group)
            .add(AUTH_SUBJECT)
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {AUTH_SUBJECT}: {e}"))?;
        Requests::Micro(Box::new(Micro { service, endpoint }))
    } else if queue_group.is_empty() {
        if callout.nats.micro {
            tracing::warn!(
                callout = callout.label(),
                "{} queue_group is empty: the NATS services API ($SRV) is not answered (its endpoints are queue subscriptions)",
                callout.table("nats")
            );
        }
        Requests::Plain(
            client
                .subscribe(AUTH_SUBJECT)
                .await
                .with_context(|| format!("cannot subscribe to {AUTH_SUBJECT}"))?,
        )
    } else {
        Requests::Plain(
            client
                .queue_subscribe(AUTH_SUBJECT, queue_group.clone())
                .await
                .with_context(|| format!("cannot subscribe to {AUTH_SUBJECT}"))?,
        )
    };
    client.flush().await.context("cannot reach NATS")?;
    Ok((client, requests))
}

/// The name replicas share in the NATS services API.
pub(crate) const MICRO_SERVICE: &str = "nats-callout";

/// A callout's requests: a plain subscription, or the endpoint of a NATS
/// service, which answers `$SRV` requests and counts what it answers.
pub(crate) enum Requests {
    Plain(Subscriber),
    Micro(Box<Micro>),
}

/// The NATS service and its `authorize` endpoint.
pub(crate) struct Micro {
    service: Service,
    endpoint: Endpoint,
}

/// A request taken from [`Requests`].
pub(crate) enum Incoming {
    Plain(Message),
    Micro(service::Request),
}

impl Requests {
    /// The next request; `None` once the subscription has ended.
    pub(crate) async fn next(&mut self) -> Option<Incoming> {
        match self {
            Requests::Plain(subscriber) => subscriber.next().await.map(Incoming::Plain),
            Requests::Micro(micro) => micro.endpoint.next().await.map(Incoming::Micro),
        }
    }

    /// Stops taking requests (and answering `$SRV`).
    pub(crate) async fn unsubscribe(self) -> bool {
        match self {
            Requests::Plain(mut subscriber) => subscriber.unsubscribe().await.is_ok(),
            Requests::Micro(micro) => {
                let Micro {
                    service,
                    mut endpoint,
                } = *micro;
                let stopped = endpoint.stop().await.is_ok();
                service.stop().await.is_ok() && stopped
            }
        }
    }
}

impl Incoming {
    pub(crate) fn message(&self) -> &Message {
        match self {
            Incoming::Plain(message) => message,
            Incoming::Micro(request) => &request.message,
        }
    }

    /// Publishes `payload` to the request's reply subject (counted by the
    /// NATS service, for `nats micro stats`).
    pub(crate) async fn respond(&self, client: &Client, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Incoming::Plain(message) => {
                let Some(reply) = message.reply.clone() else {
                    return Ok(());
                };
                Ok(client.publish(reply, payload.into()).await?)
            }
            Incoming::Micro(request) => Ok(request.respond(Ok(payload.into())).await?),
        }
    }
}

/// What a callout decided, as `nats micro stats` shows it in `data`.
#[derive(Debug, Default)]
pub(crate) struct MicroCounts {
    pub(crate) allowed: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) denied_silently: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl MicroCounts {
    fn to_json(&self) -> serde_json::Value {
        let read = |count: &AtomicU64| count.load(Ordering::Relaxed);
        serde_json::json!({
            "allowed": read(&self.allowed),
            "denied": read(&self.denied),
            "denied_silently": read(&self.denied_silently),
            "dropped": read(&self.dropped),
        })
    }
}
