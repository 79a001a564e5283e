//! What a real control plane does around the store, done synchronously inside the write that
//! triggers it: admission defaults (ClusterIP allocation, CRD conditions, ServiceAccount token
//! Secrets), and reactions to events (namespace bootstrap objects, CRD registry, namespace and
//! CRD content deletion, ownerReference garbage collection, EndpointSlices, LoadBalancer
//! status, Deployment status). Running them in the write keeps the simulator deterministic:
//! when a request returns, its consequences are visible.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::rbac;
use super::registry::ResourceType;
use super::selector::LabelSelector;
use super::server::Shared;
use super::status::{self, ApiError};
use super::store::{Event, EventType, State, meta_str};
use super::token::ServiceAccountClaims;

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const SLICE_MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Guard against controllers feeding each other forever.
const MAX_ROUNDS: usize = 64;

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339_of(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn now_rfc3339() -> String {
    rfc3339_of(now_unix())
}

/// Metadata for an object a controller creates.
fn new_meta(ns: &str, name: &str) -> Value {
    let mut m = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": now_rfc3339(),
    });
    if !ns.is_empty() {
        m["namespace"] = json!(ns);
    }
    m
}

/// The objects a fresh cluster has: system namespaces, default RBAC, the `kubernetes` Service.
pub fn seed(shared: &Shared) {
    let mut state = shared.store.lock();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": new_meta("", ns), "spec": {"finalizers": ["kubernetes"]}});
        obj["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": ns});
        obj["status"] = json!({"phase": "Active"});
        state.put("/namespaces", obj, EventType::Added);
    }
    for obj in rbac::default_objects() {
        let (key, ns, name) = {
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            let plural = match kind {
                "ClusterRole" => "clusterroles",
                "ClusterRoleBinding" => "clusterrolebindings",
                "Role" => "roles",
                "RoleBinding" => "rolebindings",
                _ => continue,
            };
            (
                format!("rbac.authorization.k8s.io/{plural}"),
                meta_str(&obj, "namespace").to_string(),
                meta_str(&obj, "name").to_string(),
            )
        };
        let mut obj = obj;
        let mut meta = new_meta(&ns, &name);
        if let Some(extra) = obj.get("metadata").and_then(Value::as_object) {
            for (k, v) in extra {
                meta[k] = v.clone();
            }
        }
        obj["metadata"] = meta;
        state.put(&key, obj, EventType::Added);
    }
    let ip = Ipv4Addr::from(u32::from(shared.config.cluster_ip_base) + 1);
    state.cluster_ips.insert(1);
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": new_meta("default", "kubernetes"),
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": shared.addr().port()}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    });
    svc["metadata"]["labels"] = json!({"component": "apiserver", "provider": "kubernetes"});
    state.put("/services", svc, EventType::Added);
    run(shared, &mut state);
}

