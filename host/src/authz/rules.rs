//! What an operator lets a policy grant, and how a grant becomes the `nats`
//! object of a user JWT. A policy may be hostile: everything it returns is
//! checked here before anything is signed.
//!
//! The rule these checks keep: **the decision the host logs is the outcome
//! the client sees.** A grant nats-server would refuse (a time zone it cannot
//! load, a reply TTL beyond Go's `time.Duration`) is denied here, with the
//! reason, instead of being signed and refused by the server. A restriction
//! nats-server records but does not enforce for auth callout users is either
//! enforced here from the request (source networks, connection types) or
//! refused (per-user `subs`, `data`, `payload` limits: set those on the
//! account). `docs/grants.md` lists every field, what nats-server does with
//! it and where in its source.

use std::net::IpAddr;
use std::str::FromStr as _;

use ipnet::IpNet;

use super::ceiling::Ceiling;
use crate::policy::wit::{ConnectionType, Grant, Limits, Permission, TimeWindow};
use crate::protocol::claims::{self, AuthorizationRequest};
use crate::protocol::mint::UserToMint;
use crate::untrusted::{Quoted, is_printable};

/// Bounds on what a policy returns, so checking a grant stays cheap. A grant
/// within them can still make a user JWT larger than nats-server accepts:
/// that is denied when it is signed (`protocol/mint.rs`).
pub const MAX_SUBJECTS: usize = 10_000;
pub const MAX_SUBJECT_BYTES: usize = 1024;
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_TAGS: usize = 64;
pub const MAX_SOURCE_NETWORKS: usize = 1024;
pub const MAX_TIME_WINDOWS: usize = 64;

/// The longest reply TTL nats-server can hold: Go's `time.Duration` is a
/// signed 64-bit count of nanoseconds.
pub const MAX_RESPONSE_TTL_MS: u64 = (i64::MAX as u64) / 1_000_000;

/// Which accounts a policy may place users into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// Only these, by name (`[policy] accounts`).
    Listed(Vec<String>),
    /// Any: `check` without `--accounts`, to see what a policy grants.
    Any,
}

/// The operator's limits on one policy.
#[derive(Debug, Clone)]
pub struct GrantRules {
    /// Accounts the policy may place users into.
    pub accounts: Accounts,
    /// Lifetime of a user whose grant sets none, in seconds.
    pub default_lifetime_secs: u64,
    /// Longest lifetime, in seconds; longer grants are shortened.
    pub max_lifetime_secs: u64,
    /// The most the policy may ever grant.
    pub ceiling: Ceiling,
}

