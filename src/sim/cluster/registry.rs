//! The resource types the simulator serves: built-ins plus whatever CRDs are established.
//!
//! A resource is stored once under its `group/plural` key; CRD versions share that storage
//! (conversion strategy `None`: only `apiVersion` is rewritten on the way out).

use std::sync::Arc;

use serde_json::Value;

use crate::sim::semantics::schema;

pub const VERBS_ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Sub {
    Status,
    Scale,
    Token,
}

#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Sub>,
    /// Review-style types only accept `create` and are never stored.
    pub create_only: bool,
    /// `additionalPrinterColumns` of the served CRD version, for Tables.
    pub printer_columns: Option<Value>,
    pub from_crd: bool,
    /// `openAPIV3Schema` per served CRD version (custom resources are pruned, defaulted and
    /// validated against the one of the version a request names).
    pub schemas: Vec<(String, Arc<Value>)>,
    /// Whether some version's schema has `default`s (reads are defaulted then).
    pub defaults_on_read: bool,
}

impl ResourceType {
    /// `group/plural`: the storage key. `events.k8s.io` Events are stored as core Events (one
    /// store, two views; see `semantics::events`).
    pub fn key(&self) -> String {
        if self.is_events_view() {
            return "/events".into();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// `events.k8s.io/v1` Events: a converted view of the core Events.
    pub fn is_events_view(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn has_status(&self) -> bool {
        self.subresources.contains(&Sub::Status)
    }

    /// Whether objects of this type carry `metadata.generation`, as their kube-apiserver
    /// strategies set it: workloads, PodDisruptionBudgets, networking types, EndpointSlices,
    /// CRDs and every custom resource; not Services, ConfigMaps, Pods and the like.
    pub fn has_generation(&self) -> bool {
        self.from_crd
            || matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("apps" | "batch" | "networking.k8s.io", _)
                    | ("policy", "poddisruptionbudgets")
                    | ("apiextensions.k8s.io", "customresourcedefinitions")
                    | ("discovery.k8s.io", "endpointslices")
            )
    }

    /// The structural schema of a CRD version, if it declares one.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, s)| s.as_ref())
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            vec!["create"]
        } else {
            VERBS_ALL.to_vec()
        }
    }

    /// `<plural>` or `<plural>.<group>`, as the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

struct B {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    subs: &'static [Sub],
    create_only: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    subs: &'static [Sub],
) -> B {
    B {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        subs,
        create_only: false,
    }
}

const fn review(group: &'static str, kind: &'static str, plural: &'static str, ns: bool) -> B {
    B {
        group,
        version: "v1",
        kind,
        plural,
        namespaced: ns,
        short: &[],
        subs: &[],
        create_only: true,
    }
}

const BUILTINS: &[B] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[Sub::Status],
    ),
    b(
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        &[Sub::Status],
    ),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"], &[]),
    b("", "v1", "Secret", "secrets", true, &[], &[]),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        &[Sub::Token],
    ),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[]),
    b("", "v1", "Pod", "pods", true, &["po"], &[Sub::Status]),
    b("", "v1", "Event", "events", true, &["ev"], &[]),
    b("events.k8s.io", "v1", "Event", "events", true, &["ev"], &[]),
    b("", "v1", "Node", "nodes", false, &["no"], &[Sub::Status]),
    // Stored, not acted on: served so that `kubectl apply --prune`'s default set resolves.
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        &[Sub::Status],
    ),
    b(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        &[Sub::Status],
    ),
    b(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
        &[Sub::Status, Sub::Scale],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        &[Sub::Status],
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        &[Sub::Status, Sub::Scale],
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        &[Sub::Status, Sub::Scale],
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        &[Sub::Status, Sub::Scale],
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        &[Sub::Status],
    ),
    b("batch", "v1", "Job", "jobs", true, &[], &[Sub::Status]),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        &[Sub::Status],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        &[],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        &[Sub::Status],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        &[],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        &[],
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        &[Sub::Status],
    ),
    review(
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        false,
    ),
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
    ),
    review(
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
    ),
];

/// Group order in discovery (like kube-apiserver: core first, then a fixed order).
const GROUP_ORDER: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "batch",
    "rbac.authorization.k8s.io",
    "policy",
    "coordination.k8s.io",
    "networking.k8s.io",
    "discovery.k8s.io",
    "apiextensions.k8s.io",
];

