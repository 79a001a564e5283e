//! `mc gateway`: run the cross-cluster mTLS gateway (tables from the Kubernetes API, or from a
//! static `--config` file for tests and benchmarks).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::gateway::{self, Settings, TableFeed, source_kube, source_static::StaticConfig};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mc gateway --log-format json                       # in a cluster (what mc install runs)
  mc gateway --context west --inbound-addr 127.0.0.1:4143 --admin-addr 127.0.0.1:4191
  curl -s localhost:4191/metrics | grep mc_gateway_streams_total   # refusals by reason

Configuration follows the Kubernetes API live: exported Services, mirror Services and Links in
--namespace, identity from mc-config and mc-issuer. Protocol, metrics and debugging a refused
connection: docs/gateway.md.")]
pub struct GatewayArgs {
    /// Namespace mc is installed in (mc-config, mc-issuer, Links).
    #[arg(long, default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Where remote gateways connect (mTLS, HTTP/2 CONNECT).
    #[arg(long, default_value = "0.0.0.0:4143")]
    pub inbound_addr: SocketAddr,
    /// Plain HTTP: /live, /ready, /metrics.
    #[arg(long, default_value = "0.0.0.0:4191")]
    pub admin_addr: SocketAddr,
    /// IP the outbound listeners (one per mirror port) bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub outbound_ip: IpAddr,
    /// Cluster domain of this cluster's Service names.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Lifetime of the gateway's leaf certificate; it is rotated at two thirds of it.
    #[arg(long, default_value = "24h", value_parser = at_least_a_second)]
    pub cert_lifetime: Duration,
    /// A TLS handshake (inbound or to a peer) that takes longer is abandoned.
    #[arg(long, default_value = "10s", value_parser = at_least_a_second)]
    pub handshake_timeout: Duration,
    /// A tunnel with no byte in either direction for this long is closed.
    #[arg(long, default_value = "1h", value_parser = at_least_a_second)]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long open tunnels may finish before they are closed.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// HTTP/2 streams (tunnels) one peer gateway may have open at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_peer: u32,
    /// Static tables and identity files instead of the Kubernetes API (see docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, else the in-cluster config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let GatewayArgs {
        namespace,
        inbound_addr,
        admin_addr,
        outbound_ip,
        cluster_domain,
        cert_lifetime,
        handshake_timeout,
        idle_timeout,
        drain_timeout,
        max_streams_per_peer,
        config,
        kubeconfig,
        context,
    } = args;
    let settings = Settings {
        inbound_addr,
        admin_addr,
        outbound_ip,
        cluster_domain,
        cert_lifetime,
        handshake_timeout,
        idle_timeout,
        max_streams_per_peer,
        ..Settings::default()
    };
    super::runtime()?.block_on(async move {
        let stop = CancellationToken::new();
        let (name, material, feed, _keep_tables) = match config {
            Some(path) => {
                let cfg = StaticConfig::load(&path).map_err(|e| {
                    anyhow::anyhow!(
                        "{:#}; see docs/gateway.md for the format",
                        anyhow::Error::new(e)
                    )
                })?;
                let material = cfg.material();
                // Static mode fails fast on unusable files instead of waiting for them.
                let m = material().await.map_err(anyhow::Error::msg)?;
                gateway::identity::root_store(&m.anchors_pem).with_context(|| {
                    format!("the anchors in {} are not usable", cfg.anchors.display())
                })?;
                gateway::identity::mint(
                    &cfg.name(),
                    &m,
                    cert_lifetime,
                    std::time::SystemTime::now(),
                )
                .with_context(|| {
                    format!(
                        "cannot mint a certificate from {} and {}",
                        cfg.issuer_cert.display(),
                        cfg.issuer_key.display()
                    )
                })?;
                let (tables_tx, tables) = watch::channel(Arc::new(cfg.tables()));
                let (synced_tx, synced) = watch::channel(true);
                (
                    cfg.name(),
                    material,
                    TableFeed { tables, synced },
                    Some((tables_tx, synced_tx)),
                )
            }
            None => {
                let client = kube_client(kubeconfig, context).await?;
                let name = source_kube::gateway_name(&client, &namespace).await?;
                let feed = source_kube::spawn(client.clone(), &namespace, stop.clone());
                (
                    name,
                    source_kube::material(client, namespace.clone()),
                    feed,
                    None,
                )
            }
        };
        let running = gateway::start(settings, name, material, feed)
            .await
            .context("the gateway could not start")?;
        shutdown_signal().await;
        tracing::info!(?drain_timeout, "shutting down: draining open connections");
        stop.cancel();
        running.shutdown(drain_timeout).await;
        Ok(())
    })
}

/// A humantime duration of at least one second (clap turns the error into a usage error, exit 2).
fn at_least_a_second(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s} is shorter than 1s"));
    }
    Ok(d)
}

async fn kube_client(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = crate::k8s::kubeconfig::read(&path)?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .context("cannot load the kubeconfig context; check --context")?,
        None => kube::Config::infer().await.context(
            "no Kubernetes configuration found; pass --kubeconfig FILE or set KUBECONFIG",
        )?,
    };
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
