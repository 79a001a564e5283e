//! Field validation kube-apiserver applies to built-in types beyond names and labels:
//! Services (type, ports), EndpointSlices (address type, addresses), ConfigMap and Secret keys
//! and sizes, and the total size of annotations. Each check returns the first error as a
//! `FieldError` with the server's wording; the caller renders it as a 422 `Invalid`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

/// One failed rule: `field: message`, and the cause reason of the `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

fn error(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        reason,
        field: field.into(),
        message: message.into(),
    }
}

fn unsupported(field: impl Into<String>, value: &str, supported: &[&str]) -> FieldError {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    error(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

/// Annotations may hold at most 256 KiB (keys and values).
pub const MAX_ANNOTATIONS: usize = 256 * 1024;
/// ConfigMaps and Secrets hold at most 1 MiB of data.
pub const MAX_DATA: usize = 1024 * 1024;

pub fn annotations(obj: &Value) -> Result<(), FieldError> {
    let total: usize = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    if total > MAX_ANNOTATIONS {
        return Err(error(
            "FieldValueTooLong",
            "metadata.annotations",
            format!("Too long: must have at most {MAX_ANNOTATIONS} bytes"),
        ));
    }
    Ok(())
}

pub fn service(obj: &Value) -> Result<(), FieldError> {
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !TYPES.contains(&ty) {
        return Err(unsupported("spec.type", ty, TYPES));
    }
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" {
        let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            return Err(error("FieldValueRequired", "spec.ports", "Required value"));
        }
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            return Err(error(
                "FieldValueRequired",
                format!("{field}.name"),
                "Required value",
            ));
        }
        if !name.is_empty() && !names.insert(name.to_string()) {
            return Err(error(
                "FieldValueDuplicate",
                format!("{field}.name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        let port = match p.get("port") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => {
                return Err(error(
                    "FieldValueRequired",
                    format!("{field}.port"),
                    "Required value",
                ));
            }
        };
        if !(1..=65535).contains(&port) {
            return Err(error(
                "FieldValueInvalid",
                format!("{field}.port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            return Err(unsupported(
                format!("{field}.protocol"),
                protocol,
                PROTOCOLS,
            ));
        }
        if !keys.insert((port, protocol.to_string())) {
            return Err(error(
                "FieldValueDuplicate",
                field,
                format!("Duplicate value: {{\"port\":{port},\"protocol\":{protocol:?}}}"),
            ));
        }
        if let Some(Value::Number(n)) = p.get("targetPort") {
            let t = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&t) {
                return Err(error(
                    "FieldValueInvalid",
                    format!("{field}.targetPort"),
                    format!("Invalid value: {t}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
    Ok(())
}

pub fn endpoint_slice(obj: &Value) -> Result<(), FieldError> {
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let ty = match obj.get("addressType").and_then(Value::as_str) {
        None | Some("") => {
            return Err(error("FieldValueRequired", "addressType", "Required value"));
        }
        Some(t) if !TYPES.contains(&t) => return Err(unsupported("addressType", t, TYPES)),
        Some(t) => t,
    };
    let endpoints = obj
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, ep) in endpoints.iter().enumerate() {
        let addresses = ep
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if addresses.is_empty() {
            return Err(error(
                "FieldValueRequired",
                format!("endpoints[{i}].addresses"),
                "Required value: must contain at least 1 address",
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ok = match ty {
                "IPv4" => a.parse::<Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<Ipv6Addr>().is_ok(),
                _ => !a.is_empty(),
            };
            if !ok {
                let what = if ty == "FQDN" {
                    "an FQDN"
                } else {
                    &format!("a valid {ty} address")
                };
                return Err(error(
                    "FieldValueInvalid",
                    format!("endpoints[{i}].addresses[{j}]"),
                    format!("Invalid value: {a:?}: must be {what}"),
                ));
            }
        }
    }
    let ports = obj
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, p) in ports.iter().enumerate() {
        if let Some(port) = p.get("port").and_then(Value::as_i64)
            && !(1..=65535).contains(&port)
        {
            return Err(error(
                "FieldValueInvalid",
                format!("ports[{i}].port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
    }
    Ok(())
}

fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && !k.starts_with("..")
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// ConfigMap and Secret keys; their total size (1 MiB). `secret`: `data` is base64, checked
/// decoded.
pub fn config_data(obj: &Value, secret: bool) -> Result<(), FieldError> {
    use base64::Engine as _;
    let mut total = 0usize;
    let fields: &[&str] = if secret {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    for field in fields {
        let Some(map) = obj.get(*field).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            if !is_config_key(k) {
                return Err(error(
                    "FieldValueInvalid",
                    format!("{field}[{k}]"),
                    format!(
                        "Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                    ),
                ));
            }
            let text = v.as_str().unwrap_or("");
            total += k.len();
            total += if secret || *field == "binaryData" {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_or(text.len(), |b| b.len())
            } else {
                text.len()
            };
        }
    }
    if total > MAX_DATA {
        let field = if secret { "data" } else { "[]" };
        return Err(error(
            "FieldValueTooLong",
            field,
            format!("Too long: must have at most {MAX_DATA} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_are_checked_like_the_api_server() {
        let svc = |spec: Value| json!({"spec": spec});
        let cases: &[(Value, Option<&str>)] = &[
            (svc(json!({"ports": [{"port": 80}]})), None),
            (svc(json!({"clusterIP": "None"})), None),
            (
                svc(json!({"type": "ExternalName", "externalName": "x.example"})),
                None,
            ),
            (
                svc(json!({"type": "Magic", "ports": [{"port": 80}]})),
                Some(
                    "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                ),
            ),
            (
                svc(json!({"ports": [{"port": 70000}]})),
                Some(
                    "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                ),
            ),
            (
                svc(json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
                Some(
                    "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ),
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81}]})),
                Some("spec.ports[1].name: Required value"),
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]})),
                Some("spec.ports[1].name: Duplicate value: \"a\""),
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]})),
                Some("spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}"),
            ),
            (
                svc(json!({"ports": [{"port": "80"}]})),
                Some("spec.ports[0].port: Required value"),
            ),
            (svc(json!({})), Some("spec.ports: Required value")),
        ];
        for (obj, want) in cases {
            let got = service(obj)
                .err()
                .map(|e| format!("{}: {}", e.field, e.message));
            assert_eq!(got.as_deref(), *want, "{obj}");
        }
    }

    #[test]
    fn endpoint_slices_data_and_annotations() {
        let slice =
            |ty: &str, addr: &str| json!({"addressType": ty, "endpoints": [{"addresses": [addr]}]});
        assert!(endpoint_slice(&slice("IPv4", "10.0.0.1")).is_ok());
        assert!(endpoint_slice(&slice("IPv6", "fd00::1")).is_ok());
        assert!(endpoint_slice(&slice("FQDN", "a.example")).is_ok());
        let e = endpoint_slice(&slice("IPv4", "fd00::1")).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid value: \"fd00::1\": must be a valid IPv4 address"
        );
        assert_eq!(endpoint_slice(&json!({})).unwrap_err().field, "addressType");
        assert_eq!(
            endpoint_slice(&slice("IPv5", "x")).unwrap_err().reason,
            "FieldValueNotSupported"
        );
        assert!(config_data(&json!({"data": {"a.b_C-1": "x"}}), false).is_ok());
        assert_eq!(
            config_data(&json!({"data": {"a b": "x"}}), false)
                .unwrap_err()
                .field,
            "data[a b]"
        );
        let big = "x".repeat(MAX_DATA);
        assert_eq!(
            config_data(&json!({"data": {"k": big}}), false)
                .unwrap_err()
                .field,
            "[]"
        );
        let big = "x".repeat(MAX_ANNOTATIONS);
        assert!(annotations(&json!({"metadata": {"annotations": {"k": big}}})).is_err());
        assert!(annotations(&json!({"metadata": {"annotations": {"k": "v"}}})).is_ok());
    }
}
