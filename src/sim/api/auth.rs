//! Who is calling: the admin bearer token (`system:masters`), ServiceAccount JWTs bound to
//! their ServiceAccount (and Secret) by uid, and `Impersonate-*` headers for callers allowed to
//! impersonate. Anonymous requests get 401 (only health and version are public).

use http::HeaderMap;
use serde_json::{Value, json};

use super::context::{API_AUDIENCE, Shared};
use crate::sim::cluster::clock;
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::{State, meta_str};
use crate::sim::semantics::rbac::{self, Attributes, RbacSnapshot, UserInfo};
use crate::sim::semantics::status::{self, ApiError};
use crate::sim::semantics::token::ServiceAccountClaims;

pub const ADMIN_USER: &str = "mc-sim:admin";

pub fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(status::unauthorized)?;
    if constant_time_eq(token.as_bytes(), shared.admin_token.as_bytes()) {
        return Ok(UserInfo {
            username: ADMIN_USER.to_string(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        });
    }
    let claims = shared
        .signer
        .verify(token, clock::now_unix())
        .map_err(|_| status::unauthorized())?;
    check_bound_objects(shared, &claims)?;
    Ok(service_account_user(
        &claims.namespace,
        &claims.service_account_name,
    ))
}

/// A token is only as alive as the objects it was bound to (kube-apiserver checks uids too).
fn check_bound_objects(shared: &Shared, claims: &ServiceAccountClaims) -> Result<(), ApiError> {
    if !claims.audiences.is_empty() && !claims.audiences.iter().any(|a| a == API_AUDIENCE) {
        return Err(status::unauthorized());
    }
    let state = shared.store.lock();
    let sa = state
        .get(
            "/serviceaccounts",
            &claims.namespace,
            &claims.service_account_name,
        )
        .ok_or_else(status::unauthorized)?;
    if meta_str(&sa, "uid") != claims.service_account_uid
        || sa.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Err(status::unauthorized());
    }
    if let Some(secret) = &claims.secret_name {
        let s = state
            .get("/secrets", &claims.namespace, secret)
            .ok_or_else(status::unauthorized)?;
        if Some(meta_str(&s, "uid")) != claims.secret_uid.as_deref() {
            return Err(status::unauthorized());
        }
    }
    Ok(())
}

pub fn service_account_user(namespace: &str, name: &str) -> UserInfo {
    UserInfo {
        username: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    }
}

/// Applies `Impersonate-User` / `Impersonate-Group` if the caller may impersonate them.
pub fn impersonate(
    shared: &Shared,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let target = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let Some(target) = target else {
        if groups.is_empty() {
            return Ok(user);
        }
        return Err(status::internal(
            "requested impersonation of groups without a user",
        ));
    };
    let check = |resource: &str, name: &str| {
        let attrs = Attributes {
            verb: "impersonate".into(),
            api_group: String::new(),
            resource: resource.into(),
            name: name.into(),
            resource_request: true,
            ..Default::default()
        };
        authorize(shared, &user, &attrs)
    };
    let mut out = if let Some(rest) = target.strip_prefix("system:serviceaccount:") {
        let (ns, name) = rest.split_once(':').unwrap_or((rest, ""));
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource: "serviceaccounts".into(),
            name: name.into(),
            namespace: ns.into(),
            resource_request: true,
            ..Default::default()
        };
        authorize(shared, &user, &attrs)?;
        service_account_user(ns, name)
    } else {
        check("users", &target)?;
        UserInfo {
            username: target,
            groups: Vec::new(),
        }
    };
    for g in groups {
        check("groups", &g)?;
        if !out.groups.contains(&g) {
            out.groups.push(g);
        }
    }
    if !out.groups.iter().any(|g| g == "system:authenticated") && out.username != "system:anonymous"
    {
        out.groups.push("system:authenticated".into());
    }
    Ok(out)
}

pub fn rbac_snapshot(shared: &Shared) -> RbacSnapshot {
    rbac_snapshot_of(&shared.store.lock())
}

/// RBAC escalation prevention: a Role or ClusterRole may only grant what its writer holds
/// (unless allowed to `escalate`), a binding only bind a role whose permissions its writer
/// holds (unless allowed to `bind` it). `obj` is the object being written.
pub fn check_escalation(
    state: &State,
    user: &UserInfo,
    rt: &ResourceType,
    obj: &Value,
) -> Result<(), ApiError> {
    if rt.group != "rbac.authorization.k8s.io" || user.groups.iter().any(|g| g == "system:masters")
    {
        return Ok(());
    }
    let ns = meta_str(obj, "namespace").to_string();
    let name = meta_str(obj, "name").to_string();
    let snapshot = rbac_snapshot_of(state);
    let allowed = |verb: &str, resource: &str, role: &str| {
        let mut attrs = Attributes::resource(verb, &rt.group, resource, &ns);
        attrs.name = role.to_string();
        rbac::authorize(&snapshot, user, &attrs).allowed
    };
    let rules: Vec<Value> = match rt.plural.as_str() {
        "roles" | "clusterroles" => {
            if allowed("escalate", &rt.plural, &name) {
                return Ok(());
            }
            obj.get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let (plural, role_ns) = match kind {
                "ClusterRole" => ("clusterroles", ""),
                _ => ("roles", ns.as_str()),
            };
            if allowed("bind", plural, role) {
                return Ok(());
            }
            let key = format!("rbac.authorization.k8s.io/{plural}");
            let Some(role_obj) = state.get(&key, role_ns, role) else {
                return Ok(());
            };
            role_obj
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        _ => return Ok(()),
    };
    let missing = rbac::ungranted(&snapshot, user, &ns, &rules);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    Err(status::forbidden(
        format!(
            "{}.{} {name:?} is forbidden: user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            rt.plural,
            rt.group,
            user.username,
            groups.join(" "),
            missing.join("\n")
        ),
        &name,
        &rt.group,
        &rt.plural,
    ))
}

fn rbac_snapshot_of(state: &State) -> RbacSnapshot {
    let get = |plural: &str| -> Vec<Value> {
        state
            .list(&format!("rbac.authorization.k8s.io/{plural}"), None)
            .into_iter()
            .map(|v| (*v).clone())
            .collect()
    };
    RbacSnapshot {
        roles: get("roles"),
        cluster_roles: get("clusterroles"),
        role_bindings: get("rolebindings"),
        cluster_role_bindings: get("clusterrolebindings"),
    }
}

/// RBAC check with the real 403 message.
pub fn authorize(shared: &Shared, user: &UserInfo, attrs: &Attributes) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let snapshot = rbac_snapshot(shared);
    let decision = rbac::authorize(&snapshot, user, attrs);
    if decision.allowed {
        return Ok(());
    }
    let message = rbac::forbidden_message(user, attrs);
    if attrs.resource_request {
        Err(status::forbidden(
            message,
            &attrs.name,
            &attrs.api_group,
            &attrs.resource,
        ))
    } else {
        Err(ApiError::new(403, "Forbidden", message).with_details(json!({})))
    }
}

/// Token comparison that does not leak the matching prefix length through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
