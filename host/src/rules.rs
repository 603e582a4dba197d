//! What an operator lets a policy grant, and how a grant becomes the `nats`
//! object of a user JWT. A policy may be hostile: everything it returns is
//! checked here before anything is signed.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::bindings::{ConnectionType, Grant, Permission};
use crate::claims;

/// Bounds on what a policy returns, so a grant always fits in a JWT the server accepts.
pub const MAX_SUBJECTS: usize = 10_000;
pub const MAX_SUBJECT_BYTES: usize = 1024;
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_TAGS: usize = 64;
pub const MAX_REASON_BYTES: usize = 512;

/// The operator's limits on one policy.
#[derive(Debug, Clone)]
pub struct GrantRules {
    /// Accounts the policy may place users into, by name.
    pub accounts: Vec<String>,
    /// Lifetime of a user whose grant sets none, in seconds.
    pub default_lifetime_secs: u64,
    /// Longest lifetime, in seconds; longer grants are shortened.
    pub max_lifetime_secs: u64,
}

/// A grant the rules accepted, ready to be signed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedGrant {
    pub account: String,
    pub name: Option<String>,
    pub lifetime_secs: u64,
    /// Set when the policy asked for more than `max_lifetime_secs`.
    pub shortened_from: Option<u64>,
    pub user: claims::User,
}

impl GrantRules {
    /// Checks `grant` for a client connecting from `client_host`. The error is
    /// the deny reason.
    pub fn check(&self, grant: &Grant, client_host: Option<&str>) -> Result<CheckedGrant, String> {
        if !self.accounts.contains(&grant.account) {
            return Err(format!(
                "policy granted account {:?}, which is not in [policy] accounts",
                truncate(&grant.account, 64)
            ));
        }
        let subject_count = grant.publish.allow.len()
            + grant.publish.deny.len()
            + grant.subscribe.allow.len()
            + grant.subscribe.deny.len();
        if subject_count > MAX_SUBJECTS {
            return Err(format!(
                "policy granted {subject_count} subjects, more than the {MAX_SUBJECTS} allowed"
            ));
        }
        check_subjects(&grant.publish, "publish", false)?;
        check_subjects(&grant.subscribe, "subscribe", true)?;
        if let Some(name) = &grant.name
            && (name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control))
        {
            return Err(format!(
                "policy granted a user name longer than {MAX_NAME_BYTES} bytes or with control characters"
            ));
        }
        if grant.tags.len() > MAX_TAGS || grant.tags.iter().any(|t| t.len() > MAX_SUBJECT_BYTES) {
            return Err(format!(
                "policy granted more than {MAX_TAGS} tags, or a tag that is too long"
            ));
        }

        let limits = &grant.limits;
        let mut networks = Vec::with_capacity(limits.source_cidrs.len());
        for cidr in &limits.source_cidrs {
            let network: IpNet = cidr
                .parse()
                .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "policy granted source network {:?}, which is not a CIDR",
                        truncate(cidr, 64)
                    )
                })?;
            networks.push(network);
        }
        if !networks.is_empty() {
            let host: Option<IpAddr> = client_host.and_then(|h| h.parse().ok());
            match host {
                Some(ip) if networks.iter().any(|n| n.contains(&ip)) => {}
                _ => {
                    return Err(format!(
                        "client address {} is outside the granted source networks",
                        client_host.unwrap_or("(unknown)")
                    ));
                }
            }
        }
        for window in &limits.times {
            if !is_clock_time(&window.start) || !is_clock_time(&window.end) {
                return Err("policy granted a time window that is not HH:MM:SS to HH:MM:SS".into());
            }
        }

        let asked = grant.expires_in_secs.unwrap_or(self.default_lifetime_secs);
        let lifetime_secs = asked.clamp(1, self.max_lifetime_secs);
        let shortened_from = (asked > self.max_lifetime_secs).then_some(asked);

        let user = claims::User {
            publish: claims::Permission {
                allow: grant.publish.allow.clone(),
                deny: grant.publish.deny.clone(),
            },
            subscribe: claims::Permission {
                allow: grant.subscribe.allow.clone(),
                deny: grant.subscribe.deny.clone(),
            },
            resp: grant
                .responses
                .as_ref()
                .map(|r| claims::ResponsePermission {
                    max: r.max_messages,
                    ttl: r.ttl_ms.saturating_mul(1_000_000),
                }),
            src: networks.iter().map(ToString::to_string).collect(),
            times: limits
                .times
                .iter()
                .map(|w| claims::TimeRange {
                    start: w.start.clone(),
                    end: w.end.clone(),
                })
                .collect(),
            times_location: limits.times_location.clone().filter(|l| !l.is_empty()),
            subs: limits.subs.unwrap_or(-1),
            data: limits.data.unwrap_or(-1),
            payload: limits.payload.unwrap_or(-1),
            allowed_connection_types: grant
                .connection_types
                .iter()
                .map(|t| connection_type(*t).to_string())
                .collect(),
            tags: grant.tags.iter().map(|t| t.to_lowercase()).collect(),
            kind: "user".into(),
            version: 2,
        };
        Ok(CheckedGrant {
            account: grant.account.clone(),
            name: grant.name.clone().filter(|n| !n.is_empty()),
            lifetime_secs,
            shortened_from,
            user,
        })
    }
}