/// Why the rules refused a grant: the deny reason, typed. Every text it
/// quotes from the grant or the request is escaped and bounded ([`Quoted`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleRefusal {
    #[error("policy granted account {0}, which is not in [policy] accounts")]
    AccountNotAllowed(Quoted),
    #[error("policy granted {0} subjects, more than the {MAX_SUBJECTS} allowed")]
    TooManySubjects(usize),
    #[error("policy granted a malformed {what} subject {subject}")]
    MalformedSubject { what: &'static str, subject: Quoted },
    #[error(
        "policy granted a reply TTL of {0} ms, more than the {MAX_RESPONSE_TTL_MS} ms nats-server can hold (Go time.Duration)"
    )]
    ResponseTtl(u64),
    #[error(
        "policy granted a user name longer than {MAX_NAME_BYTES} bytes or with control characters"
    )]
    BadName,
    #[error("policy granted more than {MAX_TAGS} tags, or a tag that is too long")]
    TooManyTags,
    #[error("policy granted the tag {0}: tags must be non-empty and free of control characters")]
    BadTag(Quoted),
    #[error(
        "policy granted {networks} source networks and {windows} time windows, more than the {MAX_SOURCE_NETWORKS} and {MAX_TIME_WINDOWS} allowed"
    )]
    TooManyNetworksOrWindows { networks: usize, windows: usize },
    #[error(
        "policy set limits.{what} = {value}, which nats-server does not enforce for auth callout users: {instead}"
    )]
    UnenforcedLimit {
        what: &'static str,
        value: i64,
        instead: &'static str,
    },
    #[error("policy granted source network {0}, which is not a CIDR")]
    NotCidr(Quoted),
    #[error("client address {0} is outside the granted source networks")]
    OutsideNetworks(Quoted),
    #[error(
        "policy granted the time zone {0}, which is not an IANA time zone name (such as \"Europe/Paris\" or \"UTC\")"
    )]
    UnknownZone(Quoted),
    #[error(
        "policy granted time windows without limits.times-location: nats-server would read them in its own local time, which the host cannot know; name the zone (\"UTC\", \"Europe/Paris\")"
    )]
    WindowsWithoutZone,
    #[error("policy granted a time window that is not HH:MM:SS to HH:MM:SS")]
    MalformedWindow,
    #[error(
        "policy granted the time window {start}-{end}, which nats-server never matches (its start is its end)"
    )]
    EmptyWindow { start: String, end: String },
    #[error("client connects at {at} {zone}, outside the granted time windows")]
    OutsideWindows { at: String, zone: &'static str },
    #[error(
        "policy restricted connection types to [{granted}], and the request does not say how the client connects (kind {kind}, type {client_type})"
    )]
    UnknownConnectionType {
        granted: String,
        kind: Quoted,
        client_type: Quoted,
    },
    #[error("client connects as {client}, outside the granted connection types [{granted}]")]
    ConnectionTypeNotGranted { client: String, granted: String },
    #[error("policy granted the {what} subject {subject}, which is outside the operator's ceiling")]
    SubjectAboveCeiling { what: &'static str, subject: Quoted },
    #[error("policy asked for a lifetime of {asked} s, above the ceiling's {max} s")]
    LifetimeAboveCeiling { asked: u64, max: u64 },
    #[error("policy granted the connection type {0}, which is outside the operator's ceiling")]
    ConnectionTypeAboveCeiling(&'static str),
    #[error(
        "policy granted reply permissions, which let a user publish to any message's reply subject, outside the operator's publish ceiling (allow them with responses = true)"
    )]
    ResponsesAboveCeiling,
}

impl RuleRefusal {
    /// Whether the refusal depends on the client (its address, the time it
    /// connects, how it connects) rather than on the grant alone.
    pub fn depends_on_client(&self) -> bool {
        matches!(
            self,
            RuleRefusal::OutsideNetworks(_)
                | RuleRefusal::OutsideWindows { .. }
                | RuleRefusal::UnknownConnectionType { .. }
                | RuleRefusal::ConnectionTypeNotGranted { .. }
        )
    }

    /// A stable name for the rule that refused, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleRefusal::AccountNotAllowed(_) => "account",
            RuleRefusal::TooManySubjects(_)
            | RuleRefusal::MalformedSubject { .. }
            | RuleRefusal::ResponseTtl(_) => "permissions",
            RuleRefusal::BadName | RuleRefusal::TooManyTags | RuleRefusal::BadTag(_) => {
                "name_or_tags"
            }
            RuleRefusal::TooManyNetworksOrWindows { .. } | RuleRefusal::UnenforcedLimit { .. } => {
                "limits"
            }
            RuleRefusal::NotCidr(_) | RuleRefusal::OutsideNetworks(_) => "source_network",
            RuleRefusal::UnknownZone(_)
            | RuleRefusal::WindowsWithoutZone
            | RuleRefusal::MalformedWindow
            | RuleRefusal::EmptyWindow { .. }
            | RuleRefusal::OutsideWindows { .. } => "time_window",
            RuleRefusal::UnknownConnectionType { .. }
            | RuleRefusal::ConnectionTypeNotGranted { .. } => "connection_type",
            RuleRefusal::SubjectAboveCeiling { .. }
            | RuleRefusal::LifetimeAboveCeiling { .. }
            | RuleRefusal::ConnectionTypeAboveCeiling(_)
            | RuleRefusal::ResponsesAboveCeiling => "ceiling",
        }
    }
}

/// A grant the rules accepted, ready to be signed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedGrant {
    pub account: String,
    pub name: Option<String>,
    pub lifetime_secs: u64,
    /// Set when the policy asked for more than `max_lifetime_secs`.
    pub shortened_from: Option<u64>,
    /// Set when a scoped signing key signs the user: its template, not the
    /// grant, decides the permissions and limits.
    pub from_scope_template: bool,
    pub user: claims::User,
}

