//! From Kubernetes objects to the plan's inputs, and the indexes the watches keep. Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::plan::{Key, LocalService, LocalSlice, RemoteService, SvcPort};
use crate::k8s::{
    ANNOTATION_GATEWAY_PORTS, ANNOTATION_REMOTE_RESOURCE_VERSION, ANNOTATION_REMOTE_SERVICE,
    EndpointSlice, GATEWAY_NAME, LABEL_MIRROR_OF, LABEL_SLICE_MANAGED_BY, LABEL_SLICE_SERVICE,
    LABEL_SPLIT_OF, Link, Namespace, SLICE_MANAGER, SPLIT_SLICE_MANAGER, Service, TrafficSplit,
};
use crate::runtime::watch::Index;

fn key_of<K: ResourceExt>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn tcp_ports(svc: &Service) -> Vec<SvcPort> {
    crate::k8s::tcp_ports(svc)
        .map(|(p, port)| SvcPort {
            name: p.name.clone().filter(|n| !n.is_empty()),
            port,
            target_port: match &p.target_port {
                Some(IntOrString::Int(i)) => u16::try_from(*i).ok(),
                _ => None,
            },
        })
        .collect()
}

/// Why a remote mirror is not mirrored again; `mc check` recognises daisy chains by it.
pub const DAISY_CHAIN: &str =
    "it is itself a mirror of another cluster's Service (no daisy chains)";

/// A remote Service as the plan sees it.
pub fn remote_service(svc: &Service) -> RemoteService {
    let spec = svc.spec.as_ref();
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref());
    let unmirrorable = if svc.labels().contains_key(LABEL_MIRROR_OF) {
        Some(DAISY_CHAIN)
    } else if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        Some("ExternalName Services have no address to forward to")
    } else if cluster_ip == Some("None") {
        Some("headless Services have no ClusterIP for the gateway to dial")
    } else if tcp_ports(svc).is_empty() {
        Some("it has no TCP port")
    } else {
        None
    };
    let mut ports = tcp_ports(svc);
    for p in &mut ports {
        p.target_port = None;
    }
    RemoteService {
        namespace: svc.namespace().unwrap_or_default(),
        name: svc.name_any(),
        resource_version: svc.resource_version().unwrap_or_default(),
        ports,
        unmirrorable,
    }
}

/// A local Service as the plan sees it.
pub fn local_service(svc: &Service) -> LocalService {
    let ann = svc.annotations();
    let gateway_ports = ann
        .get(ANNOTATION_GATEWAY_PORTS)
        .and_then(|v| serde_json::from_str::<BTreeMap<String, u16>>(v).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        })
        .unwrap_or_default();
    LocalService {
        mirror_of: svc.labels().get(LABEL_MIRROR_OF).cloned(),
        remote: ann.get(ANNOTATION_REMOTE_SERVICE).cloned(),
        remote_resource_version: ann.get(ANNOTATION_REMOTE_RESOURCE_VERSION).cloned(),
        gateway_ports,
        ports: tcp_ports(svc),
        uid: svc.uid(),
        selector: svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| !s.is_empty()),
        split_of: svc.labels().get(LABEL_SPLIT_OF).cloned(),
    }
}

/// A slice mc manages, as the plan sees it (`None` for anyone else's).
pub fn local_slice(slice: &EndpointSlice) -> Option<LocalSlice> {
    slice_managed_by(slice, SLICE_MANAGER)
}

/// A slice with the `managed-by` label `manager`, as the plans see it.
fn slice_managed_by(slice: &EndpointSlice, manager: &str) -> Option<LocalSlice> {
    let labels = slice.labels();
    if labels.get(LABEL_SLICE_MANAGED_BY).map(String::as_str) != Some(manager) {
        return None;
    }
    let mut endpoints: Vec<(String, bool)> = slice
        .endpoints
        .iter()
        .flat_map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            e.addresses.iter().map(move |a| (a.clone(), ready))
        })
        .collect();
    endpoints.sort();
    Some(LocalSlice {
        service: labels.get(LABEL_SLICE_SERVICE).cloned().unwrap_or_default(),
        endpoints,
        ports: slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.name.clone().filter(|n| !n.is_empty()),
                    u16::try_from(p.port?).ok()?,
                ))
            })
            .collect(),
        owner_uid: slice
            .owner_references()
            .iter()
            .find(|o| o.kind == "Service")
            .map(|o| o.uid.clone()),
    })
}