fn connection_type(t: ConnectionType) -> &'static str {
    match t {
        ConnectionType::Standard => "STANDARD",
        ConnectionType::Websocket => "WEBSOCKET",
        ConnectionType::Leafnode => "LEAFNODE",
        ConnectionType::LeafnodeWebsocket => "LEAFNODE_WS",
        ConnectionType::Mqtt => "MQTT",
        ConnectionType::MqttWebsocket => "MQTT_WS",
        ConnectionType::InProcess => "IN_PROCESS",
    }
}

fn check_subjects(permission: &Permission, what: &str, queues_allowed: bool) -> Result<(), String> {
    for subject in permission.allow.iter().chain(&permission.deny) {
        let valid = if queues_allowed {
            match subject.split_once(' ') {
                Some((subject, queue)) => is_subject(subject) && is_queue_name(queue),
                None => is_subject(subject),
            }
        } else {
            is_subject(subject)
        };
        if !valid {
            return Err(format!(
                "policy granted a malformed {what} subject {:?}",
                truncate(subject, 64)
            ));
        }
    }
    Ok(())
}

/// A NATS subject filter: dot-separated non-empty tokens without whitespace,
/// `*` and `>` only as whole tokens, `>` only last.
pub fn is_subject(subject: &str) -> bool {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return false;
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    tokens.iter().enumerate().all(|(i, token)| {
        !token.is_empty()
            && !token.chars().any(|c| c.is_whitespace() || c.is_control())
            && (*token == "*" || *token == ">" || !token.contains(['*', '>']))
            && (*token != ">" || i == tokens.len() - 1)
    })
}

fn is_queue_name(queue: &str) -> bool {
    !queue.is_empty() && !queue.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_clock_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] < "24"
        && parts[1] < "60"
        && parts[2] < "60"
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Limits, TimeWindow};

    fn rules() -> GrantRules {
        GrantRules {
            accounts: vec!["APP".into()],
            default_lifetime_secs: 60,
            max_lifetime_secs: 600,
        }
    }

    fn grant(account: &str) -> Grant {
        Grant {
            account: account.into(),
            name: None,
            publish: Permission {
                allow: vec!["app.>".into()],
                deny: vec![],
            },
            subscribe: Permission {
                allow: vec!["_INBOX.> workers".into()],
                deny: vec![],
            },
            responses: None,
            expires_in_secs: None,
            tags: vec!["Team".into()],
            limits: Limits {
                subs: None,
                data: None,
                payload: Some(1024),
                source_cidrs: vec![],
                times: vec![],
                times_location: None,
            },
            connection_types: vec![ConnectionType::Standard],
        }
    }

    #[test]
    fn accepts_a_good_grant_with_defaults() {
        let checked = rules().check(&grant("APP"), Some("127.0.0.1")).unwrap();
        assert_eq!(checked.lifetime_secs, 60);
        assert_eq!(checked.user.subs, -1);
        assert_eq!(checked.user.payload, 1024);
        assert_eq!(checked.user.tags, ["team"]);
        assert_eq!(checked.user.allowed_connection_types, ["STANDARD"]);
    }

    #[test]
    fn refuses_accounts_outside_the_list() {
        let err = rules().check(&grant("SYS"), None).unwrap_err();
        assert!(err.contains("\"SYS\""), "{err}");
    }

    #[test]
    fn shortens_long_lifetimes() {
        let mut g = grant("APP");
        g.expires_in_secs = Some(10_000);
        let checked = rules().check(&g, None).unwrap();
        assert_eq!(
            (checked.lifetime_secs, checked.shortened_from),
            (600, Some(10_000))
        );
    }

    #[test]
    fn refuses_malformed_subjects() {
        for bad in [
            "",
            "a b",
            "a..b",
            ".a",
            "a.",
            "a.>.b",
            "a*",
            "a.b>",
            "tab\there",
        ] {
            let mut g = grant("APP");
            g.publish.allow = vec![bad.into()];
            assert!(rules().check(&g, None).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a.*.c", ">", "$SYS.REQ.USER.INFO", "_INBOX.>"] {
            assert!(is_subject(good), "{good:?} refused");
        }
    }

    #[test]
    fn enforces_source_networks() {
        let mut g = grant("APP");
        g.limits.source_cidrs = vec!["10.0.0.0/8".into()];
        assert!(rules().check(&g, Some("10.1.2.3")).is_ok());
        assert!(
            rules()
                .check(&g, Some("192.168.1.1"))
                .unwrap_err()
                .contains("outside")
        );
        g.limits.source_cidrs = vec!["not-a-cidr".into()];
        assert!(rules().check(&g, Some("10.1.2.3")).is_err());
    }

    #[test]
    fn checks_time_windows() {
        let mut g = grant("APP");
        g.limits.times = vec![TimeWindow {
            start: "08:00:00".into(),
            end: "17:30:00".into(),
        }];
        assert!(rules().check(&g, None).is_ok());
        g.limits.times = vec![TimeWindow {
            start: "8am".into(),
            end: "17:30:00".into(),
        }];
        assert!(rules().check(&g, None).is_err());
    }
}