impl GrantRules {
    /// Checks `grant` for the client `request` describes, in the order a
    /// reader would: where the user goes, what it may do, what it is called,
    /// what limits it has, from where and when it may connect. The error is
    /// why the host denies the request.
    pub fn admit(
        &self,
        grant: &Grant,
        request: &AuthorizationRequest,
    ) -> Result<CheckedGrant, RuleRefusal> {
        self.check_account(&grant.account)?;
        let grant = &self.ceiling.apply(grant)?;
        check_permissions(grant)?;
        check_name_and_tags(grant)?;
        let limits = &grant.limits;
        check_limits(limits)?;
        let networks = source_networks(&limits.source_cidrs, request.client_info.host.as_deref())?;
        let zone = time_zone(limits)?;
        check_time_windows(&limits.times, zone, chrono::Utc::now())?;
        check_connection_type(&grant.connection_types, &request.client_info)?;

        let asked = grant
            .expires_in_secs
            .unwrap_or_else(|| self.ceiling.default_lifetime(self.default_lifetime_secs));
        Ok(CheckedGrant {
            account: grant.account.clone(),
            name: grant.name.clone().filter(|n| !n.is_empty()),
            lifetime_secs: asked.clamp(1, self.max_lifetime_secs),
            shortened_from: (asked > self.max_lifetime_secs).then_some(asked),
            from_scope_template: false,
            // The zone as the policy named it (an alias stays an alias).
            user: user_claims(grant, &networks, zone.and(limits.times_location.clone())),
        })
    }

    fn check_account(&self, account: &str) -> Result<(), RuleRefusal> {
        match &self.accounts {
            Accounts::Listed(accounts) if !accounts.iter().any(|a| a == account) => {
                Err(RuleRefusal::AccountNotAllowed(Quoted::new(account)))
            }
            _ => Ok(()),
        }
    }
}

impl CheckedGrant {
    /// What the user JWT says of this grant.
    pub fn to_mint(&self) -> UserToMint<'_> {
        UserToMint {
            account: &self.account,
            name: self.name.as_deref(),
            lifetime_secs: self.lifetime_secs,
            user: &self.user,
        }
    }
}

/// Subjects (how many, and each well-formed) and the reply permission.
fn check_permissions(grant: &Grant) -> Result<(), RuleRefusal> {
    let subject_count = grant.publish.allow.len()
        + grant.publish.deny.len()
        + grant.subscribe.allow.len()
        + grant.subscribe.deny.len();
    if subject_count > MAX_SUBJECTS {
        return Err(RuleRefusal::TooManySubjects(subject_count));
    }
    check_subjects(&grant.publish, "publish", false)?;
    check_subjects(&grant.subscribe, "subscribe", true)?;
    if let Some(responses) = &grant.responses
        && responses.ttl_ms > MAX_RESPONSE_TTL_MS
    {
        return Err(RuleRefusal::ResponseTtl(responses.ttl_ms));
    }
    Ok(())
}

/// The user's name and tags: bounded, printable.
fn check_name_and_tags(grant: &Grant) -> Result<(), RuleRefusal> {
    if let Some(name) = &grant.name
        && (name.len() > MAX_NAME_BYTES || !is_printable(name))
    {
        return Err(RuleRefusal::BadName);
    }
    if grant.tags.len() > MAX_TAGS || grant.tags.iter().any(|t| t.len() > MAX_SUBJECT_BYTES) {
        return Err(RuleRefusal::TooManyTags);
    }
    if let Some(tag) = grant
        .tags
        .iter()
        .find(|t| t.trim().is_empty() || !is_printable(t))
    {
        return Err(RuleRefusal::BadTag(Quoted::new(tag)));
    }
    Ok(())
}

