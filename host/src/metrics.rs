//! Metrics: what the service counts as it answers — decisions by outcome
//! and reason, dropped requests, policy failures, latency per phase,
//! compiled-cache hits, NATS reconnects, reloads — kept in a
//! Prometheus/OpenMetrics registry (the Prometheus project's
//! `prometheus-client`) and served at `/metrics` (`serve/status.rs`).
//! State read at scrape time (connections, loaded policies, instance pools)
//! is added by a collector the serving side registers.
//!
//! Latencies are histograms in microseconds, as the decision lines log them.
//! This module uses nothing else of the host: the layers report to it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The service's metrics. Cheap to update from any task; one per process.
pub struct Metrics {
    registry: Mutex<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    policy_failures: Family<FailureLabels, Counter>,
    request_time: Family<TenantLabels, Histogram, fn() -> Histogram>,
    phase_time: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    compiled_cache: Family<CacheLabels, Counter>,
    nats_events: Family<NatsEventLabels, Counter>,
    queued: Family<CalloutLabels, Gauge>,
    in_flight: Family<CalloutLabels, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
    last_reload_successful: Gauge,
    shadow: Family<ShadowLabels, Counter>,
    audit_dropped: Counter,
    kv_mirror_current: Family<MirrorLabels, Gauge>,
    oidc_key_fetches: Family<KeyFetchLabels, Counter>,
}

/// A decision as metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct Decided {
    /// `allow`, `deny` or `deny_silent`.
    pub decision: &'static str,
    /// A deny's class and kind (`("policy", "denied")`, `("call", "timeout")`).
    pub class: Option<(&'static str, &'static str)>,
    /// From taking the request to its response.
    pub micros: u64,
}

