//! Workload controllers and the scheduler, run synchronously inside the write that triggers
//! them (like the other simulated controllers): Deployment ─▶ ReplicaSets (one per Pod
//! template, `pod-template-hash`) ─▶ Pods, bound at once to the cluster's one Node. Status of
//! both reports what the Pods are, so `kubectl rollout status` waits for real readiness.
//!
//! Rolling updates are simplified: the new ReplicaSet is scaled to the full replica count at
//! once and old ReplicaSets shrink as new Pods become ready, so availability never drops
//! (maxSurge is effectively 100%).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::store::{Event, EventType, State, meta_str};
use crate::sim::semantics::selector::LabelSelector;

const DEPLOYMENTS: &str = "apps/deployments";
const REPLICASETS: &str = "apps/replicasets";
const PODS: &str = "/pods";
const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

pub fn on_event(node_name: &str, state: &mut State, ev: &Event) {
    let ns = ev.namespace.as_str();
    let name = meta_str(&ev.object, "name");
    match ev.key.as_str() {
        DEPLOYMENTS if ev.etype != EventType::Deleted => reconcile_deployment(state, ns, name),
        REPLICASETS => {
            if ev.etype != EventType::Deleted {
                reconcile_replicaset(node_name, state, ns, name);
            }
            if let Some(owner) = controller_of(&ev.object, "Deployment") {
                reconcile_deployment(state, ns, &owner);
            }
        }
        PODS => {
            if ev.etype == EventType::Added {
                schedule(node_name, state, &ev.object);
            }
            if let Some(owner) = controller_of(&ev.object, "ReplicaSet") {
                reconcile_replicaset(node_name, state, ns, &owner);
            }
        }
        _ => {}
    }
}

/// The name of the object's controller of `kind`.
fn controller_of(obj: &Value, kind: &str) -> Option<String> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["controller"] == true)
        .and_then(|r| r["name"].as_str())
        .map(str::to_string)
}

fn owned_by(state: &State, key: &str, owner_uid: &str) -> Vec<Arc<Value>> {
    state
        .dependents_of(owner_uid)
        .into_iter()
        .filter(|(k, o)| {
            k == key
                && o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|rs| {
                        rs.iter()
                            .any(|r| r["uid"] == owner_uid && r["controller"] == true)
                    })
        })
        .map(|(_, o)| o)
        .collect()
}

/// Binds a new Pod to the node, as the scheduler would (there is one node, always fitting).
fn schedule(node_name: &str, state: &mut State, pod: &Value) {
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return;
    }
    let mut p = pod.clone();
    p["spec"]["nodeName"] = json!(node_name);
    p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True",
        "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}]);
    state.put(PODS, p, EventType::Modified);
}

/// A short stable hash of a Pod template, in the alphabet Kubernetes uses for generated names.
fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, t.to_string().as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.as_ref()[..10]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn owner_ref(kind: &str, obj: &Value) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": meta_str(obj, "name"),
            "uid": meta_str(obj, "uid"), "controller": true, "blockOwnerDeletion": true}])
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// An absolute or percentage `maxUnavailable` of `replicas`, rounded down like the controller.
fn max_unavailable(d: &Value, replicas: i64) -> i64 {
    match d.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| replicas * p / 100),
        _ => replicas / 4,
    }
}

