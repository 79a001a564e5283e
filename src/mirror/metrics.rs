//! Prometheus metrics of the mirror controller (`/metrics` on the admin port, 9990).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    pub link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkResult {
    pub link: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionResult {
    pub action: &'static str,
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub gateway_alive: Family<LinkLabel, Gauge>,
    pub probes: Family<LinkResult, Counter>,
    pub probe_latency: Family<LinkLabel, Histogram>,
    pub remote_reachable: Family<LinkLabel, Gauge>,
    pub mirrors: Family<LinkLabel, Gauge>,
    pub conflicts: Family<LinkLabel, Gauge>,
    pub actions: Family<ActionResult, Counter>,
    pub reconciles: Counter,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mc_mirror");
        let gateway_alive = Family::<LinkLabel, Gauge>::default();
        registry.register(
            "gateway_alive",
            "Whether the Link's target gateway passes its probe",
            gateway_alive.clone(),
        );
        let probes_by_result = Family::<LinkResult, Counter>::default();
        registry.register(
            "probes",
            "Gateway probes by link and result (ok, failed)",
            probes_by_result.clone(),
        );
        let probe_latency = Family::<LinkLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "probe_latency_seconds",
            "Latency of successful gateway probes",
            probe_latency.clone(),
        );
        let remote_reachable = Family::<LinkLabel, Gauge>::default();
        registry.register(
            "remote_reachable",
            "Whether the Link's target API server answers the Service watch",
            remote_reachable.clone(),
        );
        let mirrors = Family::<LinkLabel, Gauge>::default();
        registry.register("services", "Mirrored Services per link", mirrors.clone());
        let conflicts = Family::<LinkLabel, Gauge>::default();
        registry.register(
            "conflicts",
            "Remote Services not mirrored (name taken, namespace missing, not mirrorable)",
            conflicts.clone(),
        );
        let actions = Family::<ActionResult, Counter>::default();
        registry.register(
            "actions",
            "API writes by action and result (ok, failed)",
            actions.clone(),
        );
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconcile passes", reconciles.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "Whether this replica holds the mc-mirror Lease (only the holder writes)",
            leader.clone(),
        );
        Metrics {
            registry,
            gateway_alive,
            probes: probes_by_result,
            probe_latency,
            remote_reachable,
            mirrors,
            conflicts,
            actions,
            reconciles,
            leader,
        }
    }

    pub fn record_probe(&self, link: &str, result: &Result<std::time::Duration, String>) {
        let label = LinkResult {
            link: link.to_owned(),
            result: if result.is_ok() { "ok" } else { "failed" },
        };
        self.probes.get_or_create(&label).inc();
        if let Ok(d) = result {
            self.probe_latency
                .get_or_create(&LinkLabel {
                    link: link.to_owned(),
                })
                .observe(d.as_secs_f64());
        }
    }

    pub fn set_alive(&self, link: &str, alive: bool) {
        self.gateway_alive
            .get_or_create(&LinkLabel {
                link: link.to_owned(),
            })
            .set(i64::from(alive));
    }

    pub fn action(&self, action: &'static str, ok: bool) {
        self.actions
            .get_or_create(&ActionResult {
                action,
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Removes every series of a Link that no longer exists.
    pub fn forget_link(&self, link: &str) {
        let l = LinkLabel {
            link: link.to_owned(),
        };
        self.gateway_alive.remove(&l);
        self.probe_latency.remove(&l);
        self.remote_reachable.remove(&l);
        self.mirrors.remove(&l);
        self.conflicts.remove(&l);
        for result in ["ok", "failed"] {
            self.probes.remove(&LinkResult {
                link: link.to_owned(),
                result,
            });
        }
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}
