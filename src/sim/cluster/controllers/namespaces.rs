//! The namespace controller: every namespace gets `kube-root-ca.crt` and the `default`
//! ServiceAccount; a deleted namespace loses its contents, then itself.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::deletion::{NamespaceRemoval, delete};
use super::{ROOT_CA_CONFIGMAP, Settings, new_meta};
use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::store::{Event, EventType, State, meta_str};

pub(super) fn delete_all(state: &mut State, key: &str, ns: Option<&str>) {
    for obj in state.list(key, ns) {
        let (n, name) = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        state.remove(key, &n, &name);
    }
}

/// The namespace controller's finalization, once a `NamespaceRemoval` is due (and again
/// whenever something in the namespace goes): every object in it is deleted as a client's
/// delete would (finalizers hold an object, terminating), and while anything remains the
/// namespace stays `Terminating` with conditions saying what; then the `kubernetes`
/// finalizer goes and, without other finalizers, the namespace.
pub fn finish_namespace_removal(
    settings: &Settings,
    state: &mut State,
    removal: &NamespaceRemoval,
) {
    let Some(ns) = state.get("/namespaces", "", &removal.name) else {
        return;
    };
    if meta_str(&ns, "uid") != removal.uid || ns.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    sync_terminating(settings, state, &removal.name);
    super::run(settings, state);
}

/// Whether the namespace controller has started on this terminating namespace (its
/// conditions are set), so that the removal of a last object finishes it.
pub(super) fn is_finalizing(state: &State, ns: &str) -> bool {
    state.get("/namespaces", "", ns).is_some_and(|n| {
        n.pointer("/metadata/deletionTimestamp").is_some()
            && n.pointer("/status/conditions").is_some()
    })
}

pub(super) fn sync_terminating(settings: &Settings, state: &mut State, name: &str) {
    let types: Vec<_> = state
        .registry
        .types
        .iter()
        .filter(|t| t.namespaced && !t.create_only)
        .cloned()
        .collect();
    // resource -> (instances, finalizer -> instances)
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for t in &types {
        for obj in state.list(&t.key(), Some(name)) {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                delete(settings, state, t, &obj, None, None);
            }
        }
        for obj in state.list(&t.key(), Some(name)) {
            let resource = format!("{}.{}", t.plural, t.group);
            *remaining.entry(resource).or_default() += 1;
            for f in obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                *finalizers.entry(f.to_string()).or_default() += 1;
            }
        }
    }
    let Some(ns) = state.get("/namespaces", "", name) else {
        return;
    };
    let mut updated = (*ns).clone();
    if remaining.is_empty() {
        if let Some(fs) = updated
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            fs.retain(|f| f != "kubernetes");
        }
        let held = updated
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !held {
            state.remove("/namespaces", "", name);
            return;
        }
    }
    updated["status"]["conditions"] = json!(namespace_conditions(
        &remaining,
        &finalizers,
        &ns_condition_time(&ns)
    ));
    if updated != *ns {
        state.put("/namespaces", updated, EventType::Modified);
    }
}

/// The first transition time of the namespace's conditions, kept while they hold.
fn ns_condition_time(ns: &Value) -> String {
    ns.pointer("/status/conditions/0/lastTransitionTime")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(now_rfc3339)
}

/// kube-controller-manager's conditions on a terminating namespace, with its texts.
fn namespace_conditions(
    remaining: &BTreeMap<String, usize>,
    finalizers: &BTreeMap<String, usize>,
    time: &str,
) -> Vec<Value> {
    let cond = |ty: &str, status: bool, reason: &str, message: String| {
        json!({"type": ty, "status": if status { "True" } else { "False" }, "reason": reason,
               "message": message, "lastTransitionTime": time})
    };
    let mut out = vec![
        cond(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        cond(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        ),
    ];
    if remaining.is_empty() {
        out.push(cond(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        ));
    } else {
        let list: Vec<String> = remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        out.push(cond(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", list.join(", ")),
        ));
    }
    if finalizers.is_empty() {
        out.push(cond(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        ));
    } else {
        let list: Vec<String> = finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        out.push(cond(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                list.join(", ")
            ),
        ));
    }
    out
}

fn delete_namespace_contents(state: &mut State, ns: &str) {
    let keys: Vec<String> = state
        .registry
        .types
        .iter()
        .filter(|t| t.namespaced && !t.create_only)
        .map(|t| t.key())
        .collect();
    for key in keys {
        delete_all(state, &key, Some(ns));
    }
}

pub(super) fn on_namespace(settings: &Settings, state: &mut State, ev: &Event) {
    let ns = meta_str(&ev.object, "name").to_string();
    match ev.etype {
        EventType::Added => ensure_defaults(settings, state, &ns),
        EventType::Deleted => delete_namespace_contents(state, &ns),
        EventType::Modified => {}
    }
}

/// What every active namespace has, put back when deleted or changed (the root CA publisher
/// and the ServiceAccount controller): `kube-root-ca.crt` with the cluster CA, and the
/// `default` ServiceAccount.
pub(super) fn ensure_defaults(settings: &Settings, state: &mut State, ns: &str) {
    let active = state
        .get("/namespaces", "", ns)
        .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_none());
    if !active {
        return;
    }
    let data = json!({"ca.crt": settings.ca_pem});
    match state.get("/configmaps", ns, ROOT_CA_CONFIGMAP) {
        None => {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": new_meta(ns, ROOT_CA_CONFIGMAP), "data": data});
            state.put("/configmaps", cm, EventType::Added);
        }
        Some(cm) if cm.get("data") != Some(&data) || cm.get("binaryData").is_some() => {
            let mut cm = (*cm).clone();
            cm["data"] = data;
            if let Some(o) = cm.as_object_mut() {
                o.remove("binaryData");
            }
            state.put("/configmaps", cm, EventType::Modified);
        }
        Some(_) => {}
    }
    if state.get("/serviceaccounts", ns, "default").is_none() {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": new_meta(ns, "default")});
        state.put("/serviceaccounts", sa, EventType::Added);
    }
}
