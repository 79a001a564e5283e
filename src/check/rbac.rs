//! What mc's components need from RBAC, and whether RBAC rules grant it, pure. `mc check` asks
//! the API server (SelfSubjectAccessReviews while impersonating each ServiceAccount) and, when it
//! may not impersonate, falls back to reading the bindings and roles and judging them here.
//! The fallback ignores aggregated ClusterRoles and non-RBAC authorizers; the message says which
//! way was used.

use crate::k8s::{
    CONFIG_MAP, ClusterRole, ClusterRoleBinding, GATEWAY_NAME, ISSUER_SECRET, MIRROR_LEASE,
    MIRROR_NAME, Role, RoleBinding,
};
use k8s_openapi::api::rbac::v1::PolicyRule;

/// One permission a component uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub account: &'static str,
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    /// Empty: none.
    pub subresource: &'static str,
    /// Empty: any object.
    pub name: &'static str,
    /// In mc's namespace (else cluster-wide).
    pub namespaced: bool,
}

const fn need(
    account: &'static str,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    name: &'static str,
    namespaced: bool,
) -> Need {
    Need {
        account,
        verb,
        group,
        resource,
        subresource,
        name,
        namespaced,
    }
}

/// What the gateway and the mirror controller do (a sample of each role, enough to tell a
/// role that was edited or never bound).
pub const NEEDS: &[Need] = &[
    need(GATEWAY_NAME, "watch", "", "services", "", "", false),
    need(
        GATEWAY_NAME,
        "watch",
        "discovery.k8s.io",
        "endpointslices",
        "",
        "",
        false,
    ),
    need(GATEWAY_NAME, "watch", "mc.dev", "links", "", "", true),
    need(GATEWAY_NAME, "get", "", "configmaps", "", CONFIG_MAP, true),
    need(GATEWAY_NAME, "get", "", "secrets", "", ISSUER_SECRET, true),
    need(MIRROR_NAME, "create", "", "services", "", "", false),
    need(MIRROR_NAME, "delete", "", "services", "", "", false),
    need(
        MIRROR_NAME,
        "create",
        "discovery.k8s.io",
        "endpointslices",
        "",
        "",
        false,
    ),
    need(MIRROR_NAME, "watch", "", "namespaces", "", "", false),
    need(MIRROR_NAME, "watch", "mc.dev", "links", "", "", true),
    need(MIRROR_NAME, "patch", "mc.dev", "links", "status", "", true),
    need(
        MIRROR_NAME,
        "update",
        "mc.dev",
        "links",
        "finalizers",
        "",
        true,
    ),
    need(MIRROR_NAME, "get", "", "secrets", "", "", true),
    need(MIRROR_NAME, "get", "", "configmaps", "", CONFIG_MAP, true),
    need(
        MIRROR_NAME,
        "update",
        "coordination.k8s.io",
        "leases",
        "",
        MIRROR_LEASE,
        true,
    ),
    need(MIRROR_NAME, "create", "", "events", "", "", true),
];

impl Need {
    /// `links/status`, as RBAC rules name it.
    pub fn resource_path(&self) -> String {
        match self.subresource {
            "" => self.resource.to_owned(),
            s => format!("{}/{s}", self.resource),
        }
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == "*" || v == wanted)
}

/// Whether one rule grants `need` (verbs, API groups, resources with `*` and `res/*`, names).
pub fn rule_allows(rule: &PolicyRule, need: &Need) -> bool {
    let resources = rule.resources.as_deref().unwrap_or_default();
    let path = need.resource_path();
    let resource_ok = has(resources, &path)
        || (!need.subresource.is_empty()
            && resources
                .iter()
                .any(|r| r == &format!("{}/*", need.resource)));
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let name_ok = names.is_empty() || (!need.name.is_empty() && has(names, need.name));
    has(&rule.verbs, need.verb)
        && has(rule.api_groups.as_deref().unwrap_or_default(), need.group)
        && resource_ok
        && name_ok
}