/// How long each phase of one request took. Phases not reached stay zero
/// and are not observed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Opening (xkey) and verifying the request JWT.
    pub verify: Duration,
    /// Waiting for the tenant's share and the service's slots.
    pub wait: Duration,
    /// The policy call (instance start and `authorize`).
    pub policy: Duration,
    /// Holding the grant to the operator's rules.
    pub rules: Duration,
    /// Minting, signing (and sealing) the response.
    pub respond: Duration,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    callout: Arc<str>,
    tenant: Arc<str>,
    /// `allow`, `deny` or `deny_silent`.
    decision: &'static str,
    /// Where a deny came from (`policy`, `call`, `rule`, `request`,
    /// `tenant`, `response`), `-` for an allow.
    reason_class: &'static str,
    reason_kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    callout: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    callout: Arc<str>,
    tenant: Arc<str>,
    /// `timeout`, `out_of_memory`, `stack_overflow`, `trap`, `host`.
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    callout: Arc<str>,
    tenant: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    callout: Arc<str>,
    tenant: Arc<str>,
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    tenant: Arc<str>,
    /// `hit` or `miss`.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NatsEventLabels {
    callout: Arc<str>,
    /// `connected`, `disconnected`, `slow_consumer`...
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CalloutLabels {
    callout: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    callout: String,
    bucket: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyFetchLabels {
    /// The issuer as configured (operators' values: bounded).
    issuer: String,
    /// `ok` or `failed`.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    tenant: Arc<str>,
    /// `agree`, `decision`, `account`, `grant`, `failed` or `skipped`.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `applied` or `failed`.
    result: &'static str,
}

/// Microseconds from 25 µs to about 1.6 s, doubling.
fn micros_histogram() -> Histogram {
    Histogram::new(exponential_buckets(25.0, 2.0, 17))
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("nats_callout")),
            decisions: Family::default(),
            dropped: Family::default(),
            policy_failures: Family::default(),
            request_time: Family::new_with_constructor(micros_histogram),
            phase_time: Family::new_with_constructor(micros_histogram),
            compiled_cache: Family::default(),
            nats_events: Family::default(),
            queued: Family::default(),
            in_flight: Family::default(),
            reloads: Family::default(),
            last_reload_successful: Gauge::default(),
            shadow: Family::default(),
            audit_dropped: Counter::default(),
            kv_mirror_current: Family::default(),
            oidc_key_fetches: Family::default(),
        };
        let registry = metrics
            .registry
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        registry.register(
            "decisions",
            "Decisions by outcome and reason class",
            metrics.decisions.clone(),
        );
        registry.register(
            "dropped_requests",
            "Requests dropped unanswered (malformed, not for this service, expired, tenant busy)",
            metrics.dropped.clone(),
        );
        registry.register(
            "policy_failures",
            "Policy calls that failed (timeout, out_of_memory, stack_overflow, trap, host), each a deny",
            metrics.policy_failures.clone(),
        );
        let microseconds = || Unit::Other("microseconds".into());
        registry.register_with_unit(
            "request_duration",
            "Time from taking a request to its response, per tenant",
            microseconds(),
            metrics.request_time.clone(),
        );
        registry.register_with_unit(
            "phase_duration",
            "Time of each phase of a request: verify, wait, policy, rules, respond",
            microseconds(),
            metrics.phase_time.clone(),
        );
        registry.register(
            "compiled_cache",
            "Policy loads that found their compiled snapshot in the cache (hit) or built it (miss)",
            metrics.compiled_cache.clone(),
        );
        registry.register(
            "nats_events",
            "NATS connection events per callout connection",
            metrics.nats_events.clone(),
        );
        registry.register(
            "requests_queued",
            "Requests taken from NATS and waiting for a policy slot",
            metrics.queued.clone(),
        );
        registry.register(
            "policy_calls_in_flight",
            "Policy calls running",
            metrics.in_flight.clone(),
        );
        registry.register(
            "reloads",
            "Reloads by result (applied, failed)",
            metrics.reloads.clone(),
        );
        registry.register(
            "last_reload_successful",
            "Whether the last reload was applied (1) or failed (0); 1 before any",
            metrics.last_reload_successful.clone(),
        );
        metrics.last_reload_successful.set(1);
        registry.register(
            "shadow_comparisons",
            "Shadow policy verdicts by result: agree; decision, account or grant (disagreements); failed (the candidate's call failed); skipped (no shadow slot free)",
            metrics.shadow.clone(),
        );
        registry.register(
            "audit_events_dropped",
            "Audit events dropped because their queue was full (NATS or the file slower than decisions)",
            metrics.audit_dropped.clone(),
        );
        registry.register(
            "kv_mirror_current",
            "1 while the host's copy of a granted KV bucket answers reads; 0 while it reads the bucket or may be stale (reads fail as unavailable)",
            metrics.kv_mirror_current.clone(),
        );
        registry.register(
            "oidc_key_fetches",
            "Fetches of an OIDC issuer's keys (discovery and JWKS) by result; a failed one keeps the keys held",
            metrics.oidc_key_fetches.clone(),
        );
        metrics
    }

    /// Adds a collector of state read at each scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register_collector(Box::new(collector));
        }
    }

    /// Counts one decision of `tenant` of `callout` — `decision` is
    /// `allow`, `deny` or `deny_silent`, `class` a deny's class and kind —
    /// and observes its latency and phases.
    pub fn decision(
        &self,
        callout: &Arc<str>,
        tenant: &Arc<str>,
        decision: Decided,
        phases: &Phases,
    ) {
        let (reason_class, reason_kind) = decision.class.unwrap_or(("-", "-"));
        self.decisions
            .get_or_create(&DecisionLabels {
                callout: callout.clone(),
                tenant: tenant.clone(),
                decision: decision.decision,
                reason_class,
                reason_kind,
            })
            .inc();
        if reason_class == "call" {
            self.policy_failures
                .get_or_create(&FailureLabels {
                    callout: callout.clone(),
                    tenant: tenant.clone(),
                    kind: reason_kind,
                })
                .inc();
        }
        self.request_time
            .get_or_create(&TenantLabels {
                callout: callout.clone(),
                tenant: tenant.clone(),
            })
            .observe(decision.micros as f64);
        let phases = [
            ("verify", phases.verify),
            ("wait", phases.wait),
            ("policy", phases.policy),
            ("rules", phases.rules),
            ("respond", phases.respond),
        ];
        for (phase, took) in phases {
            if took.is_zero() {
                continue;
            }
            self.phase_time
                .get_or_create(&PhaseLabels {
                    callout: callout.clone(),
                    tenant: tenant.clone(),
                    phase,
                })
                .observe(micros(took));
        }
    }

    /// Counts a request of `callout` dropped for `reason` (a drop kind).
    pub fn dropped(&self, callout: &Arc<str>, reason: &'static str) {
        self.dropped
            .get_or_create(&DropLabels {
                callout: callout.clone(),
                reason,
            })
            .inc();
    }

    /// Counts a policy load of `tenant` that found its snapshot cached, or not.
    pub fn policy_loaded(&self, tenant: &str, from_cache: bool) {
        self.compiled_cache
            .get_or_create(&CacheLabels {
                tenant: tenant.into(),
                result: if from_cache { "hit" } else { "miss" },
            })
            .inc();
    }

    /// Counts a NATS connection event of `callout`.
    pub fn nats_event(&self, callout: &Arc<str>, event: &'static str) {
        self.nats_events
            .get_or_create(&NatsEventLabels {
                callout: callout.clone(),
                event,
            })
            .inc();
    }

    /// Counts a reload, applied or failed.
    pub fn reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        self.last_reload_successful.set(i64::from(applied));
    }

    /// Counts a shadow comparison of `tenant` by its result.
    pub fn shadow(&self, tenant: &Arc<str>, result: &'static str) {
        self.shadow
            .get_or_create(&ShadowLabels {
                tenant: tenant.clone(),
                result,
            })
            .inc();
    }

    /// The gauge of the KV mirror of `bucket` on `callout`'s connection.
    pub fn kv_mirror(&self, callout: &str, bucket: &str) -> Gauge {
        self.kv_mirror_current.get_or_create_owned(&MirrorLabels {
            callout: callout.into(),
            bucket: bucket.into(),
        })
    }

    /// Counts a fetch of `issuer`'s keys.
    pub fn oidc_key_fetch(&self, issuer: &str, ok: bool) {
        self.oidc_key_fetches
            .get_or_create(&KeyFetchLabels {
                issuer: issuer.into(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Counts an audit event dropped because its queue was full.
    pub fn audit_dropped(&self) {
        self.audit_dropped.inc();
    }

    /// The gauges a callout's registry moves as requests wait and run.
    pub fn callout_gauges(&self, callout: &Arc<str>) -> CalloutGauges {
        let labels = CalloutLabels {
            callout: callout.clone(),
        };
        CalloutGauges {
            queued: self.queued.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
        }
    }

    /// The metrics as text: OpenMetrics when `openmetrics`, else the
    /// Prometheus text format (0.0.4).
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut text = String::new();
        let Ok(registry) = self.registry.lock() else {
            return text;
        };
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        };
        if let Err(error) = encoded {
            tracing::warn!(%error, "cannot encode the metrics");
        }
        text
    }
}

/// The gauges of one callout's requests (detached, counting nothing, by
/// default).
#[derive(Debug, Clone, Default)]
pub struct CalloutGauges {
    queued: Gauge,
    in_flight: Gauge,
}

impl CalloutGauges {
    /// Counts a request waiting for its slots until the guard drops.
    pub fn queued(&self) -> GaugeHeld<'_> {
        GaugeHeld::new(&self.queued)
    }

    /// Counts a policy call running until the guard drops.
    pub fn in_flight(&self) -> GaugeHeld<'_> {
        GaugeHeld::new(&self.in_flight)
    }
}