/// How many networks and windows, and no per-user limit nobody enforces.
fn check_limits(limits: &Limits) -> Result<(), RuleRefusal> {
    if limits.source_cidrs.len() > MAX_SOURCE_NETWORKS || limits.times.len() > MAX_TIME_WINDOWS {
        return Err(RuleRefusal::TooManyNetworksOrWindows {
            networks: limits.source_cidrs.len(),
            windows: limits.times.len(),
        });
    }
    for (what, value, instead) in [
        (
            "subs",
            limits.subs,
            "set max_subs in the account's limits instead",
        ),
        (
            "payload",
            limits.payload,
            "set max_payload in the account's limits (or the server's max_payload) instead",
        ),
        (
            "data",
            limits.data,
            "nats-server has no byte limit for them",
        ),
    ] {
        if let Some(value) = value.filter(|v| *v != NO_LIMIT) {
            return Err(RuleRefusal::UnenforcedLimit {
                what,
                value,
                instead,
            });
        }
    }
    for window in &limits.times {
        if clock_seconds(&window.start).is_none() || clock_seconds(&window.end).is_none() {
            return Err(RuleRefusal::MalformedWindow);
        }
    }
    Ok(())
}

/// The granted source networks (a bare address is one host), which the
/// client's address must be in: nats-server does not check them for callout
/// users (`validateSrc` runs only for JWTs clients present).
fn source_networks(cidrs: &[String], client_host: Option<&str>) -> Result<Vec<IpNet>, RuleRefusal> {
    let networks = cidrs
        .iter()
        .map(|cidr| {
            cidr.parse()
                .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| RuleRefusal::NotCidr(Quoted::new(cidr)))
        })
        .collect::<Result<Vec<IpNet>, RuleRefusal>>()?;
    if networks.is_empty() {
        return Ok(networks);
    }
    match client_host.and_then(|h| h.parse::<IpAddr>().ok()) {
        Some(ip) if networks.iter().any(|n| n.contains(&ip)) => Ok(networks),
        _ => Err(RuleRefusal::OutsideNetworks(Quoted::or_none(client_host))),
    }
}

/// The zone of the time windows: an IANA name nats-server can load.
fn time_zone(limits: &Limits) -> Result<Option<chrono_tz::Tz>, RuleRefusal> {
    let Some(location) = limits.times_location.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    chrono_tz::Tz::from_str(location)
        .map(Some)
        .map_err(|_| RuleRefusal::UnknownZone(Quoted::new(location)))
}

/// The `nats` object of the user JWT for a checked grant.
fn user_claims(grant: &Grant, networks: &[IpNet], times_location: Option<String>) -> claims::User {
    claims::User {
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
        times: grant
            .limits
            .times
            .iter()
            .map(|w| claims::TimeRange {
                start: w.start.clone(),
                end: w.end.clone(),
            })
            .collect(),
        times_location,
        subs: NO_LIMIT,
        data: NO_LIMIT,
        payload: NO_LIMIT,
        allowed_connection_types: grant
            .connection_types
            .iter()
            .map(|t| connection_type(*t).to_string())
            .collect(),
        tags: grant.tags.iter().map(|t| t.to_lowercase()).collect(),
        issuer_account: None,
        kind: "user".into(),
        version: 2,
    }
}

/// nats-server checks a user's time windows when the client connects
/// (`validateTimesAt`, server/jwt.go) and refuses it outside all of them, so
/// the host checks them too, the same way: `start < now < end` in the zone,
/// a window whose start is after its end runs over midnight, and a window
/// whose start equals its end never matches. Without a zone nats-server
/// reads the windows in its own local time, which the host cannot know: a
/// zone is required.
fn check_time_windows(
    windows: &[TimeWindow],
    zone: Option<chrono_tz::Tz>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), RuleRefusal> {
    use chrono::Timelike as _;
    if windows.is_empty() {
        return Ok(());
    }
    let Some(zone) = zone else {
        return Err(RuleRefusal::WindowsWithoutZone);
    };
    let local = now.with_timezone(&zone);
    let now_ns = i64::from(local.num_seconds_from_midnight()) * 1_000_000_000
        + i64::from(local.nanosecond().min(999_999_999));
    let mut matched = false;
    for window in windows {
        let (Some(start), Some(end)) = (clock_seconds(&window.start), clock_seconds(&window.end))
        else {
            return Err(RuleRefusal::MalformedWindow);
        };
        let (start, end) = (start * 1_000_000_000, end * 1_000_000_000);
        if start == end {
            return Err(RuleRefusal::EmptyWindow {
                start: window.start.clone(),
                end: window.end.clone(),
            });
        }
        matched |= if start < end {
            start < now_ns && now_ns < end
        } else {
            now_ns < end || start < now_ns
        };
    }
    if matched {
        Ok(())
    } else {
        Err(RuleRefusal::OutsideWindows {
            at: local.format("%H:%M:%S").to_string(),
            zone: zone.name(),
        })
    }
}

