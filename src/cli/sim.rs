//! `mc sim serve`: run one or more simulated clusters until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::sim::{SimCluster, SimConfig, merged_kubeconfig, write_kubeconfig};

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve simulated Kubernetes API servers on 127.0.0.1 until interrupted.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mc sim serve --clusters east,west --kubeconfig-out ./sim.kubeconfig
  kubectl --kubeconfig ./sim.kubeconfig --context west apply -f app.yaml
  kubectl --kubeconfig ./sim.kubeconfig --context west get svc -A -w

Each cluster is an in-memory API server over HTTPS (its own CA, store and tokens). Without --node
no pods run; with it, each cluster runs its Pods and Services on loopback addresses.
What it implements and what it does not: docs/simulator.md.")]
pub struct ServeArgs {
    /// Name of the one cluster to serve (also its kubeconfig context).
    #[arg(long, conflicts_with = "clusters")]
    pub name: Option<String>,
    /// Several clusters, comma-separated; each gets its own port, CA, store and tokens.
    #[arg(long, value_delimiter = ',')]
    pub clusters: Vec<String>,
    /// Listen address; with several clusters only the IP is used and ports are picked freely.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Write a kubeconfig (mode 0600) with one context per cluster to this file.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Give each cluster a node: Deployments get Pods, Pods run (mc's image as this executable,
    /// agnhost in-process), Services answer on their ClusterIPs and load-balancer addresses.
    #[arg(long)]
    pub node: bool,
}

/// Validated settings.
pub struct ServeConfig {
    names: Vec<String>,
    addr: SocketAddr,
    kubeconfig_out: Option<PathBuf>,
    node: bool,
}

impl TryFrom<ServeArgs> for ServeConfig {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<Self> {
        let ServeArgs {
            name,
            clusters,
            addr,
            kubeconfig_out,
            node,
        } = args;
        let mut names: Vec<String> = match name {
            Some(n) => vec![n],
            None => clusters.into_iter().filter(|c| !c.is_empty()).collect(),
        };
        if names.is_empty() {
            names.push("sim".to_string());
        }
        for n in &names {
            if !crate::k8s::names::is_dns1123_label(n) {
                bail!(
                    "cluster name {n:?} is not a DNS label; use lowercase letters, digits and '-'"
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &names {
            if !seen.insert(n) {
                bail!("cluster name {n:?} is given twice; every cluster needs its own name");
            }
        }
        if names.len() > 1 && addr.port() != 0 {
            bail!(
                "--addr {addr} has a fixed port but {} clusters need one port each; use port 0",
                names.len()
            );
        }
        if let Some(path) = &kubeconfig_out {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir.filter(|d| !d.is_dir()) {
                bail!(
                    "the directory {} of --kubeconfig-out {} does not exist; create it (mkdir -p) or choose another path",
                    dir.display(),
                    path.display()
                );
            }
        }
        Ok(ServeConfig {
            names,
            addr,
            kubeconfig_out,
            node,
        })
    }
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    match args.command {
        SimCommand::Serve(args) => {
            let config = ServeConfig::try_from(args)?;
            let runtime = super::runtime()?;
            let result = runtime.block_on(serve(config));
            // Connection and watch tasks were told to stop; do not wait for stragglers.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            result
        }
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let ServeConfig {
        names,
        addr,
        kubeconfig_out,
        node,
    } = config;
    let mc_exe = if node {
        Some(std::env::current_exe().context("could not find the mc executable to run in Pods")?)
    } else {
        None
    };
    let mut clusters = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = SimConfig::new(name);
        c.addr = addr;
        // Distinct ClusterIP ranges keep mirrored and local addresses apart across clusters.
        c.cluster_ip_base = std::net::Ipv4Addr::new(127, 10u8.saturating_add(i as u8), 0, 0);
        // Pod IPs 127.(100+i).0.0/16 and load-balancer IPs 127.(200+i).0.0/16 (the defaults).
        c.node = mc_exe.clone().map(crate::sim::NodeConfig::new);
        let cluster = SimCluster::start(c)
            .await
            .with_context(|| format!("could not start simulated cluster {name}"))?;
        clusters.push(cluster);
    }
    let refs: Vec<&SimCluster> = clusters.iter().collect();
    if let Some(path) = &kubeconfig_out {
        write_kubeconfig(path, &merged_kubeconfig(&refs))?;
    }
    for c in &clusters {
        println!("cluster {} listening on {}", c.name(), c.url());
        if let Some(node) = c.node_name() {
            println!("  node {node} runs its Pods");
        }
    }
    if let Some(path) = &kubeconfig_out {
        println!(
            "kubeconfig written to {} (contexts: {}); stop with Ctrl-C or SIGTERM, which removes it",
            path.display(),
            names.join(", ")
        );
    } else {
        println!("no --kubeconfig-out given; admin tokens:");
        for c in &clusters {
            println!("  {}: {}", c.name(), c.admin_token());
        }
    }
    crate::runtime::shutdown_token().cancelled().await;
    for c in clusters {
        c.shutdown().await;
    }
    // Its servers, CAs and tokens died with the clusters: a stale kubeconfig only misleads.
    if let Some(path) = &kubeconfig_out {
        match std::fs::remove_file(path) {
            Ok(()) => eprintln!("stopped; removed {}", path.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => eprintln!("warning: could not remove {}: {err}", path.display()),
        }
    }
    Ok(())
}
