//! Host-side bindings generated from `wit/policy.wit`.

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit",
});

pub use nats::callout::types::{
    ClientInfo, ClientTls, ConnectOpts, ConnectionType, Grant, Limits, LogLevel, Permission,
    ResponsePermission, ServerId, TimeWindow,
};
