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
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Handle;

use super::GrantError;
use crate::config::Callout;
use crate::metrics::Metrics;
use crate::policy::sandbox::CallState;
use crate::policy::wit::nats::callout::kv::{Host, KvError};
use crate::serve::nats::{Connection, connect_options};

/// How long a mirror waits before watching again after its watch failed.
const RETRY: Duration = Duration::from_secs(1);

/// Every connection's mirrors, by callout (and bucket).
pub(crate) struct Mirrors {
    /// The service's runtime: a reload builds on a runtime of its own,
    /// which ends with the build; connections and watches must not.
    runtime: Handle,
    by_callout: Mutex<HashMap<String, Arc<CalloutMirrors>>>,
}

/// One callout's KV connection and its mirrors.
struct CalloutMirrors {
    client: async_nats::Client,
    buckets: Mutex<HashMap<String, Arc<Mirror>>>,
}

/// A policy's granted buckets.
pub(crate) struct Buckets {
    mirrors: HashMap<String, Arc<Mirror>>,
}

/// One bucket's local copy.
pub(crate) struct Mirror {
    bucket: String,
    client: async_nats::Client,
    /// The bucket's live keys and values, once current.
    entries: RwLock<HashMap<String, Bytes>>,
    state: RwLock<MirrorState>,
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
        let mirrors = buckets
            .iter()
            .map(|bucket| (bucket.clone(), connection.mirror(bucket, &self.runtime)))
            .collect();
        Ok(Buckets { mirrors })
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
    /// The mirror of `bucket`, started if it is the first grant of it.
    fn mirror(&self, bucket: &str, runtime: &Handle) -> Arc<Mirror> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets
            .entry(bucket.to_string())
            .or_insert_with(|| Mirror::start(bucket, self.client.clone(), runtime))
            .clone()
    }
}

impl Mirror {
    fn start(bucket: &str, client: async_nats::Client, runtime: &Handle) -> Arc<Mirror> {
        let mirror = Arc::new(Mirror {
            bucket: bucket.to_string(),
            client,
            entries: RwLock::new(HashMap::new()),
            state: RwLock::new(MirrorState::Loading),
        });
        let weak = Arc::downgrade(&mirror);
        runtime.spawn(async move {
            while let Some(mirror) = weak.upgrade() {
                let failed = mirror.follow().await;
                tracing::warn!(bucket = %mirror.bucket, reason = %failed, "KV mirror is not current; watching again");
                mirror.set_state(MirrorState::Failed(failed));
                drop(mirror);
                tokio::time::sleep(RETRY).await;
            }
        });
        mirror
    }

    /// Reads the bucket and follows its changes; returns why it stopped.
    async fn follow(&self) -> String {
        let context = jetstream::new(self.client.clone());
        let store = match context.get_key_value(&self.bucket).await {
            Ok(store) => store,
            Err(e) => return format!("bucket {:?} cannot be read: {e}", self.bucket),
        };
        let mut watch = match store.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => return format!("cannot watch bucket {:?}: {e}", self.bucket),
        };
        // A watch delivers nothing for an empty bucket: current at once.
        let mut current = matches!(store.status().await, Ok(status) if status.values() == 0);
        let mut fresh = HashMap::new();
        if current {
            self.replace(std::mem::take(&mut fresh));
        }
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return format!("the watch of bucket {:?} failed: {e}", self.bucket),
            };
            let live = entry.operation == Operation::Put;
            if current {
                let mut entries = self.write_entries();
                if live {
                    entries.insert(entry.key, entry.value);
                } else {
                    entries.remove(&entry.key);
                }
            } else {
                if live {
                    fresh.insert(entry.key, entry.value);
                } else {
                    fresh.remove(&entry.key);
                }
                if entry.seen_current || entry.delta == 0 {
                    current = true;
                    self.replace(std::mem::take(&mut fresh));
                }
            }
        }
        format!("the watch of bucket {:?} ended", self.bucket)
    }

    fn replace(&self, entries: HashMap<String, Bytes>) {
        let count = entries.len();
        *self.write_entries() = entries;
        self.set_state(MirrorState::Current);
        tracing::info!(bucket = %self.bucket, keys = count, "KV mirror is current");
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Bytes>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_state(&self, state: MirrorState) {
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

impl Buckets {
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.mirrors.get(bucket) {
            Some(mirror) => mirror.get(key),
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
