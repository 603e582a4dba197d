//! Host-side bindings generated from `wit/policy.wit`.

/// The WIT every policy implements, as the host was built with (embedded by
/// `componentize`, and the source of the world version the host accepts).
pub const POLICY_WIT: &str = include_str!("../../../wit/policy.wit");

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit",
    // Calls run on fibers so a policy yields to the async runtime every epoch
    // tick instead of holding a worker thread for its whole deadline.
    exports: { default: async },
});

pub use nats::callout::types::{
    ClientInfo, ClientTls, ConnectOpts, ConnectionType, Grant, Limits, LogLevel, Permission,
    ServerId, TimeWindow,
};
