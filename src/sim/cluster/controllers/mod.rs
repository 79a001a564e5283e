//! What a real control plane does around the store, done synchronously inside the write that
//! triggers it: admission defaults (`admission`), and reactions to events (namespace bootstrap
//! objects and content deletion, the CRD registry, ownerReference garbage collection,
//! EndpointSlices and LoadBalancer status, legacy token Secrets, workloads). Running them in
//! the write keeps the simulator deterministic: when a request returns, its consequences are
//! visible. Nothing here does I/O: the controllers get the few settings they need
//! (`Settings`), and a namespace removal that must wait is returned as data
//! (`namespaces::NamespaceRemoval`) for the caller to schedule.

mod admission;
mod crds;
mod deletion;
mod gc;
mod namespaces;
mod services;
mod tokens;
mod workloads;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::{Value, json};

use super::clock::now_rfc3339;
use super::registry;
use super::store::{EventType, State, meta_str};
use crate::sim::semantics::rbac;
use crate::sim::semantics::token::TokenSigner;

pub use admission::admit;
pub use crds::{CLEANUP_FINALIZER, CRDS};
pub use deletion::{Deletion, NamespaceRemoval, delete};
pub use namespaces::finish_namespace_removal;

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const SLICE_MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Guard against controllers feeding each other forever.
const MAX_ROUNDS: usize = 64;

/// What the controllers need to know about their cluster.
pub struct Settings {
    /// ClusterIPs are allocated from this /16.
    pub cluster_ip_base: Ipv4Addr,
    /// The API server's port: the target port of the `kubernetes` Service.
    pub api_port: u16,
    /// Address given to LoadBalancer Services when there is no node.
    pub load_balancer_ip: IpAddr,
    /// With a node: Pods are bound to it and each LoadBalancer Service gets its own address.
    pub node: Option<NodeSettings>,
    /// The cluster CA (`kube-root-ca.crt`, token Secrets).
    pub ca_pem: String,
    /// Signs legacy ServiceAccount token Secrets.
    pub signer: Arc<TokenSigner>,
}

pub struct NodeSettings {
    pub name: String,
    /// LoadBalancer addresses: the Service's ClusterIP offset in this /16.
    pub load_balancer_ip_base: Ipv4Addr,
}

impl Settings {
    /// The load-balancer address of a Service: with a node, its ClusterIP's offset in the
    /// load-balancer range, so that every Service gets its own without another allocator.
    fn load_balancer_ip(&self, svc: &Value) -> IpAddr {
        let own = self.node.as_ref().and_then(|node| {
            let ip: Ipv4Addr = svc.pointer("/spec/clusterIP")?.as_str()?.parse().ok()?;
            let offset = u32::from(ip).wrapping_sub(u32::from(self.cluster_ip_base));
            (offset < 65536).then(|| {
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(node.load_balancer_ip_base) + offset,
                ))
            })
        });
        own.unwrap_or(self.load_balancer_ip)
    }
}

/// Metadata for an object a controller creates.
fn new_meta(ns: &str, name: &str) -> Value {
    let mut m = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": now_rfc3339(),
    });
    if !ns.is_empty() {
        m["namespace"] = json!(ns);
    }
    m
}

/// The objects a fresh cluster has: system namespaces, default RBAC, the `kubernetes` Service.
pub fn seed(settings: &Settings, state: &mut State) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": new_meta("", ns), "spec": {"finalizers": ["kubernetes"]}});
        obj["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": ns});
        obj["status"] = json!({"phase": "Active"});
        state.put("/namespaces", obj, EventType::Added);
    }
    for obj in rbac::default_objects() {
        let (key, ns, name) = {
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            let plural = match kind {
                "ClusterRole" => "clusterroles",
                "ClusterRoleBinding" => "clusterrolebindings",
                "Role" => "roles",
                "RoleBinding" => "rolebindings",
                _ => continue,
            };
            (
                format!("rbac.authorization.k8s.io/{plural}"),
                meta_str(&obj, "namespace").to_string(),
                meta_str(&obj, "name").to_string(),
            )
        };
        let mut obj = obj;
        let mut meta = new_meta(&ns, &name);
        if let Some(extra) = obj.get("metadata").and_then(Value::as_object) {
            for (k, v) in extra {
                meta[k] = v.clone();
            }
        }
        obj["metadata"] = meta;
        state.put(&key, obj, EventType::Added);
    }
    let ip = Ipv4Addr::from(u32::from(settings.cluster_ip_base) + 1);
    state.cluster_ips.insert(1);
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": new_meta("default", "kubernetes"),
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": settings.api_port}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    });
    svc["metadata"]["labels"] = json!({"component": "apiserver", "provider": "kubernetes"});
    state.put("/services", svc, EventType::Added);
    run(settings, state);
}

