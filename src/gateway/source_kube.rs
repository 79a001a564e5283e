//! Tables from the Kubernetes API: watches Services (exports and mirrors, all namespaces),
//! `Link`s (peers, the gateway's namespace) and `TrafficSplit`s (all namespaces), keeps a compact
//! index with synchronous `apply`/`delete`/`relist`, and republishes the derived [`Tables`] on
//! every change.
//!
//! ```text
//! watch Services ──┐                        ┌─▶ services (exported? ClusterIP:port)
//!                  ├─▶ KubeIndex ─▶ tables()├─▶ listeners (mirror gateway-ports -> authority)
//! watch Links ─────┤   (pure)               ├─▶ peers (gatewayAddresses[0]:gatewayPort, identity)
//! watch splits ────┘                        └─▶ splits (status ports -> weighted backends)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{
    Listener, Peer, ServiceEntry, SplitBackend, SplitRoute, SplitTarget, Tables, remote_authority,
};
use super::identity::{GatewayName, IssuerMaterial};
use super::{MaterialError, MaterialSource, TableFeed};
use crate::k8s::config::{ISSUER_KEY_CERT, ISSUER_KEY_KEY};
use crate::k8s::{
    ANNOTATION_GATEWAY_PORTS, ANNOTATION_REMOTE_SERVICE, CONFIG_MAP, ConfigMap, ISSUER_SECRET,
    LABEL_EXPORTED, LABEL_MIRROR_OF, Link, McConfig, McConfigError, Secret, Service, TrafficSplit,
};
use crate::runtime::watch::{Index, drive};

/// What the gateway keeps of one Service.
#[derive(Debug, Clone, PartialEq)]
pub struct SvcRecord {
    pub entry: ServiceEntry,
    pub mirror: Option<Mirror>,
}

/// A mirror Service's routing facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub target: String,
    pub remote_namespace: String,
    pub remote_name: String,
    /// Service port (remote) -> local outbound port.
    pub ports: BTreeMap<u16, u16>,
}

/// Extracts the routing facts of a Service. Never fails: malformed mirror annotations make the
/// Service a non-mirror (logged), so one bad object cannot stop the gateway.
pub fn record_of(svc: &Service) -> SvcRecord {
    let labels = svc.labels();
    let is_mirror = labels.contains_key(LABEL_MIRROR_OF);
    // A mirror's ClusterIP leads back into this gateway's outbound side: exporting it would let
    // one linked cluster relay through this one to a third (or loop), so mirrors never export.
    let exported = labels.get(LABEL_EXPORTED).map(String::as_str) == Some("true") && !is_mirror;
    let spec = svc.spec.as_ref();
    // ExternalName Services are DNS aliases to arbitrary hosts: never dialled, even if a
    // (non-validating) API server left a ClusterIP on one.
    let external_name = spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let ip: Option<IpAddr> = spec
        .filter(|_| !external_name)
        .and_then(|s| s.cluster_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        // Unspecified (0.0.0.0, ::) would dial this host itself, not a Service.
        .filter(|ip: &IpAddr| !ip.is_unspecified());
    let mut backends = HashMap::new();
    if let Some(ip) = ip {
        for (_, port) in crate::k8s::tcp_ports(svc) {
            backends.insert(port, SocketAddr::new(ip, port));
        }
    }
    let mirror = labels
        .get(LABEL_MIRROR_OF)
        .and_then(|target| mirror_of(svc, target));
    SvcRecord {
        entry: ServiceEntry { exported, backends },
        mirror,
    }
}

fn mirror_of(svc: &Service, target: &str) -> Option<Mirror> {
    let ann = svc.annotations();
    let name = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    let remote = ann.get(ANNOTATION_REMOTE_SERVICE)?;
    let Some((remote_namespace, remote_name)) = remote.split_once('/') else {
        tracing::warn!(service = %name, value = %remote, "mirror has a malformed {ANNOTATION_REMOTE_SERVICE} annotation; ignoring it");
        return None;
    };
    let ports_json = ann.get(ANNOTATION_GATEWAY_PORTS)?;
    let parsed: HashMap<String, u16> = match serde_json::from_str(ports_json) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(service = %name, error = %e, "mirror has a malformed {ANNOTATION_GATEWAY_PORTS} annotation; ignoring it");
            return None;
        }
    };
    let mut ports = BTreeMap::new();
    for (svc_port, local) in parsed {
        match svc_port.parse::<u16>() {
            Ok(p) if local != 0 => {
                ports.insert(p, local);
            }
            _ => {
                tracing::warn!(service = %name, port = %svc_port, "mirror port mapping is not valid; skipping it");
            }
        }
    }
    Some(Mirror {
        target: target.to_owned(),
        remote_namespace: remote_namespace.to_owned(),
        remote_name: remote_name.to_owned(),
        ports,
    })
}

