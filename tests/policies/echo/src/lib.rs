//! Conformance echo policy (Rust): denies every request with the request
//! rendered as JSON, in the format of `tests/conformance/README.md`, so the
//! kit can check that every field reached the policy intact.
//!
//! The user `sandbox-probe` instead gets what the policy could reach of the
//! filesystem, environment, arguments and network (the `sandbox` kit expects
//! nothing): `file=false dir=false env=0 args=0 net=false`. The user
//! `sandbox-loop` never returns, and `sandbox-alloc` allocates 1 GiB: the
//! host's deadline and memory cap must stop them.

use nats_callout_sdk::{AuthRequest, Decision, Policy, export_policy};
use serde_json::json;

pub struct Echo;

/// The request in the kit's echo format.
pub fn echo(request: &AuthRequest) -> serde_json::Value {
    let server = &request.server;
    let info = &request.client_info;
    let opts = &request.connect_opts;
    json!({
        "server": {
            "name": server.name, "host": server.host, "id": server.id,
            "version": server.version, "cluster": server.cluster,
            "tags": server.tags, "xkey": server.xkey,
        },
        "user_nkey": request.user_nkey,
        "client_info": {
            "host": info.host, "id": info.id.map(|id| id.to_string()), "user": info.user,
            "name": info.name, "tags": info.tags, "name_tag": info.name_tag, "kind": info.kind,
            "client_type": info.client_type, "mqtt_id": info.mqtt_id, "nonce": info.nonce,
        },
        "connect_opts": {
            "jwt": opts.jwt, "nkey": opts.nkey, "sig": opts.sig, "auth_token": opts.auth_token,
            "user": opts.user, "pass": opts.pass, "name": opts.name, "lang": opts.lang,
            "version": opts.version, "protocol": opts.protocol,
        },
        "client_tls": request.client_tls.as_ref().map(|tls| json!({
            "version": tls.version, "cipher": tls.cipher,
            "certs": tls.certs, "verified_chains": tls.verified_chains,
        })),
        "issuer": request.issuer,
    })
}

/// What the sandbox lets the policy reach.
fn probe() -> String {
    let file = std::fs::read_to_string("/etc/hostname").is_ok();
    let dir = std::fs::read_dir("/").is_ok();
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let net = std::net::TcpStream::connect("127.0.0.1:4222").is_ok();
    format!("file={file} dir={dir} env={env} args={args} net={net}")
}

impl Policy for Echo {
    fn init(_settings: &str) -> Result<Self, String> {
        Ok(Echo)
    }

    fn authorize(&self, request: &AuthRequest) -> Decision {
        match request.user() {
            Some("sandbox-probe") => return Decision::deny(probe()),
            Some("sandbox-loop") => loop {
                std::hint::black_box(());
            },
            Some("sandbox-alloc") => {
                let block = std::hint::black_box(vec![1u8; 1 << 30]);
                return Decision::deny(format!("allocated {} bytes", block.len()));
            }
            _ => {}
        }
        Decision::deny(echo(request).to_string())
    }
}

export_policy!(Echo);
