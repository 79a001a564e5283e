//! The reconcile decision, pure: what is observed (Links, remote exported Services, local
//! Services and mirror EndpointSlices, namespaces, gateway endpoints) → the actions that make
//! the local cluster match, plus what to report in each Link's status.
//!
//! Rules (level-triggered: the same input always gives the same plan; an empty plan means
//! converged):
//! - every remote Service of a Link becomes `Service <name>-<target>` in the same namespace,
//!   with one outbound gateway port per TCP port, stable for the mirror's life and unique
//!   across all links;
//! - a Service mc does not own is never created over, changed or deleted: it is a conflict;
//! - mirrors are deleted only on evidence: their Link is gone or being deleted, or a complete
//!   remote list without them. A remote that is unreachable keeps its mirrors;
//! - a remote Service that is itself a mirror is never mirrored (no daisy chains).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::mirror_name;
use crate::k8s::link::Conflict;
use crate::k8s::{
    ANNOTATION_GATEWAY_PORTS, ANNOTATION_REMOTE_RESOURCE_VERSION, ANNOTATION_REMOTE_SERVICE,
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, LABEL_MIRROR_OF,
    LABEL_SLICE_MANAGED_BY, LABEL_SLICE_SERVICE, ObjectMeta, SLICE_MANAGER, Service, ServicePort,
    ServiceSpec,
};

/// `namespace/name`.
pub type Key = (String, String);

/// A Service port as the plan needs it (TCP only: the gateway carries TCP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SvcPort {
    pub name: Option<String>,
    pub port: u16,
    /// Only meaningful on local mirrors (the allocated gateway port).
    pub target_port: Option<u16>,
}

/// A remote Service selected by a Link.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteService {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub ports: Vec<SvcPort>,
    /// Why it cannot be mirrored (headless, ExternalName, itself a mirror), if so.
    pub unmirrorable: Option<&'static str>,
}

/// A local Service (any: mirrors and the Services they might collide with).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalService {
    pub mirror_of: Option<String>,
    pub remote: Option<String>,
    pub remote_resource_version: Option<String>,
    /// Service port → gateway port, from `mc.dev/gateway-ports`.
    pub gateway_ports: BTreeMap<u16, u16>,
    pub ports: Vec<SvcPort>,
    pub uid: Option<String>,
    /// It has a selector (Kubernetes manages its endpoints): never a TrafficSplit apex.
    pub selector: bool,
    /// `mc.dev/split-of`: mc created it as the apex of that TrafficSplit.
    pub split_of: Option<String>,
}

/// A mirror EndpointSlice mc manages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalSlice {
    pub service: String,
    /// (address, ready), sorted.
    pub endpoints: Vec<(String, bool)>,
    pub ports: Vec<(Option<String>, u16)>,
    pub owner_uid: Option<String>,
}

/// One Link and what is known of its target.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkState {
    pub target: String,
    pub deleting: bool,
    pub has_finalizer: bool,
    /// The remote Services from the last complete list, kept (stale) while the remote is
    /// unreachable; `None` until the first list.
    pub remote: Option<Vec<RemoteService>>,
    /// The target gateway passes its probe (mirror endpoints are ready only then).
    pub gateway_alive: bool,
}

/// Everything the plan reads.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub links: Vec<LinkState>,
    /// Links listed completely once: before that, no mirror is an orphan.
    pub links_synced: bool,
    pub services: BTreeMap<Key, LocalService>,
    pub slices: BTreeMap<Key, LocalSlice>,
    /// Existing namespaces (`None`: not listed yet; nothing is reported missing).
    pub namespaces: Option<BTreeSet<String>>,
    /// Ready addresses of the local gateway (its Service's EndpointSlices).
    pub gateway_endpoints: Vec<String>,
    /// Outbound ports TrafficSplits hold: never given to a mirror.
    pub reserved_ports: BTreeSet<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Inclusive outbound port pool.
    pub port_range: (u16, u16),
    pub create_namespaces: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AddFinalizer {
        link: String,
    },
    CreateNamespace {
        name: String,
    },
    ApplyService {
        namespace: String,
        name: String,
        service: Box<Service>,
    },
    ApplySlice {
        namespace: String,
        name: String,
        slice: Box<EndpointSlice>,
    },
    DeleteService {
        namespace: String,
        name: String,
    },
    DeleteSlice {
        namespace: String,
        name: String,
    },
    RemoveFinalizer {
        link: String,
    },
}

