//! nats-callout: a NATS auth callout service whose decisions are made by
//! sandboxed WebAssembly policies.
//!
//! The request path, in the order a request travels (the README's layout
//! table and `docs/architecture.md` list the files, folder by folder):
//!
//! 1. [`serve`] — `serve/mod.rs` takes a message from the subscription
//!    (`serve/nats.rs`) and hands it to the registry (`serve/registry.rs`).
//! 2. [`protocol`] — `protocol/verify.rs` opens (xkey) and verifies it; a
//!    message that fails is dropped for a `DropReason`.
//! 3. `serve/registry.rs` routes the verified request to a tenant of the
//!    account it names, by the tenants' routes (`serve/route.rs`), and waits
//!    for the tenant's share of the calls; the tenant's binding
//!    (`serve/binding.rs`) is held in a swappable cell.
//! 4. [`authz`] — `authz/decide.rs` asks the policy ...
//! 5. `policy/` — ... which runs in the sandbox (`policy/call.rs`,
//!    `policy/sandbox.rs`), loaded and snapshotted by `policy/load.rs`,
//!    and may call the [`capability`] its operator granted it (nkey
//!    signatures, password hashes, KV mirrors, OIDC tokens), done natively;
//! 6. `authz/rules.rs` holds its grant to the operator's rules, and the
//!    verdict comes back with a typed reason (`authz/decision.rs`);
//! 7. `protocol/mint.rs` mints and signs the user JWT and the response, and
//!    `serve/mod.rs` publishes it and logs the decision.
//!
//! Beside the path: [`metrics`] counts it, `serve/status.rs` and
//! `serve/http.rs` show it (`/metrics`, `/readyz`), `serve/audit.rs` records
//! each decision, `serve/shadow.rs` runs a candidate policy beside the
//! enforcing one, and `serve/reload.rs` rebuilds the registries and swaps
//! them in. `config/` and `keys.rs` are the operator's side,
//! `untrusted.rs` the one rule for text from policies and clients, `author/`
//! the policy authors' tools (`check`, `check --kit`, `componentize`) and
//! [`cli`] the command line. Modules and items are `pub(crate)` unless a
//! benchmark, a test or an embedder needs them: the layers' public faces are
//! the registry and its bindings, the decider and its typed reasons, the
//! configuration, and the wire protocol.

pub(crate) mod author;
pub mod authz;
pub mod capability;
pub mod cli;
pub mod config;
pub(crate) mod keys;
pub mod metrics;
pub(crate) mod policy;
pub mod protocol;
pub mod serve;
pub(crate) mod untrusted;
pub(crate) mod whoami;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;

#[cfg(test)]
mod proptests;
