//! The HTTP listener of `[metrics] listen`: `/metrics` (Prometheus text, or
//! OpenMetrics when the scraper asks for it), `/healthz` (the process
//! answers) and `/readyz` (serving: connected, subscribed, every policy
//! loaded). Plain HTTP/1.1 with hyper; it serves from the moment the
//! service starts, so a probe sees "alive, not ready" while policies load.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::status::Status;
use crate::metrics::Metrics;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open, requests included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` (an error names it) and serves on it until the process
/// ends.
pub(crate) async fn listen(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("[metrics] listen {address}: cannot listen"))?;
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: try again shortly.
                    tracing::warn!(%error, "cannot accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Past the cap, a connection is closed at once: scrapers and
            // probes are few, and the descriptors are NATS's too.
            let Ok(connection) = connections.clone().try_acquire_owned() else {
                continue;
            };
            let (metrics, status) = (metrics.clone(), status.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = respond(&request, &metrics, &status);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                // A client that goes away mid-request, or idles past the
                // deadline, is no concern of ours.
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, served).await;
                drop(connection);
            });
        }
    });
    Ok(())
}

fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    status: &Status,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let openmetrics = request
                .headers()
                .get(ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("application/openmetrics-text"));
            let mut response = text(StatusCode::OK, metrics.encode(openmetrics));
            let content_type = if openmetrics {
                OPENMETRICS_TEXT
            } else {
                PROMETHEUS_TEXT
            };
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match status.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