/// What the status of one Link should say about its mirrors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkReport {
    /// Remote Services that have a mirror of ours (possibly being updated by this plan).
    pub mirrored: u32,
    pub conflicts: Vec<Conflict>,
    /// The remote has been listed at least once.
    pub remote_listed: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub reports: BTreeMap<String, LinkReport>,
    /// Outbound ports mirrors hold after this plan (the split plan allocates around them).
    pub ports: BTreeSet<u16>,
}

/// Owns outbound ports: those recorded on existing mirrors first (first claimant in key order
/// keeps a contested port), then the lowest free port for new ones.
struct Ports {
    range: (u16, u16),
    owner: BTreeMap<u16, Key>,
    next: u32,
}

impl Ports {
    fn new(
        range: (u16, u16),
        services: &BTreeMap<Key, LocalService>,
        reserved: &BTreeSet<u16>,
    ) -> Self {
        let mut owner = BTreeMap::new();
        // An owner no Service key can equal: reserved ports are neither kept nor allocated.
        for port in reserved {
            owner.insert(*port, (String::new(), String::new()));
        }
        for (key, svc) in services {
            if svc.mirror_of.is_none() {
                continue;
            }
            for port in svc.gateway_ports.values() {
                owner.entry(*port).or_insert_with(|| key.clone());
            }
        }
        Ports {
            range,
            owner,
            next: u32::from(range.0),
        }
    }

    fn keeps(&self, port: u16, key: &Key) -> bool {
        (self.range.0..=self.range.1).contains(&port) && self.owner.get(&port) == Some(key)
    }

    fn allocate(&mut self, key: &Key) -> Option<u16> {
        while self.next <= u32::from(self.range.1) {
            let p = self.next as u16;
            self.next += 1;
            if let std::collections::btree_map::Entry::Vacant(free) = self.owner.entry(p) {
                free.insert(key.clone());
                return Some(p);
            }
        }
        None
    }
}