/// Ready addresses of a gateway EndpointSlice (a slice of the local `mc-gateway` Service).
pub fn gateway_addresses(slice: &EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| e.addresses.iter().cloned())
        .collect()
}

/// The local cluster as the local watches see it.
#[derive(Debug, Default)]
pub struct LocalIndex {
    pub services: BTreeMap<Key, LocalService>,
    pub slices: BTreeMap<Key, LocalSlice>,
    /// Gateway slices by name.
    pub gateway: BTreeMap<String, Vec<String>>,
    pub namespaces: BTreeSet<String>,
    pub links: BTreeMap<String, Link>,
    pub splits: BTreeMap<Key, TrafficSplit>,
    /// Apex EndpointSlices of TrafficSplits (managed by `split.mc.dev`).
    pub split_slices: BTreeMap<Key, LocalSlice>,
}

impl LocalIndex {
    pub fn gateway_endpoints(&self) -> Vec<String> {
        let mut all: Vec<String> = self.gateway.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

impl Index<Service> for LocalIndex {
    fn apply(&mut self, s: Service) {
        self.services.insert(key_of(&s), local_service(&s));
    }
    fn delete(&mut self, s: Service) {
        self.services.remove(&key_of(&s));
    }
    fn reset(&mut self, all: Vec<Service>) {
        self.services = all.iter().map(|s| (key_of(s), local_service(s))).collect();
    }
}

/// Mirror slices (watched with the managed-by selector) and the gateway's slices (watched in
/// the install namespace) share one index through this wrapper type.
pub struct MirrorSlice(pub EndpointSlice);
pub struct GatewaySlice(pub EndpointSlice);

impl Index<MirrorSlice> for LocalIndex {
    fn apply(&mut self, s: MirrorSlice) {
        if let Some(l) = local_slice(&s.0) {
            self.slices.insert(key_of(&s.0), l);
        }
    }
    fn delete(&mut self, s: MirrorSlice) {
        self.slices.remove(&key_of(&s.0));
    }
    fn reset(&mut self, all: Vec<MirrorSlice>) {
        self.slices = all
            .iter()
            .filter_map(|s| Some((key_of(&s.0), local_slice(&s.0)?)))
            .collect();
    }
}

/// Apex slices of TrafficSplits, watched with their own managed-by selector.
pub struct SplitSlice(pub EndpointSlice);

impl Index<SplitSlice> for LocalIndex {
    fn apply(&mut self, s: SplitSlice) {
        if let Some(l) = slice_managed_by(&s.0, SPLIT_SLICE_MANAGER) {
            self.split_slices.insert(key_of(&s.0), l);
        }
    }
    fn delete(&mut self, s: SplitSlice) {
        self.split_slices.remove(&key_of(&s.0));
    }
    fn reset(&mut self, all: Vec<SplitSlice>) {
        self.split_slices = all
            .iter()
            .filter_map(|s| Some((key_of(&s.0), slice_managed_by(&s.0, SPLIT_SLICE_MANAGER)?)))
            .collect();
    }
}

impl Index<TrafficSplit> for LocalIndex {
    fn apply(&mut self, t: TrafficSplit) {
        self.splits.insert(key_of(&t), t);
    }
    fn delete(&mut self, t: TrafficSplit) {
        self.splits.remove(&key_of(&t));
    }
    fn reset(&mut self, all: Vec<TrafficSplit>) {
        self.splits = all.into_iter().map(|t| (key_of(&t), t)).collect();
    }
}

impl Index<GatewaySlice> for LocalIndex {
    fn apply(&mut self, s: GatewaySlice) {
        if is_gateway_slice(&s.0) {
            self.gateway.insert(s.0.name_any(), gateway_addresses(&s.0));
        }
    }
    fn delete(&mut self, s: GatewaySlice) {
        self.gateway.remove(&s.0.name_any());
    }
    fn reset(&mut self, all: Vec<GatewaySlice>) {
        self.gateway = all
            .iter()
            .filter(|s| is_gateway_slice(&s.0))
            .map(|s| (s.0.name_any(), gateway_addresses(&s.0)))
            .collect();
    }
}

fn is_gateway_slice(s: &EndpointSlice) -> bool {
    s.labels().get(LABEL_SLICE_SERVICE).map(String::as_str) == Some(GATEWAY_NAME)
}

impl Index<Namespace> for LocalIndex {
    fn apply(&mut self, n: Namespace) {
        self.namespaces.insert(n.name_any());
    }
    fn delete(&mut self, n: Namespace) {
        self.namespaces.remove(&n.name_any());
    }
    fn reset(&mut self, all: Vec<Namespace>) {
        self.namespaces = all.iter().map(|n| n.name_any()).collect();
    }
}

impl Index<Link> for LocalIndex {
    fn apply(&mut self, l: Link) {
        self.links.insert(l.name_any(), l);
    }
    fn delete(&mut self, l: Link) {
        self.links.remove(&l.name_any());
    }
    fn reset(&mut self, all: Vec<Link>) {
        self.links = all.into_iter().map(|l| (l.name_any(), l)).collect();
    }
}

/// One link's remote Services, from its remote watch.
#[derive(Debug, Default)]
pub struct RemoteIndex {
    pub services: BTreeMap<Key, RemoteService>,
}

impl Index<Service> for RemoteIndex {
    fn apply(&mut self, s: Service) {
        self.services.insert(key_of(&s), remote_service(&s));
    }
    fn delete(&mut self, s: Service) {
        self.services.remove(&key_of(&s));
    }
    fn reset(&mut self, all: Vec<Service>) {
        self.services = all.iter().map(|s| (key_of(s), remote_service(s))).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::{ObjectMeta, ServicePort, ServiceSpec};

    fn svc(labels: &[(&str, &str)], ip: &str, ports: &[(i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some("backend".into()),
                resource_version: Some("42".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(p, proto)| ServicePort {
                            port: *p,
                            protocol: Some(proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn remote_services_keep_tcp_ports_and_say_why_they_cannot_be_mirrored() {
        let r = remote_service(&svc(&[], "10.0.0.1", &[(80, "TCP"), (53, "UDP")]));
        assert_eq!(r.ports.len(), 1);
        assert_eq!(r.resource_version, "42");
        assert!(r.unmirrorable.is_none());
        let r = remote_service(&svc(&[], "None", &[(80, "TCP")]));
        assert!(r.unmirrorable.unwrap().contains("headless"));
        let r = remote_service(&svc(
            &[(LABEL_MIRROR_OF, "north")],
            "10.0.0.1",
            &[(80, "TCP")],
        ));
        assert!(r.unmirrorable.unwrap().contains("itself a mirror"));
        let r = remote_service(&svc(&[], "10.0.0.1", &[(53, "UDP")]));
        assert!(r.unmirrorable.unwrap().contains("no TCP port"));
    }

    #[test]
    fn a_malformed_gateway_ports_annotation_reads_as_no_allocation() {
        let mut s = svc(&[(LABEL_MIRROR_OF, "west")], "10.0.0.1", &[(80, "TCP")]);
        s.metadata.annotations =
            Some([(ANNOTATION_GATEWAY_PORTS.to_string(), "nope".to_string())].into());
        let l = local_service(&s);
        assert_eq!(l.mirror_of.as_deref(), Some("west"));
        assert!(l.gateway_ports.is_empty());
    }
}