/// "No limit" in a user JWT's `subs`, `data` and `payload`. (An absent value
/// would mean 0 to a JWT-authenticated user, so it is always written.)
const NO_LIMIT: i64 = -1;

/// The connection types a client may be using, from what the request says of
/// it. The request names the transport but not every detail nats-server's
/// own check (`connectionTypeAllowed`, server/client.go) would use: a plain
/// client without an IP address may be in-process, and an MQTT client or a
/// leafnode may come over WebSocket. Empty when the request does not say.
fn possible_connection_types(info: &claims::ClientInfo) -> &'static [ConnectionType] {
    let has_ip = info
        .host
        .as_deref()
        .is_some_and(|h| h.parse::<IpAddr>().is_ok());
    match (info.kind.as_deref(), info.client_type.as_deref()) {
        (Some("Client"), Some("nats")) if has_ip => &[ConnectionType::Standard],
        (Some("Client"), Some("nats")) => &[ConnectionType::Standard, ConnectionType::InProcess],
        (Some("Client"), Some("websocket")) => &[ConnectionType::Websocket],
        (Some("Client"), Some("mqtt")) => &[ConnectionType::Mqtt, ConnectionType::MqttWebsocket],
        (Some("Leafnode"), _) => &[ConnectionType::Leafnode, ConnectionType::LeafnodeWebsocket],
        _ => &[],
    }
}

