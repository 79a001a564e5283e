//! `mc sim`: an in-process Kubernetes API server over an in-memory store.
//!
//! It speaks the real wire protocol (JSON over HTTPS with a per-cluster CA, bearer tokens, RBAC,
//! list/watch with resource versions, patches, discovery, OpenAPI) so that real `kubectl` and
//! kube-rs cannot tell it from a cluster on the surface mc uses. Pods run only with a node
//! (`SimConfig::node`, see `node`); there is no DNS and no admission webhooks. See
//! `docs/simulator.md`.
//!
//! ```text
//! TLS accept ─▶ server (route, authenticate, authorize) ─▶ handlers ─▶ store (one lock,
//!   one RV counter, history ring) ─▶ controllers (in the same write) ─▶ broadcast ─▶ watches
//! ```
//!
//! Layers, each importing only from the ones below it:
//! - `api`: the HTTP API (shared context, server, auth, handlers, watch, discovery, OpenAPI,
//!   faults); the only layer with network I/O, and the one that keeps timers;
//! - `node` (optional): kubelet and service proxy, reaching the cluster only through
//!   `node::Host`, which `Shared` implements here;
//! - `cluster`: the store, the type registry and the controllers, synchronous and
//!   deterministic;
//! - `semantics`: what requests mean (selectors, patches, apply, RBAC, protobuf, tokens,
//!   tables, `Status` errors), pure functions that import nothing from the simulator;
//! - `config`, `error`: plain settings and errors, used by all.

mod api;
mod cluster;
mod config;
mod error;
mod node;
pub mod semantics;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::config::Kubeconfig;

pub use api::faults::Faults;
pub use config::{NodeConfig, SimConfig};
pub use error::SimError;
pub use semantics::{apply, patch, proto, rbac, selector, table, token};

use api::context::Shared;
use cluster::store;

/// A running simulated cluster. Dropping it (or `shutdown`) stops the server.
pub struct SimCluster {
    inner: Arc<Shared>,
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Dropped with the cluster: stops the kubelet and proxy and kills container processes.
    node: Option<node::Node>,
}

impl SimCluster {
    /// Generates the PKI, seeds the store and starts serving; takes milliseconds.
    pub async fn start(config: SimConfig) -> Result<SimCluster, SimError> {
        let (inner, listener) = Shared::new(config).await?;
        let addr = inner.addr();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(api::server::serve(inner.clone(), listener, stop.clone()));
        tracing::info!(cluster = %inner.config.name, %addr, "simulated cluster listening");
        let node = match inner.config.node {
            Some(_) => {
                let host: Arc<dyn node::Host> = inner.clone();
                let node = node::Node::start(host).map_err(|source| SimError::Node {
                    name: inner.config.name.clone(),
                    source,
                })?;
                let _ = inner.node.set(node.shared());
                Some(node)
            }
            None => None,
        };
        Ok(SimCluster {
            inner,
            addr,
            stop,
            task: Some(task),
            node,
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

    /// The name of the cluster's Node (with a node).
    pub fn node_name(&self) -> Option<String> {
        self.node
            .as_ref()
            .map(|_| node::node_name(&self.inner.config))
    }

    async fn stop_now(&mut self) {
        self.node.take();
        self.stop.cancel();
        self.inner.faults.drop_all_connections();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.stop.cancel();
        self.inner.faults.drop_all_connections();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The node reaches its cluster only through this (see `node::Host`).
impl node::Host for Shared {
    fn config(&self) -> &SimConfig {
        &self.config
    }

    fn store(&self) -> &store::Store {
        &self.store
    }

    fn settle(&self, state: &mut store::State) {
        Shared::settle(self, state);
    }

    fn bound_token(&self, namespace: &str, name: &str, ttl: Duration) -> Option<String> {
        self.issue_token(namespace, name, ttl)
    }

    fn api_addr(&self) -> SocketAddr {
        self.addr()
    }

    fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
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
    crate::identity::store::write_atomic(path, yaml.as_bytes(), 0o600, true).map_err(|source| {
        SimError::WriteKubeconfig {
            path: shown,
            source: Box::new(source),
        }
    })?;
    Ok(())
}
