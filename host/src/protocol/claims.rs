//! The `nats` objects of the three JWTs in an auth callout exchange: the
//! server's authorization request, the service's response, and the user JWT the
//! response carries. Field names and presence follow nats-io/jwt v2
//! (`docs/protocol.md` §4–§5, `docs/grants.md`).

use serde::{Deserialize, Serialize};

/// `aud` of every authorization request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";

/// `nats` of the server's authorization request. Only the fields the server
/// always sends are required; anything it may omit defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuthorizationRequest {
    #[serde(default)]
    pub server_id: ServerId,
    #[serde(default)]
    pub user_nkey: String,
    #[serde(default)]
    pub client_info: ClientInfo,
    #[serde(default)]
    pub connect_opts: ConnectOpts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTls>,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub client_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnectOpts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub protocol: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_chains: Vec<Vec<String>>,
}

/// `nats` of the service's authorization response: exactly one of `jwt` and
/// `error` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_account: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

/// `pub` or `sub` of a user JWT.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// `resp` of a user JWT; `ttl` is a Go `time.Duration`, in nanoseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResponsePermission {
    pub max: u32,
    pub ttl: u64,
}

/// One entry of `times`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
}

/// `nats` of a user JWT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    #[serde(rename = "pub", default, skip_serializing_if = "is_empty_permission")]
    pub publish: Permission,
    #[serde(rename = "sub", default, skip_serializing_if = "is_empty_permission")]
    pub subscribe: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_location: Option<String>,
    /// Per-user limits: -1 (no limit) for every user the host mints, except
    /// one under a scoped signing key, whose limits must be absent (0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Operator mode: the target account, when a signing key of it (not its
    /// identity key) signs the user JWT. Forbidden in config mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_account: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl User {
    /// Makes this user one a scoped signing key may sign: everything
    /// nats-io/jwt counts as permissions and limits (`UserPermissionLimits`)
    /// removed, for the scope's template decides them (`ValidateScopedSigner`
    /// refuses a user that sets any). Name and tags stay.
    pub fn strip_permissions_and_limits(&mut self) {
        self.publish = Permission::default();
        self.subscribe = Permission::default();
        self.resp = None;
        self.src.clear();
        self.times.clear();
        self.times_location = None;
        self.subs = 0;
        self.data = 0;
        self.payload = 0;
        self.allowed_connection_types.clear();
    }
}

fn is_empty_permission(permission: &Permission) -> bool {
    permission.allow.is_empty() && permission.deny.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_user_has_no_permissions_or_limits_on_the_wire() {
        let mut user: User = serde_json::from_str(
            r#"{"pub":{"allow":["a"]},"sub":{"deny":["b"]},"resp":{"max":1,"ttl":1},
                "src":["10.0.0.0/8"],"times":[{"start":"00:00:00","end":"01:00:00"}],
                "times_location":"UTC","subs":-1,"data":-1,"payload":-1,
                "allowed_connection_types":["STANDARD"],"tags":["team:a"],
                "type":"user","version":2}"#,
        )
        .unwrap();
        user.strip_permissions_and_limits();
        let wire = serde_json::to_value(&user).unwrap();
        // nats-io/jwt's UserPermissionLimits, all empty; tags, type, version stay.
        assert_eq!(
            wire,
            serde_json::json!({"tags": ["team:a"], "type": "user", "version": 2})
        );
    }
}
