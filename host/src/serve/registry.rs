//! The registry: verifies each request once, then routes it to a tenant —
//! the bindings of the account the request names (`sub`), tried in order by
//! their routes. Each binding sits in a swappable cell: replacing it (a
//! reload) takes effect for the next request, while requests in flight
//! finish on the binding they started with.
//!
//! Fairness: a tenant's requests wait on the tenant's own in-flight budget
//! before they take one of the service's `max_in_flight` slots, so a tenant
//! whose policy burns its whole deadline on every call fills its own share,
//! not everyone's. A request that waited past its expiry is dropped there,
//! before any policy runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use super::binding::Binding;
use super::route;
use crate::authz::{DecisionRecord, DenyReason, Verdict};
use crate::config::{DEFAULT_TENANT, RouteConfig};
use crate::metrics::{CalloutGauges, Phases};
use crate::protocol::verify::{DropReason, VerifiedRequest, Verifier};
use crate::untrusted::Quoted;

/// The tenants one subscription serves, by account.
pub struct Registry<B = Binding> {
    verifier: Verifier,
    accounts: BTreeMap<String, Vec<Tenant<B>>>,
    /// Policy calls running at once, all tenants together (of every
    /// callout: the registries of one service share it).
    in_flight: Arc<Semaphore>,
    /// Requests waiting for their slots, and calls running, for metrics.
    gauges: CalloutGauges,
}

/// One tenant: its route, its binding and its share of the calls.
struct Tenant<B> {
    name: Arc<str>,
    route: RouteConfig,
    binding: ArcSwap<B>,
    budget: Semaphore,
    /// Its requests running or waiting for its share: a tenant with a share
    /// may have [`LINE_PER_SLOT`] times as many waiting, and further ones
    /// are dropped, so a storm against one tenant cannot fill the line of
    /// requests every tenant's messages wait in.
    line: Semaphore,
}

/// How many requests may wait per slot of a tenant's share.
const LINE_PER_SLOT: usize = 8;

/// A request answered: the response to publish (none for a silent deny),
/// the record of the decision, how long each phase took, and the binding
/// that answered (its policy, its audit).
pub struct Handled {
    pub reply: Option<Vec<u8>>,
    pub record: DecisionRecord,
    pub phases: Phases,
    pub binding: Arc<Binding>,
}

impl<B> Registry<B> {
    /// A registry whose calls are bounded only by each tenant's budget.
    pub fn new(verifier: Verifier) -> Registry<B> {
        Registry {
            verifier,
            accounts: BTreeMap::new(),
            in_flight: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            gauges: CalloutGauges::default(),
        }
    }

    /// Requests waiting and calls running move `gauges`.
    pub fn with_gauges(mut self, gauges: CalloutGauges) -> Registry<B> {
        self.gauges = gauges;
        self
    }

    /// Policy calls wait for one of `in_flight`'s permits, all tenants
    /// together (and those of every registry given the same semaphore).
    pub fn with_in_flight(mut self, in_flight: Arc<Semaphore>) -> Registry<B> {
        self.in_flight = in_flight;
        self
    }

    /// Adds `binding` as the one tenant of `account`, taking every request.
    pub(crate) fn insert(&mut self, account: String, binding: B) {
        self.insert_tenant(
            account,
            DEFAULT_TENANT,
            RouteConfig::default(),
            None,
            binding,
        );
    }

    /// Adds a tenant of `account`: after those already added, it takes the
    /// requests its route matches, at most `budget` at once.
    pub(crate) fn insert_tenant(
        &mut self,
        account: String,
        name: &str,
        route: RouteConfig,
        budget: Option<usize>,
        binding: B,
    ) {
        let line = budget.map_or(Semaphore::MAX_PERMITS, |b| {
            b.saturating_mul(LINE_PER_SLOT + 1)
        });
        let budget = budget.unwrap_or(Semaphore::MAX_PERMITS);
        self.accounts.entry(account).or_default().push(Tenant {
            name: name.into(),
            route,
            binding: ArcSwap::from_pointee(binding),
            budget: Semaphore::new(budget.clamp(1, Semaphore::MAX_PERMITS)),
            line: Semaphore::new(line.clamp(1, Semaphore::MAX_PERMITS)),
        });
    }

    /// Replaces the binding of `tenant` of `account` and returns the one it
    /// replaced; `None` (and no change) when there is no such tenant. This
    /// is the reload hook: a new binding is built off the request path,
    /// then swapped in.
    pub(crate) fn replace(&self, account: &str, tenant: &str, binding: B) -> Option<Arc<B>> {
        let tenant = self
            .accounts
            .get(account)?
            .iter()
            .find(|t| &*t.name == tenant)?;
        Some(tenant.binding.swap(Arc::new(binding)))
    }

