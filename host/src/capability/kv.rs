//! The `kv` capability: reads of granted NATS KV buckets, from a local
//! mirror of each, kept current by a KV watch, so a read costs a map lookup
//! and never waits on the network.
//!
//! Each callout connection has its own KV connection (same servers and
//! credentials: the buckets live in the callout's account), with one mirror
//! per bucket any of its policies was granted, shared by them and kept
//! across reloads. A mirror answers only while it is current: until its
//! first full read, after its watch fails (the bucket was deleted), and
//! while its connection is down, reads fail with `unavailable` — a policy
//! must not admit anyone from data that may be stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use tokio::runtime::Handle;

use super::GrantError;
use crate::config::Callout;
use crate::metrics::Metrics;
use crate::policy::sandbox::CallState;
use crate::policy::wit::nats::callout::kv::{Host, KvError};
use crate::serve::nats::{Connection, connect_options};

/// How long a mirror waits before reading its bucket again after it
/// stopped being current; doubled after each failure, up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often a current mirror checks that it keeps up with its bucket.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Every connection's mirrors, by callout (and bucket).
pub(crate) struct Mirrors {
    /// The service's runtime: a reload builds on a runtime of its own,
    /// which ends with the build; connections and watches must not.
    runtime: Handle,
    by_callout: Mutex<HashMap<String, Arc<CalloutMirrors>>>,
}

/// One callout's KV connection and its mirrors (held by the grants that
/// use them: a mirror no grant holds ends).
struct CalloutMirrors {
    client: async_nats::Client,
    buckets: Mutex<HashMap<String, Weak<Mirror>>>,
}

/// A policy's granted buckets.
#[derive(Clone)]
pub(crate) struct Buckets {
    copies: HashMap<String, Source>,
}

/// Where a granted bucket's values come from.
#[derive(Clone)]
enum Source {
    /// The live bucket's mirror.
    Mirror(Arc<Mirror>),
    /// A fixture's entries (`check`, kits).
    Fixed(Arc<HashMap<String, Vec<u8>>>),
}

/// One bucket's local copy.
pub(crate) struct Mirror {
    bucket: String,
    client: async_nats::Client,
    /// The bucket's live keys and values, once current.
    entries: RwLock<HashMap<String, Bytes>>,
    state: RwLock<MirrorState>,
    /// The client's connection count when the copy became current: a
    /// reconnect since makes it stale.
    connects: AtomicU64,
    /// 1 while current (`kv_mirror_current`).
    current: Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MirrorState {
    /// Reading the bucket's current values.
    Loading,
    /// Holds every live key, and follows the watch.
    Current,
    /// The watch failed; watching again.
    Failed(String),
}

impl Mirrors {
    pub(crate) fn new(runtime: Handle) -> Mirrors {
        Mirrors {
            runtime,
            by_callout: Mutex::new(HashMap::new()),
        }
    }

    /// The mirrors of `buckets` on `callout`'s KV connection: started now
    /// (connecting in the background) or shared with earlier grants.
    pub(crate) async fn buckets(
        &self,
        callout: &Callout<'_>,
        buckets: &[String],
        metrics: &Arc<Metrics>,
    ) -> Result<Buckets, GrantError> {
        let connection = self.connection(callout, metrics).await?;
        let copies = buckets
            .iter()
            .map(|bucket| {
                let current = metrics.kv_mirror(callout.label(), bucket);
                let mirror = connection.mirror(bucket, &self.runtime, current);
                (bucket.clone(), Source::Mirror(mirror))
            })
            .collect();
        Ok(Buckets { copies })
    }

