//! Logging through the host: lines land in the host's log, tagged with the
//! policy's name. Natively (in `cargo test`) they go to stderr instead.
//!
//! Never log credentials: the request carries passwords and tokens.

use crate::LogLevel;

/// Writes one line to the host's log.
pub fn write(level: LogLevel, message: &str) {
    #[cfg(target_family = "wasm")]
    crate::bindings::nats::callout::host::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    eprintln!("[{level:?}] {message}");
}

/// Writes a debug line.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Writes an informational line.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Writes a warning.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// Writes an error.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}
