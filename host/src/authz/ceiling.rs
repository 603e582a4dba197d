//! Ceilings: the most an operator lets a policy ever grant — the subjects
//! it may allow for publish and subscribe, the longest lifetime, the
//! connection types. A grant above the ceiling is denied with a reason
//! naming the subject or the limit.
//!
//! Subjects are compared as NATS matches them: a granted subject is inside
//! the ceiling when every subject it matches is matched by one of the
//! ceiling's patterns (`acme.*.x` is inside `acme.>`; `>` is not; `$SYS`
//! and `$JS` subjects are ordinary tokens, as they are to nats-server's
//! permissions). A subscribe entry with a queue group is checked by its
//! subject.
//!
//! An empty allow list means "the account's defaults" to nats-server —
//! usually everything. Under a ceiling it means the ceiling: the host
//! replaces it with the ceiling's patterns (keeping the grant's deny list),
//! so a policy that sets no permissions never slips past the ceiling. (A
//! publish permission with only a reply permission is left alone: it allows
//! replies and nothing else.) Likewise no connection types means the
//! ceiling's, and a policy that sets no lifetime gets at most the ceiling's.
//!
//! Reply permissions (`responses`) escape any publish ceiling — a user may
//! answer any message it receives on the message's reply subject, whatever
//! the sender chose — so under a publish ceiling they are refused unless the
//! operator allows them (`responses = true`).

use super::rules::{RuleRefusal, connection_type};
use crate::policy::wit::{ConnectionType, Grant, Permission};
use crate::untrusted::Quoted;

/// The most a policy may grant. Each part is optional: what is `None` is
/// not capped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ceiling {
    pub publish: Option<Vec<String>>,
    pub subscribe: Option<Vec<String>>,
    /// Whether a policy may grant reply permissions (`responses`) under a
    /// publish ceiling: a user with one may publish to the reply subject of
    /// any message it receives, whatever that subject is — outside the
    /// ceiling, too. Off unless the operator turns it on.
    pub responses: bool,
    pub max_lifetime_secs: Option<u64>,
    pub connection_types: Option<Vec<ConnectionType>>,
}

impl Ceiling {
    /// `grant` held to the ceiling: unchanged, filled in where it left a
    /// part unset, or refused.
    pub fn apply(&self, grant: &Grant) -> Result<Grant, RuleRefusal> {
        let mut grant = grant.clone();
        let replies_only = grant.responses.is_some();
        if replies_only && self.publish.is_some() && !self.responses {
            return Err(RuleRefusal::ResponsesAboveCeiling);
        }
        if let Some(ceiling) = &self.publish {
            cap(&mut grant.publish, ceiling, "publish", replies_only)?;
        }
        if let Some(ceiling) = &self.subscribe {
            cap(&mut grant.subscribe, ceiling, "subscribe", false)?;
        }
        if let (Some(max), Some(asked)) = (self.max_lifetime_secs, grant.expires_in_secs)
            && asked > max
        {
            return Err(RuleRefusal::LifetimeAboveCeiling { asked, max });
        }
        if let Some(allowed) = &self.connection_types {
            if grant.connection_types.is_empty() {
                grant.connection_types = allowed.clone();
            } else if let Some(outside) =
                grant.connection_types.iter().find(|t| !allowed.contains(t))
            {
                return Err(RuleRefusal::ConnectionTypeAboveCeiling(connection_type(
                    *outside,
                )));
            }
        }
        Ok(grant)
    }

    /// The lifetime a grant without one gets: the default, at most the
    /// ceiling's.
    pub fn default_lifetime(&self, default_secs: u64) -> u64 {
        self.max_lifetime_secs
            .map_or(default_secs, |max| default_secs.min(max))
    }
}

/// Holds one permission's allow list to `ceiling`.
fn cap(
    permission: &mut Permission,
    ceiling: &[String],
    what: &'static str,
    replies_only: bool,
) -> Result<(), RuleRefusal> {
    if permission.allow.is_empty() {
        if !replies_only {
            permission.allow = ceiling.to_vec();
        }
        return Ok(());
    }
    for entry in &permission.allow {
        // `subject queue` for a queue subscription.
        let subject = entry
            .split_once(' ')
            .map_or(entry.as_str(), |(subject, _)| subject);
        if !ceiling.iter().any(|pattern| covers(pattern, subject)) {
            return Err(RuleRefusal::SubjectAboveCeiling {
                what,
                subject: Quoted::new(entry),
            });
        }
    }
    Ok(())
}

