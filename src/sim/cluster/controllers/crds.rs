//! The CRD finalizer: a deleted CustomResourceDefinition stays `Terminating` while its custom
//! resources are deleted (finalizers on them hold it), then goes.

use serde_json::{Value, json};

use super::Settings;
use super::deletion::delete;
use crate::sim::cluster::clock::now_rfc3339;
use crate::sim::cluster::registry;
use crate::sim::cluster::store::{EventType, State};

pub const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// Added to every CRD on create, as kube-apiserver does.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Whether the CRD named `name` is terminating with its cleanup pending.
pub(super) fn is_cleaning_up(state: &State, name: &str) -> bool {
    state.get(CRDS, "", name).is_some_and(|crd| {
        crd.pointer("/metadata/deletionTimestamp").is_some() && has_finalizer(&crd)
    })
}

fn has_finalizer(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|fs| fs.iter().any(|f| f == CLEANUP_FINALIZER))
}

/// Deletes the custom resources of a terminating CRD; when none are left, drops the cleanup
/// finalizer (and the CRD, if nothing else holds it).
pub(super) fn clean_up(settings: &Settings, state: &mut State, name: &str) {
    let Some(crd) = state.get(CRDS, "", name) else {
        return;
    };
    if crd.pointer("/metadata/deletionTimestamp").is_none() || !has_finalizer(&crd) {
        return;
    }
    let Some(t) = registry::from_crd(&crd) else {
        return;
    };
    for obj in state.list(&t.key(), None) {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            delete(settings, state, &t, &obj, None, None);
        }
    }
    let mut updated = (*crd).clone();
    if state.list(&t.key(), None).is_empty() {
        if let Some(fs) = updated
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            fs.retain(|f| f != CLEANUP_FINALIZER);
            if fs.is_empty() {
                state.remove(CRDS, "", name);
                return;
            }
        }
    } else {
        let terminating = json!({"type": "Terminating", "status": "True",
            "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress",
            "lastTransitionTime": now_rfc3339()});
        let conditions = updated["status"]["conditions"].as_array_mut();
        match conditions {
            Some(cs) if cs.iter().any(|c| c["type"] == "Terminating") => {}
            Some(cs) => cs.push(terminating),
            None => updated["status"]["conditions"] = json!([terminating]),
        }
    }
    if updated != *crd {
        state.put(CRDS, updated, EventType::Modified);
    }
}
