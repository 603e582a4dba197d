//! Password hashes, checked by the host in constant time (capability
//! `password`, granted by a `[policy.capabilities.password]` table).
//!
//! Formats: argon2id/argon2i/argon2d and scrypt PHC strings, pbkdf2-sha256
//! (RustCrypto's PHC form and passlib's), bcrypt (`$2a$`, `$2b$`, `$2y$`).
//! Hashes cheaper than the operator's floor are refused as
//! [`PasswordError::TooCheap`]. Each check takes milliseconds of the host's
//! CPU: give the policy a `timeout_ms` that allows it.

pub use crate::bindings::nats::callout::password::PasswordError;

/// Whether `password` matches `hash`.
pub fn verify(password: &str, hash: &str) -> Result<bool, PasswordError> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::nats::callout::password::verify(password, hash);
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::verify_password(password, hash);
}

impl PasswordError {
    /// What went wrong, in words (for a deny reason).
    pub fn message(&self) -> String {
        match self {
            PasswordError::MalformedHash(why) => format!("malformed hash: {why}"),
            PasswordError::TooCheap(why) => format!("hash too cheap: {why}"),
        }
    }
}
