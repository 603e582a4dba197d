//! The NATS side: connecting with a callout's credentials and subscribing
//! to `$SYS.REQ.USER.AUTH` in a queue group, so replicas share the load.
//! Each callout (each auth account, in operator mode) has its own
//! connection: nats-server publishes its requests in that account.

use anyhow::Context as _;
use async_nats::{Client, ConnectOptions, Event, Subscriber};

use x509_cert::Certificate;

use crate::config::{Callout, Secret};

/// The subject nats-server publishes authorization requests on.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The header that carries the server's curve key on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// Connection options from the callout's `[nats]`, with secrets from the
/// environment when set.
pub async fn connect_options(callout: &Callout<'_>) -> anyhow::Result<ConnectOptions> {
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
    let label: std::sync::Arc<str> = callout.label().into();
    options = options
        .name(&nats.name)
        .retry_on_initial_connect()
        .no_echo()
        .event_callback(move |event| {
            let callout = label.clone();
            async move {
                match event {
                    Event::Connected => tracing::info!(%callout, "connected to NATS"),
                    Event::Disconnected => {
                        tracing::warn!(%callout, "disconnected from NATS; reconnecting")
                    }
                    other => tracing::info!(event = %other, %callout, "NATS event"),
                }
            }
        });
    Ok(options)
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

/// Connects and subscribes to the callout's authorization requests.
pub async fn subscribe(callout: &Callout<'_>) -> anyhow::Result<(Client, Subscriber)> {
    let servers = callout.nats.servers.join(",");
    let client = connect_options(callout)
        .await?
        .connect(&servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {servers}"))?;
    let queue_group = &callout.nats.queue_group;
    let requests = if queue_group.is_empty() {
        client.subscribe(AUTH_SUBJECT).await
    } else {
        client
            .queue_subscribe(AUTH_SUBJECT, queue_group.clone())
            .await
    }
    .with_context(|| format!("cannot subscribe to {AUTH_SUBJECT}"))?;
    client.flush().await.context("cannot reach NATS")?;
    Ok((client, requests))
}
