//! nats-callout: a NATS auth callout service whose decisions are made by
//! sandboxed WebAssembly policies.
//!
//! The request path, module by module:
//! `server` (NATS I/O) → `service` (one authorization) → `request` (open and
//! verify) → `policy` (run the component in the `sandbox`) → `rules` (check
//! the grant) → `response` (mint and sign). `jwt` and `claims` are the wire
//! format; `untrusted` escapes and bounds what policies and clients write
//! before it reaches a log or nats-server; `config` and `keys` are the
//! operator's side; `check` and `loadgen` are tools.

pub mod bindings;
pub mod cache;
pub mod check;
pub mod claims;
pub mod componentize;
pub mod config;
pub mod conformance;
pub mod fake_server;
pub mod jwt;
pub mod keys;
pub mod loadgen;
pub mod policy;
pub mod request;
pub mod response;
pub mod rules;
pub mod sandbox;
pub mod sealed_box;
pub mod server;
pub mod service;
pub mod untrusted;

#[cfg(test)]
mod proptests;
