//! Routes: which tenant a request belongs to, read from what the client
//! sent, or the certificate nats-server verified (`[tenant.route]` in
//! `callout.toml`). Routes are declarative and
//! checked in order; the first tenant whose route matches takes the request.

use crate::config::RouteConfig;
use crate::protocol::claims::AuthorizationRequest;
use crate::protocol::client_cert::{subject_has, verified_subjects};

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
        && route.tls_subject.as_ref().is_none_or(|wanted| {
            // Parsed only for tenants routed by certificate.
            let tls = request.client_tls.as_ref();
            tls.is_some_and(|tls| {
                verified_subjects(tls).any(|subject| subject_has(&subject, wanted))
            })
        })
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
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec!["client".to_string()]).unwrap();
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
        // Any verified chain may match; one that does not parse never does.
        let globex = chain(&[(DnType::OrganizationName, "Globex")]);
        let several = with_tls(ClientTls {
            verified_chains: vec![
                vec!["-----BEGIN CERTIFICATE-----\ngarbage".into()],
                globex,
                acme,
            ],
            ..ClientTls::default()
        });
        assert!(matches(&subject_route(&[("O", "Açme")]), &several));
        assert!(matches(&subject_route(&[("O", "Globex")]), &several));
        assert!(!matches(&subject_route(&[("O", "Initech")]), &several));
    }
}