/// Computes the actions and reports for everything observed.
pub fn plan(observed: &Observed, settings: &PlanSettings) -> Plan {
    let mut out = Plan::default();
    let mut ports = Ports::new(
        settings.port_range,
        &observed.services,
        &observed.reserved_ports,
    );
    let mut desired_keys: BTreeSet<Key> = BTreeSet::new();
    let mut namespaces_to_create: BTreeSet<String> = BTreeSet::new();
    let mut applies = Vec::new();
    let links: BTreeMap<&str, &LinkState> = observed
        .links
        .iter()
        .map(|l| (l.target.as_str(), l))
        .collect();

    for link in links.values() {
        let mut report = LinkReport {
            remote_listed: link.remote.is_some(),
            ..Default::default()
        };
        if !link.deleting && !link.has_finalizer {
            out.actions.push(Action::AddFinalizer {
                link: link.target.clone(),
            });
        }
        if link.deleting {
            out.reports.insert(link.target.clone(), report);
            continue;
        }
        let Some(remote) = &link.remote else {
            // Not listed yet: keep whatever mirrors exist, as they are.
            for (key, svc) in &observed.services {
                if svc.mirror_of.as_deref() == Some(&link.target) {
                    desired_keys.insert(key.clone());
                }
            }
            out.reports.insert(link.target.clone(), report);
            continue;
        };
        let mut remote: Vec<&RemoteService> = remote.iter().collect();
        remote.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for r in remote {
            let name = mirror_name(&r.name, &link.target);
            let key = (r.namespace.clone(), name.clone());
            let shown = format!("{}/{}", r.namespace, name);
            if let Some(why) = r.unmirrorable {
                report.conflicts.push(Conflict {
                    service: format!("{}/{}", r.namespace, r.name),
                    reason: format!("remote Service not mirrored: {why}"),
                });
                continue;
            }
            let remote_ref = format!("{}/{}", r.namespace, r.name);
            if let Some(existing) = observed.services.get(&key) {
                let ours = existing.mirror_of.as_deref() == Some(&link.target)
                    && existing.remote.as_deref() == Some(&remote_ref);
                if !ours {
                    let reason = match (&existing.mirror_of, &existing.remote) {
                        (None, _) => "a Service mc does not own has the mirror's name".to_owned(),
                        (Some(t), Some(other)) if t != &link.target || other != &remote_ref => {
                            format!("the name is taken by the mirror of {other} from link {t}")
                        }
                        _ => "a Service with the mirror's name has unexpected mc labels".to_owned(),
                    };
                    report.conflicts.push(Conflict {
                        service: shown,
                        reason,
                    });
                    continue;
                }
            }
            if let Some(nss) = &observed.namespaces
                && !nss.contains(&r.namespace)
            {
                if settings.create_namespaces {
                    namespaces_to_create.insert(r.namespace.clone());
                } else {
                    report.conflicts.push(Conflict {
                        service: shown,
                        reason: format!(
                            "namespace {} does not exist here; create it, or run mc mirror with --create-namespaces",
                            r.namespace
                        ),
                    });
                    continue;
                }
            }
            let existing = observed.services.get(&key);
            let mut mapping = BTreeMap::new();
            let mut exhausted = false;
            for p in &r.ports {
                let kept = existing
                    .and_then(|e| e.gateway_ports.get(&p.port))
                    .copied()
                    .filter(|gp| ports.keeps(*gp, &key));
                match kept.or_else(|| ports.allocate(&key)) {
                    Some(gp) => {
                        mapping.insert(p.port, gp);
                    }
                    None => exhausted = true,
                }
            }
            if exhausted {
                report.conflicts.push(Conflict {
                    service: shown,
                    reason: format!(
                        "the outbound port pool {}-{} is exhausted; widen gateway.outboundPortRange",
                        settings.port_range.0, settings.port_range.1
                    ),
                });
                continue;
            }
            desired_keys.insert(key.clone());
            report.mirrored += 1;
            applies.push((link.target.clone(), r, key, mapping, link.gateway_alive));
        }
        out.reports.insert(link.target.clone(), report);
    }

    for ns in namespaces_to_create {
        out.actions.push(Action::CreateNamespace { name: ns });
    }

    let mut gateway: Vec<String> = observed.gateway_endpoints.clone();
    gateway.sort();
    gateway.dedup();
    for (target, r, key, mapping, alive) in applies {
        let existing = observed.services.get(&key);
        let wanted_ports: Vec<SvcPort> = r
            .ports
            .iter()
            .map(|p| SvcPort {
                name: p.name.clone(),
                port: p.port,
                target_port: mapping.get(&p.port).copied(),
            })
            .collect();
        let up_to_date = existing.is_some_and(|e| {
            e.remote_resource_version.as_deref() == Some(r.resource_version.as_str())
                && e.gateway_ports == mapping
                && sorted(&e.ports) == sorted(&wanted_ports)
        });
        if !up_to_date {
            out.actions.push(Action::ApplyService {
                namespace: key.0.clone(),
                name: key.1.clone(),
                service: Box::new(mirror_service(&target, r, &key.1, &mapping, &wanted_ports)),
            });
        }
        let endpoints: Vec<(String, bool)> = gateway.iter().map(|ip| (ip.clone(), alive)).collect();
        let slice_ports: Vec<(Option<String>, u16)> = wanted_ports
            .iter()
            .filter_map(|p| p.target_port.map(|gp| (p.name.clone(), gp)))
            .collect();
        let owner_uid = existing.and_then(|e| e.uid.clone());
        let slice_ok = observed.slices.get(&key).is_some_and(|s| {
            s.service == key.1
                && s.endpoints == endpoints
                && sorted(&s.ports) == sorted(&slice_ports)
                && (owner_uid.is_none() || s.owner_uid == owner_uid)
        });
        if !slice_ok {
            out.actions.push(Action::ApplySlice {
                namespace: key.0.clone(),
                name: key.1.clone(),
                slice: Box::new(mirror_slice(
                    &target,
                    &key.1,
                    owner_uid.as_deref(),
                    &endpoints,
                    &slice_ports,
                )),
            });
        }
    }

    // Deletions, on evidence only.
    for (key, svc) in &observed.services {
        let Some(target) = &svc.mirror_of else {
            continue;
        };
        if desired_keys.contains(key) {
            continue;
        }
        let delete = match links.get(target.as_str()) {
            None => observed.links_synced,
            Some(l) if l.deleting => true,
            Some(l) => l.remote.is_some(),
        };
        if delete {
            out.actions.push(Action::DeleteService {
                namespace: key.0.clone(),
                name: key.1.clone(),
            });
        }
    }
    for (key, slice) in &observed.slices {
        let service_kept = desired_keys.contains(key)
            || observed.services.get(key).is_some_and(|s| {
                s.mirror_of.is_some()
                    && !out.actions.iter().any(|a| {
                        matches!(a, Action::DeleteService { namespace, name } if (namespace, name) == (&key.0, &key.1))
                    })
            });
        if !service_kept || slice.service != key.1 {
            out.actions.push(Action::DeleteSlice {
                namespace: key.0.clone(),
                name: key.1.clone(),
            });
        }
    }
    out.ports = ports
        .owner
        .iter()
        .filter(|(_, k)| !k.0.is_empty())
        .map(|(p, _)| *p)
        .collect();
    for link in links.values().filter(|l| l.deleting && l.has_finalizer) {
        let remaining = observed
            .services
            .values()
            .any(|s| s.mirror_of.as_deref() == Some(&link.target));
        if !remaining {
            out.actions.push(Action::RemoveFinalizer {
                link: link.target.clone(),
            });
        }
    }
    out
}

