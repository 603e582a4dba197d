//! The service's live status, for `/readyz` and the state half of
//! `/metrics`: each callout's connection and its current registry (a
//! reload swaps it), read at the moment they are asked. A callout is
//! recorded once it is subscribed; shutting down makes the service not
//! ready at once, before it unsubscribes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use async_nats::Client;
use async_nats::connection::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Registry;

/// What is serving now. Empty until every callout is connected and
/// subscribed.
#[derive(Debug, Default)]
pub struct Status {
    callouts: RwLock<Vec<LiveCallout>>,
    shutting_down: AtomicBool,
}

/// One callout being served.
struct LiveCallout {
    label: Arc<str>,
    client: Client,
    registry: Arc<ArcSwap<Registry>>,
}

impl std::fmt::Debug for LiveCallout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCallout")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Status {
    /// Records a callout as served, from now until the process ends.
    pub(crate) fn serving(
        &self,
        label: Arc<str>,
        client: Client,
        registry: Arc<ArcSwap<Registry>>,
    ) {
        if let Ok(mut callouts) = self.callouts.write() {
            callouts.push(LiveCallout {
                label,
                client,
                registry,
            });
        }
    }

    /// Records that the service is shutting down: not ready from now on.
    pub(crate) fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Ready when serving, every connection is up and every tenant's policy
    /// loaded; else why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let Ok(callouts) = self.callouts.read() else {
            return Err("status unavailable".into());
        };
        if callouts.is_empty() {
            return Err("not serving yet (loading policies or connecting)".into());
        }
        let mut not_ready = Vec::new();
        for callout in callouts.iter() {
            if callout.client.connection_state() != State::Connected {
                not_ready.push(format!("callout {}: not connected to NATS", callout.label));
            }
            for (tenant, binding) in callout.registry.load().tenants() {
                if binding.decider().is_none() {
                    not_ready.push(format!("tenant {tenant}: its policy did not load"));
                }
            }
        }
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready.join("; "))
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CalloutLabel {
    callout: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    callout: Arc<str>,
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    callout: Arc<str>,
    tenant: String,
    policy: String,
    sha256: String,
    /// Whether its compiled snapshot came from the cache.
    from_cache: bool,
}

/// One family of `metric_type` and its samples.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Status {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(callouts) = self.callouts.read() else {
            return Ok(());
        };
        family(
            &mut encoder,
            "nats_connected",
            "Whether the callout's NATS connection is up (1) or not (0)",
            MetricType::Gauge,
            callouts.iter().map(|callout| {
                let up = callout.client.connection_state() == State::Connected;
                let labels = CalloutLabel {
                    callout: callout.label.clone(),
                };
                (labels, ConstGauge::new(i64::from(up)))
            }),
        )?;
        // Every tenant's binding, read once for every family below.
        let bindings: Vec<_> = callouts
            .iter()
            .flat_map(|callout| {
                let registry = callout.registry.load_full();
                let tenants: Vec<_> = registry
                    .tenants()
                    .map(|(tenant, binding)| (tenant.to_string(), binding))
                    .collect();
                tenants
                    .into_iter()
                    .map(|(tenant, binding)| (callout.label.clone(), tenant, binding))
            })
            .collect();
        let tenant_labels = |callout: &Arc<str>, tenant: &String| TenantLabels {
            callout: callout.clone(),
            tenant: tenant.clone(),
        };
        family(
            &mut encoder,
            "tenant_available",
            "Whether the tenant's policy is loaded (1) or its requests are denied (0)",
            MetricType::Gauge,
            bindings.iter().map(|(callout, tenant, binding)| {
                let available = i64::from(binding.decider().is_some());
                (tenant_labels(callout, tenant), ConstGauge::new(available))
            }),
        )?;
        let loaded: Vec<_> = bindings
            .iter()
            .filter_map(|(callout, tenant, binding)| {
                Some((callout, tenant, binding.decider()?.policy()))
            })
            .collect();
        // An info metric the Prometheus way: a gauge of 1 whose labels are
        // the information.
        family(
            &mut encoder,
            "policy_info",
            "The policy each tenant runs: its name and SHA-256",
            MetricType::Gauge,
            loaded.iter().map(|(callout, tenant, policy)| {
                let labels = PolicyLabels {
                    callout: (*callout).clone(),
                    tenant: (*tenant).clone(),
                    policy: policy.name().to_string(),
                    sha256: policy.digest().to_string(),
                    from_cache: policy.loaded_from_cache(),
                };
                (labels, ConstGauge::new(1))
            }),
        )?;
        family(
            &mut encoder,
            "policy_load_seconds",
            "How long the tenant's policy took to load",
            MetricType::Gauge,
            loaded.iter().map(|(callout, tenant, policy)| {
                let seconds = policy.load_time().as_secs_f64();
                (tenant_labels(callout, tenant), ConstGauge::new(seconds))
            }),
        )?;
        let pools: Vec<_> = loaded
            .iter()
            .map(|(callout, tenant, policy)| (tenant_labels(callout, tenant), policy.pool()))
            .collect();
        family(
            &mut encoder,
            "instances_started",
            "Policy instances started for a call",
            MetricType::Counter,
            pools
                .iter()
                .map(|(labels, pool)| (labels.clone(), ConstCounter::new(pool.started))),
        )?;
        family(
            &mut encoder,
            "instances_reused",
            "Calls served by an idle instance (calls_per_instance above 1)",
            MetricType::Counter,
            pools
                .iter()
                .map(|(labels, pool)| (labels.clone(), ConstCounter::new(pool.reused))),
        )?;
        family(
            &mut encoder,
            "instances_idle",
            "Initialized instances kept idle for reuse",
            MetricType::Gauge,
            pools.iter().map(|(labels, pool)| {
                let idle = i64::try_from(pool.idle).unwrap_or(i64::MAX);
                (labels.clone(), ConstGauge::new(idle))
            }),
        )
    }
}
