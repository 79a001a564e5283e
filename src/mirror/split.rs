//! The TrafficSplit decision, pure: splits, local Services, the split EndpointSlices, which
//! Links' gateways are alive and the outbound ports mirrors hold → the actions that make each
//! apex Service lead to the local gateway, and each split's status.
//!
//! ```text
//!  client ─▶ apex ClusterIP ─(EndpointSlice by mc: gateway Pods, allocated port G)─▶ gateway :G
//!        ─▶ pick a backend by effective weight ─▶ local ClusterIP (direct) | mirror (tunnel)
//! ```
//!
//! Rules (level-triggered, like the mirror plan):
//! - the apex must be selector-less and nobody else's (not a mirror, not another split's); a
//!   missing apex is created by mc, labelled `mc.dev/split-of`, with its first backend's ports.
//!   Anything else is a conflict in the split's status, and nothing is written for it;
//! - each apex port gets an outbound port from the same pool as mirrors, kept for the split's
//!   life (recorded in its status), never one a mirror holds;
//! - a backend's effective weight is its spec weight, or 0 with a reason: Service missing, the
//!   apex itself, or a mirror whose Link's gateway is not alive (failover). When every effective
//!   weight is 0 the apex's endpoints are not ready, so connections are refused at once;
//! - slices and mc-created apexes of splits that are gone are deleted.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Action, Key, LocalService, LocalSlice, SvcPort, sorted};
use crate::k8s::split::{BackendStatus, SplitPort, TrafficSplitSpec, TrafficSplitStatus};
use crate::k8s::{EndpointSlice, LABEL_SPLIT_OF, ObjectMeta, SPLIT_SLICE_MANAGER, Service};

/// One TrafficSplit as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitState {
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub spec: TrafficSplitSpec,
    pub status: Option<TrafficSplitStatus>,
}

/// Everything the split plan reads.
#[derive(Debug, Clone, Default)]
pub struct SplitObserved {
    pub splits: Vec<SplitState>,
    pub services: BTreeMap<Key, LocalService>,
    /// EndpointSlices managed by `split.mc.dev`.
    pub slices: BTreeMap<Key, LocalSlice>,
    /// Link name (target cluster) → its gateway is alive (unknown counts as alive).
    pub links: BTreeMap<String, bool>,
    /// Ready addresses of the local gateway.
    pub gateway_endpoints: Vec<String>,
    /// Outbound ports mirrors hold (after this pass's allocations).
    pub mirror_ports: BTreeSet<u16>,
    /// Inclusive outbound port pool.
    pub port_range: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitPlan {
    /// Service and EndpointSlice writes, performed by the mirror controller's executor.
    pub actions: Vec<Action>,
    /// Status writes for splits whose status differs from the observed one.
    pub statuses: Vec<(Key, TrafficSplitStatus)>,
}

/// Why a backend's effective weight is 0. One place for the texts users read.
pub mod reason {
    pub fn missing(ns: &str, name: &str) -> String {
        format!("Service {ns}/{name} does not exist")
    }
    pub const APEX: &str = "the apex Service cannot be its own backend";
    pub fn no_link(target: &str) -> String {
        format!("mirror of cluster {target}, which has no Link here")
    }
    pub fn not_alive(target: &str) -> String {
        format!("the gateway of {target} is not alive (Link {target}); failed over")
    }
}

/// Ports already taken in this pass: mirrors' and those given to earlier splits.
struct Pool {
    range: (u16, u16),
    taken: BTreeSet<u16>,
}

impl Pool {
    fn free(&self, p: u16) -> bool {
        (self.range.0..=self.range.1).contains(&p) && !self.taken.contains(&p)
    }

