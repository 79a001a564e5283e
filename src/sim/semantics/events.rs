//! The two views of an Event: `events.k8s.io/v1` (what kube-runtime's `Recorder` writes) and
//! `core/v1` (what `kubectl get events` and `describe` read), one stored object as in
//! kube-apiserver, whose conversion maps `note`↔`message`, `regarding`↔`involvedObject`,
//! `reportingController`↔`reportingComponent` and the `deprecated*` fields↔their core names.

use serde_json::{Map, Value};

/// events.k8s.io/v1 name ↔ core/v1 name, for the fields whose names differ.
const RENAMED: &[(&str, &str)] = &[
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_new: bool, api_version: &str) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMED.iter().find_map(|(new, core)| {
            let (from, to) = if from_new { (new, core) } else { (core, new) };
            (k == from).then_some(*to)
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in its stored (`core/v1`) form.
pub fn to_core(event: &Value) -> Value {
    rename(event, true, "v1")
}

/// A stored (`core/v1`) Event as `events.k8s.io/v1` shows it.
pub fn from_core(event: &Value) -> Value {
    rename(event, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn fields_map_both_ways() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Reconcile", "reason": "Synced",
            "type": "Normal", "note": "all good", "reportingController": "mc.dev/mirror",
            "reportingInstance": "mirror-0", "regarding": {"kind": "Service", "name": "web"},
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "deprecatedCount": 2});
        let core = to_core(&new);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "all good");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["reportingComponent"], "mc.dev/mirror");
        assert_eq!(core["reportingInstance"], "mirror-0");
        assert_eq!(core["count"], 2);
        assert_eq!(core["series"], new["series"]);
        assert!(core.get("note").is_none());
        assert_eq!(from_core(&core), new);
    }
}
