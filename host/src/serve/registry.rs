//! The registry: verifies each request once, then routes it to the binding
//! of the issuer account it names (`sub`). Each binding sits in a swappable
//! cell: replacing it (a reload) takes effect for the next request, while
//! requests in flight finish on the binding they started with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::binding::Binding;
use crate::authz::DecisionRecord;
use crate::protocol::verify::{DropReason, VerifiedRequest, Verifier};
use crate::untrusted::Quoted;

/// The bindings one subscription serves, by issuer account.
pub struct Registry<B = Binding> {
    verifier: Verifier,
    bindings: BTreeMap<String, ArcSwap<B>>,
}

/// A request answered: the response to publish (none for a silent deny) and
/// the record of the decision.
pub struct Handled {
    pub reply: Option<Vec<u8>>,
    pub record: DecisionRecord,
}

impl<B> Registry<B> {
    pub fn new(verifier: Verifier) -> Registry<B> {
        Registry {
            verifier,
            bindings: BTreeMap::new(),
        }
    }

    /// Adds `binding` for requests naming `issuer` (an account public key).
    pub(crate) fn insert(&mut self, issuer: String, binding: B) {
        self.bindings.insert(issuer, ArcSwap::from_pointee(binding));
    }

    /// Replaces the binding for `issuer` and returns the one it replaced;
    /// `None` (and no change) when no binding serves `issuer`. This is the
    /// reload hook: a new binding is built off the request path, then
    /// swapped in.
    pub(crate) fn replace(&self, issuer: &str, binding: B) -> Option<Arc<B>> {
        let cell = self.bindings.get(issuer)?;
        Some(cell.swap(Arc::new(binding)))
    }

    /// The issuer accounts served.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }

