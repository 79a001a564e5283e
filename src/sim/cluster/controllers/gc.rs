//! The garbage collector: dependents (by `ownerReferences` uid) of a deleted owner go too,
//! unless another owner still holds them; so do dependents written with a reference to an
//! owner that does not exist (by kind, name and uid). `Orphan` deletion strips the references
//! instead; `Foreground` deletion keeps the owner until the dependents that set
//! `blockOwnerDeletion` are gone.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::store::{EventType, State, meta_str};

/// Background garbage collection: dependents whose owner (by uid) is gone are deleted.
pub fn collect_garbage(state: &mut State, owner_uid: &str) {
    if owner_uid.is_empty() {
        return;
    }
    let victims: Vec<(String, String, String, Arc<Value>)> = state
        .dependents_of(owner_uid)
        .into_iter()
        .map(|(key, obj)| {
            let ns = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            (key, ns, name, obj)
        })
        .collect();
    for (key, ns, name, obj) in victims {
        let refs_left = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().filter(|r| r["uid"] != owner_uid).count())
            .unwrap_or(0);
        if refs_left > 0 {
            // Another owner still holds it: only drop the reference to the dead owner.
            let mut o = (*obj).clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != owner_uid);
            }
            state.put(&key, o, EventType::Modified);
            continue;
        }
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                let mut o = (*obj).clone();
                o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                state.put(&key, o, EventType::Modified);
            }
        } else {
            state.remove(&key, &ns, &name);
        }
    }
}

/// `propagationPolicy: Orphan`: dependents lose their reference to the owner and stay.
pub fn orphan_dependents(state: &mut State, owner_uid: &str) {
    let mut changed = Vec::new();
    for (key, obj) in state.dependents_of(owner_uid) {
        let mut o = (*obj).clone();
        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"] != owner_uid);
        }
        changed.push((key, o));
    }
    for (key, o) in changed {
        state.put(&key, o, EventType::Modified);
    }
}

/// The finalizer that holds an owner in foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Whether the owner a reference names exists with that uid; None when its kind is not served
/// (the collector cannot tell, and leaves the dependent alone, like kube-controller-manager).
fn owner_exists(state: &State, dependent_ns: &str, r: &Value) -> Option<bool> {
    let (kind, name, uid) = (r["kind"].as_str()?, r["name"].as_str()?, r["uid"].as_str()?);
    let group = r["apiVersion"]
        .as_str()?
        .split_once('/')
        .map_or("", |(g, _)| g);
    let t = state
        .registry
        .types
        .iter()
        .find(|t| t.group == group && t.kind == kind && !t.create_only)?;
    let ns = if t.namespaced { dependent_ns } else { "" };
    Some(
        state
            .get(&t.key(), ns, name)
            .is_some_and(|o| meta_str(&o, "uid") == uid),
    )
}

fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A dependent was written: references to owners that do not exist are collected as if the
/// owner had just been deleted.
pub(super) fn collect_dangling(state: &mut State, obj: &Value, old: Option<&Value>) {
    let refs = owner_refs(obj);
    if refs.is_empty() || old.is_some_and(|o| owner_refs(o) == refs) {
        return;
    }
    let ns = meta_str(obj, "namespace");
    let dangling: Vec<String> = refs
        .iter()
        .filter(|r| owner_exists(state, ns, r) == Some(false))
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect();
    for uid in dangling {
        collect_garbage(state, &uid);
    }
}

/// A dependent went: an owner in foreground deletion may now be free to go.
pub(super) fn release_owners(state: &mut State, dependent: &Value) {
    let ns = meta_str(dependent, "namespace").to_string();
    for r in owner_refs(dependent).to_vec() {
        let (Some(kind), Some(name)) = (r["kind"].as_str(), r["name"].as_str()) else {
            continue;
        };
        let group = r["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map_or("", |(g, _)| g);
        let Some(t) = state
            .registry
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
        else {
            continue;
        };
        let owner_ns = if t.namespaced { ns.as_str() } else { "" };
        if let Some(owner) = state.get(&t.key(), owner_ns, name)
            && meta_str(&owner, "uid") == r["uid"].as_str().unwrap_or("")
        {
            finish_foreground(state, &t.key(), &owner);
        }
    }
}

/// Removes the foreground finalizer (and the owner, if nothing else holds it) once no
/// dependent with `blockOwnerDeletion` is left.
pub(super) fn finish_foreground(state: &mut State, key: &str, owner: &Value) {
    let finalizers: Vec<Value> = owner
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if owner.pointer("/metadata/deletionTimestamp").is_none()
        || !finalizers.iter().any(|f| f == FOREGROUND)
    {
        return;
    }
    let uid = meta_str(owner, "uid");
    let blocked = state.dependents_of(uid).iter().any(|(_, d)| {
        owner_refs(d)
            .iter()
            .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true)
    });
    if blocked {
        return;
    }
    let rest: Vec<Value> = finalizers.into_iter().filter(|f| f != FOREGROUND).collect();
    if rest.is_empty() {
        state.remove(key, meta_str(owner, "namespace"), meta_str(owner, "name"));
    } else {
        let mut o = owner.clone();
        o["metadata"]["finalizers"] = json!(rest);
        state.put(key, o, EventType::Modified);
    }
}