/// A peer as the Link describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    pub peer: Option<Peer>,
    pub cluster_domain: String,
}

pub fn link_record(link: &Link) -> LinkRecord {
    let s = &link.spec;
    let peer = s.gateway_addresses.first().map(|host| Peer {
        address: host_port(host, s.gateway_port),
        identity: s.gateway_identity.clone(),
    });
    LinkRecord {
        peer,
        cluster_domain: s.target_cluster_domain.clone(),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What the gateway keeps of a TrafficSplit: its status, which the mirror controller decides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitRecord {
    /// (apex port, outbound gateway port).
    pub ports: Vec<(u16, u16)>,
    /// (backend Service, effective weight).
    pub backends: Vec<(String, u32)>,
}

pub fn split_record(t: &TrafficSplit) -> SplitRecord {
    let Some(status) = &t.status else {
        return SplitRecord::default();
    };
    SplitRecord {
        ports: status
            .ports
            .iter()
            .map(|p| (p.port, p.gateway_port))
            .collect(),
        backends: status
            .backends
            .iter()
            .map(|b| (b.service.clone(), b.effective_weight))
            .collect(),
    }
}

/// The watched state, keyed by namespace/name (Services, splits) and name (Links). Pure.
#[derive(Debug, Default, Clone)]
pub struct KubeIndex {
    services: BTreeMap<(String, String), SvcRecord>,
    links: BTreeMap<String, LinkRecord>,
    splits: BTreeMap<(String, String), SplitRecord>,
}

impl KubeIndex {
    pub fn apply_service(&mut self, namespace: &str, name: &str, record: SvcRecord) {
        self.services
            .insert((namespace.to_owned(), name.to_owned()), record);
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        self.services
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Replaces every Service: those missing from a re-list are gone.
    pub fn relist_services(&mut self, all: Vec<((String, String), SvcRecord)>) {
        self.services = all.into_iter().collect();
    }

    pub fn apply_link(&mut self, name: &str, record: LinkRecord) {
        self.links.insert(name.to_owned(), record);
    }

    pub fn delete_link(&mut self, name: &str) {
        self.links.remove(name);
    }

    pub fn relist_links(&mut self, all: Vec<(String, LinkRecord)>) {
        self.links = all.into_iter().collect();
    }

    /// Derives the routing tables. Two mirrors claiming one outbound port: the first in
    /// namespace/name order keeps it (the mirror controller should never allocate twice).
    pub fn tables(&self) -> Tables {
        let mut t = Tables::default();
        for ((ns, name), rec) in &self.services {
            t.apply_service(ns, name, rec.entry.clone());
            let Some(m) = &rec.mirror else { continue };
            let domain = self
                .links
                .get(&m.target)
                .map_or("cluster.local", |l| l.cluster_domain.as_str());
            for (svc_port, local) in &m.ports {
                let listener = Listener {
                    peer: m.target.clone(),
                    authority: remote_authority(
                        &m.remote_name,
                        &m.remote_namespace,
                        domain,
                        *svc_port,
                    ),
                };
                if let Some(existing) = t.listeners.get(local) {
                    tracing::warn!(port = local, kept = %existing.authority, dropped = %listener.authority, "two mirrors claim the same outbound port");
                    continue;
                }
                t.listeners.insert(*local, listener);
            }
        }
        for (name, l) in &self.links {
            if let Some(peer) = &l.peer {
                t.peers.insert(name.clone(), peer.clone());
            }
        }
        for ((ns, name), split) in &self.splits {
            for (apex_port, local) in &split.ports {
                if t.listeners.contains_key(local) || t.splits.contains_key(local) {
                    tracing::warn!(port = local, split = %format!("{ns}/{name}"), "a TrafficSplit's outbound port is taken; ignoring it");
                    continue;
                }
                let backends = split
                    .backends
                    .iter()
                    .filter_map(|(service, weight)| {
                        Some(SplitBackend {
                            service: service.clone(),
                            weight: *weight,
                            target: self.split_target(ns, service, *apex_port)?,
                        })
                    })
                    .collect();
                t.splits.insert(
                    *local,
                    SplitRoute {
                        split: format!("{ns}/{name}"),
                        backends,
                    },
                );
            }
        }
        t
    }

    /// Where a split backend's port leads: a mirror's peer and authority (no second hop through
    /// this gateway's own listener), or a local Service's ClusterIP.
    fn split_target(&self, ns: &str, service: &str, port: u16) -> Option<SplitTarget> {
        let rec = self.services.get(&(ns.to_owned(), service.to_owned()))?;
        match &rec.mirror {
            Some(m) => {
                m.ports.get(&port)?;
                let domain = self
                    .links
                    .get(&m.target)
                    .map_or("cluster.local", |l| l.cluster_domain.as_str());
                Some(SplitTarget::Tunnel(Listener {
                    peer: m.target.clone(),
                    authority: remote_authority(&m.remote_name, &m.remote_namespace, domain, port),
                }))
            }
            None => rec
                .entry
                .backends
                .get(&port)
                .copied()
                .map(SplitTarget::Direct),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    #[error(
        "cannot read ConfigMap {namespace}/{CONFIG_MAP}; is mc installed in this namespace (`mc install`)?"
    )]
    ConfigMap {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Config(#[from] McConfigError),
}

/// Reads `mc-config`.
pub async fn read_config(client: &Client, namespace: &str) -> Result<McConfig, KubeSourceError> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(CONFIG_MAP)
        .await
        .map_err(|source| KubeSourceError::ConfigMap {
            namespace: namespace.to_owned(),
            source,
        })?;
    Ok(McConfig::from_config_map(&cm, namespace)?)
}

/// Reads who this gateway is from `mc-config`.
pub async fn gateway_name(
    client: &Client,
    namespace: &str,
) -> Result<GatewayName, KubeSourceError> {
    let config = read_config(client, namespace).await?;
    Ok(GatewayName {
        cluster: config.cluster_name,
        trust_domain: config.trust_domain,
        namespace: namespace.to_owned(),
    })
}

/// Reads the anchors (`mc-config`) and the issuer (`mc-issuer`) on every call.
pub fn material(client: Client, namespace: String) -> MaterialSource {
    Arc::new(move || {
        let client = client.clone();
        let namespace = namespace.clone();
        Box::pin(async move {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
                .get(CONFIG_MAP)
                .await
                .map_err(|source| MaterialError::Read {
                    object: format!("ConfigMap {namespace}/{CONFIG_MAP}"),
                    source,
                })?;
            let config = McConfig::from_config_map(&cm, &namespace)?;
            let object = format!("Secret {namespace}/{ISSUER_SECRET}");
            let secret = Api::<Secret>::namespaced(client, &namespace)
                .get(ISSUER_SECRET)
                .await
                .map_err(|source| MaterialError::Read {
                    object: object.clone(),
                    source,
                })?;
            let field = |key: &'static str| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
                    .ok_or_else(|| MaterialError::MissingKey {
                        object: object.clone(),
                        key,
                    })
            };
            Ok(IssuerMaterial {
                anchors_pem: config.ca_bundle,
                issuer_cert_pem: field(ISSUER_KEY_CERT)?,
                issuer_key_pem: field(ISSUER_KEY_KEY)?,
            })
        })
    })
}

impl Index<Service> for KubeIndex {
    fn apply(&mut self, s: Service) {
        self.apply_service(
            &s.namespace().unwrap_or_default(),
            &s.name_any(),
            record_of(&s),
        );
    }
    fn delete(&mut self, s: Service) {
        self.delete_service(&s.namespace().unwrap_or_default(), &s.name_any());
    }
    fn reset(&mut self, all: Vec<Service>) {
        self.relist_services(
            all.iter()
                .map(|s| {
                    (
                        (s.namespace().unwrap_or_default(), s.name_any()),
                        record_of(s),
                    )
                })
                .collect(),
        );
    }
}

impl Index<Link> for KubeIndex {
    fn apply(&mut self, l: Link) {
        self.apply_link(&l.name_any(), link_record(&l));
    }
    fn delete(&mut self, l: Link) {
        self.delete_link(&l.name_any());
    }
    fn reset(&mut self, all: Vec<Link>) {
        self.relist_links(all.iter().map(|l| (l.name_any(), link_record(l))).collect());
    }
}

impl Index<TrafficSplit> for KubeIndex {
    fn apply(&mut self, t: TrafficSplit) {
        self.splits.insert(
            (t.namespace().unwrap_or_default(), t.name_any()),
            split_record(&t),
        );
    }
    fn delete(&mut self, t: TrafficSplit) {
        self.splits
            .remove(&(t.namespace().unwrap_or_default(), t.name_any()));
    }
    fn reset(&mut self, all: Vec<TrafficSplit>) {
        self.splits = all
            .iter()
            .map(|t| {
                (
                    (t.namespace().unwrap_or_default(), t.name_any()),
                    split_record(t),
                )
            })
            .collect();
    }
}

/// Starts the watches; the feed is `synced` once Services and Links have listed everything
/// once. Splits do not gate readiness: an install without the TrafficSplit CRD still routes
/// mirrors (the splits watch logs and retries).
pub fn spawn(client: Client, namespace: &str, stop: CancellationToken) -> TableFeed {
    let (tables_tx, tables) = watch::channel(Arc::new(Tables::default()));
    let (synced_tx, synced) = watch::channel(false);
    let index = Arc::new(Mutex::new(KubeIndex::default()));
    let tables_tx = Arc::new(tables_tx);
    let synced_tx = Arc::new(synced_tx);
    // Bit 0: Services listed once; bit 1: Links listed once.
    let listed = Arc::new(AtomicU8::new(0));
    let publish = move |bit: u8| {
        let tables_tx = tables_tx.clone();
        let synced_tx = synced_tx.clone();
        let listed = listed.clone();
        move |index: &KubeIndex, synced: bool| {
            let next = Arc::new(index.tables());
            tables_tx.send_if_modified(|cur| {
                if **cur == *next {
                    false
                } else {
                    *cur = next;
                    true
                }
            });
            if synced
                && listed.fetch_or(bit, Ordering::SeqCst) | bit == 0b11
                && !*synced_tx.borrow()
            {
                tracing::info!("routing tables synced from the Kubernetes API");
                let _ = synced_tx.send(true);
            }
        }
    };
    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let links = watcher(
        Api::<Link>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff();
    let splits =
        watcher(Api::<TrafficSplit>::all(client), watcher::Config::default()).default_backoff();
    tokio::spawn(drive(
        "trafficsplits",
        splits,
        index.clone(),
        stop.clone(),
        publish(0),
    ));
    tokio::spawn(drive(
        "services",
        services,
        index.clone(),
        stop.clone(),
        publish(0b01),
    ));
    tokio::spawn(drive("links", links, index, stop, publish(0b10)));
    TableFeed { tables, synced }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    fn mk_service(ns: &str, name: &str, ip: &str, ports: &[i32]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|p| ServicePort {
                            port: *p,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn exported(mut s: Service) -> Service {
        s.labels_mut().insert(LABEL_EXPORTED.into(), "true".into());
        s
    }

    fn mirror(mut s: Service, target: &str, remote: &str, ports: &str) -> Service {
        s.labels_mut().insert(LABEL_MIRROR_OF.into(), target.into());
        s.annotations_mut()
            .insert(ANNOTATION_REMOTE_SERVICE.into(), remote.into());
        s.annotations_mut()
            .insert(ANNOTATION_GATEWAY_PORTS.into(), ports.into());
        s
    }

    fn mk_link(domain: &str) -> LinkRecord {
        LinkRecord {
            peer: Some(Peer {
                address: "203.0.113.7:4143".into(),
                identity: "mc-gateway.mc-system.west.cluster.local".into(),
            }),
            cluster_domain: domain.into(),
        }
    }

    #[test]
    fn exported_label_and_cluster_ip_make_a_dialable_export() {
        let r = record_of(&exported(mk_service(
            "default",
            "backend",
            "10.1.2.3",
            &[8888],
        )));
        assert!(r.entry.exported);
        assert_eq!(
            r.entry.backends[&8888],
            "10.1.2.3:8888".parse::<SocketAddr>().unwrap()
        );
        let r = record_of(&mk_service("default", "backend", "10.1.2.3", &[8888]));
        assert!(!r.entry.exported);
    }

    #[test]
    fn external_name_service_is_never_dialled_even_with_a_cluster_ip() {
        let mut s = exported(mk_service("default", "ext", "10.1.2.3", &[443]));
        if let Some(spec) = s.spec.as_mut() {
            spec.type_ = Some("ExternalName".into());
            spec.external_name = Some("example.com".into());
        }
        let r = record_of(&s);
        assert!(r.entry.backends.is_empty(), "{:?}", r.entry.backends);
    }

    #[test]
    fn unspecified_cluster_ip_is_not_dialled() {
        let r = record_of(&exported(mk_service("default", "b", "0.0.0.0", &[80])));
        assert!(r.entry.backends.is_empty());
    }

    #[test]
    fn a_mirror_labelled_exported_is_not_exported() {
        let s = mirror(
            exported(mk_service("default", "backend-west", "10.9.9.9", &[8888])),
            "west",
            "default/backend",
            r#"{"8888":10001}"#,
        );
        let r = record_of(&s);
        assert!(!r.entry.exported);
        assert!(r.mirror.is_some());
    }

    #[test]
    fn headless_service_has_nothing_to_dial() {
        let r = record_of(&exported(mk_service("default", "db", "None", &[5432])));
        assert!(r.entry.backends.is_empty());
    }

    #[test]
    fn mirror_ports_become_listeners_with_the_links_cluster_domain() {
        let mut idx = KubeIndex::default();
        let s = mirror(
            mk_service("default", "backend-west", "10.9.9.9", &[8888, 9090]),
            "west",
            "default/backend",
            r#"{"8888":10001,"9090":10002}"#,
        );
        idx.apply_service("default", "backend-west", record_of(&s));
        idx.apply_link("west", mk_link("west.example"));
        let t = idx.tables();
        assert_eq!(
            t.listeners[&10001],
            Listener {
                peer: "west".into(),
                authority: "backend.default.svc.west.example:8888".into()
            }
        );
        assert_eq!(
            t.listeners[&10002].authority,
            "backend.default.svc.west.example:9090"
        );
        assert_eq!(t.peers["west"].address, "203.0.113.7:4143");
    }

    fn split(weights: &[(&str, u32)], ports: &[(u16, u16)]) -> SplitRecord {
        SplitRecord {
            ports: ports.to_vec(),
            backends: weights.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn split_ports_route_local_backends_directly_and_mirrors_through_their_peer() {
        let mut idx = KubeIndex::default();
        let local = mk_service("default", "backend-svc", "10.1.0.3", &[8080]);
        idx.apply_service("default", "backend-svc", record_of(&local));
        let m = mirror(
            mk_service("default", "backend-svc-west", "10.1.0.4", &[8080]),
            "west",
            "default/backend-svc",
            r#"{"8080":10000}"#,
        );
        idx.apply_service("default", "backend-svc-west", record_of(&m));
        idx.apply_link("west", mk_link("cluster.local"));
        idx.splits.insert(
            ("default".into(), "backend".into()),
            split(
                &[("backend-svc", 50), ("backend-svc-west", 0), ("gone", 10)],
                &[(8080, 10001)],
            ),
        );
        let t = idx.tables();
        let route = &t.splits[&10001];
        assert_eq!(route.split, "default/backend");
        // A backend the gateway cannot resolve is left out; weights are the status's.
        assert_eq!(
            route.backends,
            vec![
                SplitBackend {
                    service: "backend-svc".into(),
                    weight: 50,
                    target: SplitTarget::Direct("10.1.0.3:8080".parse().unwrap()),
                },
                SplitBackend {
                    service: "backend-svc-west".into(),
                    weight: 0,
                    target: SplitTarget::Tunnel(Listener {
                        peer: "west".into(),
                        authority: "backend-svc.default.svc.cluster.local:8080".into(),
                    }),
                },
            ]
        );
        // The mirror keeps its own listener; a split claiming a mirror's port is ignored.
        assert!(t.listeners.contains_key(&10000));
        idx.splits.insert(
            ("default".into(), "clash".into()),
            split(&[("backend-svc", 1)], &[(8080, 10000)]),
        );
        assert!(!idx.tables().splits.contains_key(&10000));
    }

    #[test]
    fn a_split_without_status_routes_nothing() {
        let t = TrafficSplit::new("backend", Default::default());
        assert_eq!(split_record(&t), SplitRecord::default());
    }

    #[test]
    fn malformed_gateway_ports_annotation_makes_no_listener() {
        let s = mirror(
            mk_service("default", "backend-west", "10.9.9.9", &[8888]),
            "west",
            "default/backend",
            "not json",
        );
        assert_eq!(record_of(&s).mirror, None);
    }

    #[test]
    fn relist_drops_services_and_links_that_disappeared() {
        let mut idx = KubeIndex::default();
        idx.apply_service(
            "default",
            "gone",
            record_of(&exported(mk_service("default", "gone", "10.0.0.1", &[80]))),
        );
        idx.apply_link("old", mk_link("cluster.local"));
        idx.relist_services(vec![(
            ("default".into(), "kept".into()),
            record_of(&exported(mk_service("default", "kept", "10.0.0.2", &[80]))),
        )]);
        idx.relist_links(vec![]);
        let t = idx.tables();
        assert!(!t.services.contains_key(&("default".into(), "gone".into())));
        assert!(t.services.contains_key(&("default".into(), "kept".into())));
        assert!(t.peers.is_empty());
    }

    #[test]
    fn unexport_then_delete_are_reflected() {
        let mut idx = KubeIndex::default();
        let s = exported(mk_service("default", "backend", "10.0.0.1", &[80]));
        idx.apply_service("default", "backend", record_of(&s));
        let auth = "backend.default.svc.cluster.local:80";
        assert!(idx.tables().route_inbound(auth, "cluster.local").is_ok());
        idx.apply_service(
            "default",
            "backend",
            record_of(&mk_service("default", "backend", "10.0.0.1", &[80])),
        );
        assert_eq!(
            idx.tables().route_inbound(auth, "cluster.local"),
            Err(super::super::config::Refusal::NotExported)
        );
        idx.delete_service("default", "backend");
        assert_eq!(
            idx.tables().route_inbound(auth, "cluster.local"),
            Err(super::super::config::Refusal::NoService)
        );
    }

    #[test]
    fn first_mirror_keeps_a_contested_port() {
        let mut idx = KubeIndex::default();
        for (name, remote) in [("a-west", "default/a"), ("b-west", "default/b")] {
            let s = mirror(
                mk_service("default", name, "10.0.0.1", &[80]),
                "west",
                remote,
                r#"{"80":10001}"#,
            );
            idx.apply_service("default", name, record_of(&s));
        }
        assert_eq!(
            idx.tables().listeners[&10001].authority,
            "a.default.svc.cluster.local:80"
        );
    }

    #[test]
    fn ipv6_gateway_addresses_are_bracketed() {
        assert_eq!(host_port("fd00::1", 4143), "[fd00::1]:4143");
        assert_eq!(host_port("gw.example", 4143), "gw.example:4143");
    }
}
