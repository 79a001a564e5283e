//! Pure decisions about a container: which runtime its image gets, its environment (values,
//! downward API, ConfigMap and Secret keys) and `$(VAR)` expansion of env, command and args.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::sim::cluster::store::{State, meta_str};

/// The agnhost image of Kubernetes' end-to-end tests, without tag.
pub const AGNHOST_REPOSITORY: &str = "registry.k8s.io/e2e-test-images/agnhost";
/// What the simulator tells a Pod whose image it cannot run.
pub const RUNNABLE_IMAGES: &str = "the simulated node runs only mc's own image (a repository ending in /mc) and registry.k8s.io/e2e-test-images/agnhost";

#[derive(Debug, Clone, PartialEq)]
pub enum Runtime {
    /// mc's own image: the mc executable as a child process.
    Mc,
    /// agnhost: in-process tasks.
    Agnhost,
    Unknown,
}

/// The repository of an image reference: without `@digest` and `:tag`.
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

pub fn runtime_of(image: &str) -> Runtime {
    let repo = repository(image);
    if repo == AGNHOST_REPOSITORY {
        Runtime::Agnhost
    } else if repo.ends_with("/mc") || repo == "mc" {
        Runtime::Mc
    } else {
        Runtime::Unknown
    }
}

/// Kubernetes variable expansion: `$(NAME)` of a defined variable is replaced, `$$` is a
/// literal `$`, anything else stays as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A field of the Pod as the downward API gives it.
pub fn field_ref(pod: &Value, pod_ip: &str, host_ip: &str, path: &str) -> Option<String> {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).map(str::to_string);
    let map_key = |prefix: &str, map: &str| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_suffix("']")?
            .strip_prefix("['")?;
        pod.pointer(&format!("/metadata/{map}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.podIP" | "status.podIPs" => Some(pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(host_ip.to_string()),
        _ => map_key("metadata.labels", "labels")
            .or_else(|| map_key("metadata.annotations", "annotations")),
    }
}

/// The container's environment in order, or a message saying which reference is missing
/// (the kubelet's `CreateContainerConfigError`).
pub fn environment(
    state: &State,
    pod: &Value,
    container: &Value,
    pod_ip: &str,
    host_ip: &str,
) -> Result<BTreeMap<String, String>, String> {
    use base64::Engine as _;
    let ns = meta_str(pod, "namespace");
    let mut vars = BTreeMap::new();
    let entries = container
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for e in &entries {
        let Some(name) = e.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            Some(expand(v, &vars))
        } else if let Some(from) = e.get("valueFrom") {
            if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                field_ref(pod, pod_ip, host_ip, path)
            } else if let Some(r) = from
                .get("configMapKeyRef")
                .or_else(|| from.get("secretKeyRef"))
            {
                let secret = from.get("secretKeyRef").is_some();
                let obj_name = r.get("name").and_then(Value::as_str).unwrap_or("");
                let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                let kind = if secret { "secret" } else { "configmap" };
                let store_key = if secret { "/secrets" } else { "/configmaps" };
                let found = state.get(store_key, ns, obj_name).and_then(|o| {
                    let raw = o
                        .pointer(&format!(
                            "/data/{}",
                            key.replace('~', "~0").replace('/', "~1")
                        ))?
                        .as_str()?
                        .to_string();
                    if secret {
                        base64::engine::general_purpose::STANDARD
                            .decode(raw)
                            .ok()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Some(raw)
                    }
                });
                match found {
                    Some(v) => Some(v),
                    None if optional => None,
                    None => {
                        return Err(format!("couldn't find key {key} in {kind} {ns}/{obj_name}"));
                    }
                }
            } else {
                // resourceFieldRef: no resources are accounted on the simulated node.
                Some(String::new())
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            vars.insert(name.to_string(), v);
        }
    }
    Ok(vars)
}

/// `command` + `args` after expansion; `command` replaces the image's entrypoint.
pub fn argv(container: &Value, vars: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let list = |field: &str| -> Vec<String> {
        container
            .get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| expand(s, vars))
                    .collect()
            })
            .unwrap_or_default()
    };
    (list("command"), list("args"))
}

/// A probe or Service port: a number, or the name of one of the container's ports.
pub fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok().or_else(|| {
            container
                .get("ports")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s))?
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_are_matched_by_repository_not_tag() {
        assert_eq!(runtime_of("ghcr.io/mc-dev/mc:0.1.0"), Runtime::Mc);
        assert_eq!(runtime_of("localhost:5000/mc"), Runtime::Mc);
        assert_eq!(
            runtime_of("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            Runtime::Agnhost
        );
        assert_eq!(runtime_of("nginx:1.27"), Runtime::Unknown);
        assert_eq!(runtime_of("ghcr.io/mc-dev/mcx:1"), Runtime::Unknown);
        assert_eq!(
            repository("localhost:5000/mc@sha256:ab"),
            "localhost:5000/mc"
        );
    }

    #[test]
    fn expansion_replaces_defined_variables_and_keeps_the_rest() {
        let vars = BTreeMap::from([("POD_IP".to_string(), "127.100.0.2".to_string())]);
        assert_eq!(
            expand("--addr=$(POD_IP):4143", &vars),
            "--addr=127.100.0.2:4143"
        );
        assert_eq!(
            expand("$(MISSING) $$(POD_IP) $", &vars),
            "$(MISSING) $(POD_IP) $"
        );
    }

    #[test]
    fn downward_api_fields_come_from_the_pod() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}}});
        assert_eq!(
            field_ref(&pod, "1.2.3.4", "5.6.7.8", "status.podIP").as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            field_ref(&pod, "", "", "metadata.namespace").as_deref(),
            Some("n")
        );
        assert_eq!(
            field_ref(&pod, "", "", "metadata.labels['app']").as_deref(),
            Some("web")
        );
    }

    #[test]
    fn named_ports_resolve_through_the_container() {
        let c = json!({"ports": [{"name": "mc-probe", "containerPort": 4191}]});
        assert_eq!(resolve_port(&c, &json!("mc-probe")), Some(4191));
        assert_eq!(resolve_port(&c, &json!(80)), Some(80));
        assert_eq!(resolve_port(&c, &json!("nope")), None);
    }
}
