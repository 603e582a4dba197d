//! Reads of NATS KV buckets the operator granted (capability `kv`, granted
//! by `[policy.capabilities.kv] buckets = [...]`), from the host's local
//! mirror of each bucket: microseconds, and current within milliseconds of
//! a `nats kv put`.

pub use crate::bindings::nats::callout::kv::KvError;

/// The value of `key` in `bucket`; `None` when the key is absent or
/// deleted. Fails with [`KvError::Unavailable`] when the host's copy may be
/// stale: deny then, rather than decide from old data.
pub fn get(bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::nats::callout::kv::get(bucket, key);
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::kv_get(bucket, key);
}

/// The value of `key` in `bucket` as UTF-8 text.
pub fn get_text(bucket: &str, key: &str) -> Result<Option<String>, KvError> {
    Ok(get(bucket, key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

impl KvError {
    /// What went wrong, in words (for a deny reason).
    pub fn message(&self) -> String {
        match self {
            KvError::NotGranted(bucket) => format!("bucket {bucket:?} is not granted"),
            KvError::Unavailable(why) => format!("unavailable: {why}"),
        }
    }
}
