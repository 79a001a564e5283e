//! The simulated node (opt-in with `SimConfig::node`): what a kubelet and kube-proxy do, so
//! that the same manifests run on a sim as on a cluster. The workload controllers and the
//! scheduler are synchronous and live with the other controllers (`cluster::controllers`);
//! the node reaches its cluster only through `Host`.
//!
//! ```text
//! write ─▶ controllers::run ─▶ workloads (sync: Deployment ─▶ ReplicaSet ─▶ Pods, scheduling)
//!   store broadcast ─▶ kubelet (async: one task per Pod; processes for mc's image, tasks for
//!                      agnhost; probes ─▶ Pod status ─▶ EndpointSlices)
//!   store broadcast ─▶ proxy   (async: ClusterIP / load-balancer IP listeners ─▶ ready endpoints)
//! ```
//!
//! Addresses: Pods get loopback IPs from their own /16 and LoadBalancer Services from another
//! (see `NodeConfig`); nothing is isolated: a container is a process of this user (or a task
//! in this process) that binds its Pod IP. See docs/simulator.md.

mod agnhost;
mod kubelet;
mod logs;
mod probe;
mod proxy;
mod spec;

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::store::{EventType, State, Store, meta_str};
use crate::sim::config::{NodeConfig, SimConfig};

pub(crate) use logs::{LogOutput, LogQuery};

/// The Pod-IP /16 of a cluster.
pub fn pod_ip_base(config: &SimConfig) -> Ipv4Addr {
    derived_base(config, |n| n.pod_ip_base, 90)
}

/// The load-balancer /16 of a cluster.
pub fn load_balancer_ip_base(config: &SimConfig) -> Ipv4Addr {
    derived_base(config, |n| n.load_balancer_ip_base, 190)
}

fn derived_base(
    config: &SimConfig,
    field: impl Fn(&NodeConfig) -> Option<Ipv4Addr>,
    shift: u8,
) -> Ipv4Addr {
    if let Some(ip) = config.node.as_ref().and_then(field) {
        return ip;
    }
    let [a, b, _, _] = config.cluster_ip_base.octets();
    Ipv4Addr::new(a, b.wrapping_add(shift), 0, 0)
}

/// The name of the one Node of a cluster.
pub fn node_name(config: &SimConfig) -> String {
    format!("{}-node", config.name)
}

/// The node's own address (`status.hostIP` of its Pods): the first address of the Pod range.
fn host_ip(config: &SimConfig) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pod_ip_base(config)) + 1)
}

/// What the node needs of its cluster; implemented by the API server's shared state, so that
/// the node depends on the store and not on the server.
pub trait Host: Send + Sync + 'static {
    fn config(&self) -> &SimConfig;
    fn store(&self) -> &Store;
    /// Lets the controllers react to what was just written, before the lock is released.
    fn settle(&self, state: &mut State);
    /// A token for a ServiceAccount, bound to the API server's audience.
    fn bound_token(&self, namespace: &str, name: &str, ttl: Duration) -> Option<String>;
    fn api_addr(&self) -> std::net::SocketAddr;
    fn ca_pem(&self) -> &str;
}

/// What the node keeps between its tasks and the API handlers (logs).
pub struct NodeShared {
    pub(super) logs: logs::Logs,
    /// Allocated offsets in the Pod range.
    pod_ips: Mutex<BTreeSet<u32>>,
    /// Process ids of running containers: killed at once when the cluster goes away.
    pids: Mutex<HashSet<i32>>,
    /// Per-Pod files (the ServiceAccount kubeconfig).
    dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl NodeShared {
    fn allocate_ip(&self, config: &SimConfig) -> Option<Ipv4Addr> {
        let mut used = self.pod_ips.lock().unwrap_or_else(|e| e.into_inner());
        let offset = (2..65535u32).find(|o| !used.contains(o))?;
        used.insert(offset);
        Some(Ipv4Addr::from(u32::from(pod_ip_base(config)) + offset))
    }

    fn release_ip(&self, config: &SimConfig, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(u32::from(pod_ip_base(config)));
        self.pod_ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&offset);
    }

    fn track_pid(&self, pid: i32, running: bool) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        if running {
            pids.insert(pid);
        } else {
            pids.remove(&pid);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("could not create the working directory of the simulated node")]
    Dir(#[source] std::io::Error),
}

/// The running node; dropping it stops the kubelet and proxy and kills every container
/// process at once.
pub struct Node {
    shared: Arc<NodeShared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    pub(super) fn start(sim: Arc<dyn Host>) -> Result<Node, NodeError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mc-sim-{}-", sim.config().name))
            .tempdir()
            .map_err(NodeError::Dir)?;
        let node = Arc::new(NodeShared {
            logs: logs::Logs::default(),
            pod_ips: Mutex::new(BTreeSet::new()),
            pids: Mutex::new(HashSet::new()),
            dir,
            stop: CancellationToken::new(),
        });
        register_node(sim.as_ref());
        let tasks = vec![
            tokio::spawn(kubelet::run(sim.clone(), node.clone())),
            tokio::spawn(proxy::run(sim.clone(), node.stop.clone())),
        ];
        Ok(Node {
            shared: node,
            tasks,
        })
    }

    /// What the API handlers read (logs).
    pub(super) fn shared(&self) -> Arc<NodeShared> {
        self.shared.clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
        let pids: Vec<i32> = self
            .shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The Node object, Ready, as a kubelet registers it.
fn register_node(sim: &dyn Host) {
    let config = sim.config();
    let name = node_name(config);
    let now = now_rfc3339();
    let cond = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let obj = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": std::env::consts::ARCH, "node.kubernetes.io/instance-type": "mc-sim"},
        },
        "spec": {"podCIDR": format!("{}/16", pod_ip_base(config)), "podCIDRs": [format!("{}/16", pod_ip_base(config))]},
        "status": {
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": host_ip(config).to_string()},
                          {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "250"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "250"},
            "nodeInfo": {"kubeletVersion": "v1.33.0-mc-sim", "kubeProxyVersion": "v1.33.0-mc-sim",
                         "containerRuntimeVersion": "mc-sim://process", "operatingSystem": "linux",
                         "architecture": std::env::consts::ARCH, "osImage": "mc sim",
                         "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        },
    });
    let mut state = sim.store().lock();
    if state.get("/nodes", "", &name).is_none() {
        state.put("/nodes", obj, EventType::Added);
        sim.settle(&mut state);
    }
}

/// Writes a Pod's status if it is still the same Pod and the status changed.
fn write_pod_status(sim: &dyn Host, ns: &str, name: &str, uid: &str, status: Value) {
    let mut state = sim.store().lock();
    let Some(pod) = state.get("/pods", ns, name) else {
        return;
    };
    if meta_str(&pod, "uid") != uid || pod.get("status") == Some(&status) {
        return;
    }
    let mut p = (*pod).clone();
    p["status"] = status;
    state.put("/pods", p, EventType::Modified);
    sim.settle(&mut state);
}

/// Removes a Pod whose containers have stopped (the kubelet's final delete).
fn remove_pod(sim: &dyn Host, ns: &str, name: &str, uid: &str) {
    let mut state = sim.store().lock();
    let same = state
        .get("/pods", ns, name)
        .is_some_and(|p| meta_str(&p, "uid") == uid);
    if same {
        state.remove("/pods", ns, name);
        sim.settle(&mut state);
    }
}