    /// The current binding of every issuer.
    pub fn bindings(&self) -> impl Iterator<Item = Arc<B>> + '_ {
        self.bindings.values().map(ArcSwap::load_full)
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Verifies a message and finds the binding that answers it.
    pub fn open(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<(VerifiedRequest, Arc<B>), DropReason> {
        let request = self.verifier.open(payload, xkey_header)?;
        let binding = self.route(&request)?;
        Ok((request, binding))
    }

    /// The binding of the issuer the request names.
    fn route(&self, request: &VerifiedRequest) -> Result<Arc<B>, DropReason> {
        match self.bindings.get(request.issuer()) {
            Some(cell) => Ok(cell.load_full()),
            None => Err(DropReason::UnknownIssuer {
                requested: Quoted::new(request.issuer()),
                served: self.issuers().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

impl Registry<Binding> {
    /// Adds `binding` for the requests that name its account.
    pub fn add(&mut self, binding: Binding) {
        self.insert(binding.account().to_string(), binding);
    }

    /// Replaces the binding of the same account, for the next requests;
    /// `None` (and no change) when no binding serves that account.
    pub fn replace_binding(&self, binding: Binding) -> Option<Arc<Binding>> {
        let account = binding.account().to_string();
        self.replace(&account, binding)
    }

    /// One message, start to finish: open and verify it, route it, decide,
    /// sign (and seal) the response.
    pub async fn handle(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<Handled, DropReason> {
        let started = Instant::now();
        let (request, binding) = self.open(payload, xkey_header)?;
        let mut verdict = binding.decide(&request).await;
        let seal = match (self.verifier.xkey(), &request.server_xkey) {
            (Some(own), Some(server)) => Some((own, server.as_str())),
            _ => None,
        };
        let reply = binding.respond(&request, &mut verdict, seal);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let record = DecisionRecord::new(request.request(), &verdict, reply.is_none(), micros);
        Ok(Handled { reply, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DenyMode;
    use crate::protocol::claims::{AuthorizationResponse, ConnectOpts, User};
    use crate::protocol::jwt::{self, Claims};
    use crate::protocol::xkey::SealedBoxes;
    use crate::testing::{FakeServer, FakeService, token_table_registry};
    use nkeys::XKey;

    fn token(token: &str) -> ConnectOpts {
        ConnectOpts {
            auth_token: Some(token.into()),
            ..ConnectOpts::default()
        }
    }

    /// A request from a client with `opts`, for the registry's issuer.
    fn message(
        server: &FakeServer,
        registry: &Registry,
        opts: ConnectOpts,
        sealed_to: Option<&XKey>,
    ) -> (Vec<u8>, Option<String>) {
        let issuer = registry.issuers().next().expect("a binding");
        server.encode(issuer, server.request(opts, sealed_to.is_some()), sealed_to)
    }

    fn response(
        server: &FakeServer,
        handled: &Handled,
        sealed_by: Option<&XKey>,
    ) -> AuthorizationResponse {
        let reply = handled.reply.as_deref().expect("a reply");
        server
            .open_response(reply, sealed_by)
            .expect("a response")
            .nats
    }

    #[tokio::test]
    async fn handles_allows_and_denies_with_typed_reasons() {
        let registry = token_table_registry(None, DenyMode::Error).await;
        let server = FakeServer::default();

        let (payload, _) = message(&server, &registry, token("s3cr3t"), None);
        let allowed = registry.handle(&payload, None).await.expect("answered");
        assert!(allowed.record.allowed() && allowed.record.deny.is_none());
        let user_jwt = response(&server, &allowed, None).jwt.expect("a user JWT");
        let user: Claims<User> = jwt::decode(&user_jwt).expect("a signed user JWT");
        assert_eq!(user.aud.as_deref(), Some("APP"));
        assert_eq!(user.iss, registry.issuers().next().unwrap());
        assert_eq!(user.nats.publish.allow, ["app.>"]);

        let (payload, _) = message(&server, &registry, token("guess"), None);
        let denied = registry.handle(&payload, None).await.expect("answered");
        let reason = denied.record.deny.clone().expect("denied");
        assert_eq!(reason.class(), ("policy", "denied"));
        assert_eq!(reason.text(), "policy denied: unknown token");
        assert_eq!(
            response(&server, &denied, None).error.as_deref(),
            Some("policy denied: unknown token")
        );
    }

    #[tokio::test]
    async fn a_silent_deny_has_no_reply_but_a_record() {
        let registry = token_table_registry(None, DenyMode::Silent).await;
        let server = FakeServer::default();
        let (payload, _) = message(&server, &registry, token("guess"), None);
        let handled = registry.handle(&payload, None).await.expect("answered");
        assert!(handled.reply.is_none());
        assert!(handled.record.silent && !handled.record.allowed());
    }

    #[tokio::test]
    async fn with_an_xkey_replies_are_sealed_and_plaintext_is_refused() {
        let own = XKey::new();
        let boxes = SealedBoxes::from_seed(&own.seed().unwrap()).unwrap();
        let registry = token_table_registry(Some(Arc::new(boxes)), DenyMode::Error).await;
        let server = FakeServer::default();
        let own_public = XKey::from_public_key(&own.public_key()).unwrap();

        let (payload, header) = message(&server, &registry, token("s3cr3t"), Some(&own_public));
        let handled = registry
            .handle(&payload, header.as_deref())
            .await
            .expect("answered");
        assert!(
            !handled.reply.as_deref().unwrap().starts_with(b"eyJ"),
            "sealed"
        );
        assert!(response(&server, &handled, Some(&own_public)).jwt.is_some());

        let (plain, _) = message(&server, &registry, token("s3cr3t"), None);
        let refused = registry.handle(&plain, None).await.expect("answered");
        assert_eq!(
            refused.record.deny.expect("denied").class(),
            ("request", "not_encrypted")
        );
    }

    #[tokio::test]
    async fn garbage_is_dropped_for_a_reason() {
        let registry = token_table_registry(None, DenyMode::Error).await;
        let dropped = registry
            .handle(b"eyJnot a jwt", None)
            .await
            .err()
            .expect("dropped");
        assert_eq!(dropped.kind(), "malformed");
    }

    #[test]
    fn routes_by_issuer_and_names_the_ones_it_serves() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut registry: Registry<&str> = Registry::new(service.verifier(false));
        registry.insert(service.issuer.clone(), "first");
        let (payload, _) = server.encode(
            &service.issuer,
            server.request(ConnectOpts::default(), false),
            None,
        );
        let (_, binding) = registry.open(&payload, None).unwrap();
        assert_eq!(*binding, "first");

        let other = nkeys::KeyPair::new_account().public_key();
        let (payload, _) =
            server.encode(&other, server.request(ConnectOpts::default(), false), None);
        let error = registry.open(&payload, None).err().expect("dropped");
        assert_eq!(error.kind(), "unknown_issuer");
        assert!(error.to_string().contains(&service.issuer), "{error}");
    }

    #[test]
    fn a_replaced_binding_serves_new_requests_while_old_ones_finish_on_theirs() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut registry: Registry<String> = Registry::new(service.verifier(false));
        registry.insert(service.issuer.clone(), "v1".into());
        let request = || {
            server
                .encode(
                    &service.issuer,
                    server.request(ConnectOpts::default(), false),
                    None,
                )
                .0
        };
        let (_, in_flight) = registry.open(&request(), None).unwrap();
        let replaced = registry
            .replace(&service.issuer, "v2".into())
            .expect("served");
        assert_eq!(*replaced, "v1");
        assert_eq!(*in_flight, "v1", "a request in flight keeps its binding");
        let (_, next) = registry.open(&request(), None).unwrap();
        assert_eq!(*next, "v2");
        assert!(registry.replace("ANOBODY", "v3".into()).is_none());
    }
}