/// The RBAC objects of a cluster that matter for mc's namespace.
#[derive(Debug, Default, Clone)]
pub struct RbacObjects {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// Whether the bindings and roles grant `need` to ServiceAccount `need.account` in `namespace`:
/// ClusterRoleBindings grant everywhere; RoleBindings in `namespace` grant there only.
pub fn rules_allow(objects: &RbacObjects, namespace: &str, need: &Need) -> bool {
    let binds = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == need.account
                && s.namespace.as_deref() == Some(namespace)
        })
    };
    let cluster_role = |name: &str| {
        objects
            .cluster_roles
            .iter()
            .filter(|r| r.metadata.name.as_deref() == Some(name))
            .flat_map(|r| r.rules.iter().flatten())
            .any(|rule| rule_allows(rule, need))
    };
    let cluster_wide = objects
        .cluster_role_bindings
        .iter()
        .filter(|b| binds(&b.subjects))
        .any(|b| b.role_ref.kind == "ClusterRole" && cluster_role(&b.role_ref.name));
    if cluster_wide || !need.namespaced {
        return cluster_wide;
    }
    objects
        .role_bindings
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == Some(namespace) && binds(&b.subjects))
        .any(|b| match b.role_ref.kind.as_str() {
            "ClusterRole" => cluster_role(&b.role_ref.name),
            _ => objects
                .roles
                .iter()
                .filter(|r| {
                    r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && r.metadata.namespace.as_deref() == Some(namespace)
                })
                .flat_map(|r| r.rules.iter().flatten())
                .any(|rule| rule_allows(rule, need)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::{ObjectMeta, RoleRef, Subject};

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            verbs: v(verbs),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    const STATUS: Need = need(MIRROR_NAME, "patch", "mc.dev", "links", "status", "", true);
    const LEASE: Need = need(
        MIRROR_NAME,
        "update",
        "coordination.k8s.io",
        "leases",
        "",
        MIRROR_LEASE,
        true,
    );
    const SERVICES: Need = need(MIRROR_NAME, "create", "", "services", "", "", false);

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let cases = [
            (
                rule(&["mc.dev"], &["links/status"], &["patch"], &[]),
                STATUS,
                true,
            ),
            (
                rule(&["mc.dev"], &["links"], &["patch"], &[]),
                STATUS,
                false,
            ),
            (rule(&["mc.dev"], &["links/*"], &["*"], &[]), STATUS, true),
            (rule(&["*"], &["*"], &["*"], &[]), STATUS, true),
            (
                rule(&["mc.dev"], &["links/status"], &["get"], &[]),
                STATUS,
                false,
            ),
            (
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["update"],
                    &["mc-mirror"],
                ),
                LEASE,
                true,
            ),
            (
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["update"],
                    &["other"],
                ),
                LEASE,
                false,
            ),
            (
                rule(&[""], &["services"], &["create"], &["x"]),
                SERVICES,
                false,
            ),
            (rule(&[""], &["services"], &["create"], &[]), SERVICES, true),
            (
                rule(&["apps"], &["services"], &["create"], &[]),
                SERVICES,
                false,
            ),
        ];
        for (i, (r, n, want)) in cases.iter().enumerate() {
            assert_eq!(rule_allows(r, n), *want, "case {i}: {r:?} {n:?}");
        }
    }

    fn subject() -> Option<Vec<Subject>> {
        Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: MIRROR_NAME.into(),
            namespace: Some("mc-system".into()),
            api_group: None,
        }])
    }

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn a_role_binding_grants_in_its_namespace_and_a_cluster_role_binding_everywhere() {
        let mut o = RbacObjects {
            roles: vec![Role {
                metadata: meta("mc-mirror", Some("mc-system")),
                rules: Some(vec![rule(&["mc.dev"], &["links/status"], &["patch"], &[])]),
            }],
            role_bindings: vec![RoleBinding {
                metadata: meta("mc-mirror", Some("mc-system")),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "mc-mirror".into(),
                },
                subjects: subject(),
            }],
            ..Default::default()
        };
        assert!(rules_allow(&o, "mc-system", &STATUS));
        assert!(
            !rules_allow(&o, "other", &STATUS),
            "another namespace's account"
        );
        assert!(
            !rules_allow(&o, "mc-system", &SERVICES),
            "no cluster-wide grant"
        );
        o.cluster_roles = vec![ClusterRole {
            metadata: meta("mc-mirror", None),
            rules: Some(vec![rule(&[""], &["services"], &["create"], &[])]),
            aggregation_rule: None,
        }];
        assert!(
            !rules_allow(&o, "mc-system", &SERVICES),
            "a ClusterRole alone grants nothing"
        );
        o.cluster_role_bindings = vec![ClusterRoleBinding {
            metadata: meta("mc-mirror", None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "mc-mirror".into(),
            },
            subjects: subject(),
        }];
        assert!(rules_allow(&o, "mc-system", &SERVICES));
    }
}
