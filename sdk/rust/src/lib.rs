//! Write nats-callout authorization policies in Rust.
//!
//! A policy is a type that implements [`Policy`], exported with one macro:
//!
//! ```ignore
//! use nats_callout_sdk::{export_policy, AuthRequest, Decision, Grant, Policy};
//! use std::time::Duration;
//!
//! struct OnlyAlice;
//!
//! impl Policy for OnlyAlice {
//!     fn init(_settings: &str) -> Result<Self, String> {
//!         Ok(OnlyAlice)
//!     }
//!
//!     fn authorize(&self, request: &AuthRequest) -> Decision {
//!         match request.user_and_password() {
//!             Some(("alice", "wonderland")) => Grant::to("APP")
//!                 .publish(["app.>"])
//!                 .subscribe(["app.>", "_INBOX.>"])
//!                 .expires_in(Duration::from_secs(600))
//!                 .into(),
//!             _ => Decision::deny("unknown user"),
//!         }
//!     }
//! }
//!
//! export_policy!(OnlyAlice);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and point the
//! host's `[policy] wasm` at the `.wasm` file. The same code unit-tests natively
//! with `cargo test`: build requests with [`AuthRequest::for_test`].
//!
//! `init` runs once, when the host loads the policy; the host then snapshots the
//! initialized policy and runs every `authorize` call in a fresh copy of it, so
//! whatever `init` parsed is ready on every call and nothing leaks between calls.
//!
//! ## Capabilities
//!
//! The host checks what a policy cannot, natively: [`oidc`] tokens against an
//! issuer's keys, [`password`] hashes, [`kv`] reads of NATS KV buckets,
//! [`nkey`] signatures. Each must be granted by the operator in the policy's
//! `[policy.capabilities]`; a policy that calls one it was not granted does not
//! load, and the error names it. Only the capabilities a policy calls are
//! imported. In `cargo test` they answer from the doubles in [`testing`].

mod grant;
mod request;

pub mod kv;
pub mod log;
pub mod nkey;
pub mod oidc;
pub mod password;
pub mod testing;

/// Bindings generated from `wit/policy.wit`. Policy authors normally use the
/// re-exports at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        // Every capability: a component imports only those its code calls
        // (the linker drops the others), and the host refuses one whose
        // operator did not grant it.
        world: "policy-with-capabilities",
        // The crate's own copy (a link to the repository's `wit/` in a
        // checkout; the file itself in the published crate).
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_policy_bindings",
        default_bindings_module: "nats_callout_sdk::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::nats::callout::types::{
    AuthRequest, ClientInfo, ClientTls, ConnectOpts, ConnectionType, Decision, Grant, Limits,
    LogLevel, Permission, ResponsePermission, ServerId, TimeWindow,
};

use std::sync::OnceLock;

/// An authorization policy.
///
/// `Send + Sync` because the initialized policy lives in a static.
pub trait Policy: Sized + Send + Sync + 'static {
    /// Builds the policy from its settings: the `[policy.settings]` table of the
    /// host's configuration, as JSON text (`{}` when there is none). Return an
    /// error to refuse the settings; the host will not load the policy and
    /// reports your message.
    fn init(settings: &str) -> Result<Self, String>;

    /// Decides one connection attempt.
    fn authorize(&self, request: &AuthRequest) -> Decision;
}

/// Runs [`Policy::init`] and keeps the result for later calls. Used by
/// [`export_policy!`]; not meant to be called directly.
#[doc(hidden)]
pub fn run_init<P: Policy>(slot: &OnceLock<P>, settings: &str) -> Result<(), String> {
    let policy = P::init(settings)?;
    slot.set(policy)
        .map_err(|_| "init was called twice".to_string())
}

/// Runs [`Policy::authorize`] on the policy built by `init`. Used by
/// [`export_policy!`]; not meant to be called directly.
#[doc(hidden)]
pub fn run_authorize<P: Policy>(slot: &OnceLock<P>, request: AuthRequest) -> Decision {
    match slot.get() {
        Some(policy) => policy.authorize(&request),
        None => Decision::deny("policy was not initialized"),
    }
}

/// Exports a [`Policy`] implementation as the component's `init` and
/// `authorize` functions. Use it once, at the root of the policy crate.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        static __NATS_CALLOUT_POLICY: ::std::sync::OnceLock<$policy> =
            ::std::sync::OnceLock::new();

        struct __NatsCalloutExport;

        impl $crate::bindings::Guest for __NatsCalloutExport {
            fn init(settings: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::run_init::<$policy>(&__NATS_CALLOUT_POLICY, &settings)
            }

            fn authorize(request: $crate::AuthRequest) -> $crate::Decision {
                $crate::run_authorize::<$policy>(&__NATS_CALLOUT_POLICY, request)
            }
        }

        $crate::bindings::__export_policy_bindings!(__NatsCalloutExport with_types_in $crate::bindings);
    };
}
