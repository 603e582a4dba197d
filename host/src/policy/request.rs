//! The policy's view of a request: the verified authorization request,
//! translated field by field into the WIT `auth-request` (`wit/policy.wit`).

use super::wit;
use crate::protocol::claims::AuthorizationRequest;

/// The policy's view of a request.
pub fn to_policy_request(request: &AuthorizationRequest, issuer: &str) -> wit::AuthRequest {
    let server = &request.server_id;
    let info = &request.client_info;
    let opts = &request.connect_opts;
    wit::AuthRequest {
        server: wit::ServerId {
            name: server.name.clone(),
            host: server.host.clone(),
            id: server.id.clone(),
            version: server.version.clone(),
            cluster: server.cluster.clone(),
            tags: server.tags.clone(),
            xkey: server.xkey.clone(),
        },
        user_nkey: request.user_nkey.clone(),
        client_info: wit::ClientInfo {
            host: info.host.clone(),
            id: info.id,
            user: info.user.clone(),
            name: info.name.clone(),
            tags: info.tags.clone(),
            name_tag: info.name_tag.clone(),
            kind: info.kind.clone(),
            client_type: info.client_type.clone(),
            mqtt_id: info.mqtt_id.clone(),
            nonce: info.nonce.clone(),
        },
        connect_opts: wit::ConnectOpts {
            jwt: opts.jwt.clone(),
            nkey: opts.nkey.clone(),
            sig: opts.sig.clone(),
            auth_token: opts.auth_token.clone(),
            user: opts.user.clone(),
            pass: opts.pass.clone(),
            name: opts.name.clone(),
            lang: opts.lang.clone(),
            version: opts.version.clone(),
            protocol: opts.protocol,
        },
        client_tls: request.client_tls.as_ref().map(|tls| wit::ClientTls {
            version: tls.version.clone(),
            cipher: tls.cipher.clone(),
            certs: tls.certs.clone(),
            verified_chains: tls.verified_chains.clone(),
        }),
        issuer: issuer.to_string(),
    }
}