fn reconcile_deployment(state: &mut State, ns: &str, name: &str) {
    let Some(d) = state.get(DEPLOYMENTS, ns, name) else {
        return;
    };
    if d.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let mut rss = owned_by(state, REPLICASETS, meta_str(&d, "uid"));
    let paused = d.pointer("/spec/paused") == Some(&json!(true));
    let is_new = |rs: &Value| {
        rs.pointer("/metadata/labels")
            .and_then(|l| l.get(HASH_LABEL))
            .and_then(Value::as_str)
            == Some(hash.as_str())
    };
    let max_rev = rss.iter().map(|r| revision(r)).max().unwrap_or(0);
    if !paused && !rss.iter().any(|r| is_new(r)) {
        let mut t = template.clone();
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let rs_name = format!("{name}-{hash}");
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name, "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now_rfc3339(), "generation": 1,
                "labels": t["metadata"]["labels"].clone(),
                "annotations": {REVISION: (max_rev + 1).to_string(),
                    "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                    "deployment.kubernetes.io/max-replicas": desired.to_string()},
                "ownerReferences": owner_ref("Deployment", &d),
            },
            "spec": {"replicas": desired, "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                     "selector": selector, "template": t},
        });
        let stored = state.put(REPLICASETS, rs, EventType::Added);
        rss.push(stored);
    }
    let new_ready: i64 = rss
        .iter()
        .filter(|r| is_new(r))
        .map(|r| int(r, "/status/readyReplicas"))
        .sum();
    // Old ReplicaSets keep only what the new one cannot serve yet, newest first.
    let mut old: Vec<Arc<Value>> = rss.iter().filter(|r| !is_new(r)).cloned().collect();
    old.sort_by_key(|r| -revision(r));
    let mut room = (desired - new_ready).max(0);
    for rs in &old {
        let current = int(rs, "/spec/replicas");
        let want = current.min(room);
        room -= want;
        if want != current && !paused {
            set_replicas(state, rs, want);
        }
    }
    for rs in rss.iter().filter(|r| is_new(r)) {
        let mut rs = (**rs).clone();
        let mut changed = false;
        if int(&rs, "/spec/replicas") != desired && !paused {
            rs["spec"]["replicas"] = json!(desired);
            changed = true;
        }
        if revision(&rs) < max_rev {
            rs["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
            changed = true;
        }
        if changed {
            bump_generation(&mut rs);
            state.put(REPLICASETS, rs, EventType::Modified);
        }
    }
    // Status from the ReplicaSets as stored now.
    let rss = owned_by(state, REPLICASETS, meta_str(&d, "uid"));
    let sum = |p: &str| rss.iter().map(|r| int(r, p)).sum::<i64>();
    let updated: i64 = rss
        .iter()
        .filter(|r| is_new(r))
        .map(|r| int(r, "/status/replicas"))
        .sum();
    let (replicas, ready, available) = (
        sum("/status/replicas"),
        sum("/status/readyReplicas"),
        sum("/status/availableReplicas"),
    );
    let generation = d
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let is_available = available >= desired - max_unavailable(&d, desired);
    let complete = updated == desired && replicas == desired && available == desired;
    let new_rs = rss
        .iter()
        .find(|r| is_new(r))
        .map(|r| meta_str(r, "name").to_string())
        .unwrap_or_default();
    let keep = |ty: &str, status: &str, reason: &str| -> (String, String) {
        let old = d
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty).cloned());
        let now = now_rfc3339();
        match old {
            Some(c) if c["status"] == status && c["reason"] == reason => (
                c["lastUpdateTime"].as_str().unwrap_or(&now).to_string(),
                c["lastTransitionTime"].as_str().unwrap_or(&now).to_string(),
            ),
            Some(c) if c["status"] == status => (
                now,
                c["lastTransitionTime"].as_str().unwrap_or("").to_string(),
            ),
            _ => (now.clone(), now),
        }
    };
    let (avail_status, avail_reason, avail_msg) = if is_available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let (prog_reason, prog_msg) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_rs}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_rs}\" is progressing."),
        )
    };
    let (au, at) = keep("Available", avail_status, avail_reason);
    let (pu, pt) = keep("Progressing", "True", prog_reason);
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": [
            {"type": "Available", "status": avail_status, "reason": avail_reason, "message": avail_msg,
             "lastUpdateTime": au, "lastTransitionTime": at},
            {"type": "Progressing", "status": "True", "reason": prog_reason, "message": prog_msg,
             "lastUpdateTime": pu, "lastTransitionTime": pt},
        ],
    });
    if desired - available > 0 {
        status["unavailableReplicas"] = json!(desired - available);
    }
    let mut d2 = (*d).clone();
    let max_rev = rss.iter().map(|r| revision(r)).max().unwrap_or(0);
    let rev_changed = d2
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        != Some(&json!(max_rev.to_string()));
    if d.get("status") != Some(&status) || rev_changed {
        d2["status"] = status;
        if max_rev > 0 {
            d2["metadata"]["annotations"][REVISION] = json!(max_rev.to_string());
        }
        state.put(DEPLOYMENTS, d2, EventType::Modified);
    }
}

