//! The auth callout protocol, with no WebAssembly and no I/O: the JWT codec
//! nats-server speaks, the claims of the three tokens in an exchange, xkey
//! sealed boxes, verifying a request and minting the response.
//! `docs/protocol.md` is the reference, with the nats-server and nats-io/jwt
//! sources each rule comes from.

pub mod claims;
pub(crate) mod client_cert;
pub mod jwt;
mod key_cache;
pub(crate) mod mint;
pub mod verify;
pub mod xkey;
