//! Service controllers: LoadBalancer ingress (the service controller of a cloud provider) and
//! one EndpointSlice per selector Service listing its Pods (the EndpointSlice controller).

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{SLICE_MANAGED_BY, Settings, new_meta};
use crate::sim::cluster::store::{Event, EventType, State, meta_str};
use crate::sim::semantics::selector::LabelSelector;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

pub(super) fn on_service(settings: &Settings, state: &mut State, ev: &Event) {
    let obj = &ev.object;
    if ev.etype == EventType::Deleted {
        if let Some(ip) = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        {
            let offset = u32::from(ip).wrapping_sub(u32::from(settings.cluster_ip_base));
            state.cluster_ips.remove(&offset);
        }
        return;
    }
    let is_lb = obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    let has_ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if is_lb && !has_ingress {
        // With a node, each Service gets its own address, which the service proxy serves.
        let ip = settings.load_balancer_ip(obj);
        let mut o = (**obj).clone();
        o["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]});
        state.put("/services", o, EventType::Modified);
    } else if !is_lb && has_ingress {
        let mut o = (**obj).clone();
        o["status"]["loadBalancer"] = json!({});
        state.put("/services", o, EventType::Modified);
    }
}

fn selector_of(svc: &Value) -> Option<LabelSelector> {
    let sel = svc.pointer("/spec/selector").and_then(Value::as_object)?;
    if sel.is_empty() {
        return None;
    }
    let text: Vec<String> = sel
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    LabelSelector::parse(&text.join(",")).ok()
}

pub(super) fn services_selecting(state: &State, ev: &Event) -> Vec<String> {
    let mut out = Vec::new();
    for svc in state.list("/services", Some(&ev.namespace)) {
        if let Some(sel) = selector_of(&svc) {
            let now = sel.matches_object(&ev.object);
            let before = ev.old.as_ref().is_some_and(|o| sel.matches_object(o));
            if now || before {
                out.push(meta_str(&svc, "name").to_string());
            }
        }
    }
    out
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Keeps one controller-managed EndpointSlice per selector Service in step with its Pods.
pub(super) fn reconcile_slices(state: &mut State, ns: &str, svc_name: &str) {
    let key = "discovery.k8s.io/endpointslices";
    // The controller only manages the slice it named; user-made slices are left alone.
    let slice_name = format!(
        "{}-{}",
        truncate(svc_name, 57),
        short_hash(&format!("{ns}/{svc_name}"))
    );
    let existing: Vec<Arc<Value>> = state.get(key, ns, &slice_name).into_iter().collect();
    let svc = state.get("/services", ns, svc_name);
    let sel = svc.as_deref().and_then(selector_of);
    let (Some(svc), Some(sel)) = (svc, sel) else {
        for s in existing {
            state.remove(key, ns, meta_str(&s, "name"));
        }
        return;
    };
    let pods: Vec<Arc<Value>> = state
        .list("/pods", Some(ns))
        .into_iter()
        .filter(|p| sel.matches_object(p) && p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    let mut endpoints = Vec::new();
    for p in &pods {
        let Some(ip) = p.pointer("/status/podIP").and_then(Value::as_str) else {
            continue;
        };
        let ready = pod_ready(p);
        let mut ep = json!({
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": ready, "terminating": false},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta_str(p, "name"), "uid": meta_str(p, "uid")},
        });
        if let Some(node) = p.pointer("/spec/nodeName") {
            ep["nodeName"] = node.clone();
        }
        endpoints.push(ep);
    }
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let target = match p.get("targetPort") {
                        Some(Value::Number(n)) => json!(n),
                        Some(Value::String(name)) => pods
                            .iter()
                            .find_map(|pod| named_port(pod, name))
                            .map(|n| json!(n))
                            .unwrap_or(Value::Null),
                        _ => p.get("port").cloned().unwrap_or(Value::Null),
                    };
                    let mut out = json!({
                        "name": p.get("name").cloned().unwrap_or(json!("")),
                        "port": target,
                        "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP")),
                    });
                    if let Some(ap) = p.get("appProtocol") {
                        out["appProtocol"] = ap.clone();
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    let desired_labels = json!({SERVICE_NAME_LABEL: svc_name, MANAGED_BY_LABEL: SLICE_MANAGED_BY});
    let mut keep = existing.first().cloned();
    for extra in existing.iter().skip(1) {
        state.remove(key, ns, meta_str(extra, "name"));
    }
    let mut slice = match keep.take() {
        Some(s) => (*s).clone(),
        None => {
            let name = format!(
                "{}-{}",
                truncate(svc_name, 57),
                short_hash(&format!("{ns}/{svc_name}"))
            );
            let mut m = new_meta(ns, &name);
            m["generateName"] = json!(format!("{svc_name}-"));
            m["generation"] = json!(1);
            m["ownerReferences"] = json!([{
                "apiVersion": "v1", "kind": "Service", "name": svc_name,
                "uid": meta_str(&svc, "uid"), "controller": true, "blockOwnerDeletion": true,
            }]);
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": m})
        }
    };
    let before = slice.clone();
    slice["metadata"]["labels"] = desired_labels;
    slice["addressType"] = json!("IPv4");
    slice["endpoints"] = json!(endpoints);
    slice["ports"] = json!(ports);
    if slice != before || slice.pointer("/metadata/resourceVersion").is_none() {
        let etype = if before.pointer("/metadata/resourceVersion").is_some() {
            let generation = slice
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            slice["metadata"]["generation"] = json!(generation + 1);
            EventType::Modified
        } else {
            EventType::Added
        };
        state.put(key, slice, etype);
    }
}

fn named_port(pod: &Value, name: &str) -> Option<i64> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn short_hash(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.as_ref()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_names_are_stable_and_short() {
        assert_eq!(short_hash("a/b"), short_hash("a/b"));
        assert_eq!(short_hash("a/b").len(), 5);
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