    async fn connection(
        &self,
        callout: &Callout<'_>,
        metrics: &Arc<Metrics>,
    ) -> Result<Arc<CalloutMirrors>, GrantError> {
        let label = callout.label().to_string();
        if let Some(found) = self.lock().get(&label) {
            return Ok(found.clone());
        }
        let options = connect_options(callout, metrics, Connection::KvMirror)
            .await
            .map_err(|e| GrantError::Kv(format!("{e:#}")))?;
        let servers = callout.nats.servers.clone();
        let connected = self
            .runtime
            .spawn(async move { async_nats::connect_with_options(servers, options).await });
        let client = match connected.await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(GrantError::Kv(format!("cannot connect to NATS: {e}"))),
            Err(e) => return Err(GrantError::Kv(format!("cannot connect to NATS: {e}"))),
        };
        let mirrors = Arc::new(CalloutMirrors {
            client,
            buckets: Mutex::new(HashMap::new()),
        });
        Ok(self.lock().entry(label).or_insert(mirrors).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CalloutMirrors>>> {
        self.by_callout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CalloutMirrors {
    /// The mirror of `bucket`: the one running, or a new one started.
    fn mirror(&self, bucket: &str, runtime: &Handle, current: Gauge) -> Arc<Mirror> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets.retain(|_, mirror| mirror.strong_count() > 0);
        if let Some(running) = buckets.get(bucket).and_then(Weak::upgrade) {
            return running;
        }
        let mirror = Mirror::start(bucket, self.client.clone(), runtime, current);
        buckets.insert(bucket.to_string(), Arc::downgrade(&mirror));
        mirror
    }
}

/// Why a mirror stopped following its bucket.
enum Stopped {
    /// No policy is granted the bucket any more: the mirror ends.
    Unused,
    /// The copy may be stale: read the bucket again.
    Stale(String),
}

impl Mirror {
    fn start(
        bucket: &str,
        client: async_nats::Client,
        runtime: &Handle,
        current: Gauge,
    ) -> Arc<Mirror> {
        current.set(0);
        let mirror = Arc::new(Mirror {
            bucket: bucket.to_string(),
            client,
            current,
            entries: RwLock::new(HashMap::new()),
            state: RwLock::new(MirrorState::Loading),
            connects: AtomicU64::new(0),
        });
        let running = mirror.clone();
        runtime.spawn(async move {
            let mut retry = RETRY;
            let mut last_reason = String::new();
            loop {
                let followed_since = Instant::now();
                let reason = match running.follow().await {
                    Stopped::Unused => return,
                    Stopped::Stale(reason) => reason,
                };
                // Logged once per reason, not once per attempt.
                if reason != last_reason {
                    tracing::warn!(bucket = %running.bucket, %reason, "KV mirror is not current; reading the bucket again");
                    last_reason.clone_from(&reason);
                }
                running.set_state(MirrorState::Failed(reason));
                if followed_since.elapsed() > RETRY_MAX {
                    retry = RETRY;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                if Arc::strong_count(&running) == 1 {
                    return;
                }
            }
        });
        mirror
    }

    /// The connections the client has made so far (1 + reconnects).
    fn connects(&self) -> u64 {
        self.client.statistics().connects.load(Ordering::Relaxed)
    }

    /// Reads the bucket, then follows its changes, checking every
    /// [`CHECK_EVERY`] that it keeps up; returns why it stopped. A copy is
    /// current once it holds every value up to the stream's last sequence
    /// when the read began, and stays current while no reconnect happened
    /// (a reconnected watch resumes silently: what it missed meanwhile would
    /// be served stale) and while it is at most one check behind the stream.
    async fn follow(self: &Arc<Self>) -> Stopped {
        let stale = |why: String| Stopped::Stale(why);
        let context = jetstream::new(self.client.clone());
        let store = match context.get_key_value(&self.bucket).await {
            Ok(store) => store,
            Err(e) => return stale(format!("bucket {:?} cannot be read: {e}", self.bucket)),
        };
        let (target, values) = match store.status().await {
            Ok(status) => (status.info.state.last_sequence, status.values()),
            Err(e) => return stale(format!("bucket {:?} has no status: {e}", self.bucket)),
        };
        // Connected by now (JetStream answered): a later reconnect makes
        // the copy stale.
        let connects = self.connects();
        let mut watch = match store.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => return stale(format!("cannot watch bucket {:?}: {e}", self.bucket)),
        };
        let mut fresh = Some(HashMap::new());
        let mut applied = 0u64;
        // An empty bucket's watch delivers nothing (its last sequence may
        // stay above 0 after values aged out): current at once.
        if values == 0 {
            self.replace(fresh.take().unwrap_or_default(), connects);
        }
        let mut checks = tokio::time::interval(CHECK_EVERY);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checks.tick().await;
        // The stream's last sequence at the previous check.
        let mut previous_last: Option<u64> = None;
        loop {
            tokio::select! {
                entry = watch.next() => {
                    let entry = match entry {
                        Some(Ok(entry)) => entry,
                        Some(Err(e)) => return stale(format!("the watch of bucket {:?} failed: {e}", self.bucket)),
                        None => return stale(format!("the watch of bucket {:?} ended", self.bucket)),
                    };
                    applied = applied.max(entry.revision);
                    let live = entry.operation == Operation::Put;
                    match fresh.as_mut() {
                        Some(fresh) => apply(fresh, entry.key, entry.value, live),
                        None => apply(&mut self.write_entries(), entry.key, entry.value, live),
                    }
                    // Up to the stream's end when the read began (or the
                    // watch says it has delivered all there was: values
                    // removed by age leave gaps below that end).
                    if fresh.is_some() && (applied >= target || entry.seen_current || entry.delta == 0) {
                        self.replace(fresh.take().unwrap_or_default(), connects);
                    }
                }
                _ = checks.tick() => {
                    if Arc::strong_count(self) == 1 {
                        return Stopped::Unused;
                    }
                    if self.connects() != connects {
                        return stale("the connection to NATS was re-established".into());
                    }
                    let last = match store.status().await {
                        Ok(status) => status.info.state.last_sequence,
                        Err(e) => return stale(format!("JetStream does not answer for bucket {:?}: {e}", self.bucket)),
                    };
                    // Once current, it must have reached where the stream
                    // was one check ago (a first read may take longer).
                    if fresh.is_none() && previous_last.is_some_and(|previous| applied < previous) {
                        return stale(format!("the watch of bucket {:?} fell behind the stream", self.bucket));
                    }
                    previous_last = Some(last);
                }
            }
        }
    }

    fn replace(&self, entries: HashMap<String, Bytes>, connects: u64) {
        let count = entries.len();
        *self.write_entries() = entries;
        self.connects.store(connects, Ordering::Relaxed);
        self.set_state(MirrorState::Current);
        tracing::info!(bucket = %self.bucket, keys = count, "KV mirror is current");
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Bytes>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_state(&self, state: MirrorState) {
        self.current.set(i64::from(state == MirrorState::Current));
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// The value of `key`, if the mirror is current.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let unavailable =
            |why: &str| KvError::Unavailable(format!("bucket {:?}: {why}", self.bucket));
        match state {
            MirrorState::Loading => return Err(unavailable("still reading the bucket")),
            MirrorState::Failed(reason) => return Err(unavailable(&reason)),
            MirrorState::Current => {}
        }
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable(
                "the NATS connection is down, the copy may be stale",
            ));
        }
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(entries.get(key).map(|value| value.to_vec()))
    }
}

/// Puts or removes `key` in `entries`.
fn apply(entries: &mut HashMap<String, Bytes>, key: String, value: Bytes, live: bool) {
    if live {
        entries.insert(key, value);
    } else {
        entries.remove(&key);
    }
}

impl Buckets {
    /// Buckets whose entries are given (a fixture's): bucket, key, value.
    pub(crate) fn fixed(buckets: HashMap<String, HashMap<String, Vec<u8>>>) -> Buckets {
        let copies = buckets
            .into_iter()
            .map(|(bucket, entries)| (bucket, Source::Fixed(Arc::new(entries))))
            .collect();
        Buckets { copies }
    }

    pub(crate) fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.copies.get(bucket) {
            Some(Source::Mirror(mirror)) => mirror.get(key),
            Some(Source::Fixed(entries)) => Ok(entries.get(key).cloned()),
            None => Err(KvError::NotGranted(bucket.to_string())),
        }
    }
}

impl Host for CallState {
    fn get(&mut self, bucket: String, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match self.grants().and_then(|grants| grants.kv()) {
            Some(buckets) => buckets.get(&bucket, &key),
            None => Err(KvError::Unavailable(
                "the kv capability answers in authorize, not in init".into(),
            )),
        }
    }
}
