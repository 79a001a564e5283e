//! The PATCH content types kube-apiserver accepts, applied to stored JSON objects:
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch
//! (k8s-api-surface.md §5), the latter following apimachinery's `strategicpatch` step by
//! step because the resulting list order is visible to users (pinned by golden outputs of
//! the Go code in the tests).
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
    #[error("{element} in the list at {path} is not a map")]
    NotAMapInKeyedList { element: String, path: String },
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

/// Whether the object at `path` is owned as a whole by server-side apply (`+structType=atomic`
/// or `+mapType=atomic` in the Go types): label selectors and Service/RC `spec.selector`.
/// Strategic merge patch still merges these maps key by key, as the real server does.
pub fn map_is_atomic(api_version: &str, _kind: &str, path: &[&str]) -> bool {
    if !BUILTIN_GROUPS.contains(&group_of(api_version)) {
        return false;
    }
    matches!(path, ["spec", "selector"])
        || matches!(
            path.last(),
            Some(&("labelSelector" | "podSelector" | "namespaceSelector"))
        )
}

/// RFC 7386 JSON merge patch: maps merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch as kube-apiserver applies it; atomic (the target is unchanged when an
/// operation fails). One deviation from the RFC, which the Go library kube-apiserver uses
/// makes and clients rely on: a `test` for `null` passes when the member is missing (kube-rs'
/// `finalizer()` sends `test /metadata/finalizers null` before adding the first finalizer).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::JsonPatchBody)?;
    let missing_is_null = |doc: &Value, op: &json_patch::PatchOperation| match op {
        json_patch::PatchOperation::Test(t) if t.value.is_null() => {
            let path = t.path.as_str();
            let parent = &path[..path.rfind('/').unwrap_or(0)];
            doc.pointer(path).is_none() && doc.pointer(parent).is_some()
        }
        _ => false,
    };
    if !ops.0.iter().any(|op| missing_is_null(target, op)) {
        return json_patch::patch(target, &ops).map_err(PatchError::JsonPatchApply);
    }
    // Rare: step through the operations on a copy, since an earlier one may create the member.
    let mut work = target.clone();
    for op in ops.0 {
        if missing_is_null(&work, &op) {
            continue;
        }
        json_patch::patch(&mut work, &json_patch::Patch(vec![op]))
            .map_err(PatchError::JsonPatchApply)?;
    }
    *target = work;
    Ok(())
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

    /// apimachinery `mergeMap`: directive, `$retainKeys`, `$setElementOrder` lists, then the
    /// fields, then `$deleteFromPrimitiveList` lists.
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
        let mut handled = Vec::new();
        for (k, order) in patch {
            if let Some(field) = k.strip_prefix(SET_ORDER_PREFIX) {
                path.push(field.to_string());
                let result = self.merge_ordered_list(&mut original, field, order, patch, path);
                path.pop();
                result?;
                handled.push(field);
            }
        }
        for (k, pv) in patch {
            if k.starts_with('$') || handled.contains(&k.as_str()) {
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
            // A new map deleted in the same patch never appears.
            (None, Value::Object(p))
                if p.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") =>
            {
                Ok(None)
            }
            (None, Value::Object(p)) => {
                // A new map is merged into nothing so that directives and nulls inside go away.
                Ok(Some(Value::Object(self.merge_map(Map::new(), p, path)?)))
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Ok(Some(Value::Array(self.merge_list(o, p, path)?.merged)))
            }
            (None, Value::Array(p)) => Ok(Some(Value::Array(
                self.merge_list(Vec::new(), p, path)?.merged,
            ))),
            (_, p) => Ok(Some(p.clone())),
        }
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        path: &mut Vec<String>,
    ) -> Result<MergedList, PatchError> {
        match self.list_type(path) {
            ListType::Atomic => {
                // Lists without a merge key are replaced (their elements lose directives).
                let merged = patch
                    .iter()
                    .map(|item| match item {
                        Value::Object(m) => {
                            Ok(Value::Object(self.merge_map(Map::new(), m, path)?))
                        }
                        other => Ok(other.clone()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(MergedList {
                    server_view: original,
                    merged,
                })
            }
            ListType::Set => {
                // apimachinery: append, deduplicate, then order patch items by the patch and
                // server-only items by the server.
                let mut both = original.clone();
                both.extend(patch.iter().cloned());
                let merged = deduplicate_scalars(both);
                let order = OrderKey::Value;
                Ok(MergedList {
                    merged: normalize_element_order(merged, patch, &original, order),
                    server_view: original,
                })
            }
            ListType::Map { smp_key, .. } => self.merge_keyed_list(original, patch, smp_key, path),
        }
    }

    /// apimachinery `mergeSlice` for lists of maps with a merge key. The server-side order
    /// used to place server-only items is read from the original list's backing array after
    /// deletions shifted it and appends reused its spare slot, as in the Go code (with the
    /// capacity equal to the length, as objects converted to unstructured have it), because
    /// that is what decides the order kube-apiserver returns.
    fn merge_keyed_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        key: &'static str,
        path: &mut Vec<String>,
    ) -> Result<MergedList, PatchError> {
        let capacity = original.len();
        let mut backing = original;
        let mut len = capacity;
        let mut plain = Vec::new();
        let mut replace = false;
        for item in patch {
            let Value::Object(m) = item else {
                return Err(PatchError::NotAMapInKeyedList {
                    element: item.to_string(),
                    path: show_path(path),
                });
            };
            match m.get(DIRECTIVE).map(|d| d.as_str()) {
                None => plain.push(m),
                Some(Some("delete")) => {
                    let Some(want) = m.get(key) else {
                        return Err(missing_key(m, key, path));
                    };
                    while let Some(i) = backing[..len].iter().position(|o| o.get(key) == Some(want))
                    {
                        // append(s[:i], s[i+1:]...): shift left in place; the old last slot
                        // keeps its value.
                        for j in i..len - 1 {
                            backing[j] = backing[j + 1].clone();
                        }
                        len -= 1;
                    }
                }
                Some(Some("replace")) => replace = true,
                Some(Some("merge")) => {
                    return Err(PatchError::InvalidDirective {
                        directive: "$patch",
                        path: show_path(path),
                        why: "merging lists cannot yet be specified in the patch",
                    });
                }
                Some(_) => {
                    return Err(PatchError::UnknownDirective {
                        directive: m.get(DIRECTIVE).map(Value::to_string).unwrap_or_default(),
                        path: show_path(path),
                    });
                }
            }
        }
        if replace {
            let merged = plain
                .into_iter()
                .map(|m| Ok(Value::Object(self.merge_map(Map::new(), m, path)?)))
                .collect::<Result<Vec<_>, PatchError>>()?;
            return Ok(MergedList {
                server_view: merged.clone(),
                merged,
            });
        }
        let after_delete = len;
        let mut grown: Option<Vec<Value>> = None;
        for m in &plain {
            let Some(want) = m.get(key) else {
                return Err(missing_key(m, key, path));
            };
            let current: &mut [Value] = match &mut grown {
                Some(g) => g,
                None => &mut backing[..len],
            };
            if let Some(i) = current.iter().position(|o| o.get(key) == Some(want)) {
                let existing = match std::mem::take(&mut current[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                current[i] = Value::Object(self.merge_map(existing, m, path)?);
                continue;
            }
            let item = Value::Object(self.merge_map(Map::new(), m, path)?);
            match &mut grown {
                Some(g) => g.push(item),
                None if len < capacity => {
                    backing[len] = item;
                    len += 1;
                }
                None => {
                    let mut g = backing[..len].to_vec();
                    g.push(item);
                    grown = Some(g);
                }
            }
        }
        let merged = grown.unwrap_or_else(|| backing[..len].to_vec());
        let patch_items: Vec<Value> = plain.iter().map(|m| Value::Object((*m).clone())).collect();
        let inner_view = &backing[..after_delete];
        Ok(MergedList {
            merged: normalize_element_order(merged, &patch_items, inner_view, OrderKey::Field(key)),
            server_view: backing,
        })
    }

    /// apimachinery `mergePatchIntoOriginal` for one `$setElementOrder/<field>`: merge the
    /// field's patch list, then order the result by the directive, placing server-only items
    /// by their position in the original list.
    fn merge_ordered_list(
        &self,
        original: &mut Map<String, Value>,
        field: &str,
        order: &Value,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let Some(order) = order.as_array() else {
            return Err(PatchError::InvalidDirective {
                directive: "$setElementOrder",
                path: show_path(path),
                why: "must be a list",
            });
        };
        let not_a_list = || PatchError::InvalidDirective {
            directive: "$setElementOrder",
            path: show_path(path),
            why: "applies to a field that is not a list",
        };
        let orig_list = match original.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(not_a_list()),
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.as_slice()),
            Some(_) => return Err(not_a_list()),
        };
        let list_type = self.list_type(path);
        let result = match (orig_list, patch_list) {
            (None, None) => return Ok(()),
            (Some(o), None) => MergedList {
                server_view: o.clone(),
                merged: o,
            },
            (None, Some(p)) => self.merge_list(Vec::new(), p, path)?,
            (Some(o), Some(p)) => self.merge_list(o, p, path)?,
        };
        let key = match list_type {
            ListType::Map { smp_key, .. } => OrderKey::Field(smp_key),
            ListType::Set => OrderKey::Value,
            // Atomic lists were replaced; there is nothing to order.
            ListType::Atomic => {
                original.insert(field.to_string(), Value::Array(result.merged));
                return Ok(());
            }
        };
        let merged = normalize_element_order(result.merged, order, &result.server_view, key);
        original.insert(field.to_string(), Value::Array(merged));
        Ok(())
    }
}

/// A merged list and the server order its server-only items are placed by.
struct MergedList {
    merged: Vec<Value>,
    server_view: Vec<Value>,
}

#[derive(Clone, Copy)]
enum OrderKey {
    Field(&'static str),
    Value,
}

impl OrderKey {
    fn of(self, v: &Value) -> Option<&Value> {
        match self {
            OrderKey::Field(k) => v.get(k),
            OrderKey::Value => Some(v),
        }
    }

    fn index(self, list: &[Value], item: &Value) -> Option<usize> {
        let want = self.of(item);
        list.iter().position(|v| self.of(v) == want)
    }
}

/// apimachinery `normalizeElementOrder`: items present in `patch_order` sorted by it, the
/// others sorted by `server_order`, then interleaved: a server-only item goes before a patch
/// item only when both are in `server_order` and it comes first there.
fn normalize_element_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: OrderKey,
) -> Vec<Value> {
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| key.index(patch_order, v).is_some());
    patch_items.sort_by_key(|v| key.index(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| key.index(server_order, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (key.index(server_order, l), key.index(server_order, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

/// apimachinery `deduplicateScalars`: a later duplicate is replaced by the last element.
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < s.len() {
        let mut j = i + 1;
        while j < s.len() {
            if s[i] == s[j] {
                s.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

fn missing_key(m: &Map<String, Value>, key: &'static str, path: &[String]) -> PatchError {
    PatchError::MissingMergeKey {
        element: Value::Object(m.clone()).to_string(),
        key,
        path: show_path(path),
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
        // New items go before server-only ones (apimachinery's normalizeElementOrder).
        assert_eq!(
            got["spec"]["containers"][0]["ports"],
            json!([{"containerPort":443,"name":"https"},{"containerPort":80,"name":"http"}])
        );
        assert_eq!(
            got["spec"]["containers"][0]["volumeMounts"],
            json!([{"mountPath":"/x","name":"v1","readOnly":true}])
        );
        assert_eq!(
            got["spec"]["volumes"],
            json!([{"name":"v2","emptyDir":{}},{"name":"v1","emptyDir":{}}])
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
    fn set_element_order_reorders_and_interleaves_server_only_items() {
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
        // A server-only item that preceded a listed one on the server stays in front of it.
        let live = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"injected"},{"name":"a"},{"name":"b"}]}});
        let got = smp(
            live,
            json!({"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"c"},{"name":"b"}],
                           "containers":[{"name":"c"}]}}),
        );
        let order: Vec<&str> = got["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["injected", "a", "c", "b"]);
        // Primitive lists are ordered by value.
        let live = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n","finalizers":["x","y"]}});
        let got = smp(
            live,
            json!({"metadata":{"$setElementOrder/finalizers":["z","y","x"],"finalizers":["z"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["z", "y", "x"]));
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
            json!([{"uid":"2","name":"b"},{"uid":"1","name":"a"}])
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
    fn selectors_are_atomic_for_apply_only_on_builtin_kinds() {
        assert!(map_is_atomic("v1", "Service", &["spec", "selector"]));
        assert!(map_is_atomic(
            "apps/v1",
            "Deployment",
            &["spec", "selector"]
        ));
        assert!(map_is_atomic(
            "apps/v1",
            "Deployment",
            &[
                "spec",
                "template",
                "spec",
                "topologySpreadConstraints",
                "labelSelector"
            ]
        ));
        assert!(!map_is_atomic("v1", "Service", &["metadata", "labels"]));
        assert!(!map_is_atomic(
            "mc.dev/v1alpha1",
            "Link",
            &["spec", "selector"]
        ));
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

    #[test]
    fn json_patch_test_for_null_passes_on_a_missing_member_only() {
        let finalize = json!([{"op":"test","path":"/metadata/finalizers","value":null},
                              {"op":"add","path":"/metadata/finalizers","value":["x/y"]}]);
        let mut v = json!({"metadata":{"name":"a"}});
        json_patch(&mut v, &finalize).unwrap();
        assert_eq!(v, json!({"metadata":{"name":"a","finalizers":["x/y"]}}));
        // Now present: the same patch fails (a second controller lost the race).
        assert!(matches!(
            json_patch(&mut v, &finalize),
            Err(PatchError::JsonPatchApply(_))
        ));
        assert_eq!(v["metadata"]["finalizers"], json!(["x/y"]));
        // A missing parent is still an error.
        let mut v = json!({});
        assert!(json_patch(&mut v, &json!([{"op":"test","path":"/a/b","value":null}])).is_err());
        assert_eq!(v, json!({}));
    }

    /// Outputs of the real Go implementation (`kubectl patch --local --type strategic`,
    /// kubectl 1.32) for the recorded patches and the corner cases of list ordering,
    /// directives and nulls: `[name, fixture, patch, [[pointer, expected]...]]`.
    const KUBECTL_GOLDEN: &str = r#"[["recorded_service", "svc", {"metadata": {"labels": {"tier": "front"}}, "spec": {"$setElementOrder/ports": [{"port": 8080}], "ports": [{"name": "http", "port": 8080, "targetPort": 8080}, {"$patch": "delete", "port": 80}]}}, [["/spec/ports", [{"name": "m", "port": 9090, "protocol": "TCP"}, {"name": "http", "port": 8080, "targetPort": 8080}]]]], ["recorded_deployment", "dep", {"metadata": {"annotations": {"a": "2"}}, "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}], "containers": [{"$setElementOrder/env": [{"name": "MODE"}], "env": [{"name": "MODE", "value": "two"}], "image": "nginx:1.26", "name": "web"}, {"$patch": "delete", "name": "sidecar"}]}}}}, [["/spec/template/spec/containers", [{"image": "proxy", "name": "injected"}, {"args": ["a", "b"], "env": [{"name": "MODE", "value": "two"}, {"name": "K", "value": "v"}], "image": "nginx:1.26", "name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}], "volumeMounts": [{"mountPath": "/x", "name": "v1"}]}]], ["/metadata/annotations", {"a": "2"}]]], ["interleave", "dep", {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "new"}, {"name": "web"}, {"name": "sidecar"}], "containers": [{"name": "new", "image": "n"}]}}}}, [["/spec/template/spec/containers", [{"image": "n", "name": "new"}, {"image": "proxy", "name": "injected"}, {"args": ["a", "b"], "env": [{"name": "MODE", "value": "one"}, {"name": "K", "value": "v"}], "image": "nginx:1.25", "name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}], "volumeMounts": [{"mountPath": "/x", "name": "v1"}]}, {"image": "busybox", "name": "sidecar"}]]]], ["interleave2", "dep", {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}], "containers": [{"name": "web", "image": "w"}]}}}}, [["/spec/template/spec/containers", [{"image": "proxy", "name": "injected"}, {"image": "busybox", "name": "sidecar"}, {"args": ["a", "b"], "env": [{"name": "MODE", "value": "one"}, {"name": "K", "value": "v"}], "image": "w", "name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}], "volumeMounts": [{"mountPath": "/x", "name": "v1"}]}]]]], ["retain", "dep", {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}, [["/spec/strategy", {"type": "Recreate"}]]], ["retain_volume", "dep", {"spec": {"template": {"spec": {"volumes": [{"$retainKeys": ["emptyDir", "name"], "name": "v1", "emptyDir": {}}]}}}}, [["/spec/template/spec/volumes", [{"emptyDir": {}, "name": "v1"}, {"emptyDir": {}, "name": "v2"}]]]], ["finalizers_delete", "dep", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}, [["/metadata/finalizers", ["f2"]]]], ["finalizers_merge", "dep", {"metadata": {"finalizers": ["f3", "f1"]}}, [["/metadata/finalizers", ["f3", "f1", "f2"]]]], ["finalizers_order", "dep", {"metadata": {"$setElementOrder/finalizers": ["f3", "f2", "f1"], "finalizers": ["f3"]}}, [["/metadata/finalizers", ["f3", "f2", "f1"]]]], ["replace_map", "dep", {"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "new": "x"}}}}}, [["/spec/template/metadata/labels", {"new": "x"}]]], ["replace_list", "dep", {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}}}, [["/spec/template/spec/containers", [{"image": "i", "name": "only"}]]]], ["delete_map", "dep", {"spec": {"strategy": {"$patch": "delete"}}}, [["/spec/strategy", {}]]], ["env_ports_mounts", "dep", {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "NEW", "value": "n"}], "ports": [{"containerPort": 443}, {"containerPort": 80, "name": "http"}], "volumeMounts": [{"mountPath": "/y", "name": "v2"}], "args": ["c"]}]}}}}, [["/spec/template/spec/containers/1", {"args": ["c"], "env": [{"name": "NEW", "value": "n"}, {"name": "MODE", "value": "one"}, {"name": "K", "value": "v"}], "image": "nginx:1.25", "name": "web", "ports": [{"containerPort": 443}, {"containerPort": 80, "name": "http", "protocol": "TCP"}], "volumeMounts": [{"mountPath": "/y", "name": "v2"}, {"mountPath": "/x", "name": "v1"}]}]]], ["owner_conditions", "dep", {"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o2", "uid": "u2"}, {"uid": "u1", "name": "renamed"}]}, "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "New", "status": "True"}]}}, [["/metadata/ownerReferences", [{"apiVersion": "v1", "kind": "X", "name": "o2", "uid": "u2"}, {"apiVersion": "v1", "kind": "X", "name": "renamed", "uid": "u1"}]], ["/status/conditions", [{"status": "True", "type": "Available"}, {"status": "True", "type": "New"}, {"status": "True", "type": "Progressing"}]]]], ["tolerations_tsc_ips", "dep", {"spec": {"template": {"spec": {"tolerations": [{"key": "k2"}], "topologySpreadConstraints": [{"topologyKey": "host", "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 2}, {"topologyKey": "zone", "maxSkew": 3}], "imagePullSecrets": [{"name": "s2"}]}}}}, [["/spec/template/spec/tolerations", [{"key": "k2"}]], ["/spec/template/spec/topologySpreadConstraints", [{"maxSkew": 2, "topologyKey": "host", "whenUnsatisfiable": "ScheduleAnyway"}, {"maxSkew": 3, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]], ["/spec/template/spec/imagePullSecrets", [{"name": "s2"}, {"name": "s1"}]]]], ["nulls", "dep", {"metadata": {"annotations": {"a": null, "b": null, "c": "3"}, "labels": {"x": null, "y": "1"}}, "spec": {"replicas": null}}, [["/metadata", {"annotations": {"c": "3"}, "finalizers": ["f1", "f2"], "labels": {"y": "1"}, "name": "web", "namespace": "demo", "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o1", "uid": "u1"}]}], ["/spec/replicas", null]]], ["selector_map", "svc", {"spec": {"selector": {"x": null, "z": "w"}}}, [["/spec/selector", {"app": "web", "z": "w"}]]], ["delete_missing_item", "svc", {"spec": {"ports": [{"$patch": "delete", "port": 1234}]}}, [["/spec/ports", [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}, {"name": "m", "port": 9090, "protocol": "TCP"}]]]], ["nested_new_list_with_directives", "svc", {"spec": {"ports": [{"port": 1, "name": "a"}], "newmap": {"k": null, "j": {"$patch": "delete"}}}}, [["/spec/newmap", {}], ["/spec/ports", [{"name": "a", "port": 1}, {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}, {"name": "m", "port": 9090, "protocol": "TCP"}]]]]]"#;
    const GOLDEN_SERVICE: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"demo","labels":{"app":"web"}},"spec":{"selector":{"app":"web","x":"y"},"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":80},{"name":"m","port":9090,"protocol":"TCP"}]}}"#;
    const GOLDEN_DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"demo","annotations":{"a":"1"},"ownerReferences":[{"apiVersion":"v1","kind":"X","name":"o1","uid":"u1"}],"finalizers":["f1","f2"]},"spec":{"replicas":1,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":0}},"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"injected","image":"proxy"},{"name":"web","image":"nginx:1.25","args":["a","b"],"env":[{"name":"MODE","value":"one"},{"name":"K","value":"v"}],"ports":[{"containerPort":80,"protocol":"TCP"}],"volumeMounts":[{"mountPath":"/x","name":"v1"}]},{"name":"sidecar","image":"busybox"}],"volumes":[{"name":"v1","configMap":{"name":"c"}},{"name":"v2","emptyDir":{}}],"tolerations":[{"key":"k1","operator":"Exists"}],"topologySpreadConstraints":[{"topologyKey":"zone","whenUnsatisfiable":"DoNotSchedule","maxSkew":1}],"imagePullSecrets":[{"name":"s1"}]}}},"status":{"conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True"}]}}"#;

    #[test]
    fn strategic_merge_patch_matches_kubectl_outputs() {
        let cases: Vec<Value> = serde_json::from_str(KUBECTL_GOLDEN).unwrap();
        assert_eq!(cases.len(), 19);
        for case in cases {
            let name = case[0].as_str().unwrap();
            let fixture = if case[1] == "svc" {
                GOLDEN_SERVICE
            } else {
                GOLDEN_DEPLOYMENT
            };
            let mut target: Value = serde_json::from_str(fixture).unwrap();
            strategic_merge_patch(&mut target, &case[2]).unwrap_or_else(|e| panic!("{name}: {e}"));
            for check in case[3].as_array().unwrap() {
                let pointer = check[0].as_str().unwrap();
                let got = target.pointer(pointer).cloned().unwrap_or(Value::Null);
                assert_eq!(got, check[1], "{name} at {pointer}");
            }
        }
    }

    /// Random JSON biased towards the keys and directives the merge code branches on.
    pub(crate) fn random_value(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        use rand::Rng;
        const KEYS: &[&str] = &[
            "spec",
            "template",
            "containers",
            "name",
            "ports",
            "port",
            "protocol",
            "env",
            "metadata",
            "finalizers",
            "labels",
            "selector",
            "$patch",
            "$retainKeys",
            "$setElementOrder/containers",
            "$setElementOrder/ports",
            "$setElementOrder/finalizers",
            "$deleteFromPrimitiveList/finalizers",
            "status",
            "conditions",
            "type",
            "x",
        ];
        const STRINGS: &[&str] = &["delete", "replace", "merge", "a", "b", "TCP", "name"];
        match if depth == 0 {
            rng.random_range(0..4)
        } else {
            rng.random_range(0..7)
        } {
            0 => Value::Null,
            1 => json!(rng.random_range(0..3)),
            2 => json!(STRINGS[rng.random_range(0..STRINGS.len())]),
            3 => json!(rng.random::<bool>()),
            4 | 5 => {
                let n = rng.random_range(0..4);
                Value::Object(
                    (0..n)
                        .map(|_| {
                            let k = KEYS[rng.random_range(0..KEYS.len())].to_string();
                            (k, random_value(rng, depth - 1))
                        })
                        .collect(),
                )
            }
            _ => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| random_value(rng, depth - 1))
                    .collect(),
            ),
        }
    }

    #[test]
    fn random_targets_and_patches_never_panic() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..5_000 {
            let mut target = random_value(&mut rng, 5);
            if i % 2 == 0 {
                target = json!({"apiVersion":"apps/v1","kind":"Deployment","spec":target});
            }
            let patch = random_value(&mut rng, 5);
            let before = target.clone();
            if strategic_merge_patch(&mut target, &patch).is_err() {
                assert_eq!(target, before);
            }
            let _ = json_patch(&mut target, &patch);
            merge_patch(&mut target, &patch);
        }
    }
}