/// Admission: defaults and validation before a create (`old` None) or update is stored.
pub fn admit(
    shared: &Shared,
    state: &mut State,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    match rt.key().as_str() {
        "/namespaces" => {
            let name = meta_str(obj, "name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        "/services" => admit_service(shared, state, old, obj)?,
        "/secrets" => {
            admit_secret(obj);
            if old.is_none() {
                fill_token_secret(shared, state, obj)?;
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

fn admit_crd(state: &State, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_string();
    let Some(t) = super::registry::from_crd(obj) else {
        return Err(status::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            "FieldValueRequired",
            "spec",
            "Required value: group, names.plural, names.kind and at least one served version are required",
        ));
    };
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
    shared: &Shared,
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
    let base = u32::from(shared.config.cluster_ip_base);
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

fn fill_token_secret(shared: &Shared, state: &State, obj: &mut Value) -> Result<(), ApiError> {
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
        issuer: super::token::LEGACY_ISSUER.to_string(),
        audiences: Vec::new(),
        expires_at: super::token::NO_EXPIRY,
        issued_at: now_unix(),
        namespace: ns.clone(),
        service_account_name: sa_name,
        service_account_uid: sa_uid,
        secret_name: Some(name),
        secret_uid: Some(meta_str(obj, "uid").to_string()),
    };
    let token = shared
        .signer
        .sign(&claims)
        .map_err(|e| status::internal(format!("could not sign the token: {e}")))?;
    obj["data"]["token"] = json!(b64.encode(token));
    obj["data"]["ca.crt"] = json!(b64.encode(&shared.pki.ca_pem));
    obj["data"]["namespace"] = json!(b64.encode(&ns));
    Ok(())
}

/// The token controller: legacy token Secrets waiting for their ServiceAccount get filled when
/// it appears, and are deleted with it.
fn on_service_account(shared: &Shared, state: &mut State, ev: &Event) {
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
        if fill_token_secret(shared, state, &mut filled).is_ok() {
            state.put("/secrets", filled, EventType::Modified);
        }
    }
}

/// Drains the pending events and reacts to them until nothing new happens.
pub fn run(shared: &Shared, state: &mut State) {
    for _ in 0..MAX_ROUNDS {
        let events = std::mem::take(&mut state.pending);
        if events.is_empty() {
            return;
        }
        let mut crds_changed = false;
        let mut endpoints: BTreeMap<(String, String), ()> = BTreeMap::new();
        for ev in &events {
            match ev.key.as_str() {
                "/namespaces" => on_namespace(shared, state, ev),
                "apiextensions.k8s.io/customresourcedefinitions" => {
                    crds_changed = true;
                    if ev.etype == EventType::Deleted
                        && let Some(t) = super::registry::from_crd(&ev.object)
                    {
                        delete_all(state, &t.key(), None);
                    }
                }
                "/services" => {
                    on_service(shared, state, ev);
                    endpoints.insert(
                        (
                            ev.namespace.clone(),
                            meta_str(&ev.object, "name").to_string(),
                        ),
                        (),
                    );
                }
                "/pods" => {
                    for svc in services_selecting(state, ev) {
                        endpoints.insert((ev.namespace.clone(), svc), ());
                    }
                }
                "apps/deployments" => on_deployment(state, ev),
                "/serviceaccounts" => on_service_account(shared, state, ev),
                _ => {}
            }
            if ev.etype == EventType::Deleted {
                collect_garbage(state, meta_str(&ev.object, "uid"));
            }
        }
        if crds_changed {
            rebuild_registry(state);
        }
        for (ns, svc) in endpoints.keys() {
            reconcile_slices(state, ns, svc);
        }
    }
    tracing::warn!("simulated controllers did not settle; leaving the rest for the next write");
}

fn rebuild_registry(state: &mut State) {
    let crds = state.list("apiextensions.k8s.io/customresourcedefinitions", None);
    let registry = state.registry.with_crds(crds.iter().map(|c| c.as_ref()));
    state.registry = Arc::new(registry);
}

fn delete_all(state: &mut State, key: &str, ns: Option<&str>) {
    for obj in state.list(key, ns) {
        let (n, name) = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        state.remove(key, &n, &name);
    }
}

/// The namespace controller's finalization, after the configured delay: contents first, then
/// the namespace itself (only if it is still the same, still terminating namespace).
pub fn schedule_namespace_removal(shared: Arc<Shared>, name: String, uid: String) {
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.namespace_deletion_delay).await;
        let mut state = shared.store.lock();
        let Some(ns) = state.get("/namespaces", "", &name) else {
            return;
        };
        if meta_str(&ns, "uid") != uid {
            return;
        }
        delete_namespace_contents(&mut state, &name);
        let has_finalizers = ns
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_finalizers {
            state.remove("/namespaces", "", &name);
        }
        run(&shared, &mut state);
    });
}

fn delete_namespace_contents(state: &mut State, ns: &str) {
    let keys: Vec<String> = state
        .registry
        .types
        .iter()
        .filter(|t| t.namespaced && !t.create_only)
        .map(|t| t.key())
        .collect();
    for key in keys {
        delete_all(state, &key, Some(ns));
    }
}

fn on_namespace(shared: &Shared, state: &mut State, ev: &Event) {
    let ns = meta_str(&ev.object, "name").to_string();
    match ev.etype {
        EventType::Added => {
            if state.get("/configmaps", &ns, ROOT_CA_CONFIGMAP).is_none() {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": new_meta(&ns, ROOT_CA_CONFIGMAP),
                    "data": {"ca.crt": shared.pki.ca_pem}});
                state.put("/configmaps", cm, EventType::Added);
            }
            if state.get("/serviceaccounts", &ns, "default").is_none() {
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": new_meta(&ns, "default")});
                state.put("/serviceaccounts", sa, EventType::Added);
            }
        }
        EventType::Deleted => delete_namespace_contents(state, &ns),
        EventType::Modified => {}
    }
}

