//! The PATCH content types kube-apiserver accepts, applied to stored JSON objects:
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the subset of strategic merge
//! patch that kubectl's client-side apply produces (k8s-api-surface.md §5).
//!
//! Strategic merge patch needs per-field list semantics that the real server reads from
//! the Go struct tags of the built-in types. [`list_type`] holds the slice of that table
//! the simulator serves; `apply` shares it for server-side apply (which keys lists by the
//! `listMapKeys`, e.g. Service ports by port *and* protocol).

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("json patch is not a valid array of operations: {0}")]
    JsonPatchBody(#[source] serde_json::Error),
    #[error("the json patch could not be applied: {0}")]
    JsonPatchApply(#[source] json_patch::PatchError),
    #[error("strategic merge patch body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("unknown patch directive {directive:?} at {path}")]
    UnknownDirective { directive: String, path: String },
    #[error("invalid {directive} at {path}: {why}")]
    InvalidDirective {
        directive: &'static str,
        path: String,
        why: &'static str,
    },
    #[error("map: {element} does not contain declared merge key: {key} (at {path})")]
    MissingMergeKey {
        element: String,
        key: &'static str,
        path: String,
    },
}

/// How a list field merges, from the built-in types' `patchStrategy`/`patchMergeKey`
/// (strategic merge patch) and `listType`/`listMapKeys` (server-side apply) tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole (no merge key: `args`, RBAC `rules`, all lists of custom resources).
    Atomic,
    /// A set of primitives merged by value (`metadata.finalizers`).
    Set,
    /// Objects merged element by element; `smp_key` is the patch merge key, `ssa_keys` the
    /// list-map keys server-side apply identifies elements by.
    Map {
        smp_key: &'static str,
        ssa_keys: &'static [&'static str],
    },
}

const fn keyed(smp_key: &'static str, ssa_keys: &'static [&'static str]) -> ListType {
    ListType::Map { smp_key, ssa_keys }
}

/// API groups whose types are compiled into kube-apiserver (the rest are custom resources).
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "discovery.k8s.io",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "admissionregistration.k8s.io",
    "certificates.k8s.io",
    "node.k8s.io",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
];

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Where a kind keeps its PodSpec, if it has one.
fn pod_spec_prefix(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        ("", "Pod") => Some(&["spec"]),
        ("", "PodTemplate") => Some(&["template", "spec"]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn pod_spec_list(rel: &[&str]) -> ListType {
    const CONTAINERS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];
    match rel {
        [c] if CONTAINERS.contains(c) => keyed("name", &["name"]),
        [c, "ports"] if CONTAINERS.contains(c) => {
            keyed("containerPort", &["containerPort", "protocol"])
        }
        [c, "env"] if CONTAINERS.contains(c) => keyed("name", &["name"]),
        [c, "volumeMounts"] if CONTAINERS.contains(c) => keyed("mountPath", &["mountPath"]),
        [c, "volumeDevices"] if CONTAINERS.contains(c) => keyed("devicePath", &["devicePath"]),
        [c, "resizePolicy"] if CONTAINERS.contains(c) => keyed("resourceName", &["resourceName"]),
        ["volumes"] => keyed("name", &["name"]),
        ["imagePullSecrets"] => keyed("name", &["name"]),
        ["hostAliases"] => keyed("ip", &["ip"]),
        ["schedulingGates"] => keyed("name", &["name"]),
        ["resourceClaims"] => keyed("name", &["name"]),
        ["topologySpreadConstraints"] => {
            keyed("topologyKey", &["topologyKey", "whenUnsatisfiable"])
        }
        _ => ListType::Atomic,
    }
}

/// The list semantics of the field at `path` (field names from the object root; list
/// elements add nothing to the path) in an object of `api_version`/`kind`.
pub fn list_type(api_version: &str, kind: &str, path: &[&str]) -> ListType {
    match path {
        ["metadata", "finalizers"] => return ListType::Set,
        ["metadata", "ownerReferences"] => return keyed("uid", &["uid"]),
        ["metadata", "managedFields"] => return ListType::Atomic,
        _ => {}
    }
    let group = group_of(api_version);
    if !BUILTIN_GROUPS.contains(&group) {
        return ListType::Atomic;
    }
    if let Some(prefix) = pod_spec_prefix(group, kind)
        && let Some(rel) = path.strip_prefix(prefix)
    {
        return pod_spec_list(rel);
    }
    match (group, kind, path) {
        ("", "Service", ["spec", "ports"]) => keyed("port", &["port", "protocol"]),
        ("", "ServiceAccount", ["secrets"]) => keyed("name", &["name"]),
        (_, _, ["status", "conditions"]) => keyed("type", &["type"]),
        _ => ListType::Atomic,
    }
}

/// RFC 7386 JSON merge patch: maps merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch; atomic (the target is unchanged when an operation fails).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::JsonPatchBody)?;
    json_patch::patch(target, &ops).map_err(PatchError::JsonPatchApply)
}

