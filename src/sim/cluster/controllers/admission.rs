//! Admission: the defaults and validation kube-apiserver applies before it stores a create
//! or an update (Namespaces, Services with ClusterIP and NodePort allocation, Secrets with
//! `stringData` and legacy ServiceAccount tokens, Pods, Deployments, CRDs, immutable fields).

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::Settings;
use crate::sim::cluster::clock::{now_rfc3339, now_unix};
use crate::sim::cluster::registry::{self, ResourceType};
use crate::sim::cluster::store::{State, meta_str};
use crate::sim::semantics::status::{self, ApiError};
use crate::sim::semantics::token::{self, ServiceAccountClaims};
use crate::sim::semantics::{quantity, validation};

/// Admission: defaults and validation before a create (`old` None) or update is stored.
pub fn admit(
    settings: &Settings,
    state: &mut State,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    validate(rt, obj)?;
    normalize_quantities(obj);
    match rt.key().as_str() {
        "/namespaces" => {
            let name = meta_str(obj, "name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if old.is_none() && obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        "/services" => admit_service(settings, state, old, obj)?,
        "/secrets" => {
            admit_secret(obj);
            if old.is_none() {
                fill_token_secret(settings, state, obj)?;
            }
        }
        "/pods" if obj.pointer("/status/phase").is_none() => {
            obj["status"]["phase"] = json!("Pending");
        }
        "apps/deployments" => {
            let spec = &mut obj["spec"];
            if spec.get("replicas").is_none() {
                spec["replicas"] = json!(1);
            }
            if spec.get("revisionHistoryLimit").is_none() {
                spec["revisionHistoryLimit"] = json!(10);
            }
            if spec.get("progressDeadlineSeconds").is_none() {
                spec["progressDeadlineSeconds"] = json!(600);
            }
            if spec.get("strategy").is_none() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
        }
        "apiextensions.k8s.io/customresourcedefinitions" => admit_crd(state, old, obj)?,
        _ => {}
    }
    // After defaulting, as kube-apiserver validates updates.
    if let Some(old) = old {
        check_immutable(rt, old, obj)?;
        check_no_new_finalizers(rt, old, obj)?;
    }
    Ok(())
}

/// Fields kube-apiserver refuses to change: workload selectors, and the data of ConfigMaps and
/// Secrets marked `immutable`.
fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = meta_str(new, "name");
    let workload = rt.group == "apps" || (rt.group == "batch" && rt.plural == "jobs");
    if workload && old.pointer("/spec/selector") != new.pointer("/spec/selector") {
        let shown = new
            .pointer("/spec/selector")
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into());
        return Err(status::invalid(
            &rt.group,
            &rt.kind,
            name,
            "FieldValueInvalid",
            "spec.selector",
            &format!("Invalid value: {shown}: field is immutable"),
        ));
    }
    let is_data_kind =
        rt.group.is_empty() && matches!(rt.plural.as_str(), "configmaps" | "secrets");
    if is_data_kind && old.get("immutable") == Some(&json!(true)) {
        for field in ["data", "binaryData", "immutable"] {
            if old.get(field) != new.get(field) {
                return Err(status::invalid(
                    &rt.group,
                    &rt.kind,
                    name,
                    "FieldValueForbidden",
                    field,
                    "Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
    }
    Ok(())
}

/// Field rules of the built-in types (`semantics::validation`), before any defaulting: every
/// failed rule in one 422, as kube-apiserver reports them.
fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    validation::annotations(obj, &mut errors);
    match rt.key().as_str() {
        "/services" => validation::service(obj, &mut errors),
        "discovery.k8s.io/endpointslices" => validation::endpoint_slice(obj, &mut errors),
        "/configmaps" => validation::config_data(obj, false, &mut errors),
        "/secrets" => validation::config_data(obj, true, &mut errors),
        "coordination.k8s.io/leases" => validation::lease(obj, &mut errors),
        _ => {}
    }
    status::all_valid(&rt.group, &rt.kind, meta_str(obj, "name"), &errors)
}

/// Resource quantities in Pod specs (also inside workload templates) and PVCs are stored in
/// canonical form, as kube-apiserver's decoder writes them back (`1000m` reads as `1`).
fn normalize_quantities(obj: &mut Value) {
    fn canonicalize(map: Option<&mut Value>) {
        let Some(map) = map.and_then(Value::as_object_mut) else {
            return;
        };
        for v in map.values_mut() {
            if let Some(c) = v.as_str().and_then(quantity::canonical) {
                *v = json!(c);
            }
        }
    }
    for spec in [
        "/spec",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ] {
        for list in ["containers", "initContainers"] {
            let Some(containers) = obj
                .pointer_mut(&format!("{spec}/{list}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for c in containers {
                for kind in ["requests", "limits"] {
                    canonicalize(c.pointer_mut(&format!("/resources/{kind}")));
                }
            }
        }
    }
    if obj.get("kind").and_then(Value::as_str) == Some("PersistentVolumeClaim") {
        for kind in ["requests", "limits"] {
            canonicalize(obj.pointer_mut(&format!("/spec/resources/{kind}")));
        }
    }
}

/// An object being deleted may lose finalizers but not gain them.
fn check_no_new_finalizers(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    if old.pointer("/metadata/deletionTimestamp").is_none() {
        return Ok(());
    }
    use crate::sim::semantics::strings;
    let before = strings(old.pointer("/metadata/finalizers"));
    let added: Vec<String> = strings(new.pointer("/metadata/finalizers"))
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| format!("{f:?}"))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(status::invalid(
        &rt.group,
        &rt.kind,
        meta_str(new, "name"),
        "FieldValueForbidden",
        "metadata.finalizers",
        &format!(
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            added.join(", ")
        ),
    ))
}

/// A CRD's scope and group decide where its objects are stored and served: fixed once created.
fn check_crd_immutable(name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for field in ["scope", "group"] {
        let pointer = format!("/spec/{field}");
        let before = old.pointer(&pointer);
        let after = new.pointer(&pointer);
        if before != after {
            let shown = after.map(Value::to_string).unwrap_or_else(|| "\"\"".into());
            errors.push(validation::FieldError {
                reason: "FieldValueInvalid",
                field: format!("spec.{field}"),
                message: format!("Invalid value: {shown}: field is immutable"),
            });
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(status::invalid_all(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        name,
        &errors,
    ))
}

fn admit_crd(state: &State, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_string();
    let Some(t) = registry::from_crd(obj) else {
        return Err(status::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            "FieldValueRequired",
            "spec",
            "Required value: group, names.plural, names.kind and at least one served version are required",
        ));
    };
    if let Some(old) = old {
        check_crd_immutable(&name, old, obj)?;
    }
    let expected = format!("{}.{}", t.plural, t.group);
    if name != expected {
        return Err(status::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            "FieldValueInvalid",
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if old.is_none()
        && state
            .registry
            .types
            .iter()
            .any(|x| !x.from_crd && x.group == t.group && x.plural == t.plural)
    {
        return Err(status::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            "FieldValueInvalid",
            "spec.group",
            "Invalid value: the group and plural are served by a built-in type",
        ));
    }
    if old.is_none() {
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == super::CLEANUP_FINALIZER) {
            let mut fs = finalizers;
            fs.push(json!(super::CLEANUP_FINALIZER));
            obj["metadata"]["finalizers"] = json!(fs);
        }
    }
    let now = now_rfc3339();
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(t.singular);
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", t.kind));
    }
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let keep_time = |ty: &str| -> String {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    };
    obj["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
        ],
        "storedVersions": stored,
    });
    Ok(())
}

fn admit_service(
    settings: &Settings,
    state: &mut State,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_string();
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec["type"] = json!(ty);
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none()
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
        }
    }
    if ty == "ExternalName" {
        return Ok(());
    }
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let base = u32::from(settings.cluster_ip_base);
    let invalid_cluster_ip = |message: &str| {
        status::invalid(
            "",
            "Service",
            &name,
            "FieldValueInvalid",
            "spec.clusterIPs[0]",
            message,
        )
    };
    let ip = match (old_ip, requested.as_str()) {
        (Some(old), "") => old,
        (Some(old), new) if old == new => old,
        (Some(old), _) => {
            return Err(invalid_cluster_ip(&format!(
                "Invalid value: []string{{\"{requested}\"}}: may not change once set (was \"{old}\")"
            )));
        }
        (None, "None") => "None".to_string(),
        (None, "") => {
            let start = state.ip_cursor.clamp(2, 65534);
            let offset = (start..65535u32)
                .chain(2..start)
                .find(|o| !state.cluster_ips.contains(o))
                .ok_or_else(|| {
                    status::internal("the ClusterIP range of the simulated cluster is full")
                })?;
            state.cluster_ips.insert(offset);
            state.ip_cursor = offset + 1;
            Ipv4Addr::from(base + offset).to_string()
        }
        (None, wanted) => {
            let parsed: Ipv4Addr = wanted.parse().map_err(|_| {
                invalid_cluster_ip(&format!(
                    "Invalid value: \"{wanted}\": must be a valid IP address"
                ))
            })?;
            let offset = u32::from(parsed).wrapping_sub(base);
            if offset >= 65536 {
                return Err(invalid_cluster_ip(&format!(
                    "Invalid value: \"{wanted}\": provided IP is not in the valid range"
                )));
            }
            if !state.cluster_ips.insert(offset) {
                return Err(invalid_cluster_ip(&format!(
                    "Invalid value: \"{wanted}\": provided IP is already allocated"
                )));
            }
            wanted.to_string()
        }
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if spec.get("ipFamilies").is_none() {
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    if spec.get("internalTrafficPolicy").is_none() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let old_ports = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                if p.get("nodePort").is_none() {
                    let np = old_ports
                        .iter()
                        .find(|o| o.get("port") == p.get("port"))
                        .and_then(|o| o.get("nodePort").cloned())
                        .unwrap_or_else(|| json!(30000 + (state.rv as usize * 7 + i) % 2768));
                    p["nodePort"] = np;
                }
            }
        }
    }
    Ok(())
}