/// Background garbage collection: dependents whose owner (by uid) is gone are deleted.
pub fn collect_garbage(state: &mut State, owner_uid: &str) {
    if owner_uid.is_empty() {
        return;
    }
    let victims: Vec<(String, String, String, Arc<Value>)> = state
        .dependents_of(owner_uid)
        .into_iter()
        .map(|(key, obj)| {
            let ns = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            (key, ns, name, obj)
        })
        .collect();
    for (key, ns, name, obj) in victims {
        let refs_left = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().filter(|r| r["uid"] != owner_uid).count())
            .unwrap_or(0);
        if refs_left > 0 {
            // Another owner still holds it: only drop the reference to the dead owner.
            let mut o = (*obj).clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != owner_uid);
            }
            state.put(&key, o, EventType::Modified);
            continue;
        }
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                let mut o = (*obj).clone();
                o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                state.put(&key, o, EventType::Modified);
            }
        } else {
            state.remove(&key, &ns, &name);
        }
    }
}

/// `propagationPolicy: Orphan`: dependents lose their reference to the owner and stay.
pub fn orphan_dependents(state: &mut State, owner_uid: &str) {
    let mut changed = Vec::new();
    for (key, obj) in state.dependents_of(owner_uid) {
        let mut o = (*obj).clone();
        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"] != owner_uid);
        }
        changed.push((key, o));
    }
    for (key, o) in changed {
        state.put(&key, o, EventType::Modified);
    }
}

