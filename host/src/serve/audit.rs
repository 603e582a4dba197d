//! The decision audit: with `[policy.audit]`, every decision of the tenant
//! becomes one JSON event — when, which tenant and policy (SHA-256), which
//! client (id, host, name, user name), the decision, the account, the
//! reason and the latency; never a token, password or JWT — published to a
//! NATS subject and/or appended to a file as a JSON line.
//!
//! Recording never delays or fails a decision: events go into bounded
//! queues without waiting, one drained by a task that publishes, one by a
//! thread that writes files; when either is full (NATS or the disk slower
//! than the decisions), the event is dropped and counted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use async_nats::Client;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::authz::DecisionRecord;
use crate::config::AuditConfig;
use crate::metrics::Metrics;

/// Events waiting to be published, and to be written, at most.
const QUEUE: usize = 4096;

/// Where one tenant's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    pub subject: Option<String>,
    pub file: Option<PathBuf>,
}

impl From<&AuditConfig> for AuditTarget {
    fn from(config: &AuditConfig) -> AuditTarget {
        AuditTarget {
            subject: config.subject.clone(),
            file: config.file.clone(),
        }
    }
}

/// One decision as audited.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEvent<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub callout: &'a str,
    pub tenant: &'a str,
    pub policy_sha256: &'a str,
    pub client_id: Option<u64>,
    pub client_host: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub user: Option<&'a str>,
    /// `allow`, `deny` or `deny_silent`.
    pub decision: &'static str,
    pub account: Option<&'a str>,
    pub reason: Option<String>,
    pub reason_class: Option<&'static str>,
    pub reason_kind: Option<&'static str>,
    pub latency_micros: u64,
}

impl<'a> AuditEvent<'a> {
    pub(crate) fn new(
        callout: &'a str,
        policy_sha256: &'a str,
        record: &'a DecisionRecord,
    ) -> Self {
        let class = record.deny.as_ref().map(|deny| deny.class());
        AuditEvent {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            callout,
            tenant: &record.tenant,
            policy_sha256,
            client_id: record.client_id,
            client_host: record.client_host.as_deref(),
            client_name: record.client_name.as_deref(),
            user: record.user_name.as_deref(),
            decision: record.decision(),
            account: record.account.as_deref(),
            reason: record
                .deny
                .as_ref()
                .map(|deny| deny.text())
                .or_else(|| record.note.clone()),
            reason_class: class.map(|(source, _)| source),
            reason_kind: class.map(|(_, kind)| kind),
            latency_micros: record.micros,
        }
    }
}

/// The queues events wait in, and what drains them.
pub struct Auditor {
    publish: mpsc::Sender<(Client, String, Bytes)>,
    write: SyncSender<(PathBuf, Bytes)>,
    metrics: Arc<Metrics>,
}

impl Auditor {
    /// Starts the publishing task (on the current runtime) and the writing
    /// thread.
    pub fn start(metrics: Arc<Metrics>) -> Auditor {
        let (publish, mut published) = mpsc::channel::<(Client, String, Bytes)>(QUEUE);
        let publisher_metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some((client, subject, event)) = published.recv().await {
                if client.publish(subject, event).await.is_err() {
                    publisher_metrics.audit_dropped();
                }
            }
        });
        let (write, written) = std::sync::mpsc::sync_channel(QUEUE);
        let writer_metrics = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_files(&written, &writer_metrics));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the audit writer: audit files stay empty");
        }
        Auditor {
            publish,
            write,
            metrics,
        }
    }

    /// Queues the event of `record` for `target`, without waiting.
    pub fn record(
        &self,
        client: &Client,
        target: &AuditTarget,
        callout: &str,
        policy_sha256: &str,
        record: &DecisionRecord,
    ) {
        let event = AuditEvent::new(callout, policy_sha256, record);
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        let line = Bytes::from(line);
        if let Some(subject) = &target.subject
            && self
                .publish
                .try_send((client.clone(), subject.clone(), line.clone()))
                .is_err()
        {
            self.metrics.audit_dropped();
        }
        if let Some(file) = &target.file
            && self.write.try_send((file.clone(), line)).is_err()
        {
            self.metrics.audit_dropped();
        }
    }
}

/// The writing thread: appends each line to its file, flushing whenever the
/// queue is empty. A file that cannot be opened or written is reported once
/// per failure streak, and its events are counted as dropped.
fn write_files(lines: &Receiver<(PathBuf, Bytes)>, metrics: &Metrics) {
    let mut files: HashMap<PathBuf, BufWriter<File>> = HashMap::new();
    let mut failing: HashMap<PathBuf, bool> = HashMap::new();
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some((path, line)) = next.take() {
            let written = match files.get_mut(&path) {
                Some(file) => file.write_all(&line),
                None => File::options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|file| {
                        let mut file = BufWriter::new(file);
                        file.write_all(&line)?;
                        files.insert(path.clone(), file);
                        Ok(())
                    }),
            };
            let was_failing = failing.insert(path.clone(), written.is_err()) == Some(true);
            if let Err(error) = written {
                metrics.audit_dropped();
                files.remove(&path);
                if !was_failing {
                    tracing::error!(%error, file = %path.display(), "cannot write audit events: dropping them");
                }
            }
            // Flush below once the queue is empty.
            next = lines.try_recv().ok();
        }
        for file in files.values_mut() {
            let _ = file.flush();
        }
    }
}
