//! The NATS side: connecting with the service's credentials and
//! subscribing to `$SYS.REQ.USER.AUTH` in a queue group, so replicas share
//! the load.

use anyhow::Context as _;
use async_nats::{Client, ConnectOptions, Event, Subscriber};

use crate::config::{Config, Secret};

/// The subject nats-server publishes authorization requests on.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The header that carries the server's curve key on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// Connection options from `[nats]`, with secrets from the environment when set.
pub async fn connect_options(config: &Config) -> anyhow::Result<ConnectOptions> {
    let nats = &config.nats;
    let mut options = if let Some(path) = &nats.creds_file {
        ConnectOptions::new()
            .credentials_file(path)
            .await
            .with_context(|| format!("[nats] creds_file {}", path.display()))?
    } else if nats.nkey_seed_file.is_some() {
        let seed = config.secret(Secret::NatsNkeySeed)?.unwrap_or_default();
        ConnectOptions::new().nkey(seed)
    } else if let Some(user) = &nats.user {
        let password = config.secret(Secret::NatsPassword)?.unwrap_or_default();
        ConnectOptions::new().user_and_password(user.clone(), password)
    } else if let Some(token) = config.secret(Secret::NatsToken)? {
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

/// Connects and subscribes to the authorization requests.
pub async fn subscribe(config: &Config) -> anyhow::Result<(Client, Subscriber)> {
    let servers = config.nats.servers.join(",");
    let client = connect_options(config)
        .await?
        .connect(&servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {servers}"))?;
    let queue_group = &config.nats.queue_group;
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
