//! Building decisions: a [`Grant`] builder and [`Decision`] helpers.

use std::time::Duration;

use crate::{ConnectionType, Decision, Grant, Limits, Permission, ResponsePermission, TimeWindow};

fn strings<I>(items: I) -> impl Iterator<Item = String>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    items.into_iter().map(Into::into)
}

impl Grant {
    /// A grant into `account` (by name, such as `APP`), with the account's
    /// default permissions until you add some.
    pub fn to(account: impl Into<String>) -> Self {
        Grant {
            account: account.into(),
            name: None,
            publish: Permission {
                allow: Vec::new(),
                deny: Vec::new(),
            },
            subscribe: Permission {
                allow: Vec::new(),
                deny: Vec::new(),
            },
            responses: None,
            expires_in_secs: None,
            tags: Vec::new(),
            limits: Limits {
                subs: None,
                data: None,
                payload: None,
                source_cidrs: Vec::new(),
                times: Vec::new(),
                times_location: None,
            },
            connection_types: Vec::new(),
        }
    }

    /// The name shown for the user in monitoring.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Subjects the user may publish to.
    pub fn publish<I: IntoIterator<Item: Into<String>>>(mut self, subjects: I) -> Self {
        self.publish.allow.extend(strings(subjects));
        self
    }

    /// Subjects the user may not publish to.
    pub fn deny_publish<I: IntoIterator<Item: Into<String>>>(mut self, subjects: I) -> Self {
        self.publish.deny.extend(strings(subjects));
        self
    }

    /// Subjects the user may subscribe to (`"subject queue"` names a queue group).
    pub fn subscribe<I: IntoIterator<Item: Into<String>>>(mut self, subjects: I) -> Self {
        self.subscribe.allow.extend(strings(subjects));
        self
    }

    /// Subjects the user may not subscribe to.
    pub fn deny_subscribe<I: IntoIterator<Item: Into<String>>>(mut self, subjects: I) -> Self {
        self.subscribe.deny.extend(strings(subjects));
        self
    }

    /// Lets the user reply to requests it receives: up to `max_messages` replies
    /// per request, within `ttl`.
    pub fn allow_responses(mut self, max_messages: u32, ttl: Duration) -> Self {
        self.responses = Some(ResponsePermission {
            max_messages,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        });
        self
    }

    /// How long the user stays connected before the server disconnects it.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in_secs = Some(lifetime.as_secs());
        self
    }

    /// Tags recorded in the user JWT.
    pub fn tags<I: IntoIterator<Item: Into<String>>>(mut self, tags: I) -> Self {
        self.tags.extend(strings(tags));
        self
    }

    /// Maximum number of subscriptions.
    ///
    /// nats-server does not apply per-user limits to auth callout users, so
    /// nats-callout denies a grant that sets one (other than -1): set `max_subs` in the account's limits instead.
    #[deprecated(
        note = "nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_subs in the account's limits instead"
    )]
    pub fn max_subscriptions(mut self, subs: i64) -> Self {
        self.limits.subs = Some(subs);
        self
    }

    /// Maximum bytes the user may publish in total.
    ///
    /// nats-server does not apply per-user limits to auth callout users, so
    /// nats-callout denies a grant that sets one (other than -1): nats-server has no byte limit for them.
    #[deprecated(
        note = "nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): nats-server has no byte limit for them"
    )]
    pub fn max_data(mut self, bytes: i64) -> Self {
        self.limits.data = Some(bytes);
        self
    }

    /// Maximum size of one message.
    ///
    /// nats-server does not apply per-user limits to auth callout users, so
    /// nats-callout denies a grant that sets one (other than -1): set `max_payload` in the account's limits instead.
    #[deprecated(
        note = "nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_payload in the account's limits instead"
    )]
    pub fn max_payload(mut self, bytes: i64) -> Self {
        self.limits.payload = Some(bytes);
        self
    }

    /// Networks the user may connect from, such as `10.0.0.0/8`.
    pub fn from_networks<I: IntoIterator<Item: Into<String>>>(mut self, cidrs: I) -> Self {
        self.limits.source_cidrs.extend(strings(cidrs));
        self
    }

    /// A daily window (`HH:MM:SS` to `HH:MM:SS`) during which the user may be
    /// connected. Needs [`Grant::in_time_zone`].
    pub fn during(mut self, start: impl Into<String>, end: impl Into<String>) -> Self {
        self.limits.times.push(TimeWindow {
            start: start.into(),
            end: end.into(),
        });
        self
    }

    /// The IANA time zone of the windows given with [`Grant::during`].
    pub fn in_time_zone(mut self, location: impl Into<String>) -> Self {
        self.limits.times_location = Some(location.into());
        self
    }

    /// The connection types the user may use.
    pub fn connection_types<I: IntoIterator<Item = ConnectionType>>(mut self, types: I) -> Self {
        self.connection_types.extend(types);
        self
    }

    /// Admits the user with this grant.
    pub fn allow(self) -> Decision {
        Decision::Allow(self)
    }
}

impl From<Grant> for Decision {
    fn from(grant: Grant) -> Self {
        Decision::Allow(grant)
    }
}

impl Decision {
    /// Refuses the user, with a reason for the operator's logs (never shown to
    /// the client).
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny(reason.into())
    }

    /// Whether this decision admits the user.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The grant, when the decision admits the user.
    pub fn grant(&self) -> Option<&Grant> {
        match self {
            Decision::Allow(grant) => Some(grant),
            Decision::Deny(_) => None,
        }
    }

    /// The reason, when the decision refuses the user.
    pub fn deny_reason(&self) -> Option<&str> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(reason) => Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_fills_every_field() {
        let decision = Grant::to("APP")
            .named("alice")
            .publish(["app.>"])
            .deny_publish(["app.secret"])
            .subscribe(vec!["_INBOX.>".to_string()])
            .deny_subscribe(["app.secret"])
            .allow_responses(1, Duration::from_secs(30))
            .expires_in(Duration::from_secs(600))
            .tags(["team:a"])
            .from_networks(["10.0.0.0/8"])
            .during("08:00:00", "18:00:00")
            .in_time_zone("Europe/Paris")
            .connection_types([ConnectionType::Standard, ConnectionType::Websocket])
            .allow();
        let grant = decision.grant().expect("allow");
        assert_eq!(grant.account, "APP");
        assert_eq!(grant.name.as_deref(), Some("alice"));
        assert_eq!(
            grant.publish,
            Permission {
                allow: vec!["app.>".into()],
                deny: vec!["app.secret".into()]
            }
        );
        assert_eq!(grant.subscribe.allow, ["_INBOX.>"]);
        assert_eq!(
            grant.responses,
            Some(ResponsePermission {
                max_messages: 1,
                ttl_ms: 30_000
            })
        );
        assert_eq!(grant.expires_in_secs, Some(600));
        assert_eq!(grant.limits.subs, None);
        assert_eq!(grant.limits.payload, None);
        assert_eq!(
            grant.limits.times,
            [TimeWindow {
                start: "08:00:00".into(),
                end: "18:00:00".into()
            }]
        );
        assert_eq!(grant.connection_types.len(), 2);
        assert!(decision.deny_reason().is_none());
    }

    #[test]
    fn deny_carries_its_reason() {
        let decision = Decision::deny("nope");
        assert!(!decision.is_allow());
        assert_eq!(decision.deny_reason(), Some("nope"));
        assert!(decision.grant().is_none());
    }
}
