//! `mc mirror`: run the service-mirror controller (what the `mc-mirror` Deployment runs).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::mirror::MirrorConfig;
use crate::runtime::{ClientArgs, shutdown_token};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mc mirror --log-format json                          # in a cluster (what mc install runs)
  mc --context east mirror --admin-addr 127.0.0.1:9990
  curl -s localhost:9990/metrics | grep mc_mirror_gateway_alive

For every Link in --namespace, mirrors the target's exported Services as <name>-<target> and
probes the target's gateway; status in `kubectl get links -n mc-system`. See docs/linking.md.")]
pub struct MirrorArgs {
    /// Namespace mc is installed in (Links, their Secrets, mc-config, the leader Lease).
    #[arg(long, default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Plain HTTP: /live, /ready, /metrics.
    #[arg(long, default_value = "0.0.0.0:9990")]
    pub admin_addr: SocketAddr,
    /// Create a namespace that a remote exported Service lives in when it is missing here
    /// (default: report it in the Link's status and mirror nothing there).
    #[arg(long)]
    pub create_namespaces: bool,
    /// Longest time between two full reconcile passes without any event.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,
    /// Identity in the leader Lease (default: $POD_NAME, else the host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

impl TryFrom<MirrorArgs> for MirrorConfig {
    type Error = anyhow::Error;

    fn try_from(args: MirrorArgs) -> anyhow::Result<Self> {
        let MirrorArgs {
            namespace,
            admin_addr,
            create_namespaces,
            resync_period,
            identity,
        } = args;
        super::validate_namespace("--namespace", &namespace)?;
        if resync_period < Duration::from_secs(1) {
            anyhow::bail!("--resync-period {resync_period:?} is shorter than 1s; use e.g. 30s");
        }
        let identity = identity.filter(|i| !i.is_empty()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "mc-mirror".into());
            format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        });
        Ok(MirrorConfig {
            namespace,
            admin_addr,
            create_namespaces,
            resync: resync_period,
            identity,
        })
    }
}

pub fn run(args: MirrorArgs, client: ClientArgs) -> anyhow::Result<()> {
    let config = MirrorConfig::try_from(args)?;
    super::runtime()?.block_on(async move {
        let stop = shutdown_token();
        let client = client.connect().await?;
        let running = crate::mirror::start(client, config, stop.clone())
            .await
            .context("the mirror controller could not start")?;
        tracing::info!(admin = %running.admin_addr, "mirror controller admin server listening");
        running
            .task
            .await
            .context("the mirror controller stopped unexpectedly")?
            .context("the mirror controller failed")?;
        Ok(())
    })
}