/// nats-server records a callout user's allowed connection types but does
/// not check them (`buildInternalNkeyUser`, server/accounts.go), so the host
/// does: the client is admitted only if every type it may be using is
/// granted.
fn check_connection_type(
    granted: &[ConnectionType],
    client: &claims::ClientInfo,
) -> Result<(), RuleRefusal> {
    if granted.is_empty() {
        return Ok(());
    }
    let possible = possible_connection_types(client);
    if !possible.is_empty() && possible.iter().all(|t| granted.contains(t)) {
        return Ok(());
    }
    let names = |types: &[ConnectionType]| {
        types
            .iter()
            .map(|t| connection_type(*t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(match possible {
        [] => RuleRefusal::UnknownConnectionType {
            granted: names(granted),
            kind: Quoted::new(client.kind.as_deref().unwrap_or("-")),
            client_type: Quoted::new(client.client_type.as_deref().unwrap_or("-")),
        },
        possible => RuleRefusal::ConnectionTypeNotGranted {
            client: if possible.len() == 1 {
                names(possible)
            } else {
                format!(
                    "one of [{}] (the request cannot tell which)",
                    names(possible)
                )
            },
            granted: names(granted),
        },
    })
}

/// Every connection type, by the name user JWTs give it.
const CONNECTION_TYPES: [ConnectionType; 7] = [
    ConnectionType::Standard,
    ConnectionType::Websocket,
    ConnectionType::Leafnode,
    ConnectionType::LeafnodeWebsocket,
    ConnectionType::Mqtt,
    ConnectionType::MqttWebsocket,
    ConnectionType::InProcess,
];

/// The connection type a user JWT names `name` (`STANDARD`, `MQTT_WS`...).
pub fn connection_type_named(name: &str) -> Option<ConnectionType> {
    CONNECTION_TYPES
        .into_iter()
        .find(|t| connection_type(*t) == name)
}

pub(super) fn connection_type(t: ConnectionType) -> &'static str {
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

fn check_subjects(
    permission: &Permission,
    what: &'static str,
    queues_allowed: bool,
) -> Result<(), RuleRefusal> {
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
            return Err(RuleRefusal::MalformedSubject {
                what,
                subject: Quoted::new(subject),
            });
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

/// A queue group name as nats-io/jwt (`checkPermission` validates it as a
/// subject) and nats-server (`setPermissions` drops what is not a literal)
/// both accept: non-empty tokens without whitespace, control characters or
/// wildcards.
fn is_queue_name(queue: &str) -> bool {
    queue.split('.').all(|token| {
        !token.is_empty()
            && !token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
    })
}

/// Seconds since midnight of an `HH:MM:SS` time; `None` when it is not one.
fn clock_seconds(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split(':').collect();
    let well_formed = parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] < "24"
        && parts[1] < "60"
        && parts[2] < "60";
    well_formed.then(|| {
        parts
            .iter()
            .filter_map(|part| part.parse::<i64>().ok())
            .fold(0, |total, part| total * 60 + part)
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::policy::wit::{Limits, TimeWindow};

    fn rules() -> GrantRules {
        GrantRules {
            accounts: Accounts::Listed(vec!["APP".into()]),
            default_lifetime_secs: 60,
            max_lifetime_secs: 600,
            ceiling: Default::default(),
        }
    }

    /// A plain TCP client at `host`.
    fn from(host: &str) -> AuthorizationRequest {
        client(Some(host), "Client", Some("nats"))
    }

    fn client(host: Option<&str>, kind: &str, client_type: Option<&str>) -> AuthorizationRequest {
        let mut request = AuthorizationRequest::default();
        request.client_info.host = host.map(Into::into);
        request.client_info.kind = Some(kind.into());
        request.client_info.client_type = client_type.map(Into::into);
        request
    }

    /// A grant into `account` that sets nothing: no subjects, no limits.
    pub(in crate::authz) fn blank_grant(account: &str) -> Grant {
        Grant {
            account: account.into(),
            name: None,
            publish: Permission {
                allow: vec![],
                deny: vec![],
            },
            subscribe: Permission {
                allow: vec![],
                deny: vec![],
            },
            responses: None,
            expires_in_secs: None,
            tags: vec![],
            limits: Limits {
                subs: None,
                data: None,
                payload: None,
                source_cidrs: vec![],
                times: vec![],
                times_location: None,
            },
            connection_types: vec![],
        }
    }

    fn grant(account: &str) -> Grant {
        let mut grant = blank_grant(account);
        grant.publish.allow = vec!["app.>".into()];
        grant.subscribe.allow = vec!["_INBOX.> workers".into()];
        grant.tags = vec!["Team".into()];
        grant.connection_types = vec![ConnectionType::Standard];
        grant
    }

    #[test]
    fn accepts_a_good_grant_with_defaults() {
        let checked = rules().admit(&grant("APP"), &from("127.0.0.1")).unwrap();
        assert_eq!(checked.lifetime_secs, 60);
        assert_eq!(checked.user.subs, -1);
        assert_eq!(checked.user.payload, -1);
        assert_eq!(checked.user.tags, ["team"]);
        assert_eq!(checked.user.allowed_connection_types, ["STANDARD"]);
    }

    #[test]
    fn refuses_accounts_outside_the_list() {
        let err = rules()
            .admit(&grant("SYS"), &from("127.0.0.1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"SYS\""), "{err}");
    }

    #[test]
    fn shortens_long_lifetimes() {
        let mut g = grant("APP");
        g.expires_in_secs = Some(10_000);
        let checked = rules().admit(&g, &from("127.0.0.1")).unwrap();
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
            assert!(
                rules().admit(&g, &from("127.0.0.1")).is_err(),
                "{bad:?} accepted"
            );
        }
        for good in ["a", "a.*.c", ">", "$SYS.REQ.USER.INFO", "_INBOX.>"] {
            assert!(is_subject(good), "{good:?} refused");
        }
        // Queue groups are checked as nats-io/jwt checks them.
        for bad in ["a .", "a .q", "a q.", "a q..r", "a q r"] {
            let mut g = grant("APP");
            g.subscribe.allow = vec![bad.into()];
            assert!(
                rules().admit(&g, &from("127.0.0.1")).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(is_queue_name("workers.eu") && !is_queue_name("w.*") && !is_queue_name("q.>"));
    }

    #[test]
    fn enforces_source_networks() {
        let mut g = grant("APP");
        g.limits.source_cidrs = vec!["10.0.0.0/8".into()];
        assert!(rules().admit(&g, &from("10.1.2.3")).is_ok());
        assert!(
            rules()
                .admit(&g, &from("192.168.1.1"))
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
        g.limits.source_cidrs = vec!["not-a-cidr".into()];
        assert!(rules().admit(&g, &from("10.1.2.3")).is_err());
    }

    #[test]
    fn checks_time_windows() {
        let mut g = grant("APP");
        g.limits.times = vec![TimeWindow {
            start: "00:00:00".into(),
            end: "23:59:59".into(),
        }];
        g.limits.times_location = Some("Pacific/Kiritimati".into());
        assert!(rules().admit(&g, &from("127.0.0.1")).is_ok());
        g.limits.times = vec![TimeWindow {
            start: "8am".into(),
            end: "17:30:00".into(),
        }];
        assert!(rules().admit(&g, &from("127.0.0.1")).is_err());
    }

    #[test]
    fn admits_only_inside_a_time_window_as_nats_server_does() {
        use chrono::TimeZone as _;
        let window = |start: &str, end: &str| TimeWindow {
            start: start.into(),
            end: end.into(),
        };
        let paris = Some(chrono_tz::Europe::Paris);
        // 13:30 in Paris (UTC+1 in January).
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 1, 15, 12, 30, 0)
            .unwrap();
        let check = |windows: &[TimeWindow], zone| check_time_windows(windows, zone, now);
        assert!(check(&[], None).is_ok());
        assert!(check(&[window("08:00:00", "17:00:00")], paris).is_ok());
        // The same hours in UTC would be 12:30: still in; 13:00-14:00 UTC is not.
        assert!(check(&[window("13:00:00", "14:00:00")], paris).is_ok());
        let outside = check(&[window("13:00:00", "14:00:00")], Some(chrono_tz::UTC))
            .unwrap_err()
            .to_string();
        assert_eq!(
            outside,
            "client connects at 12:30:00 UTC, outside the granted time windows"
        );
        // Over midnight: 22:00-14:00 holds 13:30; 22:00-06:00 does not.
        assert!(check(&[window("22:00:00", "14:00:00")], paris).is_ok());
        assert!(check(&[window("22:00:00", "06:00:00")], paris).is_err());
        // Any window will do.
        assert!(
            check(
                &[
                    window("01:00:00", "02:00:00"),
                    window("13:00:00", "14:00:00")
                ],
                paris
            )
            .is_ok()
        );
        // Edges are outside, as in nats-server; start == end never matches.
        assert!(check(&[window("13:30:00", "14:00:00")], paris).is_err());
        assert!(check(&[window("12:00:00", "13:30:00")], paris).is_err());
        assert!(
            check(&[window("10:00:00", "10:00:00")], paris)
                .unwrap_err()
                .to_string()
                .contains("never matches")
        );
        // Without a zone the host cannot tell what nats-server will see.
        assert!(
            check(&[window("00:00:00", "23:59:59")], None)
                .unwrap_err()
                .to_string()
                .contains("times-location")
        );
    }

    #[test]
    fn refuses_time_zones_nats_server_cannot_load() {
        let mut g = grant("APP");
        g.limits.times = vec![TimeWindow {
            start: "00:00:00".into(),
            end: "23:59:59".into(),
        }];
        for good in ["Europe/Paris", "UTC", "America/Argentina/Buenos_Aires"] {
            g.limits.times_location = Some(good.into());
            let checked = rules().admit(&g, &from("127.0.0.1")).unwrap();
            assert_eq!(checked.user.times_location.as_deref(), Some(good));
        }
        for bad in [
            "Mars/Olympus",
            "europe/paris",
            "Local",
            "../../etc/passwd",
            "UTC\n",
        ] {
            g.limits.times_location = Some(bad.into());
            let reason = rules()
                .admit(&g, &from("127.0.0.1"))
                .unwrap_err()
                .to_string();
            assert!(
                reason.contains("not an IANA time zone"),
                "{bad:?}: {reason}"
            );
        }
    }

    #[test]
    fn refuses_reply_ttls_beyond_go_durations() {
        let mut g = grant("APP");
        g.responses = Some(
            crate::policy::wit::nats::callout::types::ResponsePermission {
                max_messages: 1,
                ttl_ms: MAX_RESPONSE_TTL_MS,
            },
        );
        let checked = rules().admit(&g, &from("127.0.0.1")).unwrap();
        let ttl_ns = checked.user.resp.unwrap().ttl;
        assert!(
            i64::try_from(ttl_ns).is_ok(),
            "{ttl_ns} overflows a Go Duration"
        );
        g.responses.as_mut().unwrap().ttl_ms = MAX_RESPONSE_TTL_MS + 1;
        let reason = rules()
            .admit(&g, &from("127.0.0.1"))
            .unwrap_err()
            .to_string();
        assert!(reason.contains("time.Duration"), "{reason}");
    }

    #[test]
    fn refuses_per_user_limits_nobody_enforces() {
        for (what, set) in [
            (
                "subs",
                (|g: &mut Grant, v| g.limits.subs = v) as fn(&mut Grant, Option<i64>),
            ),
            ("data", |g, v| g.limits.data = v),
            ("payload", |g, v| g.limits.payload = v),
        ] {
            let mut g = grant("APP");
            // "No limit", said either way, is accepted and written as -1.
            for unlimited in [None, Some(-1)] {
                set(&mut g, unlimited);
                let checked = rules().admit(&g, &from("127.0.0.1")).unwrap();
                assert_eq!(
                    (checked.user.subs, checked.user.data, checked.user.payload),
                    (-1, -1, -1)
                );
            }
            for value in [0, 5, -2, i64::MIN, i64::MAX] {
                set(&mut g, Some(value));
                let reason = rules()
                    .admit(&g, &from("127.0.0.1"))
                    .unwrap_err()
                    .to_string();
                assert!(
                    reason.contains(&format!(
                        "limits.{what} = {value}, which nats-server does not enforce"
                    )),
                    "{reason}"
                );
            }
        }
    }

    #[test]
    fn refuses_tags_and_names_with_control_characters() {
        for bad in [
            "two\nlines",
            "nul\0",
            "esc\u{1b}[31m",
            "",
            "  ",
            "rtl\u{202e}",
        ] {
            let mut g = grant("APP");
            g.tags = vec![bad.into()];
            assert!(
                rules().admit(&g, &from("127.0.0.1")).is_err(),
                "tag {bad:?} accepted"
            );
            let mut g = grant("APP");
            g.name = Some(format!("n{bad}"));
            let accepted = rules().admit(&g, &from("127.0.0.1")).is_ok();
            assert_eq!(accepted, bad.trim().is_empty(), "name n{bad:?}");
        }
    }

    #[test]
    fn enforces_connection_types_from_the_request() {
        use ConnectionType::*;
        let admitted = |types: &[ConnectionType], request: &AuthorizationRequest| {
            let mut g = grant("APP");
            g.connection_types = types.to_vec();
            rules().admit(&g, request).is_ok()
        };
        let tcp = from("10.0.0.1");
        let websocket = client(Some("10.0.0.1"), "Client", Some("websocket"));
        let mqtt = client(Some("10.0.0.1"), "Client", Some("mqtt"));
        let leaf = client(Some("10.0.0.1"), "Leafnode", None);
        let in_process = client(None, "Client", Some("nats"));
        let unknown = client(Some("10.0.0.1"), "JetStream", None);
        // No restriction: everyone.
        for request in [&tcp, &websocket, &mqtt, &leaf, &in_process, &unknown] {
            assert!(admitted(&[], request));
        }
        assert!(admitted(&[Standard], &tcp));
        assert!(!admitted(&[Websocket], &tcp));
        assert!(!admitted(&[Mqtt, Websocket], &tcp));
        assert!(admitted(&[Websocket], &websocket));
        assert!(!admitted(&[Standard], &websocket));
        // Ambiguous transports need every type they may be.
        assert!(!admitted(&[Mqtt], &mqtt));
        assert!(admitted(&[Mqtt, MqttWebsocket], &mqtt));
        assert!(!admitted(&[Leafnode], &leaf));
        assert!(admitted(&[Leafnode, LeafnodeWebsocket], &leaf));
        assert!(!admitted(&[Standard], &in_process));
        assert!(admitted(&[Standard, InProcess], &in_process));
        assert!(!admitted(
            &[Standard, Websocket, Mqtt, MqttWebsocket],
            &unknown
        ));
        let mut g = grant("APP");
        g.connection_types = vec![Websocket];
        let reason = rules().admit(&g, &tcp).unwrap_err().to_string();
        assert_eq!(
            reason,
            "client connects as STANDARD, outside the granted connection types [WEBSOCKET]"
        );
    }
}
