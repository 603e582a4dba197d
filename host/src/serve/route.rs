//! Routes: which tenant a request belongs to, read from what the client
//! sent (`[tenant.route]` in `callout.toml`). Routes are declarative and
//! checked in order; the first tenant whose route matches takes the request.

use crate::config::RouteConfig;
use crate::protocol::claims::AuthorizationRequest;

/// Whether `request` is one `route` takes: every key the route gives must
/// match, and a key whose field the client did not send does not.
pub fn matches(route: &RouteConfig, request: &AuthorizationRequest) -> bool {
    let opts = &request.connect_opts;
    let user = opts.user.as_deref();
    let suffix = |sent: &str, wanted: &str| sent.ends_with(wanted);
    let prefix = |sent: &str, wanted: &str| sent.starts_with(wanted);
    holds(&route.user_suffix, user, suffix)
        && holds(&route.user_prefix, user, prefix)
        && holds(&route.token_prefix, opts.auth_token.as_deref(), prefix)
        && holds(&route.connection_name_prefix, opts.name.as_deref(), prefix)
}

/// Whether one key of a route holds: not given, or given and `test` passes
/// on what the client sent.
fn holds(wanted: &Option<String>, sent: Option<&str>, test: impl Fn(&str, &str) -> bool) -> bool {
    match wanted {
        None => true,
        Some(wanted) => sent.is_some_and(|sent| test(sent, wanted)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::claims::ConnectOpts;

    fn request(
        user: Option<&str>,
        token: Option<&str>,
        name: Option<&str>,
    ) -> AuthorizationRequest {
        AuthorizationRequest {
            connect_opts: ConnectOpts {
                user: user.map(Into::into),
                auth_token: token.map(Into::into),
                name: name.map(Into::into),
                ..ConnectOpts::default()
            },
            ..AuthorizationRequest::default()
        }
    }

    #[test]
    fn every_given_key_must_match() {
        let acme = RouteConfig {
            user_suffix: Some("@acme".into()),
            ..RouteConfig::default()
        };
        assert!(matches(&acme, &request(Some("alice@acme"), None, None)));
        assert!(!matches(
            &acme,
            &request(Some("alice@acme.evil"), None, None)
        ));
        assert!(
            !matches(&acme, &request(None, Some("x@acme"), None)),
            "no user name sent"
        );

        let both = RouteConfig {
            token_prefix: Some("acme_".into()),
            connection_name_prefix: Some("acme-".into()),
            ..RouteConfig::default()
        };
        assert!(matches(
            &both,
            &request(None, Some("acme_123"), Some("acme-web"))
        ));
        assert!(!matches(
            &both,
            &request(None, Some("acme_123"), Some("other"))
        ));
        assert!(!matches(
            &both,
            &request(None, Some("globex_1"), Some("acme-web"))
        ));

        let prefix = RouteConfig {
            user_prefix: Some("svc-".into()),
            ..RouteConfig::default()
        };
        assert!(matches(&prefix, &request(Some("svc-billing"), None, None)));
        assert!(
            matches(&RouteConfig::default(), &request(None, None, None)),
            "a catch-all"
        );
    }
}
