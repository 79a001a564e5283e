//! The token controller: legacy ServiceAccount token Secrets.

use std::sync::Arc;

use serde_json::Value;

use super::Settings;
use super::admission::fill_token_secret;
use crate::sim::cluster::store::{Event, EventType, State, meta_str};

/// The token controller: legacy token Secrets waiting for their ServiceAccount get filled when
/// it appears, and are deleted with it.
pub(super) fn on_service_account(settings: &Settings, state: &mut State, ev: &Event) {
    if ev.etype == EventType::Modified {
        return;
    }
    let sa_name = meta_str(&ev.object, "name");
    let waiting: Vec<Arc<Value>> = state
        .list("/secrets", Some(&ev.namespace))
        .into_iter()
        .filter(|s| {
            s.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token")
                && s.pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                    .and_then(Value::as_str)
                    == Some(sa_name)
        })
        .collect();
    for secret in waiting {
        if ev.etype == EventType::Deleted {
            state.remove("/secrets", &ev.namespace, meta_str(&secret, "name"));
            continue;
        }
        if secret.pointer("/data/token").is_some() {
            continue;
        }
        let mut filled = (*secret).clone();
        if fill_token_secret(settings, state, &mut filled).is_ok() {
            state.put("/secrets", filled, EventType::Modified);
        }
    }
}