/// Strategic merge patch with the merge keys of k8s-api-surface.md §5, chosen by the
/// target's (apiVersion, kind) and the field path. Custom resources get merge-patch
/// semantics (maps merge, lists are replaced). Atomic: the target is unchanged on error.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(patch_map) = patch else {
        return Err(PatchError::NotAnObject(type_name(patch)));
    };
    let field = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = Some(field(target, "apiVersion"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| field(patch, "apiVersion"));
    let kind = Some(field(target, "kind"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| field(patch, "kind"));
    let schema = Schema {
        api_version: &api_version,
        kind: &kind,
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = schema.merge_map(original, patch_map, &mut Vec::new())?;
    *target = Value::Object(merged);
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

struct Schema<'a> {
    api_version: &'a str,
    kind: &'a str,
}

fn show_path(path: &[String]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.iter().map(|p| format!(".{p}")).collect()
    }
}

impl Schema<'_> {
    fn list_type(&self, path: &[String]) -> ListType {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        list_type(self.api_version, self.kind, &refs)
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(d) = patch.get(DIRECTIVE) {
            match d.as_str() {
                Some("replace") => {
                    let mut fresh = patch.clone();
                    fresh.remove(DIRECTIVE);
                    return self.merge_map(Map::new(), &fresh, path);
                }
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => {
                    return Err(PatchError::UnknownDirective {
                        directive: d.to_string(),
                        path: show_path(path),
                    });
                }
            }
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let keys = retain.as_array().filter(|a| a.iter().all(Value::is_string));
            let Some(keys) = keys else {
                return Err(PatchError::InvalidDirective {
                    directive: RETAIN_KEYS,
                    path: show_path(path),
                    why: "must be a list of field names",
                });
            };
            original.retain(|k, _| keys.iter().any(|r| r.as_str() == Some(k)));
        }
        // Deletions from primitive lists apply to the original before the merge.
        for (k, v) in patch {
            if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
                let Some(remove) = v.as_array() else {
                    return Err(PatchError::InvalidDirective {
                        directive: "$deleteFromPrimitiveList",
                        path: show_path(path),
                        why: "must be a list",
                    });
                };
                if let Some(Value::Array(list)) = original.get_mut(field) {
                    list.retain(|item| !remove.contains(item));
                }
            }
        }
        for (k, pv) in patch {
            if k.starts_with('$') {
                continue;
            }
            path.push(k.clone());
            let result = self.merge_field(original.remove(k), pv, path);
            path.pop();
            if let Some(v) = result? {
                original.insert(k.clone(), v);
            }
        }
        for (k, v) in patch {
            if let Some(field) = k.strip_prefix(SET_ORDER_PREFIX) {
                path.push(field.to_string());
                let result = self.set_element_order(&mut original, field, v, path);
                path.pop();
                result?;
            }
        }
        Ok(original)
    }

    /// Merges one field; `None` means the field is removed.
    fn merge_field(
        &self,
        original: Option<Value>,
        patch: &Value,
        path: &mut Vec<String>,
    ) -> Result<Option<Value>, PatchError> {
        match (original, patch) {
            (_, Value::Null) => Ok(None),
            (Some(Value::Object(o)), Value::Object(p)) => {
                Ok(Some(Value::Object(self.merge_map(o, p, path)?)))
            }
            (None, Value::Object(p)) => {
                // A new map is merged into nothing so that directives and nulls inside go away.
                Ok(Some(Value::Object(self.merge_map(Map::new(), p, path)?)))
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Ok(Some(Value::Array(self.merge_list(o, p, path)?)))
            }
            (None, Value::Array(p)) => {
                Ok(Some(Value::Array(self.merge_list(Vec::new(), p, path)?)))
            }
            (_, p) => Ok(Some(p.clone())),
        }
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        // `[{"$patch":"replace"}, ...]` replaces the list with the remaining elements.
        let is_replace = |v: &Value| v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace");
        if patch.iter().any(is_replace) {
            let rest: Vec<Value> = patch.iter().filter(|v| !is_replace(v)).cloned().collect();
            return self.merge_list(Vec::new(), &rest, path);
        }
        match self.list_type(path) {
            ListType::Atomic => patch
                .iter()
                .map(|item| match item {
                    Value::Object(m) => Ok(Value::Object(self.merge_map(Map::new(), m, path)?)),
                    other => Ok(other.clone()),
                })
                .collect(),
            ListType::Set => {
                let mut out = original;
                for item in patch {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Ok(out)
            }
            ListType::Map { smp_key, .. } => {
                let mut out = original;
                for item in patch {
                    let Value::Object(pm) = item else {
                        // Primitives in a keyed list cannot be matched; the last writer wins.
                        out.push(item.clone());
                        continue;
                    };
                    let Some(key) = pm.get(smp_key) else {
                        return Err(PatchError::MissingMergeKey {
                            element: Value::Object(pm.clone()).to_string(),
                            key: smp_key,
                            path: show_path(path),
                        });
                    };
                    let pos = out.iter().position(|o| o.get(smp_key) == Some(key));
                    let directive = pm.get(DIRECTIVE).and_then(Value::as_str);
                    if directive == Some("delete") {
                        out.retain(|o| o.get(smp_key) != Some(key));
                        continue;
                    }
                    match pos {
                        Some(i) => {
                            let existing = match std::mem::take(&mut out[i]) {
                                Value::Object(m) => m,
                                _ => Map::new(),
                            };
                            out[i] = Value::Object(self.merge_map(existing, pm, path)?);
                        }
                        None => out.push(Value::Object(self.merge_map(Map::new(), pm, path)?)),
                    }
                }
                Ok(out)
            }
        }
    }

    /// `$setElementOrder/<field>`: the listed elements come first in the given order, the
    /// others (present on the server only) keep their relative order after them.
    fn set_element_order(
        &self,
        map: &mut Map<String, Value>,
        field: &str,
        order: &Value,
        path: &[String],
    ) -> Result<(), PatchError> {
        let Some(order) = order.as_array() else {
            return Err(PatchError::InvalidDirective {
                directive: "$setElementOrder",
                path: show_path(path),
                why: "must be a list",
            });
        };
        let Some(Value::Array(list)) = map.get_mut(field) else {
            return Ok(());
        };
        let key = match self.list_type(path) {
            ListType::Map { smp_key, .. } => Some(smp_key),
            _ => None,
        };
        let ident = |v: &Value| -> Value {
            match key {
                Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
                None => v.clone(),
            }
        };
        let wanted: Vec<Value> = order.iter().map(ident).collect();
        let mut items = std::mem::take(list);
        let mut sorted = Vec::with_capacity(items.len());
        for w in &wanted {
            if let Some(i) = items.iter().position(|it| &ident(it) == w) {
                sorted.push(items.remove(i));
            }
        }
        sorted.append(&mut items);
        *list = sorted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn smp(mut target: Value, patch: Value) -> Value {
        strategic_merge_patch(&mut target, &patch).unwrap();
        target
    }

    #[test]
    fn recorded_service_patch_changes_port_80_to_8080_and_adds_label() {
        let live = json!({
            "apiVersion":"v1","kind":"Service",
            "metadata":{"name":"web","namespace":"demo","labels":{"app":"web"},
                        "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"old"}},
            "spec":{"selector":{"app":"web"},"type":"ClusterIP","clusterIP":"10.0.0.7",
                    "ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":80}]}
        });
        let patch = json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"},"labels":{"tier":"front"}},
            "spec":{"$setElementOrder/ports":[{"port":8080}],
                    "ports":[{"name":"http","port":8080,"targetPort":8080},{"$patch":"delete","port":80}]}});
        let got = smp(live, patch);
        assert_eq!(
            got,
            json!({
                "apiVersion":"v1","kind":"Service",
                "metadata":{"name":"web","namespace":"demo","labels":{"app":"web","tier":"front"},
                            "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"}},
                "spec":{"selector":{"app":"web"},"type":"ClusterIP","clusterIP":"10.0.0.7",
                        "ports":[{"name":"http","port":8080,"targetPort":8080}]}
            })
        );
    }

    #[test]
    fn recorded_deployment_patch_removes_sidecar_and_changes_env_and_image() {
        let live = json!({
            "apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","annotations":{"a":"1"}},
            "spec":{"replicas":1,"template":{"metadata":{"labels":{"app":"web"}},"spec":{
                "containers":[
                    {"name":"web","image":"nginx:1.25","env":[{"name":"MODE","value":"one"}],
                     "ports":[{"containerPort":80,"protocol":"TCP"}]},
                    {"name":"sidecar","image":"busybox","args":["sleep","1d"]}]}}}
        });
        let patch = json!({"metadata":{"annotations":{"a":"2"}},"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"$setElementOrder/env":[{"name":"MODE"}],"env":[{"name":"MODE","value":"two"}],"image":"nginx:1.26","name":"web"},
                          {"$patch":"delete","name":"sidecar"}]}}}});
        let got = smp(live, patch);
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name":"web","image":"nginx:1.26","env":[{"name":"MODE","value":"two"}],
                    "ports":[{"containerPort":80,"protocol":"TCP"}]}])
        );
        assert_eq!(got["metadata"]["annotations"], json!({"a":"2"}));
        assert_eq!(got["spec"]["replicas"], json!(1));
    }

    #[test]
    fn recorded_configmap_patch_merges_data() {
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},
                          "data":{"mode":"one","keep":"x"}});
        let got = smp(
            live,
            json!({"data":{"mode":"two"},"metadata":{"annotations":{"k":"v"}}}),
        );
        assert_eq!(got["data"], json!({"mode":"two","keep":"x"}));
        assert_eq!(got["metadata"], json!({"name":"c","annotations":{"k":"v"}}));
    }

    #[test]
    fn recorded_custom_resource_merge_patch_sets_size() {
        let mut live = json!({"apiVersion":"mc.dev/v1alpha1","kind":"Link",
                              "metadata":{"name":"west","annotations":{"x":"1"}},
                              "spec":{"size":1,"gatewayAddresses":["a","b"]}});
        merge_patch(
            &mut live,
            &json!({"metadata":{"annotations":{"x":"2"}},"spec":{"size":2}}),
        );
        assert_eq!(live["spec"], json!({"size":2,"gatewayAddresses":["a","b"]}));
        assert_eq!(live["metadata"]["annotations"], json!({"x":"2"}));
    }

    #[test]
    fn merge_patch_null_deletes_and_non_object_replaces() {
        let mut v = json!({"a":{"b":1,"c":2},"l":[1,2]});
        merge_patch(&mut v, &json!({"a":{"b":null},"l":[3]}));
        assert_eq!(v, json!({"a":{"c":2},"l":[3]}));
        merge_patch(&mut v, &json!("x"));
        assert_eq!(v, json!("x"));
    }

    #[test]
    fn strategic_null_deletes_keys_and_nested_nulls_in_new_maps_vanish() {
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"1","b":"2"}}});
        let got = smp(
            live,
            json!({"metadata":{"labels":{"a":null},"annotations":{"n":null,"k":"v"}}}),
        );
        assert_eq!(
            got["metadata"],
            json!({"name":"c","labels":{"b":"2"},"annotations":{"k":"v"}})
        );
    }

    #[test]
    fn lists_without_merge_key_are_replaced() {
        let live = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"template":{"spec":{"containers":[{"name":"web","args":["a","b"],"command":["x"]}],
                    "tolerations":[{"key":"k1"}]}}}});
        let got = smp(
            live,
            json!({"spec":{"template":{"spec":{"containers":[{"name":"web","args":["c"]}],
                    "tolerations":[{"key":"k2"}]}}}}),
        );
        let pod = &got["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"],
            json!([{"name":"web","args":["c"],"command":["x"]}])
        );
        assert_eq!(pod["tolerations"], json!([{"key":"k2"}]));

        let role = json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},
            "rules":[{"verbs":["get"],"resources":["pods"],"apiGroups":[""]}]});
        let got = smp(
            role,
            json!({"rules":[{"verbs":["list"],"resources":["services"],"apiGroups":[""]}]}),
        );
        assert_eq!(
            got["rules"],
            json!([{"verbs":["list"],"resources":["services"],"apiGroups":[""]}])
        );
    }

    #[test]
    fn keyed_lists_merge_by_their_own_merge_key() {
        let live = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http"}],
                                   "volumeMounts":[{"mountPath":"/x","name":"v1"}]}],
                    "volumes":[{"name":"v1","emptyDir":{}}]}});
        let got = smp(
            live,
            json!({"spec":{"containers":[{"name":"a","ports":[{"containerPort":443,"name":"https"}],
                    "volumeMounts":[{"mountPath":"/x","readOnly":true}]}],
                    "volumes":[{"name":"v2","emptyDir":{}}]}}),
        );
        assert_eq!(
            got["spec"]["containers"][0]["ports"],
            json!([{"containerPort":80,"name":"http"},{"containerPort":443,"name":"https"}])
        );
        assert_eq!(
            got["spec"]["containers"][0]["volumeMounts"],
            json!([{"mountPath":"/x","name":"v1","readOnly":true}])
        );
        assert_eq!(
            got["spec"]["volumes"],
            json!([{"name":"v1","emptyDir":{}},{"name":"v2","emptyDir":{}}])
        );
    }

    #[test]
    fn retain_keys_drops_fields_not_listed() {
        let live = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}});
        let got = smp(
            live,
            json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type":"Recreate"}));
    }

    #[test]
    fn delete_from_primitive_list_removes_finalizers_and_set_merges() {
        let live = json!({"apiVersion":"v1","kind":"Namespace",
            "metadata":{"name":"n","finalizers":["a","b","c"]}});
        let got = smp(
            live.clone(),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
        let got = smp(live, json!({"metadata":{"finalizers":["c","d"]}}));
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c", "d"]));
    }

    #[test]
    fn patch_replace_directive_replaces_map_and_list() {
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},
                          "data":{"a":"1","b":"2"}});
        let got = smp(live, json!({"data":{"$patch":"replace","c":"3"}}));
        assert_eq!(got["data"], json!({"c":"3"}));

        let live = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"a"},{"name":"b"}]}});
        let got = smp(
            live,
            json!({"spec":{"containers":[{"$patch":"replace"},{"name":"c"}]}}),
        );
        assert_eq!(got["spec"]["containers"], json!([{"name":"c"}]));
    }

    #[test]
    fn set_element_order_reorders_and_keeps_server_only_items_after() {
        let live = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"extra"}]}});
        let got = smp(
            live,
            json!({"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],
                                       "containers":[{"name":"a","image":"i"}]}}),
        );
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name":"b"},{"name":"a","image":"i"},{"name":"extra"}])
        );
    }

    #[test]
    fn owner_references_merge_by_uid_and_conditions_by_type() {
        let live = json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"d","ownerReferences":[{"uid":"1","name":"a"}]},
            "status":{"conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True"}]}});
        let got = smp(
            live,
            json!({"metadata":{"ownerReferences":[{"uid":"2","name":"b"}]},
                   "status":{"conditions":[{"type":"Available","status":"True"}]}}),
        );
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([{"uid":"1","name":"a"},{"uid":"2","name":"b"}])
        );
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}])
        );
    }

    #[test]
    fn custom_resources_replace_lists_and_merge_maps() {
        let live = json!({"apiVersion":"mc.dev/v1alpha1","kind":"Link","metadata":{"name":"w"},
            "spec":{"gatewayAddresses":["a"],"probe":{"port":1,"path":"/"}},
            "status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Other","status":"True"}]}});
        let got = smp(
            live,
            json!({"spec":{"gatewayAddresses":["b"],"probe":{"port":2}},
                   "status":{"conditions":[{"type":"Ready","status":"False"}]}}),
        );
        assert_eq!(
            got["spec"],
            json!({"gatewayAddresses":["b"],"probe":{"port":2,"path":"/"}})
        );
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type":"Ready","status":"False"}])
        );
    }

    #[test]
    fn service_ports_and_container_ports_use_different_merge_keys() {
        assert_eq!(
            list_type("v1", "Service", &["spec", "ports"]),
            keyed("port", &["port", "protocol"])
        );
        assert_eq!(
            list_type(
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "ports"]
            ),
            keyed("containerPort", &["containerPort", "protocol"])
        );
        assert_eq!(
            list_type(
                "batch/v1",
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                    "env"
                ]
            ),
            keyed("name", &["name"])
        );
        assert_eq!(
            list_type("v1", "Service", &["spec", "selector"]),
            ListType::Atomic
        );
    }

    #[test]
    fn strategic_patch_errors_leave_target_unchanged() {
        let live = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"a"}]}});
        let cases = [
            json!({"spec":{"containers":[{"image":"no-name"}]}}),
            json!({"spec":{"$patch":"explode"}}),
            json!({"spec":{"$retainKeys":"nope"}}),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":"x"}}),
            json!({"spec":{"$setElementOrder/containers":{"name":"a"}}}),
            json!([1, 2]),
        ];
        for patch in cases {
            let mut t = live.clone();
            assert!(
                strategic_merge_patch(&mut t, &patch).is_err(),
                "{patch} should fail"
            );
            assert_eq!(t, live);
        }
    }

    #[test]
    fn json_patch_applies_ops_and_is_atomic_on_failure() {
        let mut v = json!({"metadata":{"labels":{"a":"1"}},"spec":{"x":[1,2]}});
        json_patch(
            &mut v,
            &json!([{"op":"add","path":"/metadata/labels/b","value":"2"},
                    {"op":"remove","path":"/spec/x/0"},
                    {"op":"replace","path":"/metadata/labels/a","value":"3"}]),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"metadata":{"labels":{"a":"3","b":"2"}},"spec":{"x":[2]}})
        );
        let before = v.clone();
        let err = json_patch(
            &mut v,
            &json!([{"op":"add","path":"/spec/y","value":1},
                    {"op":"test","path":"/spec/x/0","value":99}]),
        );
        assert!(matches!(err, Err(PatchError::JsonPatchApply(_))));
        assert_eq!(v, before);
        assert!(matches!(
            json_patch(&mut v, &json!({"op":"add"})),
            Err(PatchError::JsonPatchBody(_))
        ));
        assert!(matches!(
            json_patch(&mut v, &json!([{"op":"remove","path":"/nope"}])),
            Err(PatchError::JsonPatchApply(_))
        ));
    }
}
