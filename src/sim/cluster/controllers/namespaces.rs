//! The namespace controller: every namespace gets `kube-root-ca.crt` and the `default`
//! ServiceAccount; a deleted namespace loses its contents, then itself.

use serde_json::{Value, json};

use super::{ROOT_CA_CONFIGMAP, Settings, new_meta};
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

/// A namespace whose removal is due once the configured delay has passed (see
/// `SimConfig::namespace_deletion_delay`); the API layer keeps the timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRemoval {
    pub name: String,
    pub uid: String,
}

/// The namespace controller's finalization, when a `NamespaceRemoval` is due: contents first,
/// then the namespace itself (only if it is still the same, still terminating namespace).
pub fn finish_namespace_removal(
    settings: &Settings,
    state: &mut State,
    removal: &NamespaceRemoval,
) {
    let Some(ns) = state.get("/namespaces", "", &removal.name) else {
        return;
    };
    if meta_str(&ns, "uid") != removal.uid {
        return;
    }
    delete_namespace_contents(state, &removal.name);
    let has_finalizers = ns
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_finalizers {
        state.remove("/namespaces", "", &removal.name);
    }
    super::run(settings, state);
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
        EventType::Added => {
            if state.get("/configmaps", &ns, ROOT_CA_CONFIGMAP).is_none() {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": new_meta(&ns, ROOT_CA_CONFIGMAP),
                    "data": {"ca.crt": settings.ca_pem}});
                state.put("/configmaps", cm, EventType::Added);
            }
            if state.get("/serviceaccounts", &ns, "default").is_none() {
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": new_meta(&ns, "default")});
                state.put("/serviceaccounts", sa, EventType::Added);
            }
        }
        EventType::Deleted => delete_namespace_contents(state, &ns),
        EventType::Modified => {}
    }
}
