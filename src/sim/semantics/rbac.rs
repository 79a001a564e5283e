//! RBAC authorization as kube-apiserver's RBAC authorizer decides it, over a snapshot of the
//! stored Roles, ClusterRoles and their bindings.
//!
//! A request is allowed when any ClusterRoleBinding, or any RoleBinding in the request's
//! namespace, binds a subject matching the user to a role with a rule that covers the
//! request. RoleBindings therefore never grant cluster-scoped or non-resource access, and a
//! RoleBinding to a ClusterRole only grants inside its own namespace. `system:masters`
//! bypasses RBAC as in the real server. Denials carry no reason, like RBAC's.

use std::collections::BTreeMap;

use super::strings;
use serde_json::{Value, json};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

pub const GROUP_MASTERS: &str = "system:masters";
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
pub const GROUP_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
pub const USER_ANONYMOUS: &str = "system:anonymous";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl UserInfo {
    /// The identity a ServiceAccount token authenticates as.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            username: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            groups: vec![
                GROUP_SERVICE_ACCOUNTS.into(),
                format!("{GROUP_SERVICE_ACCOUNTS}:{namespace}"),
                GROUP_AUTHENTICATED.into(),
            ],
        }
    }

    /// An authenticated user (e.g. from `Impersonate-User`), with `system:authenticated` added.
    pub fn user(username: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == GROUP_AUTHENTICATED) {
            groups.push(GROUP_AUTHENTICATED.into());
        }
        Self {
            username: username.into(),
            groups,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            username: USER_ANONYMOUS.into(),
            groups: vec![GROUP_UNAUTHENTICATED.into()],
        }
    }
}

/// What the request wants to do (authorizer.Attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// "" for cluster-scoped resources and cluster-wide lists.
    pub namespace: String,
    pub path: String,
    pub resource_request: bool,
}