#[derive(Debug, Clone)]
pub struct Registry {
    pub types: Vec<Arc<ResourceType>>,
    /// Bumped whenever the set of types changes (CRDs), to vary OpenAPI hashes.
    pub generation: u64,
}

impl Registry {
    pub fn builtin() -> Self {
        let types = BUILTINS
            .iter()
            .map(|b| {
                Arc::new(ResourceType {
                    group: b.group.into(),
                    versions: vec![b.version.into()],
                    kind: b.kind.into(),
                    plural: b.plural.into(),
                    singular: b.kind.to_ascii_lowercase(),
                    namespaced: b.namespaced,
                    short_names: b.short.iter().map(|s| s.to_string()).collect(),
                    categories: if matches!(
                        b.plural,
                        "services"
                            | "pods"
                            | "deployments"
                            | "replicasets"
                            | "statefulsets"
                            | "daemonsets"
                            | "jobs"
                            | "cronjobs"
                    ) {
                        vec!["all".into()]
                    } else {
                        vec![]
                    },
                    subresources: b.subs.to_vec(),
                    create_only: b.create_only,
                    printer_columns: None,
                    from_crd: false,
                    schemas: Vec::new(),
                    defaults_on_read: false,
                })
            })
            .collect();
        Registry {
            types,
            generation: 1,
        }
    }

    /// The type served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// Groups with their versions (preferred first) in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            let entry = match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some(e) => e,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            for v in &t.versions {
                if !entry.1.contains(v) {
                    entry.1.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups.sort_by_key(|(g, _)| {
            GROUP_ORDER
                .iter()
                .position(|o| o == g)
                .unwrap_or(GROUP_ORDER.len())
        });
        groups
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
            .cloned()
            .collect()
    }

    /// Rebuilds the CRD part from the CRDs in the store. A terminating CRD is still served
    /// (its custom resources must be readable and their finalizers removable); creates are
    /// refused by the handlers.
    pub fn with_crds<'a>(&self, crds: impl Iterator<Item = &'a Value>) -> Registry {
        let mut types: Vec<Arc<ResourceType>> =
            self.types.iter().filter(|t| !t.from_crd).cloned().collect();
        for crd in crds {
            if let Some(t) = from_crd(crd) {
                if types
                    .iter()
                    .any(|x| x.group == t.group && x.plural == t.plural)
                {
                    continue;
                }
                types.push(Arc::new(t));
            }
        }
        Registry {
            types,
            generation: self.generation + 1,
        }
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (level, major, n.parse().unwrap_or(0))
}

/// The resource type a CRD defines, or None if its spec is unusable.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strs(names.get("shortNames"));
    let categories = strs(names.get("categories"));
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions: Vec<(String, bool)> = Vec::new();
    let mut status = false;
    let mut scale = false;
    let mut printer_columns = None;
    let mut schemas = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = v.get("name")?.as_str()?.to_string();
        let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        if let Some(subs) = v.get("subresources") {
            status |= subs.get("status").is_some();
            scale |= subs.get("scale").is_some();
        }
        if (printer_columns.is_none() || storage)
            && let Some(cols) = v.get("additionalPrinterColumns")
        {
            printer_columns = Some(cols.clone());
        }
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.push((name.clone(), Arc::new(schema.clone())));
        }
        versions.push((name, storage));
    }
    if versions.is_empty() {
        return None;
    }
    let mut names: Vec<String> = versions.into_iter().map(|(n, _)| n).collect();
    names.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    let mut subresources = Vec::new();
    if status {
        subresources.push(Sub::Status);
    }
    if scale {
        subresources.push(Sub::Scale);
    }
    Some(ResourceType {
        group,
        versions: names,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        subresources,
        create_only: false,
        printer_columns,
        from_crd: true,
        defaults_on_read: schemas.iter().any(|(_, s)| schema::has_defaults(s)),
        schemas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_ga_before_beta_before_alpha() {
        let mut v = vec!["v1alpha1", "v2beta1", "v1", "v1beta2", "v2"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn crd_with_status_subresource_becomes_a_namespaced_type() {
        let crd = serde_json::json!({"spec":{"group":"mc.dev","scope":"Namespaced",
            "names":{"plural":"links","kind":"Link","singular":"link"},
            "versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}}}]}});
        let t = from_crd(&crd).expect("valid crd");
        assert_eq!(t.key(), "mc.dev/links");
        assert!(t.namespaced && t.has_status());
        assert_eq!(t.api_version("v1alpha1"), "mc.dev/v1alpha1");
    }
}