/// `stringData` is write-only: it is merged into `data` (base64) and dropped; `type`
/// defaults to `Opaque`.
fn admit_secret(obj: &mut Value) {
    use base64::Engine as _;
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if let Some(map) = string_data.as_object() {
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        for (k, v) in map {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

pub(super) fn fill_token_secret(
    settings: &Settings,
    state: &State,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if obj.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token") {
        return Ok(());
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ns = meta_str(obj, "namespace").to_string();
    let name = meta_str(obj, "name").to_string();
    let sa_name = obj
        .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if sa_name.is_empty() {
        return Err(status::invalid(
            "",
            "Secret",
            &name,
            "FieldValueRequired",
            "metadata.annotations[kubernetes.io/service-account.name]",
            "Required value",
        ));
    }
    // Filled in when the ServiceAccount appears (see `on_service_account`).
    let Some(sa) = state.get("/serviceaccounts", &ns, &sa_name) else {
        return Ok(());
    };
    let sa_uid = meta_str(&sa, "uid").to_string();
    obj["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = json!(sa_uid);
    let claims = ServiceAccountClaims {
        issuer: token::LEGACY_ISSUER.to_string(),
        audiences: Vec::new(),
        expires_at: token::NO_EXPIRY,
        issued_at: now_unix(),
        namespace: ns.clone(),
        service_account_name: sa_name,
        service_account_uid: sa_uid,
        secret_name: Some(name),
        secret_uid: Some(meta_str(obj, "uid").to_string()),
    };
    let token = settings
        .signer
        .sign(&claims)
        .map_err(|e| status::internal(format!("could not sign the token: {e}")))?;
    obj["data"]["token"] = json!(b64.encode(token));
    obj["data"]["ca.crt"] = json!(b64.encode(&settings.ca_pem));
    obj["data"]["namespace"] = json!(b64.encode(&ns));
    Ok(())
}