    /// The accounts served.
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// Every tenant's name and current binding.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, Arc<B>)> + '_ {
        self.accounts
            .values()
            .flatten()
            .map(|tenant| (&*tenant.name, tenant.binding.load_full()))
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Verifies a message and finds the binding that answers it (for a
    /// request no route takes, the account's first).
    pub fn open(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<(VerifiedRequest, Arc<B>), DropReason> {
        let request = self.verifier.open(payload, xkey_header)?;
        let (tenant, _) = self.route(&request)?;
        let binding = tenant.binding.load_full();
        Ok((request, binding))
    }

    /// The tenant whose route takes the request, and whether one did (else
    /// the account's first tenant, whose key signs the deny).
    fn route(&self, request: &VerifiedRequest) -> Result<(&Tenant<B>, bool), DropReason> {
        let tenants = self
            .accounts
            .get(request.issuer())
            .filter(|tenants| !tenants.is_empty())
            .ok_or_else(|| DropReason::UnknownIssuer {
                requested: Quoted::new(request.issuer()),
                served: self.accounts().collect::<Vec<_>>().join(", "),
            })?;
        let routing = route::Routing::new(request.request());
        let routed = tenants.iter().find(|tenant| routing.matches(&tenant.route));
        Ok(match routed {
            Some(tenant) => (tenant, true),
            None => (&tenants[0], false),
        })
    }
}

impl Registry<Binding> {
    /// Adds `binding` as the one tenant of its account.
    pub fn add(&mut self, binding: Binding) {
        self.insert(binding.account().to_string(), binding);
    }

    /// Replaces the binding of tenant `tenant` of the binding's account, for
    /// the next requests; `None` (and no change) when there is none.
    pub fn replace_binding(&self, tenant: &str, binding: Binding) -> Option<Arc<Binding>> {
        let account = binding.account().to_string();
        self.replace(&account, tenant, binding)
    }

    /// One message, start to finish: open and verify it, route it, wait for
    /// the tenant's and the service's slots, decide, sign (and seal) the
    /// response.
    pub async fn handle(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
    ) -> Result<Handled, DropReason> {
        let started = Instant::now();
        let mut phases = Phases::default();
        let request = self.verifier.open(payload, xkey_header)?;
        let (tenant, routed) = self.route(&request)?;
        phases.verify = started.elapsed();
        let binding = tenant.binding.load_full();
        let mut verdict = if routed {
            let Ok(_in_line) = tenant.line.try_acquire() else {
                return Err(DropReason::TenantBusy(tenant.name.clone()));
            };
            let waiting = Instant::now();
            let queued = self.gauges.queued();
            // The semaphores are never closed: acquiring only waits.
            let _tenant_slot = tenant.budget.acquire().await;
            let _service_slot = self.in_flight.acquire().await;
            drop(queued);
            phases.wait = waiting.elapsed();
            if let Some(late) = self.verifier.late_secs(&request) {
                return Err(DropReason::Expired(late));
            }
            let _running = self.gauges.in_flight();
            let verdict = binding.decide(&request, &mut phases).await;
            if let Some(shadow) = binding.shadow() {
                shadow.offer(&request, &verdict);
            }
            verdict
        } else {
            Verdict::Deny(DenyReason::NoRoute)
        };
        let seal = match (self.verifier.xkey(), &request.server_xkey) {
            (Some(own), Some(server)) => Some((own, server.as_str())),
            _ => None,
        };
        let responding = Instant::now();
        let reply = binding.respond(&request, &mut verdict, seal);
        phases.respond = responding.elapsed();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let tenant_name = if routed { &*tenant.name } else { "-" };
        let record = DecisionRecord::new(
            request.request(),
            tenant_name,
            &verdict,
            reply.is_none(),
            micros,
        );
        Ok(Handled {
            reply,
            record,
            phases,
            binding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DenyMode, RouteConfig};
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
        let issuer = registry.accounts().next().expect("a binding");
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
        assert_eq!(user.iss, registry.accounts().next().unwrap());
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
        let error = registry.open(&payload, None).expect_err("dropped");
        assert_eq!(error.kind(), "unknown_issuer");
        assert!(error.to_string().contains(&service.issuer), "{error}");
    }

    #[test]
    fn tenants_of_one_account_are_tried_in_order_by_their_routes() {
        let service = FakeService::default();
        let server = FakeServer::default();
        let mut registry: Registry<&str> = Registry::new(service.verifier(false));
        let route = |suffix: &str| RouteConfig {
            user_suffix: Some(suffix.into()),
            ..RouteConfig::default()
        };
        registry.insert_tenant(
            service.issuer.clone(),
            "acme",
            route("@acme"),
            Some(2),
            "acme's",
        );
        registry.insert_tenant(
            service.issuer.clone(),
            "globex",
            route("@globex"),
            None,
            "globex's",
        );
        let user = |name: &str| ConnectOpts {
            user: Some(name.into()),
            ..ConnectOpts::default()
        };
        let open = |name: &str| {
            let (payload, _) =
                server.encode(&service.issuer, server.request(user(name), false), None);
            let request = registry.verifier().open(&payload, None).unwrap();
            let (tenant, routed) = registry.route(&request).unwrap();
            (tenant.name.to_string(), routed)
        };
        assert_eq!(open("a@acme"), ("acme".to_string(), true));
        assert_eq!(open("g@globex"), ("globex".to_string(), true));
        // No route takes it: the account's first tenant signs the deny.
        assert_eq!(open("mallory"), ("acme".to_string(), false));
        let names: Vec<&str> = registry.tenants().map(|(name, _)| name).collect();
        assert_eq!(names, ["acme", "globex"]);
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
            .replace(&service.issuer, DEFAULT_TENANT, "v2".into())
            .expect("served");
        assert_eq!(*replaced, "v1");
        assert_eq!(*in_flight, "v1", "a request in flight keeps its binding");
        let (_, next) = registry.open(&request(), None).unwrap();
        assert_eq!(*next, "v2");
        assert!(
            registry
                .replace("ANOBODY", DEFAULT_TENANT, "v3".into())
                .is_none()
        );
        assert!(
            registry
                .replace(&service.issuer, "nobody", "v3".into())
                .is_none()
        );
    }
}