    fn allocate(&mut self) -> Option<u16> {
        let p = (self.range.0..=self.range.1).find(|p| !self.taken.contains(p))?;
        self.taken.insert(p);
        Some(p)
    }
}

/// Ports an existing split keeps: those in its status that are still free (checked before any
/// new allocation, so that a new split never takes an older one's port).
fn kept_ports(split: &SplitState, pool: &Pool, claimed: &mut BTreeSet<u16>) -> BTreeMap<u16, u16> {
    let mut kept = BTreeMap::new();
    for p in split.status.iter().flat_map(|s| &s.ports) {
        if pool.free(p.gateway_port) && claimed.insert(p.gateway_port) {
            kept.insert(p.port, p.gateway_port);
        }
    }
    kept
}

/// Computes the writes and statuses for every split.
pub fn plan_splits(o: &SplitObserved) -> SplitPlan {
    let mut out = SplitPlan::default();
    let mut splits: Vec<&SplitState> = o.splits.iter().collect();
    splits.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut pool = Pool {
        range: o.port_range,
        taken: o.mirror_ports.clone(),
    };
    // Every split's recorded ports first, in key order.
    let mut claimed = BTreeSet::new();
    let kept: Vec<BTreeMap<u16, u16>> = splits
        .iter()
        .map(|s| kept_ports(s, &pool, &mut claimed))
        .collect();
    pool.taken.extend(claimed);

    let mut gateway = o.gateway_endpoints.clone();
    gateway.sort();
    gateway.dedup();
    let mut apexes: BTreeMap<Key, &str> = BTreeMap::new();
    let mut wanted_slices: BTreeSet<Key> = BTreeSet::new();

    for (split, kept) in splits.iter().zip(kept) {
        let ns = &split.namespace;
        let apex_key: Key = (ns.clone(), split.spec.service.clone());
        let backends = effective(split, o);
        let mut status = TrafficSplitStatus {
            weights: Some(weights_line(&backends)),
            backends,
            observed_generation: split.generation,
            ..Default::default()
        };
        let conflict = apex_conflict(split, &apex_key, o, &apexes);
        let apex = o.services.get(&apex_key);
        // The apex's ports: its own, or (mc creates it) the first existing backend's.
        let apex_ports: Option<Vec<SvcPort>> = match (&conflict, apex) {
            (Some(_), _) => None,
            (None, Some(a)) => Some(a.ports.clone()),
            (None, None) => split
                .spec
                .backends
                .iter()
                .filter(|b| b.service != split.spec.service)
                .find_map(|b| o.services.get(&(ns.clone(), b.service.clone())))
                .map(|b| {
                    b.ports
                        .iter()
                        .map(|p| SvcPort {
                            name: p.name.clone(),
                            port: p.port,
                            target_port: None,
                        })
                        .collect()
                }),
        };
        let Some(apex_ports) = apex_ports else {
            status.conflict = Some(conflict.unwrap_or_else(|| {
                format!(
                    "Service {ns}/{} does not exist and no backend exists to take its ports from; create it without a selector",
                    split.spec.service
                )
            }));
            push_status(&mut out, split, status);
            continue;
        };
        apexes.insert(apex_key.clone(), &split.name);
        let mut mapping = BTreeMap::new();
        let mut exhausted = false;
        for p in &apex_ports {
            match kept.get(&p.port).copied().or_else(|| pool.allocate()) {
                Some(g) => {
                    mapping.insert(p.port, g);
                }
                None => exhausted = true,
            }
        }
        // Ports kept for apex ports that no longer exist go back to the pool.
        for (port, g) in &kept {
            if !mapping.contains_key(port) {
                pool.taken.remove(g);
            }
        }
        if exhausted {
            status.conflict = Some(format!(
                "the outbound port pool {}-{} is exhausted; widen gateway.outboundPortRange",
                o.port_range.0, o.port_range.1
            ));
            push_status(&mut out, split, status);
            continue;
        }
        status.ports = mapping
            .iter()
            .map(|(port, g)| SplitPort {
                port: *port,
                gateway_port: *g,
            })
            .collect();

        if apex.is_none() || apex.is_some_and(|a| a.split_of.is_some()) {
            let wanted: Vec<SvcPort> = apex_ports
                .iter()
                .map(|p| SvcPort {
                    target_port: mapping.get(&p.port).copied(),
                    ..p.clone()
                })
                .collect();
            if apex.is_none_or(|a| sorted(&a.ports) != sorted(&wanted)) {
                out.actions.push(Action::ApplyService {
                    namespace: ns.clone(),
                    name: apex_key.1.clone(),
                    service: Box::new(apex_service(split, &wanted)),
                });
            }
        }

        let any_up = status.backends.iter().any(|b| b.effective_weight > 0);
        let endpoints: Vec<(String, bool)> =
            gateway.iter().map(|ip| (ip.clone(), any_up)).collect();
        let slice_ports: Vec<(Option<String>, u16)> = apex_ports
            .iter()
            .filter_map(|p| Some((p.name.clone(), *mapping.get(&p.port)?)))
            .collect();
        let owner_uid = apex.and_then(|a| a.uid.clone());
        wanted_slices.insert(apex_key.clone());
        let slice_ok = o.slices.get(&apex_key).is_some_and(|s| {
            s.service == apex_key.1
                && s.endpoints == endpoints
                && sorted(&s.ports) == sorted(&slice_ports)
                && (owner_uid.is_none() || s.owner_uid == owner_uid)
        });
        if !slice_ok {
            out.actions.push(Action::ApplySlice {
                namespace: ns.clone(),
                name: apex_key.1.clone(),
                slice: Box::new(apex_slice(
                    &split.name,
                    &apex_key.1,
                    owner_uid.as_deref(),
                    &endpoints,
                    &slice_ports,
                )),
            });
        }
        push_status(&mut out, split, status);
    }

    for key in o.slices.keys() {
        if !wanted_slices.contains(key) {
            out.actions.push(Action::DeleteSlice {
                namespace: key.0.clone(),
                name: key.1.clone(),
            });
        }
    }
    // Only when the split that made it is gone: a split in conflict keeps its apex.
    let existing: BTreeSet<(&str, &str)> = o
        .splits
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    for (key, svc) in &o.services {
        let Some(owner) = &svc.split_of else { continue };
        if !existing.contains(&(key.0.as_str(), owner.as_str())) {
            out.actions.push(Action::DeleteService {
                namespace: key.0.clone(),
                name: key.1.clone(),
            });
        }
    }
    out
}

/// Why the apex cannot be served by this split, if so.
fn apex_conflict(
    split: &SplitState,
    apex_key: &Key,
    o: &SplitObserved,
    taken: &BTreeMap<Key, &str>,
) -> Option<String> {
    let shown = format!("Service {}/{}", apex_key.0, apex_key.1);
    if let Some(other) = taken.get(apex_key) {
        return Some(format!(
            "{shown} is already the apex of TrafficSplit {}/{other}",
            apex_key.0
        ));
    }
    let apex = o.services.get(apex_key)?;
    if let Some(t) = &apex.mirror_of {
        return Some(format!(
            "{shown} is a mirror of cluster {t}; split a Service of your own"
        ));
    }
    match &apex.split_of {
        Some(owner) if owner != &split.name => Some(format!(
            "{shown} was created by mc for TrafficSplit {}/{owner}",
            apex_key.0
        )),
        Some(_) => None,
        None if apex.selector => Some(format!(
            "{shown} has a selector, so Kubernetes manages its endpoints; make the apex a Service without a selector"
        )),
        None => None,
    }
}

/// Effective weights in spec order.
fn effective(split: &SplitState, o: &SplitObserved) -> Vec<BackendStatus> {
    split
        .spec
        .backends
        .iter()
        .map(|b| {
            let svc = o
                .services
                .get(&(split.namespace.clone(), b.service.clone()));
            let cluster = svc.and_then(|s| s.mirror_of.clone());
            let why = if b.service == split.spec.service {
                Some(reason::APEX.to_owned())
            } else {
                match svc {
                    None => Some(reason::missing(&split.namespace, &b.service)),
                    Some(s) => match s.mirror_of.as_deref() {
                        None => None,
                        Some(t) => match o.links.get(t) {
                            None => Some(reason::no_link(t)),
                            Some(false) => Some(reason::not_alive(t)),
                            Some(true) => None,
                        },
                    },
                }
            };
            BackendStatus {
                service: b.service.clone(),
                weight: b.weight,
                effective_weight: if why.is_some() { 0 } else { b.weight },
                cluster,
                reason: why,
            }
        })
        .collect()
}

fn weights_line(backends: &[BackendStatus]) -> String {
    backends
        .iter()
        .map(|b| format!("{}={}", b.service, b.effective_weight))
        .collect::<Vec<_>>()
        .join(",")
}

fn push_status(out: &mut SplitPlan, split: &SplitState, status: TrafficSplitStatus) {
    if split.status.as_ref() != Some(&status) {
        out.statuses
            .push(((split.namespace.clone(), split.name.clone()), status));
    }
}

fn apex_service(split: &SplitState, ports: &[SvcPort]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(split.spec.service.clone()),
            namespace: Some(split.namespace.clone()),
            labels: Some(BTreeMap::from([(
                LABEL_SPLIT_OF.to_owned(),
                split.name.clone(),
            )])),
            ..Default::default()
        },
        spec: Some(super::plan::gateway_fronted_spec(ports)),
        status: None,
    }
}

fn apex_slice(
    split: &str,
    service: &str,
    owner_uid: Option<&str>,
    endpoints: &[(String, bool)],
    ports: &[(Option<String>, u16)],
) -> EndpointSlice {
    super::plan::gateway_slice(
        service,
        (SPLIT_SLICE_MANAGER, (LABEL_SPLIT_OF, split)),
        owner_uid,
        endpoints,
        ports,
    )
}

#[cfg(test)]
mod tests;
