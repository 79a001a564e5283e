//! `mc mirror`: the service-mirror controller. It runs in every cluster (the `mc-mirror`
//! Deployment) and, for each `Link` in its namespace, keeps a local mirror of every Service the
//! target exports.
//!
//! ```text
//!  Link west ──Secret mc-link-west──▶ remote client ──watch Services (selector)──▶ RemoteIndex
//!  local watches: Links, Services, mirror EndpointSlices, mc-gateway EndpointSlices, Namespaces
//!        │                                                                      │
//!        └──────────────▶ Observed ──plan() (pure)──▶ [Action] ──executor (leader only)──▶ API
//!  probe: GET http://<gateway>:4191/ready every period ─▶ alive/latency ─▶ Link status, slices
//! ```
//!
//! Level-triggered: every event and a timer run the same pass; a failed write is retried by the
//! next pass with back-off, without a retry limit. Only the replica holding the `mc-mirror`
//! Lease writes. Pure: `plan`, `names`, `observe`, `status`. I/O: `controller`, `remote`,
//! `probe`, `leader`.

mod controller;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod remote;
pub mod split;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::k8s::{McConfig, McConfigError};
use crate::runtime::admin::{AdminServer, Readiness};
use crate::runtime::backoff::Backoff;

pub use metrics::Metrics;

/// Settings of `mc mirror`.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Namespace mc is installed in: Links, their Secrets, mc-config, the Lease.
    pub namespace: String,
    pub admin_addr: SocketAddr,
    pub create_namespaces: bool,
    /// Longest time between two reconcile passes without any event.
    pub resync: Duration,
    /// Identity in the leader Lease (the Pod name in a cluster).
    pub identity: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot listen on {addr} for the admin server")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] McConfigError),
}

/// A started controller: its admin address and metrics.
pub struct Running {
    pub admin_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub task: tokio::task::JoinHandle<Result<(), MirrorError>>,
}

/// Starts the controller; it runs until `stop`.
pub async fn start(
    client: Client,
    config: MirrorConfig,
    stop: CancellationToken,
) -> Result<Running, MirrorError> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    let config_gate = readiness.gate("configuration (waiting for ConfigMap mc-config)");
    let watches_gate =
        readiness.gate("local state (waiting for the first list of Links, Services and slices)");
    let encoder = metrics.clone();
    let admin = AdminServer::start(
        config.admin_addr,
        readiness,
        Arc::new(move || encoder.encode()),
        stop.clone(),
    )
    .map_err(|source| MirrorError::Admin {
        addr: config.admin_addr,
        source,
    })?;
    let m = metrics.clone();
    let task = tokio::spawn(async move {
        let Some(installed) = read_config(&client, &config.namespace, &stop).await? else {
            return Ok(());
        };
        config_gate.open();
        tracing::info!(
            cluster = %installed.cluster_name,
            ports = ?installed.outbound_ports,
            identity = %config.identity,
            "mirror controller starting"
        );
        controller::Controller {
            client,
            settings: plan::PlanSettings {
                port_range: installed.outbound_ports,
                create_namespaces: config.create_namespaces,
            },
            config,
            metrics: m,
            stop,
            ready: watches_gate,
        }
        .run()
        .await
    });
    Ok(Running {
        admin_addr: admin.addr,
        metrics,
        task,
    })
}

/// Reads `mc-config`, waiting (with back-off) while it is missing; `None` when stopped first.
async fn read_config(
    client: &Client,
    namespace: &str,
    stop: &CancellationToken,
) -> Result<Option<McConfig>, MirrorError> {
    let api: kube::Api<crate::k8s::ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        match api.get(crate::k8s::CONFIG_MAP).await {
            Ok(cm) => return Ok(Some(McConfig::from_config_map(&cm, namespace)?)),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(namespace, error = %e, retry_in = ?delay, "cannot read mc-config; is mc installed here?");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Now, RFC 3339 in seconds (the precision of Kubernetes timestamps).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
