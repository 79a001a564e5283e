//! The garbage collector: dependents (by `ownerReferences` uid) of a deleted owner go too,
//! unless another owner still holds them; `Orphan` deletion strips the references instead.

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
