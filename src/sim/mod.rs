//! `mc sim`: an in-process Kubernetes API server over an in-memory store.
//!
//! It speaks the real wire protocol (JSON over HTTPS with a per-cluster CA, bearer tokens, RBAC,
//! list/watch with resource versions, patches, discovery, OpenAPI) so that real `kubectl` and
//! kube-rs cannot tell it from a cluster on the surface mc uses. No pods run, there is no
//! kube-proxy, DNS or admission webhooks. See `docs/simulator.md`.
//!
//! ```text
//! TLS accept ─▶ server (route, authenticate, authorize) ─▶ handlers ─▶ store (one lock,
//!   one RV counter, history ring) ─▶ controllers (in the same write) ─▶ broadcast ─▶ watches
//! ```
//!
//! I/O lives in `server` and `watch`; everything else is synchronous and deterministic.

pub mod apply;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod selector;
pub mod table;
pub mod token;

mod auth;
mod controllers;
mod discovery;
mod faults;
mod handlers;
mod openapi;
mod pki;
mod registry;
mod server;
mod status;
mod store;
mod watch;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::config::Kubeconfig;

pub use faults::Faults;

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
    /// Period of BOOKMARK events on watches that asked for them.
    pub bookmark_interval: Duration,
    /// Events a watcher may fall behind before it is dropped with an in-stream 410.
    pub watch_buffer: usize,
    /// How long a deleted Namespace stays `Terminating` (with its contents) before it and
    /// everything in it are removed. Like a real cluster, this lets `kubectl delete -f` delete
    /// a namespace and then the objects inside it without 404s.
    pub namespace_deletion_delay: Duration,
}

impl SimConfig {
    pub fn new(name: &str) -> Self {
        SimConfig {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            load_balancer_ip: None,
            cluster_ip_base: Ipv4Addr::new(127, 10, 0, 0),
            history_capacity: 100_000,
            bookmark_interval: Duration::from_secs(10),
            watch_buffer: 16_384,
            namespace_deletion_delay: Duration::from_millis(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not create the certificates of simulated cluster {name}")]
    Pki {
        name: String,
        #[source]
        source: pki::PkiError,
    },
    #[error("could not listen on {addr} for simulated cluster {name}; is the address in use?")]
    Bind {
        name: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build a kube client for simulated cluster {name}")]
    Client {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not read the generated kubeconfig of simulated cluster {name}")]
    Kubeconfig {
        name: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("could not sign the service-account token key of simulated cluster {name}")]
    Token {
        name: String,
        source: token::TokenError,
    },
    #[error("could not serialize the kubeconfig for {path}")]
    SerializeKubeconfig {
        path: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
    #[error(
        "could not write the kubeconfig {path}; check that its directory exists and is writable"
    )]
    WriteKubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running simulated cluster. Dropping it (or `shutdown`) stops the server.
pub struct SimCluster {
    inner: Arc<server::Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimCluster {
    /// Generates the PKI, seeds the store and starts serving; takes milliseconds.
    pub async fn start(config: SimConfig) -> Result<SimCluster, SimError> {
        let (inner, listener) = server::Shared::new(config).await?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            name: inner.config.name.clone(),
            addr: inner.config.addr,
            source,
        })?;
        inner.set_addr(addr);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(inner.clone(), listener, stopped));
        tracing::info!(cluster = %inner.config.name, %addr, "simulated cluster listening");
        Ok(SimCluster {
            inner,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ca_pem(&self) -> &str {
        &self.inner.pki.ca_pem
    }

    pub fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    /// A kubeconfig with one context, cluster and admin user, all named after the cluster.
    pub fn kubeconfig(&self) -> Kubeconfig {
        merged_kubeconfig(&[self])
    }

    /// A kubeconfig for an arbitrary bearer token (for tests acting as a ServiceAccount).
    pub fn kubeconfig_with_token(&self, token: &str) -> Kubeconfig {
        kubeconfig_for(&[(self, token)])
    }

    /// An admin (`system:masters`) client.
    pub async fn client(&self) -> Result<kube::Client, SimError> {
        self.client_with_token(&self.inner.admin_token.clone())
            .await
    }

    /// A client authenticating with `token`.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, SimError> {
        let kc = self.kubeconfig_with_token(token);
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| SimError::Kubeconfig {
                    name: self.name().to_string(),
                    source,
                })?;
        kube::Client::try_from(config).map_err(|source| SimError::Client {
            name: self.name().to_string(),
            source,
        })
    }

    /// Fault injection (admin-only; also reachable over HTTP at `/mc-sim/faults`).
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// Issues a ServiceAccount token as `kubectl create token` would (no audience: the API
    /// server's), valid for `ttl`. The ServiceAccount must exist.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        ttl: Duration,
    ) -> Option<String> {
        self.inner.issue_token(namespace, name, ttl)
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.current_rv()
    }

    pub async fn shutdown(mut self) {
        self.stop_now().await;
    }

    async fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.inner.faults.drop_all_connections();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.inner.faults.drop_all_connections();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One kubeconfig holding every cluster as its own context (named after the cluster); the
/// current context is the first cluster.
pub fn merged_kubeconfig(clusters: &[&SimCluster]) -> Kubeconfig {
    let pairs: Vec<(&SimCluster, &str)> = clusters
        .iter()
        .map(|c| (*c, c.inner.admin_token.as_str()))
        .collect();
    kubeconfig_for(&pairs)
}

fn kubeconfig_for(clusters: &[(&SimCluster, &str)]) -> Kubeconfig {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut named_clusters = Vec::new();
    let mut users = Vec::new();
    let mut contexts = Vec::new();
    for (c, token) in clusters {
        let name = c.name();
        named_clusters.push(serde_json::json!({
            "name": name,
            "cluster": {"server": c.url(), "certificate-authority-data": b64.encode(c.ca_pem())},
        }));
        users.push(serde_json::json!({"name": format!("{name}-admin"), "user": {"token": token}}));
        contexts.push(serde_json::json!({
            "name": name,
            "context": {"cluster": name, "user": format!("{name}-admin")},
        }));
    }
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": named_clusters,
        "users": users,
        "contexts": contexts,
        "current-context": clusters.first().map(|(c, _)| c.name().to_string()),
        "preferences": {},
    });
    // The shape above is fixed and valid, so this cannot fail; fall back to empty just in case.
    serde_json::from_value(value).unwrap_or_default()
}

/// Writes a kubeconfig with mode 0600, atomically (temp file in the same directory + rename).
pub fn write_kubeconfig(path: &Path, kc: &Kubeconfig) -> Result<(), SimError> {
    let shown = path.display().to_string();
    let yaml = serde_saphyr::to_string(kc).map_err(|source| SimError::SerializeKubeconfig {
        path: shown.clone(),
        source,
    })?;
    // Same atomic, 0600, fsynced write as key files: the kubeconfig holds admin tokens.
    use crate::identity::store::{StoreError, write_atomic};
    write_atomic(path, yaml.as_bytes(), 0o600, true).map_err(|err| SimError::WriteKubeconfig {
        path: shown,
        // The store's own message would name the path a second time.
        source: match err {
            StoreError::Write { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        },
    })?;
    Ok(())
}
