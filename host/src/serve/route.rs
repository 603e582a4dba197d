//! Routes: which tenant a request belongs to, read from what the client
//! sent, or the certificate nats-server verified (`[tenant.route]` in
//! `callout.toml`). Routes are declarative and
//! checked in order; the first tenant whose route matches takes the request.

use std::cell::OnceCell;

use crate::config::RouteConfig;
use crate::protocol::claims::AuthorizationRequest;
use crate::protocol::client_cert::{SubjectAttribute, subject_has, verified_subject};

/// A request being routed: what the routes read from it, with the client
/// certificate's subject parsed at most once, and only if a route asks.
pub struct Routing<'a> {
    request: &'a AuthorizationRequest,
    subject: OnceCell<Vec<SubjectAttribute>>,
}

impl<'a> Routing<'a> {
    pub fn new(request: &'a AuthorizationRequest) -> Routing<'a> {
        Routing {
            request,
            subject: OnceCell::new(),
        }
    }

    /// Whether `route` takes the request: every key the route gives must
    /// match, and a key whose field the client did not send does not.
    pub fn matches(&self, route: &RouteConfig) -> bool {
        route_matches(route, self.request)
            && route.tls_subject.as_ref().is_none_or(|wanted| {
                let subject = self.subject.get_or_init(|| {
                    let tls = self.request.client_tls.as_ref();
                    tls.map(verified_subject).unwrap_or_default()
                });
                subject_has(subject, wanted)
            })
    }
}

/// Whether the keys of `route` read from what the client sent match.
fn route_matches(route: &RouteConfig, request: &AuthorizationRequest) -> bool {
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
    use crate::protocol::claims::{ClientTls, ConnectOpts};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    fn matches(route: &RouteConfig, request: &AuthorizationRequest) -> bool {
        Routing::new(request).matches(route)
    }

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

    /// A leaf certificate with `subject`, and the CA that signed it, as PEM.
    fn chain(subject: &[(DnType, &str)]) -> Vec<String> {
        chain_for(subject, vec!["client".to_string()])
    }

    /// The same, for the names `sans`.
    fn chain_for(subject: &[(DnType, &str)], sans: Vec<String>) -> Vec<String> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(sans).unwrap();
        for (kind, value) in subject {
            leaf.distinguished_name.push(kind.clone(), *value);
        }
        let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
        vec![leaf.pem(), ca.pem()]
    }

    fn with_tls(tls: ClientTls) -> AuthorizationRequest {
        AuthorizationRequest {
            client_tls: Some(tls),
            ..AuthorizationRequest::default()
        }
    }

    fn subject_route(attributes: &[(&str, &str)]) -> RouteConfig {
        RouteConfig {
            tls_subject: Some(
                attributes
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            ),
            ..RouteConfig::default()
        }
    }

    #[test]
    fn a_tls_subject_route_takes_verified_certificates_with_every_attribute() {
        let acme = chain(&[
            (DnType::CommonName, "alice"),
            (DnType::OrganizationName, "Açme"),
            (DnType::OrganizationalUnitName, "iot"),
        ]);
        let verified = with_tls(ClientTls {
            verified_chains: vec![acme.clone()],
            ..ClientTls::default()
        });
        assert!(matches(&subject_route(&[("O", "Açme")]), &verified));
        assert!(matches(
            &subject_route(&[("O", "Açme"), ("OU", "iot"), ("CN", "alice")]),
            &verified
        ));
        assert!(
            !matches(&subject_route(&[("O", "Açme"), ("OU", "web")]), &verified),
            "every attribute must match"
        );
        assert!(
            !matches(&subject_route(&[("O", "açme")]), &verified),
            "compared exactly"
        );
        assert!(
            !matches(&subject_route(&[("CN", "client")]), &verified),
            "subject alternative names are not the subject"
        );
        // The same certificate, presented but not verified by the server.
        let unverified = with_tls(ClientTls {
            certs: vec![acme[0].clone()],
            ..ClientTls::default()
        });
        assert!(!matches(&subject_route(&[("O", "Açme")]), &unverified));
        assert!(!matches(
            &subject_route(&[("O", "Açme")]),
            &request(None, None, None)
        ));
        // Every verified chain starts with the client's leaf: the first is
        // read. A leaf that does not parse, or is too long to, has no subject.
        let globex = chain(&[(DnType::OrganizationName, "Globex")]);
        let several = with_tls(ClientTls {
            verified_chains: vec![globex.clone(), acme.clone()],
            ..ClientTls::default()
        });
        assert!(matches(&subject_route(&[("O", "Globex")]), &several));
        assert!(!matches(&subject_route(&[("O", "Açme")]), &several));
        let garbage = "-----BEGIN CERTIFICATE-----\ngarbage".to_string();
        let many_names = (0..400)
            .map(|i| format!("client-{i}.example.com"))
            .collect();
        let long = chain_for(&[(DnType::OrganizationName, "Açme")], many_names);
        assert!(long[0].len() > 8 * 1024);
        for leaf in [garbage, long[0].clone()] {
            let unreadable = with_tls(ClientTls {
                verified_chains: vec![vec![leaf]],
                ..ClientTls::default()
            });
            assert!(!matches(&subject_route(&[("O", "Açme")]), &unreadable));
        }
    }
}