fn on_service(shared: &Shared, state: &mut State, ev: &Event) {
    let obj = &ev.object;
    if ev.etype == EventType::Deleted {
        if let Some(ip) = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        {
            let offset = u32::from(ip).wrapping_sub(u32::from(shared.config.cluster_ip_base));
            state.cluster_ips.remove(&offset);
        }
        return;
    }
    let is_lb = obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    let has_ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if is_lb && !has_ingress {
        let ip = shared
            .config
            .load_balancer_ip
            .unwrap_or_else(|| shared.addr().ip());
        let mut o = (**obj).clone();
        o["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]});
        state.put("/services", o, EventType::Modified);
    } else if !is_lb && has_ingress {
        let mut o = (**obj).clone();
        o["status"]["loadBalancer"] = json!({});
        state.put("/services", o, EventType::Modified);
    }
}

fn selector_of(svc: &Value) -> Option<LabelSelector> {
    let sel = svc.pointer("/spec/selector").and_then(Value::as_object)?;
    if sel.is_empty() {
        return None;
    }
    let text: Vec<String> = sel
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    LabelSelector::parse(&text.join(",")).ok()
}

fn services_selecting(state: &State, ev: &Event) -> Vec<String> {
    let mut out = Vec::new();
    for svc in state.list("/services", Some(&ev.namespace)) {
        if let Some(sel) = selector_of(&svc) {
            let now = sel.matches_object(&ev.object);
            let before = ev.old.as_ref().is_some_and(|o| sel.matches_object(o));
            if now || before {
                out.push(meta_str(&svc, "name").to_string());
            }
        }
    }
    out
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Keeps one controller-managed EndpointSlice per selector Service in step with its Pods.
fn reconcile_slices(state: &mut State, ns: &str, svc_name: &str) {
    let key = "discovery.k8s.io/endpointslices";
    // The controller only manages the slice it named; user-made slices are left alone.
    let slice_name = format!(
        "{}-{}",
        truncate(svc_name, 57),
        short_hash(&format!("{ns}/{svc_name}"))
    );
    let existing: Vec<Arc<Value>> = state.get(key, ns, &slice_name).into_iter().collect();
    let svc = state.get("/services", ns, svc_name);
    let sel = svc.as_deref().and_then(selector_of);
    let (Some(svc), Some(sel)) = (svc, sel) else {
        for s in existing {
            state.remove(key, ns, meta_str(&s, "name"));
        }
        return;
    };
    let pods: Vec<Arc<Value>> = state
        .list("/pods", Some(ns))
        .into_iter()
        .filter(|p| sel.matches_object(p) && p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    let mut endpoints = Vec::new();
    for p in &pods {
        let Some(ip) = p.pointer("/status/podIP").and_then(Value::as_str) else {
            continue;
        };
        let ready = pod_ready(p);
        let mut ep = json!({
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": ready, "terminating": false},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta_str(p, "name"), "uid": meta_str(p, "uid")},
        });
        if let Some(node) = p.pointer("/spec/nodeName") {
            ep["nodeName"] = node.clone();
        }
        endpoints.push(ep);
    }
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let target = match p.get("targetPort") {
                        Some(Value::Number(n)) => json!(n),
                        Some(Value::String(name)) => pods
                            .iter()
                            .find_map(|pod| named_port(pod, name))
                            .map(|n| json!(n))
                            .unwrap_or(Value::Null),
                        _ => p.get("port").cloned().unwrap_or(Value::Null),
                    };
                    let mut out = json!({
                        "name": p.get("name").cloned().unwrap_or(json!("")),
                        "port": target,
                        "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP")),
                    });
                    if let Some(ap) = p.get("appProtocol") {
                        out["appProtocol"] = ap.clone();
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    let desired_labels = json!({SERVICE_NAME_LABEL: svc_name, MANAGED_BY_LABEL: SLICE_MANAGED_BY});
    let mut keep = existing.first().cloned();
    for extra in existing.iter().skip(1) {
        state.remove(key, ns, meta_str(extra, "name"));
    }
    let mut slice = match keep.take() {
        Some(s) => (*s).clone(),
        None => {
            let name = format!(
                "{}-{}",
                truncate(svc_name, 57),
                short_hash(&format!("{ns}/{svc_name}"))
            );
            let mut m = new_meta(ns, &name);
            m["generateName"] = json!(format!("{svc_name}-"));
            m["generation"] = json!(1);
            m["ownerReferences"] = json!([{
                "apiVersion": "v1", "kind": "Service", "name": svc_name,
                "uid": meta_str(&svc, "uid"), "controller": true, "blockOwnerDeletion": true,
            }]);
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": m})
        }
    };
    let before = slice.clone();
    slice["metadata"]["labels"] = desired_labels;
    slice["addressType"] = json!("IPv4");
    slice["endpoints"] = json!(endpoints);
    slice["ports"] = json!(ports);
    if slice != before || slice.pointer("/metadata/resourceVersion").is_none() {
        let etype = if before.pointer("/metadata/resourceVersion").is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        state.put(key, slice, etype);
    }
}

fn named_port(pod: &Value, name: &str) -> Option<i64> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn short_hash(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.as_ref()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Deployments report their desired replicas as ready so `rollout status` finishes.
fn on_deployment(state: &mut State, ev: &Event) {
    if ev.etype == EventType::Deleted {
        return;
    }
    let obj = &ev.object;
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
    if obj.pointer("/status/observedGeneration") == Some(&generation)
        && obj.pointer("/status/replicas") == Some(&replicas)
    {
        return;
    }
    let now = now_rfc3339();
    let mut o = (**obj).clone();
    o["status"] = json!({
        "observedGeneration": generation,
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": format!("ReplicaSet \"{}\" has successfully progressed.", meta_str(obj, "name")),
             "lastUpdateTime": now, "lastTransitionTime": now},
        ],
    });
    state.put("apps/deployments", o, EventType::Modified);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_second_precision_utc() {
        assert_eq!(rfc3339_of(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn slice_names_are_stable_and_short() {
        assert_eq!(short_hash("a/b"), short_hash("a/b"));
        assert_eq!(short_hash("a/b").len(), 5);
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