/// One unit of a gauge, given back when dropped.
pub struct GaugeHeld<'a>(&'a Gauge);

impl<'a> GaugeHeld<'a> {
    fn new(gauge: &'a Gauge) -> GaugeHeld<'a> {
        gauge.inc();
        GaugeHeld(gauge)
    }
}

impl Drop for GaugeHeld<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_by_outcome_and_reason_in_both_formats() {
        let metrics = Metrics::new();
        let (callout, tenant): (Arc<str>, Arc<str>) = ("-".into(), "acme".into());
        let phases = Phases {
            verify: Duration::from_micros(30),
            policy: Duration::from_micros(300),
            ..Phases::default()
        };
        let denied = |decision, class| Decided {
            decision,
            class: Some(class),
            micros: 420,
        };
        metrics.decision(
            &callout,
            &tenant,
            denied("deny", ("call", "timeout")),
            &phases,
        );
        metrics.decision(
            &callout,
            &tenant,
            denied("deny_silent", ("policy", "denied")),
            &phases,
        );
        metrics.dropped(&callout, "expired");
        metrics.reload(false);

        let text = metrics.encode(false);
        for line in [
            r#"nats_callout_decisions_total{callout="-",tenant="acme",decision="deny",reason_class="call",reason_kind="timeout"} 1"#,
            r#"nats_callout_decisions_total{callout="-",tenant="acme",decision="deny_silent",reason_class="policy",reason_kind="denied"} 1"#,
            r#"nats_callout_policy_failures_total{callout="-",tenant="acme",kind="timeout"} 1"#,
            r#"nats_callout_dropped_requests_total{callout="-",reason="expired"} 1"#,
            r#"nats_callout_request_duration_microseconds_count{callout="-",tenant="acme"} 2"#,
            r#"nats_callout_phase_duration_microseconds_count{callout="-",tenant="acme",phase="policy"} 2"#,
            r#"nats_callout_reloads_total{result="failed"} 1"#,
            "nats_callout_last_reload_successful 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Phases not reached are not observed.
        assert!(!text.contains(r#"phase="wait""#), "{text}");
        let openmetrics = metrics.encode(true);
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
        assert!(
            openmetrics.contains("# UNIT nats_callout_request_duration_microseconds microseconds")
        );
    }
}