/// Whether every subject `subject` matches is matched by `pattern` (both
/// may hold `*` and `>` wildcards).
pub fn covers(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            // `>` matches one or more tokens, whatever they are.
            (Some(">"), Some(_)) => return true,
            // Several tokens (or one of any value) need `>` or `*` above.
            (Some(_), Some(">")) => return false,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s && s != "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rules::tests::blank_grant;

    #[test]
    fn subjects_are_inside_a_pattern_as_nats_matches_them() {
        let inside = [
            ("acme.>", "acme.orders"),
            ("acme.>", "acme.*.x"),
            ("acme.>", "acme.>"),
            ("acme.>", "acme.a.b.c"),
            ("acme.*.x", "acme.eu.x"),
            ("acme.*.x", "acme.*.x"),
            ("acme.*", "acme.*"),
            ("*.x", "acme.x"),
            (">", ">"),
            (">", "a"),
            (">", "$SYS.REQ.USER.INFO"),
            ("$JS.API.>", "$JS.API.STREAM.INFO.*"),
            ("a.b", "a.b"),
        ];
        for (pattern, subject) in inside {
            assert!(covers(pattern, subject), "{subject} is inside {pattern}");
        }
        let outside = [
            ("acme.>", ">"),
            ("acme.>", "acme"),
            ("acme.>", "*.orders"),
            ("acme.>", "acmex.y"),
            ("acme.*.x", "acme.>"),
            ("acme.*.x", "acme.eu.y"),
            ("acme.*.x", "acme.eu.x.y"),
            ("acme.*", "acme.a.b"),
            ("acme.*", "acme.>"),
            ("acme.orders", "acme.*"),
            ("acme.orders", "acme.orders.new"),
            ("a.b", "a"),
            ("a.*", "a"),
            ("$SYS.>", "$JS.API.x"),
            ("a.b", ">"),
        ];
        for (pattern, subject) in outside {
            assert!(
                !covers(pattern, subject),
                "{subject} is not inside {pattern}"
            );
        }
    }

    fn grant(publish: &[&str], subscribe: &[&str]) -> Grant {
        let list = |subjects: &[&str]| subjects.iter().map(|s| s.to_string()).collect();
        let mut grant = blank_grant("APP");
        grant.publish.allow = list(publish);
        grant.subscribe.allow = list(subscribe);
        grant
    }

    fn acme() -> Ceiling {
        Ceiling {
            publish: Some(vec!["acme.>".into()]),
            subscribe: Some(vec!["acme.>".into(), "_INBOX.>".into()]),
            responses: false,
            max_lifetime_secs: Some(600),
            connection_types: Some(vec![ConnectionType::Standard, ConnectionType::Websocket]),
        }
    }

    #[test]
    fn a_grant_inside_the_ceiling_passes_unchanged_but_for_unset_parts() {
        let inside = grant(&["acme.orders.*"], &["acme.> workers", "_INBOX.>"]);
        let applied = acme().apply(&inside).unwrap();
        assert_eq!(applied.publish.allow, inside.publish.allow);
        assert_eq!(applied.subscribe.allow, inside.subscribe.allow);
        assert_eq!(applied.expires_in_secs, None);
        assert_eq!(
            acme().default_lifetime(3600),
            600,
            "no lifetime: at most the ceiling's"
        );
        assert_eq!(acme().default_lifetime(60), 60);
        assert_eq!(
            applied.connection_types,
            [ConnectionType::Standard, ConnectionType::Websocket]
        );
    }

    #[test]
    fn reply_permissions_are_refused_under_a_publish_ceiling_unless_allowed() {
        let mut replies = grant(&["acme.x"], &["acme.x"]);
        replies.responses = Some(
            crate::policy::wit::nats::callout::types::ResponsePermission {
                max_messages: 100,
                ttl_ms: 60_000,
            },
        );
        let error = acme().apply(&replies).unwrap_err();
        assert_eq!(error, RuleRefusal::ResponsesAboveCeiling);
        assert!(error.to_string().contains("reply"), "{error}");
        let allowed = Ceiling {
            responses: true,
            ..acme()
        };
        assert!(allowed.apply(&replies).is_ok());
        // Without a publish ceiling there is nothing to escape.
        assert!(Ceiling::default().apply(&replies).is_ok());
    }

    #[test]
    fn a_grant_above_the_ceiling_is_refused_naming_the_subject_or_limit() {
        let error = acme().apply(&grant(&["acme.x", ">"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "policy granted the publish subject \">\", which is outside the operator's ceiling"
        );
        let error = acme()
            .apply(&grant(&[], &["other.> q"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("subscribe subject \"other.> q\""), "{error}");
        let mut long = grant(&[], &[]);
        long.expires_in_secs = Some(601);
        let error = acme().apply(&long).unwrap_err().to_string();
        assert!(
            error.contains("601 s") && error.contains("600 s"),
            "{error}"
        );
        let mut mqtt = grant(&[], &[]);
        mqtt.connection_types = vec![ConnectionType::Mqtt];
        let error = acme().apply(&mqtt).unwrap_err();
        assert_eq!(error.kind(), "ceiling");
        assert!(error.to_string().contains("MQTT"), "{error}");
    }

    #[test]
    fn an_empty_allow_list_becomes_the_ceiling_and_never_everything() {
        let mut empty = grant(&[], &[]);
        empty.publish.deny = vec!["acme.secret.>".into()];
        let applied = acme().apply(&empty).unwrap();
        assert_eq!(applied.publish.allow, ["acme.>"]);
        assert_eq!(
            applied.publish.deny,
            ["acme.secret.>"],
            "the deny list stays"
        );
        assert_eq!(applied.subscribe.allow, ["acme.>", "_INBOX.>"]);
        // A reply permission alone allows replies only: left alone.
        let mut replies = grant(&[], &[]);
        replies.responses = Some(
            crate::policy::wit::nats::callout::types::ResponsePermission {
                max_messages: 1,
                ttl_ms: 1000,
            },
        );
        let with_replies = Ceiling {
            responses: true,
            ..acme()
        };
        assert!(
            with_replies
                .apply(&replies)
                .unwrap()
                .publish
                .allow
                .is_empty()
        );
        // No ceiling on a part: nothing changes there.
        let open = Ceiling::default().apply(&grant(&[], &[])).unwrap();
        assert!(open.publish.allow.is_empty() && open.connection_types.is_empty());
        assert_eq!(Ceiling::default().default_lifetime(3600), 3600);
    }
}