impl Attributes {
    pub fn resource(verb: &str, api_group: &str, resource: &str, namespace: &str) -> Self {
        Self {
            verb: verb.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            resource_request: true,
            ..Self::default()
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.into();
        self
    }
}

/// The RBAC objects as stored (full JSON objects).
#[derive(Debug, Clone, Default)]
pub struct RbacSnapshot {
    pub roles: Vec<Value>,
    pub cluster_roles: Vec<Value>,
    pub role_bindings: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RBAC: allowed by ...` when allowed; empty when denied.
    pub reason: String,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn covers(list: &[&str], wanted: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == wanted)
}

/// rbac/v1 `ResourceMatches`: `*`, the exact `resource[/subresource]`, or `*/subresource`.
fn resource_matches(rule_resources: &[&str], attrs: &Attributes) -> bool {
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    rule_resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    })
}

fn non_resource_url_matches(rule_urls: &[&str], path: &str) -> bool {
    rule_urls.iter().any(|u| {
        *u == "*"
            || *u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    if !covers(&strings(rule.get("verbs")), &attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return non_resource_url_matches(&strings(rule.get("nonResourceURLs")), &attrs.path);
    }
    let names = strings(rule.get("resourceNames"));
    covers(&strings(rule.get("apiGroups")), &attrs.api_group)
        && resource_matches(&strings(rule.get("resources")), attrs)
        && (names.is_empty() || names.contains(&attrs.name.as_str()))
}

/// The subject in `binding` that matches `user`, described the way RBAC's reasons do.
fn matching_subject(binding: &Value, binding_ns: &str, user: &UserInfo) -> Option<String> {
    let subjects = binding.get("subjects").and_then(Value::as_array)?;
    subjects.iter().find_map(|s| {
        let kind = str_at(s, "/kind");
        let name = str_at(s, "/name");
        match kind {
            "User" if user.username == name => Some(format!("User {name:?}")),
            "Group" if user.groups.iter().any(|g| g == name) => Some(format!("Group {name:?}")),
            "ServiceAccount" => {
                let ns = Some(str_at(s, "/namespace"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns);
                let wanted = format!("{SERVICE_ACCOUNT_PREFIX}{ns}:{name}");
                (!ns.is_empty() && user.username == wanted)
                    .then(|| format!("ServiceAccount {:?}", format!("{name}/{ns}")))
            }
            _ => None,
        }
    })
}

/// `matchLabels` and `matchExpressions` of a metav1.LabelSelector.
fn label_selector_matches(selector: &Value, labels: &BTreeMap<&str, &str>) -> bool {
    let match_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k.as_str()).copied() == v.as_str())
        });
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match_labels
        && exprs.iter().all(|e| {
            let value = labels.get(str_at(e, "/key")).copied();
            let values = strings(e.get("values"));
            match str_at(e, "/operator") {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

impl RbacSnapshot {
    fn cluster_role(&self, name: &str) -> Option<&Value> {
        self.cluster_roles
            .iter()
            .find(|r| str_at(r, "/metadata/name") == name)
    }

    /// A ClusterRole's rules; aggregated roles get the rules of every ClusterRole their
    /// selectors match (what the aggregation controller would have written).
    fn cluster_role_rules(&self, role: &Value) -> Vec<Value> {
        let mut rules: Vec<Value> = role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let selectors = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array);
        if let Some(selectors) = selectors {
            for other in &self.cluster_roles {
                if str_at(other, "/metadata/name") == str_at(role, "/metadata/name") {
                    continue;
                }
                let labels: BTreeMap<&str, &str> = other
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                if selectors.iter().any(|s| label_selector_matches(s, &labels)) {
                    rules.extend(
                        other
                            .get("rules")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
            }
        }
        rules
    }

    /// The rules a binding's roleRef points at; a RoleBinding may name a Role in its own
    /// namespace or a ClusterRole. A missing role grants nothing.
    fn role_ref_rules(&self, binding: &Value, binding_ns: Option<&str>) -> Vec<Value> {
        let kind = str_at(binding, "/roleRef/kind");
        let name = str_at(binding, "/roleRef/name");
        match (kind, binding_ns) {
            ("ClusterRole", _) => self
                .cluster_role(name)
                .map(|r| self.cluster_role_rules(r))
                .unwrap_or_default(),
            ("Role", Some(ns)) => self
                .roles
                .iter()
                .find(|r| {
                    str_at(r, "/metadata/name") == name && str_at(r, "/metadata/namespace") == ns
                })
                .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Decides one request the way RBAC does.
pub fn authorize(rbac: &RbacSnapshot, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == GROUP_MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    for binding in &rbac.cluster_role_bindings {
        let Some(subject) = matching_subject(binding, "", user) else {
            continue;
        };
        if rbac
            .role_ref_rules(binding, None)
            .iter()
            .any(|r| rule_allows(r, attrs))
        {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?} to {subject}",
                    str_at(binding, "/metadata/name"),
                    str_at(binding, "/roleRef/name"),
                ),
            };
        }
    }
    if attrs.resource_request && !attrs.namespace.is_empty() {
        for binding in &rbac.role_bindings {
            let ns = str_at(binding, "/metadata/namespace");
            if ns != attrs.namespace {
                continue;
            }
            let Some(subject) = matching_subject(binding, ns, user) else {
                continue;
            };
            if rbac
                .role_ref_rules(binding, Some(ns))
                .iter()
                .any(|r| rule_allows(r, attrs))
            {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by RoleBinding {:?} of {} {:?} to {subject}",
                        format!("{}/{ns}", str_at(binding, "/metadata/name")),
                        str_at(binding, "/roleRef/kind"),
                        str_at(binding, "/roleRef/name"),
                    ),
                };
            }
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

/// The `status` of a SelfSubjectRulesReview (`kubectl auth can-i --list -n <namespace>`): every
/// rule of every ClusterRoleBinding, then of every RoleBinding in `namespace`, bound to the user,
/// split into resource and non-resource rules as RBAC's `RulesFor` does.
pub fn rules_review_status(rbac: &RbacSnapshot, user: &UserInfo, namespace: &str) -> Value {
    let mut rules: Vec<Value> = Vec::new();
    for binding in &rbac.cluster_role_bindings {
        if matching_subject(binding, "", user).is_some() {
            rules.extend(rbac.role_ref_rules(binding, None));
        }
    }
    if !namespace.is_empty() {
        for binding in &rbac.role_bindings {
            let ns = str_at(binding, "/metadata/namespace");
            if ns == namespace && matching_subject(binding, ns, user).is_some() {
                rules.extend(rbac.role_ref_rules(binding, Some(ns)));
            }
        }
    }
    let list = |rule: &Value, field: &str| json!(strings(rule.get(field)));
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in &rules {
        if strings(rule.get("nonResourceURLs")).is_empty() {
            let mut r = json!({"verbs": list(rule, "verbs"), "apiGroups": list(rule, "apiGroups"),
                               "resources": list(rule, "resources")});
            if !strings(rule.get("resourceNames")).is_empty() {
                r["resourceNames"] = list(rule, "resourceNames");
            }
            resource_rules.push(r);
        } else {
            non_resource_rules.push(
                json!({"verbs": list(rule, "verbs"), "nonResourceURLs": list(rule, "nonResourceURLs")}),
            );
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

/// The message of the 403 Status, worded as kube-apiserver words it.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let who = &user.username;
    if !attrs.resource_request {
        return format!(
            "forbidden: User {who:?} cannot {} path {:?}",
            attrs.verb, attrs.path
        );
    }
    let mut resource = attrs.resource.clone();
    if !attrs.subresource.is_empty() {
        resource = format!("{resource}/{}", attrs.subresource);
    }
    let reason = if attrs.namespace.is_empty() {
        format!(
            "User {who:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            attrs.verb, attrs.api_group
        )
    } else {
        format!(
            "User {who:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            attrs.verb, attrs.api_group, attrs.namespace
        )
    };
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", attrs.name)
    }
}

fn bootstrap_meta(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": bootstrap_meta(name), "rules": rules})
}

/// The parts of `rules` that `user` does not hold in `namespace` ("" for cluster-wide), one
/// entry per (group, resource, verb) or (URL, verb), rendered as kube-apiserver lists them in
/// its escalation error (`{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}`).
pub fn ungranted(
    rbac: &RbacSnapshot,
    user: &UserInfo,
    namespace: &str,
    rules: &[Value],
) -> Vec<String> {
    let strs = |r: &Value, f: &str| -> Vec<String> {
        strings(r.get(f)).into_iter().map(str::to_owned).collect()
    };
    let mut missing = Vec::new();
    for rule in rules {
        let verbs = strs(rule, "verbs");
        for url in strs(rule, "nonResourceURLs") {
            for verb in &verbs {
                let attrs = Attributes {
                    verb: verb.clone(),
                    path: url.clone(),
                    resource_request: false,
                    ..Default::default()
                };
                if !authorize(rbac, user, &attrs).allowed {
                    missing.push(format!("{{NonResourceURLs:[{url:?}], Verbs:[{verb:?}]}}"));
                }
            }
        }
        let names = strs(rule, "resourceNames");
        let names: Vec<String> = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for group in strs(rule, "apiGroups") {
            for resource in strs(rule, "resources") {
                let (res, sub) = resource.split_once('/').unwrap_or((&resource, ""));
                for verb in &verbs {
                    for name in &names {
                        let attrs = Attributes {
                            verb: verb.clone(),
                            api_group: group.clone(),
                            resource: res.to_string(),
                            subresource: sub.to_string(),
                            name: name.clone(),
                            namespace: namespace.to_string(),
                            path: String::new(),
                            resource_request: true,
                        };
                        if !authorize(rbac, user, &attrs).allowed {
                            let names = if name.is_empty() {
                                String::new()
                            } else {
                                format!(", ResourceNames:[{name:?}]")
                            };
                            missing.push(format!(
                                "{{APIGroups:[{group:?}], Resources:[{resource:?}]{names}, Verbs:[{verb:?}]}}"
                            ));
                        }
                    }
                }
            }
        }
    }
    missing
}

/// A default ClusterRole that aggregates into `view`, `edit` or `admin` through its labels.
fn labelled_cluster_role(name: &str, labels: &[&str], rules: Value) -> Value {
    let mut role = cluster_role(name, rules);
    for label in labels {
        role["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")] = json!("true");
    }
    role
}

/// A default ClusterRole whose rules the aggregation controller fills in.
fn aggregated_cluster_role(name: &str, labels: &[&str], selector: &str) -> Value {
    let mut role = labelled_cluster_role(name, labels, json!([]));
    role["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("rbac.authorization.k8s.io/{selector}"): "true"}}]});
    role
}

/// The rules an aggregated ClusterRole holds: the union, in order, of the rules of every
/// other ClusterRole its selectors match; None for a role without `aggregationRule`.
pub fn aggregated_rules(role: &Value, all: &[Value]) -> Option<Vec<Value>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?;
    let name = str_at(role, "/metadata/name");
    let mut others: Vec<&Value> = all
        .iter()
        .filter(|o| str_at(o, "/metadata/name") != name)
        .filter(|o| {
            let labels: BTreeMap<&str, &str> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                        .collect()
                })
                .unwrap_or_default();
            selectors.iter().any(|s| label_selector_matches(s, &labels))
        })
        .collect();
    others.sort_by_key(|o| str_at(o, "/metadata/name").to_string());
    let mut rules: Vec<Value> = Vec::new();
    for rule in others.iter().flat_map(|o| {
        o.get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

fn cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": bootstrap_meta(name),
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
           "subjects": subjects})
}

/// The bootstrap ClusterRoles and ClusterRoleBindings a fresh cluster has that matter to
/// kubectl and kube-rs: cluster-admin for system:masters, discovery and self-reviews for
/// every authenticated user, health/version for everyone, OIDC discovery for service accounts.
pub fn default_objects() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        cluster_role_binding("cluster-admin", &[GROUP_MASTERS]),
        cluster_role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                        "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                    "verbs": ["get"]}]),
        ),
        cluster_role_binding("system:discovery", &[GROUP_AUTHENTICATED]),
        cluster_role(
            "system:basic-user",
            json!([{"apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"]},
                   {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                    "verbs": ["create"]}]),
        ),
        cluster_role_binding("system:basic-user", &[GROUP_AUTHENTICATED]),
        cluster_role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"]}]),
        ),
        cluster_role_binding(
            "system:public-info-viewer",
            &[GROUP_AUTHENTICATED, GROUP_UNAUTHENTICATED],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            json!([{"nonResourceURLs": ["/.well-known/openid-configuration",
                                        "/.well-known/openid-configuration/",
                                        "/openid/v1/jwks", "/openid/v1/jwks/"],
                    "verbs": ["get"]}]),
        ),
        cluster_role_binding(
            "system:service-account-issuer-discovery",
            &[GROUP_SERVICE_ACCOUNTS],
        ),
        // The user-facing roles, aggregated as in kube-apiserver's bootstrap policy: admin
        // takes edit, edit takes view, each also whatever carries its aggregate-to label.
        aggregated_cluster_role("admin", &[], "aggregate-to-admin"),
        aggregated_cluster_role("edit", &["aggregate-to-admin"], "aggregate-to-edit"),
        aggregated_cluster_role("view", &["aggregate-to-edit"], "aggregate-to-view"),
        labelled_cluster_role(
            "system:aggregate-to-admin",
            &["aggregate-to-admin"],
            json!([
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"],
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"],
                 "verbs": ["create"]},
            ]),
        ),
        labelled_cluster_role(
            "system:aggregate-to-edit",
            &["aggregate-to-edit"],
            json!([
                {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
                {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": [""], "resources": ["pods/eviction", "serviceaccounts/token"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                    "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                    "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
                 "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
            ]),
        ),
        labelled_cluster_role(
            "system:aggregate-to-view",
            &["aggregate-to-view"],
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims",
                    "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale",
                    "serviceaccounts", "services", "services/status"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                    "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "daemonsets/status",
                    "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                    "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"],
                 "verbs": ["get", "list", "watch"]},
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn snapshot_with_defaults(extra: Vec<Value>) -> RbacSnapshot {
        let mut s = RbacSnapshot::default();
        for o in default_objects().into_iter().chain(extra) {
            match o["kind"].as_str().unwrap() {
                "Role" => s.roles.push(o),
                "ClusterRole" => s.cluster_roles.push(o),
                "RoleBinding" => s.role_bindings.push(o),
                "ClusterRoleBinding" => s.cluster_role_bindings.push(o),
                k => panic!("unexpected kind {k}"),
            }
        }
        s
    }

    fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
        let mut meta = json!({"name": name});
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":kind,"metadata":meta,"rules":rules})
    }

    fn binding(
        kind: &str,
        ns: &str,
        name: &str,
        role_kind: &str,
        role: &str,
        subjects: Value,
    ) -> Value {
        let mut meta = json!({"name": name});
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":kind,"metadata":meta,
               "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":role_kind,"name":role},
               "subjects":subjects})
    }

    fn allowed(s: &RbacSnapshot, u: &UserInfo, a: &Attributes) -> bool {
        authorize(s, u, a).allowed
    }

    /// The remote-access shape from DESIGN.md: read services/endpointslices/namespaces,
    /// one ConfigMap and one Service by name.
    fn remote_access() -> RbacSnapshot {
        snapshot_with_defaults(vec![
            role(
                "ClusterRole",
                "",
                "mc-remote-access",
                json!([
                    {"apiGroups":[""],"resources":["services","namespaces"],"verbs":["get","list","watch"]},
                    {"apiGroups":["discovery.k8s.io"],"resources":["endpointslices"],"verbs":["get","list","watch"]},
                    {"apiGroups":[""],"resources":["configmaps"],"resourceNames":["mc-config"],"verbs":["get"]}
                ]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "mc-remote-access-east",
                "ClusterRole",
                "mc-remote-access",
                json!([{"kind":"ServiceAccount","name":"mc-remote-access-east","namespace":"mc-system"}]),
            ),
        ])
    }

    #[test]
    fn masters_are_always_allowed_and_anonymous_only_gets_public_info() {
        let s = RbacSnapshot::default();
        let admin = UserInfo::user("admin", &[GROUP_MASTERS]);
        assert!(allowed(
            &s,
            &admin,
            &Attributes::resource("delete", "apps", "deployments", "x")
        ));
        let s = snapshot_with_defaults(vec![]);
        let anon = UserInfo::anonymous();
        assert!(allowed(
            &s,
            &anon,
            &Attributes::non_resource("get", "/version")
        ));
        assert!(!allowed(
            &s,
            &anon,
            &Attributes::non_resource("get", "/api")
        ));
        assert!(!allowed(
            &s,
            &anon,
            &Attributes::resource("list", "", "services", "default")
        ));
    }

    #[test]
    fn authenticated_users_get_discovery_and_self_subject_access_reviews() {
        let s = snapshot_with_defaults(vec![]);
        let sa = UserInfo::service_account("mc-system", "x");
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
        ] {
            assert!(
                allowed(&s, &sa, &Attributes::non_resource("get", path)),
                "{path}"
            );
        }
        assert!(!allowed(
            &s,
            &sa,
            &Attributes::non_resource("get", "/metrics")
        ));
        assert!(!allowed(&s, &sa, &Attributes::non_resource("post", "/api")));
        let ssar = Attributes::resource(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
        );
        assert!(allowed(&s, &sa, &ssar));
        assert!(!allowed(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "default")
        ));
    }

    #[test]
    fn cluster_role_binding_to_service_account_grants_cluster_wide() {
        let s = remote_access();
        let sa = UserInfo::service_account("mc-system", "mc-remote-access-east");
        let cases: &[(Attributes, bool)] = &[
            (
                Attributes::resource("list", "", "services", "default"),
                true,
            ),
            (Attributes::resource("watch", "", "services", ""), true),
            (
                Attributes::resource("get", "", "namespaces", "").with_name("demo"),
                true,
            ),
            (
                Attributes::resource("list", "discovery.k8s.io", "endpointslices", "demo"),
                true,
            ),
            (
                Attributes::resource("create", "", "services", "default"),
                false,
            ),
            (
                Attributes::resource("list", "", "secrets", "default"),
                false,
            ),
            (
                Attributes::resource("list", "apps", "services", "default"),
                false,
            ),
            (
                Attributes::resource("get", "", "configmaps", "mc-system").with_name("mc-config"),
                true,
            ),
            (
                Attributes::resource("get", "", "configmaps", "mc-system").with_name("other"),
                false,
            ),
            // resourceNames never match a list (there is no name).
            (
                Attributes::resource("list", "", "configmaps", "mc-system"),
                false,
            ),
            (
                Attributes::resource("get", "", "services", "demo")
                    .with_name("web")
                    .with_subresource("status"),
                false,
            ),
        ];
        for (a, want) in cases {
            assert_eq!(allowed(&s, &sa, a), *want, "{a:?}");
        }
        let other = UserInfo::service_account("mc-system", "mc-remote-access-west");
        assert!(!allowed(
            &s,
            &other,
            &Attributes::resource("list", "", "services", "default")
        ));
        let same_name_other_ns = UserInfo::service_account("default", "mc-remote-access-east");
        assert!(!allowed(
            &s,
            &same_name_other_ns,
            &Attributes::resource("list", "", "services", "default")
        ));
    }

    #[test]
    fn subresources_need_their_own_rule_or_a_star_form() {
        let s = snapshot_with_defaults(vec![
            role(
                "ClusterRole",
                "",
                "status-writer",
                json!([
                    {"apiGroups":[""],"resources":["services/status"],"verbs":["update","patch"]},
                    {"apiGroups":["apps"],"resources":["*/scale"],"verbs":["get"]},
                ]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "b",
                "ClusterRole",
                "status-writer",
                json!([{"kind":"User","name":"alice"}]),
            ),
        ]);
        let alice = UserInfo::user("alice", &[]);
        let svc = Attributes::resource("patch", "", "services", "demo").with_name("web");
        assert!(allowed(&s, &alice, &svc.clone().with_subresource("status")));
        assert!(!allowed(&s, &alice, &svc));
        let scale =
            Attributes::resource("get", "apps", "deployments", "demo").with_subresource("scale");
        assert!(allowed(&s, &alice, &scale));
        assert!(!allowed(
            &s,
            &alice,
            &Attributes::resource("get", "apps", "deployments", "demo")
        ));
    }

    #[test]
    fn stars_match_any_verb_resource_and_group() {
        let s = snapshot_with_defaults(vec![
            role(
                "ClusterRole",
                "",
                "all",
                json!([{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "b",
                "ClusterRole",
                "all",
                json!([{"kind":"Group","name":"ops"}]),
            ),
        ]);
        let bob = UserInfo::user("bob", &["ops"]);
        assert!(allowed(
            &s,
            &bob,
            &Attributes::resource("deletecollection", "mc.dev", "links", "x")
        ));
        assert!(allowed(
            &s,
            &bob,
            &Attributes::resource("get", "", "pods", "x").with_subresource("log")
        ));
        // Resource rules never grant non-resource URLs.
        assert!(!allowed(
            &s,
            &bob,
            &Attributes::non_resource("get", "/metrics")
        ));
        assert!(!allowed(
            &s,
            &UserInfo::user("carol", &[]),
            &Attributes::resource("get", "", "pods", "x")
        ));
    }

    #[test]
    fn role_binding_to_cluster_role_only_grants_in_its_namespace() {
        let s = snapshot_with_defaults(vec![
            role(
                "ClusterRole",
                "",
                "reader",
                json!([{"apiGroups":[""],"resources":["services"],"verbs":["list"]}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "rb",
                "ClusterRole",
                "reader",
                json!([{"kind":"ServiceAccount","name":"app"}]),
            ),
        ]);
        // ServiceAccount subject without namespace defaults to the binding's namespace.
        let sa = UserInfo::service_account("demo", "app");
        assert!(allowed(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "demo")
        ));
        assert!(!allowed(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "other")
        ));
        assert!(!allowed(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "")
        ));
        let d = authorize(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "demo"),
        );
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "rb/demo" of ClusterRole "reader" to ServiceAccount "app/demo""#
        );
    }

    #[test]
    fn role_binding_uses_role_of_its_own_namespace_only() {
        let s = snapshot_with_defaults(vec![
            role(
                "Role",
                "demo",
                "r",
                json!([{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}]),
            ),
            role(
                "Role",
                "other",
                "r2",
                json!([{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "rb",
                "Role",
                "r",
                json!([{"kind":"User","name":"alice"}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "rb2",
                "Role",
                "r2",
                json!([{"kind":"User","name":"alice"}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "dangling",
                "Role",
                "missing",
                json!([{"kind":"User","name":"alice"}]),
            ),
        ]);
        let alice = UserInfo::user("alice", &[]);
        assert!(allowed(
            &s,
            &alice,
            &Attributes::resource("get", "", "configmaps", "demo")
        ));
        assert!(!allowed(
            &s,
            &alice,
            &Attributes::resource("get", "", "secrets", "demo")
        ));
        assert!(!allowed(
            &s,
            &alice,
            &Attributes::resource("get", "", "configmaps", "other")
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_suffix() {
        let s = snapshot_with_defaults(vec![
            role(
                "ClusterRole",
                "",
                "metrics",
                json!([{"nonResourceURLs":["/metrics","/logs/*"],"verbs":["get"]}]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "m",
                "ClusterRole",
                "metrics",
                json!([{"kind":"User","name":"prom"}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "ignored",
                "ClusterRole",
                "cluster-admin",
                json!([{"kind":"User","name":"nsadmin"}]),
            ),
        ]);
        let prom = UserInfo::user("prom", &[]);
        assert!(allowed(
            &s,
            &prom,
            &Attributes::non_resource("get", "/metrics")
        ));
        assert!(allowed(
            &s,
            &prom,
            &Attributes::non_resource("get", "/logs/kube.log")
        ));
        assert!(!allowed(
            &s,
            &prom,
            &Attributes::non_resource("get", "/metricsx")
        ));
        assert!(!allowed(
            &s,
            &prom,
            &Attributes::non_resource("put", "/metrics")
        ));
        // A RoleBinding to cluster-admin grants no non-resource URLs.
        let ns_admin = UserInfo::user("nsadmin", &[]);
        assert!(!allowed(
            &s,
            &ns_admin,
            &Attributes::non_resource("get", "/metrics")
        ));
        assert!(allowed(
            &s,
            &ns_admin,
            &Attributes::resource("delete", "", "secrets", "demo")
        ));
    }

    #[test]
    fn aggregated_cluster_roles_collect_rules_by_label() {
        let mut extra = role(
            "ClusterRole",
            "",
            "piece",
            json!([{"apiGroups":["mc.dev"],"resources":["links"],"verbs":["get"]}]),
        );
        extra["metadata"]["labels"] = json!({"rbac.mc.dev/aggregate-to-view":"true"});
        let mut agg = role("ClusterRole", "", "view-all", json!([]));
        agg["aggregationRule"] = json!({"clusterRoleSelectors":[{"matchLabels":{"rbac.mc.dev/aggregate-to-view":"true"}}]});
        let s = snapshot_with_defaults(vec![
            extra,
            agg,
            binding(
                "ClusterRoleBinding",
                "",
                "v",
                "ClusterRole",
                "view-all",
                json!([{"kind":"User","name":"v"}]),
            ),
        ]);
        let v = UserInfo::user("v", &[]);
        assert!(allowed(
            &s,
            &v,
            &Attributes::resource("get", "mc.dev", "links", "x")
        ));
        assert!(!allowed(
            &s,
            &v,
            &Attributes::resource("list", "mc.dev", "links", "x")
        ));
    }

    #[test]
    fn allow_reason_names_binding_role_and_subject() {
        let s = remote_access();
        let sa = UserInfo::service_account("mc-system", "mc-remote-access-east");
        let d = authorize(
            &s,
            &sa,
            &Attributes::resource("list", "", "services", "default"),
        );
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: r#"RBAC: allowed by ClusterRoleBinding "mc-remote-access-east" of ClusterRole "mc-remote-access" to ServiceAccount "mc-remote-access-east/mc-system""#.into()
            }
        );
        let denied = authorize(
            &s,
            &sa,
            &Attributes::resource("list", "", "secrets", "default"),
        );
        assert_eq!(
            denied,
            Decision {
                allowed: false,
                reason: String::new()
            }
        );
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver_wording() {
        let sa = UserInfo::service_account("mc-system", "x");
        let cases = [
            (
                Attributes::resource("list", "", "services", "default"),
                r#"services is forbidden: User "system:serviceaccount:mc-system:x" cannot list resource "services" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::resource("get", "apps", "deployments", "demo").with_name("web"),
                r#"deployments.apps "web" is forbidden: User "system:serviceaccount:mc-system:x" cannot get resource "deployments" in API group "apps" in the namespace "demo""#,
            ),
            (
                Attributes::resource("list", "", "namespaces", ""),
                r#"namespaces is forbidden: User "system:serviceaccount:mc-system:x" cannot list resource "namespaces" in API group "" at the cluster scope"#,
            ),
            (
                Attributes::resource("patch", "", "services", "demo")
                    .with_name("web")
                    .with_subresource("status"),
                r#"services "web" is forbidden: User "system:serviceaccount:mc-system:x" cannot patch resource "services/status" in API group "" in the namespace "demo""#,
            ),
            (
                Attributes::non_resource("get", "/metrics"),
                r#"forbidden: User "system:serviceaccount:mc-system:x" cannot get path "/metrics""#,
            ),
        ];
        for (a, want) in cases {
            assert_eq!(forbidden_message(&sa, &a), want);
        }
    }

    #[test]
    fn default_objects_are_well_formed_rbac() {
        let objs = default_objects();
        assert!(
            objs.iter()
                .all(|o| o["apiVersion"] == "rbac.authorization.k8s.io/v1")
        );
        let roles: Vec<&str> = objs
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        for b in objs.iter().filter(|o| o["kind"] == "ClusterRoleBinding") {
            assert!(
                roles.contains(&b["roleRef"]["name"].as_str().unwrap()),
                "{b}"
            );
        }
    }

    #[test]
    fn rules_review_lists_cluster_and_namespace_rules_of_the_user() {
        let s = snapshot_with_defaults(vec![
            role(
                "Role",
                "demo",
                "cm",
                json!([{"apiGroups":[""],"resources":["configmaps"],"resourceNames":["c"],"verbs":["get"]}]),
            ),
            binding(
                "RoleBinding",
                "demo",
                "rb",
                "Role",
                "cm",
                json!([{"kind":"ServiceAccount","name":"app"}]),
            ),
        ]);
        let sa = UserInfo::service_account("demo", "app");
        let status = rules_review_status(&s, &sa, "demo");
        let resource_rules = status["resourceRules"].as_array().unwrap();
        assert!(resource_rules.contains(&json!({"verbs":["get"],"apiGroups":[""],"resources":["configmaps"],"resourceNames":["c"]})));
        assert!(resource_rules.contains(&json!({"verbs":["create"],"apiGroups":["authorization.k8s.io"],
                                                "resources":["selfsubjectaccessreviews","selfsubjectrulesreviews"]})));
        let non_resource = status["nonResourceRules"].as_array().unwrap();
        assert!(non_resource.iter().any(|r| {
            r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/api"))
        }));
        assert_eq!(status["incomplete"], false);
        // Another namespace does not see the RoleBinding.
        let other = rules_review_status(&s, &sa, "other");
        assert!(
            !other["resourceRules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resources"] == json!(["configmaps"]))
        );
        // Masters see cluster-admin's stars.
        let admin = rules_review_status(&s, &UserInfo::user("admin", &[GROUP_MASTERS]), "demo");
        assert!(
            admin["resourceRules"]
                .as_array()
                .unwrap()
                .contains(&json!({"verbs":["*"],"apiGroups":["*"],"resources":["*"]}))
        );
    }
}
