//! `mc gateway`: run the cross-cluster mTLS gateway (tables from the Kubernetes API, or from a
//! static `--config` file for tests and benchmarks).
//!
//! Two stages: [`GatewayArgs`] (clap) → [`GatewayConfig`] (validated, no network I/O) → [`run`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::gateway::{
    self, Settings, TableFeed, defaults, source_kube, source_static::StaticConfig,
};
use crate::runtime::{ClientArgs, shutdown_token};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mc gateway --log-format json                       # in a cluster (what mc install runs)
  mc --context west gateway --inbound-addr 127.0.0.1:4143 --admin-addr 127.0.0.1:4191
  curl -s localhost:4191/metrics | grep mc_gateway_streams_total   # refusals by reason

Configuration follows the Kubernetes API live: exported Services, mirror Services and Links in
--namespace, identity from mc-config and mc-issuer. Protocol, metrics and debugging a refused
connection: docs/gateway.md.")]
pub struct GatewayArgs {
    /// Namespace mc is installed in (mc-config, mc-issuer, Links).
    #[arg(long, default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Where remote gateways connect (mTLS, HTTP/2 CONNECT).
    #[arg(long, default_value = defaults::INBOUND_ADDR)]
    pub inbound_addr: SocketAddr,
    /// Plain HTTP: /live, /ready, /metrics.
    #[arg(long, default_value = defaults::ADMIN_ADDR)]
    pub admin_addr: SocketAddr,
    /// IP the outbound listeners (one per mirror port) bind.
    #[arg(long, default_value = defaults::OUTBOUND_IP)]
    pub outbound_ip: IpAddr,
    /// Cluster domain of this cluster's Service names.
    #[arg(long, default_value = defaults::CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Lifetime of the gateway's leaf certificate; it is rotated at two thirds of it.
    #[arg(long, default_value = defaults::CERT_LIFETIME, value_parser = at_least_a_second)]
    pub cert_lifetime: Duration,
    /// A TLS handshake (inbound or to a peer) that takes longer is abandoned.
    #[arg(long, default_value = defaults::HANDSHAKE_TIMEOUT, value_parser = at_least_a_second)]
    pub handshake_timeout: Duration,
    /// A tunnel with no byte in either direction for this long is closed.
    #[arg(long, default_value = defaults::IDLE_TIMEOUT, value_parser = at_least_a_second)]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long open tunnels may finish before they are closed.
    #[arg(long, default_value = defaults::DRAIN_TIMEOUT, value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// HTTP/2 streams (tunnels) one peer gateway may have open at once.
    #[arg(long, default_value_t = defaults::MAX_STREAMS_PER_PEER, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_peer: u32,
    /// How long a local client may wait for a stream slot to a busy peer before it is reset.
    #[arg(long, default_value = defaults::QUEUE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,
    /// Static tables and identity files instead of the Kubernetes API (see docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the gateway's tables and identity come from.
pub enum Source {
    Kube { namespace: String },
    Static(Box<StaticConfig>),
}

/// Validated settings of `mc gateway`.
pub struct GatewayConfig {
    pub settings: Settings,
    pub drain_timeout: Duration,
    pub source: Source,
}

impl TryFrom<GatewayArgs> for GatewayConfig {
    type Error = anyhow::Error;

    fn try_from(args: GatewayArgs) -> anyhow::Result<Self> {
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
            queue_timeout,
            config,
        } = args;
        super::validate_namespace("--namespace", &namespace)?;
        let source = match config {
            Some(path) => Source::Static(Box::new(StaticConfig::load(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{:#}; see docs/gateway.md for the format",
                    anyhow::Error::new(e)
                )
            })?)),
            None => Source::Kube { namespace },
        };
        Ok(GatewayConfig {
            settings: Settings {
                inbound_addr,
                admin_addr,
                outbound_ip,
                cluster_domain,
                cert_lifetime,
                handshake_timeout,
                idle_timeout,
                max_streams_per_peer,
                queue_timeout,
                ..Settings::default()
            },
            drain_timeout,
            source,
        })
    }
}

pub fn run(args: GatewayArgs, client: ClientArgs) -> anyhow::Result<()> {
    let config = GatewayConfig::try_from(args)?;
    super::runtime()?.block_on(serve(config, client))
}

async fn serve(config: GatewayConfig, client: ClientArgs) -> anyhow::Result<()> {
    let GatewayConfig {
        settings,
        drain_timeout,
        source,
    } = config;
    let stop = shutdown_token();
    let cert_lifetime = settings.cert_lifetime;
    let (name, material, feed, _keep_tables) = match source {
        Source::Static(cfg) => {
            let material = cfg.material();
            // Static mode fails fast on unusable files instead of waiting for them.
            let m = material()
                .await
                .context("the identity files of the static configuration are not readable")?;
            gateway::identity::root_store(&m.anchors_pem).with_context(|| {
                format!("the anchors in {} are not usable", cfg.anchors.display())
            })?;
            gateway::identity::mint(&cfg.name(), &m, cert_lifetime, std::time::SystemTime::now())
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
        Source::Kube { namespace } => {
            let client = client.connect().await?;
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
    stop.cancelled().await;
    tracing::info!(?drain_timeout, "shutting down: draining open connections");
    running.shutdown(drain_timeout).await;
    Ok(())
}

/// A humantime duration of at least one second (clap turns the error into a usage error, exit 2).
fn at_least_a_second(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s} is shorter than 1s"));
    }
    Ok(d)
}
