//! Host-side bindings generated from `wit/policy.wit`.

/// The WIT every policy implements, as the host was built with (embedded by
/// `componentize`, and the source of the world version the host accepts).
pub const POLICY_WIT: &str = include_str!("../../../wit/policy.wit");

wasmtime::component::bindgen!({
    // The policy world and every capability: a component of `policy`
    // instantiates with it, and imports are checked against the grants.
    world: "policy-with-capabilities",
    path: "../wit",
    // Calls run on fibers so a policy yields to the async runtime every epoch
    // tick instead of holding a worker thread for its whole deadline. The
    // capabilities that wait (a hashing slot, an issuer's keys) are async:
    // they are cancelled with the call at its deadline.
    exports: { default: async },
    imports: {
        "nats:callout/password.verify": async,
        "nats:callout/oidc.verify": async,
    },
    additional_derives: [PartialEq, Eq],
});

pub use PolicyWithCapabilities as Policy;
pub use PolicyWithCapabilitiesPre as PolicyPre;
pub use nats::callout::types::{
    ClientInfo, ClientTls, ConnectOpts, ConnectionType, Grant, Limits, LogLevel, Permission,
    ServerId, TimeWindow,
};
