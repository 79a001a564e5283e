//! Settings of a simulated cluster and of its node; plain data, imported by every layer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Settings of one simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Cluster name: the kubeconfig context, cluster and user are named after it.
    pub name: String,
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Address given to `LoadBalancer` Services (`status.loadBalancer.ingress[].ip`); defaults
    /// to the listen IP so that a test can reach it.
    pub load_balancer_ip: Option<IpAddr>,
    /// ClusterIPs are allocated from this /16.
    pub cluster_ip_base: Ipv4Addr,
    /// Number of watch events kept for resuming watches; older resource versions get 410.
    pub history_capacity: usize,
    /// The watch history is also bounded by the estimated bytes of the objects it holds
    /// (every version is a full copy); older resource versions get 410 as above.
    pub history_bytes: usize,
    /// Period of BOOKMARK events on watches that asked for them.
    pub bookmark_interval: Duration,
    /// Events a watcher may fall behind before it is dropped with an in-stream 410.
    pub watch_buffer: usize,
    /// How long a deleted Namespace stays `Terminating` (with its contents) before it and
    /// everything in it are removed. Like a real cluster, this lets `kubectl delete -f` delete
    /// a namespace and then the objects inside it without 404s.
    pub namespace_deletion_delay: Duration,
    /// Run Pods, workload controllers and a service proxy (`mc sim serve --node`); None: the
    /// cluster stores workloads but runs nothing.
    pub node: Option<NodeConfig>,
}

impl SimConfig {
    pub fn new(name: &str) -> Self {
        SimConfig {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            load_balancer_ip: None,
            cluster_ip_base: Ipv4Addr::new(127, 10, 0, 0),
            history_capacity: 100_000,
            history_bytes: 64 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(10),
            watch_buffer: 16_384,
            namespace_deletion_delay: Duration::from_millis(1000),
            node: None,
        }
    }
}

/// Settings of the node of one simulated cluster.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The executable run for containers of mc's own image (`mc sim serve` passes itself; the
    /// test suite passes `env!("CARGO_BIN_EXE_mc")`, since there the sim runs inside the test
    /// binary).
    pub mc_exe: PathBuf,
    /// Pod IPs come from this /16; None: `127.(b+90).0.0` for a ClusterIP base `127.b.0.0`.
    pub pod_ip_base: Option<Ipv4Addr>,
    /// LoadBalancer addresses come from this /16 (the Service's ClusterIP offset in it); None:
    /// `127.(b+190).0.0`.
    pub load_balancer_ip_base: Option<Ipv4Addr>,
    /// First CrashLoopBackOff delay (doubled per restart, at most 5 minutes); kubelet's is 10 s.
    pub crash_loop_backoff: Duration,
}

impl NodeConfig {
    pub fn new(mc_exe: impl Into<PathBuf>) -> Self {
        NodeConfig {
            mc_exe: mc_exe.into(),
            pod_ip_base: None,
            load_balancer_ip_base: None,
            crash_loop_backoff: Duration::from_secs(10),
        }
    }
}