fn bump_generation(obj: &mut Value) {
    let g = int(obj, "/metadata/generation");
    obj["metadata"]["generation"] = json!(g + 1);
}

fn set_replicas(state: &mut State, rs: &Value, n: i64) {
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(n);
    bump_generation(&mut rs);
    state.put(REPLICASETS, rs, EventType::Modified);
}

fn pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn reconcile_replicaset(node_name: &str, state: &mut State, ns: &str, name: &str) {
    let Some(rs) = state.get(REPLICASETS, ns, name) else {
        return;
    };
    if rs.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let desired = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let mut active: Vec<Arc<Value>> = owned_by(state, PODS, meta_str(&rs, "uid"))
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| {
            !matches!(
                p.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    let count = active.len() as i64;
    if count < desired {
        for _ in count..desired {
            let pod = new_pod(node_name, &rs);
            active.push(state.put(PODS, pod, EventType::Added));
        }
    } else if count > desired {
        // Unready and younger Pods go first, as the ReplicaSet controller ranks them.
        active.sort_by(|a, b| {
            pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
                meta_str(b, "creationTimestamp").cmp(meta_str(a, "creationTimestamp"))
            })
        });
        let victims: Vec<Arc<Value>> = active.drain(..(count - desired) as usize).collect();
        for p in victims {
            delete_pod_gracefully(state, &p);
        }
    }
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
    let sel_labels = rs
        .pointer("/spec/selector/matchLabels")
        .cloned()
        .unwrap_or(json!({}));
    let text: Vec<String> = sel_labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let labeled = LabelSelector::parse(&text.join(","))
        .map(|s| active.iter().filter(|p| s.matches_object(p)).count() as i64)
        .unwrap_or(active.len() as i64);
    let status = json!({
        "replicas": active.len(), "fullyLabeledReplicas": labeled, "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    if rs.get("status") != Some(&status) {
        let mut r = (*rs).clone();
        r["status"] = status;
        state.put(REPLICASETS, r, EventType::Modified);
    }
}

/// Marks a Pod for deletion with its grace period; the kubelet stops it and removes it.
pub fn delete_pod_gracefully(state: &mut State, pod: &Value) {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let mut p = pod.clone();
    p["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    state.put(PODS, p, EventType::Modified);
}

fn new_pod(node_name: &str, rs: &Value) -> Value {
    let ns = meta_str(rs, "namespace");
    let rs_name = meta_str(rs, "name");
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    meta["name"] = json!(format!("{rs_name}-{}", random_suffix()));
    meta["generateName"] = json!(format!("{rs_name}-"));
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    meta["creationTimestamp"] = json!(now_rfc3339());
    meta["ownerReferences"] = owner_ref("ReplicaSet", rs);
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("securityContext", json!({})),
    ];
    for (k, v) in defaults {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    spec["nodeName"] = json!(node_name);
    if let Some(cs) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in cs {
            if c.get("imagePullPolicy").is_none() {
                c["imagePullPolicy"] = json!("IfNotPresent");
            }
            if c.get("terminationMessagePath").is_none() {
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["terminationMessagePolicy"] = json!("File");
            }
        }
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
        "status": {"phase": "Pending", "qosClass": "BestEffort",
                   "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                                   "lastTransitionTime": now_rfc3339()}]},
    })
}

/// Without a node nothing runs Pods: Deployments report their desired replicas as ready so
/// `rollout status` finishes.
pub fn on_deployment_without_node(state: &mut State, ev: &Event) {
    if ev.etype == EventType::Deleted {
        return;
    }
    let obj = &ev.object;
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
    if obj.pointer("/status/observedGeneration") == Some(&generation)
        && obj.pointer("/status/replicas") == Some(&replicas)
    {
        return;
    }
    let now = now_rfc3339();
    let mut o = (**obj).clone();
    o["status"] = json!({
        "observedGeneration": generation,
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": format!("ReplicaSet \"{}\" has successfully progressed.", meta_str(obj, "name")),
             "lastUpdateTime": now, "lastTransitionTime": now},
        ],
    });
    state.put("apps/deployments", o, EventType::Modified);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cluster::registry::Registry;
    use crate::sim::cluster::store::Store;

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "default", "name": "web", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    }

    fn pods(st: &State) -> Vec<Arc<Value>> {
        st.list(PODS, Some("default"))
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    /// Runs the controllers the way the store's event loop does, until nothing changes.
    fn settle(node_name: &str, st: &mut State) {
        for _ in 0..50 {
            let events = std::mem::take(&mut st.pending);
            if events.is_empty() {
                return;
            }
            for ev in &events {
                on_event(node_name, st, ev);
            }
        }
        panic!("controllers did not settle");
    }

    #[test]
    fn deployment_status_counts_pods_that_are_ready_and_scaling_down_removes_pods() {
        let store = Store::new(Registry::builtin(), 100, 16);
        let mut st = store.lock();
        st.put(DEPLOYMENTS, deployment(3), EventType::Added);
        settle("t-node", &mut st);
        let created = pods(&st);
        assert_eq!(created.len(), 3);
        assert!(created.iter().all(|p| p["spec"]["nodeName"] == "t-node"));
        let d = st.get(DEPLOYMENTS, "default", "web").unwrap();
        assert_eq!(d["status"]["readyReplicas"], 0);
        assert_eq!(d["status"]["conditions"][1]["reason"], "ReplicaSetUpdated");
        for p in created.iter().take(2) {
            let mut p = (**p).clone();
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
            st.put(PODS, p, EventType::Modified);
        }
        settle("t-node", &mut st);
        let d = st.get(DEPLOYMENTS, "default", "web").unwrap();
        assert_eq!(d["status"]["readyReplicas"], 2);
        assert_eq!(d["status"]["availableReplicas"], 2);
        let mut scaled = (*d).clone();
        scaled["spec"]["replicas"] = json!(2);
        scaled["metadata"]["generation"] = json!(2);
        st.put(DEPLOYMENTS, scaled, EventType::Modified);
        settle("t-node", &mut st);
        // The unready Pod goes first.
        let left = pods(&st);
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|p| pod_ready(p)));
        let d = st.get(DEPLOYMENTS, "default", "web").unwrap();
        assert_eq!(
            d["status"]["conditions"][1]["reason"],
            "NewReplicaSetAvailable"
        );
        assert_eq!(d["status"]["observedGeneration"], 2);
    }

    #[test]
    fn template_hash_ignores_its_own_label_and_follows_the_template() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let mut b = a.clone();
        b["metadata"]["labels"][HASH_LABEL] = json!("x");
        assert_eq!(template_hash(&a), template_hash(&b));
        let mut c = a.clone();
        c["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "now"});
        assert_ne!(template_hash(&a), template_hash(&c));
    }

    #[test]
    fn max_unavailable_takes_numbers_and_percentages() {
        let d = |v: Value| json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": v}}}});
        assert_eq!(max_unavailable(&d(json!(0)), 2), 0);
        assert_eq!(max_unavailable(&d(json!("25%")), 4), 1);
        assert_eq!(max_unavailable(&json!({}), 3), 0);
    }
}
