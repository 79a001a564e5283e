//! Deleting one object as kube-apiserver does: finalizers defer it (`deletionTimestamp` set),
//! Pods on the node terminate gracefully, namespaces terminate, `Orphan` strips owner
//! references from dependents, `Foreground` deletes dependents first; otherwise it goes now and
//! the garbage collector takes its dependents.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Settings;
use super::gc::{FOREGROUND, collect_garbage, finish_foreground, orphan_dependents};
use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::{EventType, State, meta_str};

/// A namespace whose removal is due once the configured delay has passed (see
/// `SimConfig::namespace_deletion_delay`); the API layer keeps the timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRemoval {
    pub name: String,
    pub uid: String,
}

/// What a delete did.
#[derive(Debug)]
pub struct Deletion {
    /// The object as it was removed, or as it is now stored while it terminates.
    pub object: Arc<Value>,
    /// Removed from the store (false: terminating, still readable).
    pub gone: bool,
    /// A terminating namespace, to be finished once the configured delay has passed.
    pub later: Option<NamespaceRemoval>,
}

impl Deletion {
    fn pending(object: Arc<Value>) -> Self {
        Deletion {
            object,
            gone: false,
            later: None,
        }
    }
}

/// Deletes `live` (the stored object of type `rt`); the caller runs the controllers after.
pub fn delete(
    settings: &Settings,
    state: &mut State,
    rt: &ResourceType,
    live: &Value,
    propagation: Option<&str>,
    grace: Option<i64>,
) -> Deletion {
    let ns = meta_str(live, "namespace").to_string();
    let name = meta_str(live, "name").to_string();
    let has_finalizers = live
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if propagation == Some("Orphan") {
        orphan_dependents(state, meta_str(live, "uid"));
    }
    if rt.key() == "/namespaces" {
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            return Deletion::pending(Arc::new(live.clone()));
        }
        let mut obj = live.clone();
        obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        obj["status"]["phase"] = json!("Terminating");
        let stored = state.put(&rt.key(), obj, EventType::Modified);
        return Deletion {
            object: stored,
            gone: false,
            later: Some(NamespaceRemoval {
                name,
                uid: meta_str(live, "uid").to_string(),
            }),
        };
    }
    if has_finalizers {
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            return Deletion::pending(Arc::new(live.clone()));
        }
        let mut obj = live.clone();
        obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let stored = state.put(&rt.key(), obj, EventType::Modified);
        return Deletion::pending(stored);
    }
    if let Some(pending) = graceful_pod_deletion(settings, state, rt, live, grace) {
        return Deletion::pending(pending);
    }
    if propagation == Some("Foreground") {
        // The owner is seen terminating with the foregroundDeletion finalizer while its
        // dependents go first; dependents that block it (blockOwnerDeletion) and are held by
        // finalizers keep it until they are gone.
        let mut obj = live.clone();
        obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        obj["metadata"]["finalizers"] = json!([FOREGROUND]);
        let stored = state.put(&rt.key(), obj, EventType::Modified);
        collect_garbage(state, meta_str(live, "uid"));
        finish_foreground(state, &rt.key(), &stored);
        return match state.get(&rt.key(), &ns, &name) {
            Some(still) => Deletion::pending(still),
            None => Deletion {
                object: stored,
                gone: true,
                later: None,
            },
        };
    }
    let object = state
        .remove(&rt.key(), &ns, &name)
        .unwrap_or_else(|| Arc::new(live.clone()));
    Deletion {
        object,
        gone: true,
        later: None,
    }
}

/// A Pod on the node is deleted gracefully: it is marked (`deletionTimestamp`, grace period)
/// and the kubelet removes it once its containers have stopped. None: delete it now (no node,
/// not scheduled, or a grace period of 0 as with `kubectl delete --force --grace-period=0`).
fn graceful_pod_deletion(
    settings: &Settings,
    state: &mut State,
    rt: &ResourceType,
    live: &Value,
    grace: Option<i64>,
) -> Option<Arc<Value>> {
    let scheduled = live
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if rt.key() != "/pods" || settings.node.is_none() || !scheduled {
        return None;
    }
    let grace = grace.unwrap_or_else(|| {
        live.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    if grace <= 0 {
        return None;
    }
    let current = live
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if live.pointer("/metadata/deletionTimestamp").is_some() && current.is_some_and(|c| c <= grace)
    {
        return Some(Arc::new(live.clone()));
    }
    let mut obj = live.clone();
    obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Some(state.put("/pods", obj, EventType::Modified))
}
