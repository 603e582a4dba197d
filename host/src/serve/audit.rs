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
    pub reason: Option<&'a str>,
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
            reason: record.reason.as_deref(),
            reason_class: class.map(|(source, _)| source),
            reason_kind: class.map(|(_, kind)| kind),
            latency_micros: record.micros,
        }
    }
}

/// The queues events wait in, and what drains them.
pub struct Auditor {
    publish: mpsc::Sender<(Client, String, Bytes)>,
    write: SyncSender<ToWrite>,
    metrics: Arc<Metrics>,
}

/// What the writing thread is asked to do.
enum ToWrite {
    /// Append a line to a file.
    Line(PathBuf, Bytes),
    /// Close every file, so the next line opens it anew (after a rotation).
    Reopen,
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

    /// Has the audit files closed and opened again at their next event: a
    /// file renamed by a log rotation is let go.
    pub fn reopen(&self) {
        let _ = self.write.try_send(ToWrite::Reopen);
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
            && self
                .write
                .try_send(ToWrite::Line(file.clone(), line))
                .is_err()
        {
            self.metrics.audit_dropped();
        }
    }
}

/// The writing thread: appends each line to its file, flushing whenever the
/// queue is empty. A file that cannot be opened, written or flushed is
/// reported once per failure streak, and its events are counted as dropped.
fn write_files(queue: &Receiver<ToWrite>, metrics: &Metrics) {
    let mut files = AuditFiles::default();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                ToWrite::Line(path, line) => files.append(path, &line, metrics),
                ToWrite::Reopen => files.close_all(metrics),
            }
            // Flush below once the queue is empty.
            next = queue.try_recv().ok();
        }
        files.flush_all(metrics);
    }
    files.close_all(metrics);
}

/// The open audit files, and those failing.
#[derive(Default)]
struct AuditFiles {
    open: HashMap<PathBuf, BufWriter<File>>,
    failing: HashMap<PathBuf, bool>,
}

impl AuditFiles {
    fn append(&mut self, path: PathBuf, line: &[u8], metrics: &Metrics) {
        let written = match self.open.get_mut(&path) {
            Some(file) => file.write_all(line),
            None => File::options()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|file| {
                    let mut file = BufWriter::new(file);
                    file.write_all(line)?;
                    self.open.insert(path.clone(), file);
                    Ok(())
                }),
        };
        self.outcome(path, written, metrics);
    }

    fn flush_all(&mut self, metrics: &Metrics) {
        let flushed: Vec<_> = self
            .open
            .iter_mut()
            .map(|(path, file)| (path.clone(), file.flush()))
            .collect();
        for (path, result) in flushed {
            self.outcome(path, result, metrics);
        }
    }

    fn close_all(&mut self, metrics: &Metrics) {
        self.flush_all(metrics);
        self.open.clear();
    }

    /// Records how writing to `path` went; a failure drops its buffered
    /// lines (counted once, as one event: the count of lines is unknown).
    fn outcome(&mut self, path: PathBuf, result: std::io::Result<()>, metrics: &Metrics) {
        let was_failing = self.failing.get(&path) == Some(&true);
        match result {
            Ok(()) => {
                self.failing.insert(path, false);
            }
            Err(error) => {
                metrics.audit_dropped();
                self.open.remove(&path);
                if !was_failing {
                    tracing::error!(%error, file = %path.display(), "cannot write audit events: dropping them");
                }
                self.failing.insert(path, true);
            }
        }
    }
}