/// Drains the pending events and reacts to them until nothing new happens.
pub fn run(settings: &Settings, state: &mut State) {
    for _ in 0..MAX_ROUNDS {
        let events = std::mem::take(&mut state.pending);
        if events.is_empty() {
            return;
        }
        let mut crds_changed = false;
        let mut endpoints: BTreeMap<(String, String), ()> = BTreeMap::new();
        // Terminating namespaces and CRDs to look at again once this round's deletions are in.
        let mut finalizing_namespaces = BTreeSet::new();
        let mut cleaning_crds = BTreeSet::new();
        for ev in &events {
            if ev.etype == EventType::Deleted {
                if !ev.namespace.is_empty() && namespaces::is_finalizing(state, &ev.namespace) {
                    finalizing_namespaces.insert(ev.namespace.clone());
                }
                if let Some(crd) = state
                    .registry
                    .types
                    .iter()
                    .find(|t| t.from_crd && t.key() == ev.key)
                {
                    let name = format!("{}.{}", crd.plural, crd.group);
                    if crds::is_cleaning_up(state, &name) {
                        cleaning_crds.insert(name);
                    }
                }
            }
            match ev.key.as_str() {
                "/namespaces" => namespaces::on_namespace(settings, state, ev),
                "apiextensions.k8s.io/customresourcedefinitions" => {
                    crds_changed = true;
                    if ev.etype == EventType::Deleted {
                        if let Some(t) = registry::from_crd(&ev.object) {
                            namespaces::delete_all(state, &t.key(), None);
                        }
                    } else if ev.object.pointer("/metadata/deletionTimestamp").is_some() {
                        cleaning_crds.insert(meta_str(&ev.object, "name").to_string());
                    }
                }
                "/services" => {
                    services::on_service(settings, state, ev);
                    endpoints.insert(
                        (
                            ev.namespace.clone(),
                            meta_str(&ev.object, "name").to_string(),
                        ),
                        (),
                    );
                }
                "/pods" => {
                    for svc in services::services_selecting(state, ev) {
                        endpoints.insert((ev.namespace.clone(), svc), ());
                    }
                }
                "apps/deployments" if settings.node.is_none() => {
                    workloads::on_deployment_without_node(state, ev)
                }
                "/serviceaccounts" => {
                    tokens::on_service_account(settings, state, ev);
                    if meta_str(&ev.object, "name") == "default" {
                        namespaces::ensure_defaults(settings, state, &ev.namespace);
                    }
                }
                "rbac.authorization.k8s.io/clusterroles" => aggregate_cluster_roles(state),
                "/configmaps" if meta_str(&ev.object, "name") == ROOT_CA_CONFIGMAP => {
                    namespaces::ensure_defaults(settings, state, &ev.namespace);
                }
                _ => {}
            }
            if let Some(node) = &settings.node {
                workloads::on_event(&node.name, state, ev);
            }
            if ev.etype == EventType::Deleted {
                gc::collect_garbage(state, meta_str(&ev.object, "uid"));
                gc::release_owners(state, &ev.object);
            } else {
                gc::collect_dangling(state, &ev.object, ev.old.as_deref());
            }
        }
        for ns in &finalizing_namespaces {
            namespaces::sync_terminating(settings, state, ns);
        }
        for crd in &cleaning_crds {
            crds::clean_up(settings, state, crd);
        }
        if crds_changed {
            rebuild_registry(state);
        }
        for (ns, svc) in endpoints.keys() {
            services::reconcile_slices(state, ns, svc);
        }
    }
    tracing::warn!("simulated controllers did not settle; leaving the rest for the next write");
}

/// The ClusterRole aggregation controller: every ClusterRole with an `aggregationRule` holds
/// the rules of the roles its selectors match (chains settle over the rounds of `run`).
fn aggregate_cluster_roles(state: &mut State) {
    const KEY: &str = "rbac.authorization.k8s.io/clusterroles";
    let all: Vec<Value> = state
        .list(KEY, None)
        .iter()
        .map(|r| (**r).clone())
        .collect();
    for role in &all {
        let Some(rules) = rbac::aggregated_rules(role, &all) else {
            continue;
        };
        if role.get("rules") != Some(&json!(rules)) {
            let mut updated = role.clone();
            updated["rules"] = json!(rules);
            state.put(KEY, updated, EventType::Modified);
        }
    }
}

fn rebuild_registry(state: &mut State) {
    let crds = state.list("apiextensions.k8s.io/customresourcedefinitions", None);
    let registry = state.registry.with_crds(crds.iter().map(|c| c.as_ref()));
    state.registry = Arc::new(registry);
}