pub(super) fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn mirror_service(
    target: &str,
    r: &RemoteService,
    name: &str,
    mapping: &BTreeMap<u16, u16>,
    ports: &[SvcPort],
) -> Service {
    let gateway_ports: BTreeMap<String, u16> =
        mapping.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(r.namespace.clone()),
            labels: Some(BTreeMap::from([(
                LABEL_MIRROR_OF.to_owned(),
                target.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    ANNOTATION_REMOTE_SERVICE.to_owned(),
                    format!("{}/{}", r.namespace, r.name),
                ),
                (
                    ANNOTATION_REMOTE_RESOURCE_VERSION.to_owned(),
                    r.resource_version.clone(),
                ),
                (
                    ANNOTATION_GATEWAY_PORTS.to_owned(),
                    serde_json::to_string(&gateway_ports).unwrap_or_default(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(gateway_fronted_spec(ports)),
        status: None,
    }
}

/// The spec of a Service mc fronts with the local gateway (a mirror, a split's apex): ClusterIP,
/// no selector (mc writes its EndpointSlice), TCP ports targeting the allocated gateway ports.
pub(super) fn gateway_fronted_spec(ports: &[SvcPort]) -> ServiceSpec {
    ServiceSpec {
        type_: Some("ClusterIP".into()),
        ports: Some(
            ports
                .iter()
                .map(|p| ServicePort {
                    name: p.name.clone(),
                    port: i32::from(p.port),
                    protocol: Some("TCP".into()),
                    target_port: p.target_port.map(|t| IntOrString::Int(i32::from(t))),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

fn mirror_slice(
    target: &str,
    service: &str,
    owner_uid: Option<&str>,
    endpoints: &[(String, bool)],
    ports: &[(Option<String>, u16)],
) -> EndpointSlice {
    gateway_slice(
        service,
        (SLICE_MANAGER, (LABEL_MIRROR_OF, target)),
        owner_uid,
        endpoints,
        ports,
    )
}

/// An EndpointSlice of `service` (named after it, owned by it) pointing at the local gateway's
/// `endpoints` on `ports`; `manager` is its managed-by value and one label saying what made it
/// (a mirror of a link, or a split's apex).
pub(super) fn gateway_slice(
    service: &str,
    (manager, (owner_label, owner_value)): (&str, (&str, &str)),
    owner_uid: Option<&str>,
    endpoints: &[(String, bool)],
    ports: &[(Option<String>, u16)],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(service.to_owned()),
            labels: Some(BTreeMap::from([
                (LABEL_SLICE_SERVICE.to_owned(), service.to_owned()),
                (LABEL_SLICE_MANAGED_BY.to_owned(), manager.to_owned()),
                (owner_label.to_owned(), owner_value.to_owned()),
            ])),
            // The slice goes when its Service goes, even if mc is not running then.
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Service".into(),
                    name: service.to_owned(),
                    uid: uid.to_owned(),
                    controller: Some(true),
                    block_owner_deletion: Some(false),
                }]
            }),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .map(|(ip, ready)| Endpoint {
                addresses: vec![ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*ready),
                    terminating: Some(false),
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: name.clone(),
                    port: Some(i32::from(*port)),
                    protocol: Some("TCP".into()),
                    app_protocol: None,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
