//! Field validation kube-apiserver applies to built-in types beyond names and labels:
//! Services (type, ports), EndpointSlices (address type, addresses), ConfigMap and Secret keys
//! and sizes, Leases, and the total size of annotations. Each check adds every failed rule
//! as a `FieldError` with the server's wording; the caller renders them as one 422 `Invalid`.

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

pub fn annotations(obj: &Value, out: &mut Vec<FieldError>) {
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
        out.push(error(
            "FieldValueTooLong",
            "metadata.annotations",
            format!("Too long: must have at most {MAX_ANNOTATIONS} bytes"),
        ));
    }
}

pub fn service(obj: &Value, out: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !TYPES.contains(&ty) {
        out.push(unsupported("spec.type", ty, TYPES));
    }
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" {
        let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            out.push(error("FieldValueRequired", "spec.ports", "Required value"));
        }
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            out.push(error(
                "FieldValueRequired",
                format!("{field}.name"),
                "Required value",
            ));
        }
        if !name.is_empty() && !names.insert(name.to_string()) {
            out.push(error(
                "FieldValueDuplicate",
                format!("{field}.name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        let port = match p.get("port") {
            Some(Value::Number(n)) => Some(n.as_i64().unwrap_or(0)),
            _ => {
                out.push(error(
                    "FieldValueRequired",
                    format!("{field}.port"),
                    "Required value",
                ));
                None
            }
        };
        if let Some(port) = port
            && !(1..=65535).contains(&port)
        {
            out.push(error(
                "FieldValueInvalid",
                format!("{field}.port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            out.push(unsupported(
                format!("{field}.protocol"),
                protocol,
                PROTOCOLS,
            ));
        }
        if let Some(port) = port
            && !keys.insert((port, protocol.to_string()))
        {
            out.push(error(
                "FieldValueDuplicate",
                field.clone(),
                format!("Duplicate value: {{\"port\":{port},\"protocol\":{protocol:?}}}"),
            ));
        }
        if let Some(Value::Number(n)) = p.get("targetPort") {
            let t = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&t) {
                out.push(error(
                    "FieldValueInvalid",
                    format!("{field}.targetPort"),
                    format!("Invalid value: {t}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
}

pub fn endpoint_slice(obj: &Value, out: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let ty = match obj.get("addressType").and_then(Value::as_str) {
        None | Some("") => {
            out.push(error("FieldValueRequired", "addressType", "Required value"));
            None
        }
        Some(t) if !TYPES.contains(&t) => {
            out.push(unsupported("addressType", t, TYPES));
            None
        }
        Some(t) => Some(t),
    };
    let endpoints = obj
        .get("endpoints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, ep) in endpoints.iter().enumerate() {
        let addresses = ep
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if addresses.is_empty() {
            out.push(error(
                "FieldValueRequired",
                format!("endpoints[{i}].addresses"),
                "Required value: must contain at least 1 address",
            ));
        }
        // Addresses are checked against a known address type only.
        let Some(ty) = ty else { continue };
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
                out.push(error(
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
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, p) in ports.iter().enumerate() {
        if let Some(port) = p.get("port").and_then(Value::as_i64)
            && !(1..=65535).contains(&port)
        {
            out.push(error(
                "FieldValueInvalid",
                format!("ports[{i}].port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
    }
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
pub fn config_data(obj: &Value, secret: bool, out: &mut Vec<FieldError>) {
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
                out.push(error(
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
        out.push(error(
            "FieldValueTooLong",
            field,
            format!("Too long: must have at most {MAX_DATA} bytes"),
        ));
    }
}

/// Whether `s` is a `MicroTime` as kube-apiserver decodes it: RFC 3339 with exactly six
/// fractional digits (`2006-01-02T15:04:05.000000Z07:00`).
pub fn is_micro_time(s: &str) -> bool {
    let Some((_, frac_zone)) = s.split_once('.') else {
        return false;
    };
    let digits = frac_zone.bytes().take_while(u8::is_ascii_digit).count();
    digits == 6
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Lease spec rules (`ValidateLeaseSpec`). Wrongly typed fields are decode errors (400), not
/// these: see `lease_decode`.
pub fn lease(obj: &Value, out: &mut Vec<FieldError>) {
    let spec = obj.get("spec");
    let int = |k: &str| spec.and_then(|s| s.get(k)).and_then(Value::as_i64);
    if let Some(d) = int("leaseDurationSeconds")
        && d <= 0
    {
        out.push(error(
            "FieldValueInvalid",
            "spec.leaseDurationSeconds",
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = int("leaseTransitions")
        && t < 0
    {
        out.push(error(
            "FieldValueInvalid",
            "spec.leaseTransitions",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
}

/// What kube-apiserver's decoder refuses in a Lease (400 `... cannot be handled as a Lease`):
/// fields of the wrong JSON type and times that are not `MicroTime`s.
pub fn lease_decode(obj: &Value) -> Option<String> {
    let spec = obj.get("spec")?.as_object()?;
    let go_type = |v: &Value| match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    let fields: &[(&str, &str)] = &[
        ("holderIdentity", "string"),
        ("leaseDurationSeconds", "int32"),
        ("leaseTransitions", "int32"),
        ("acquireTime", "v1.MicroTime"),
        ("renewTime", "v1.MicroTime"),
        ("strategy", "string"),
        ("preferredHolder", "string"),
    ];
    for (k, want) in fields {
        let Some(v) = spec.get(*k).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match *want {
            "int32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            _ => v.is_string(),
        };
        if !ok {
            return Some(format!(
                "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{k} of type {want}",
                go_type(v)
            ));
        }
        if *want == "v1.MicroTime"
            && let Some(t) = v.as_str()
            && !is_micro_time(t)
        {
            // Go's time.Parse names the part it stopped at: usually the fraction.
            let (rest, layout) = match t.get(19..) {
                Some(rest) if t.as_bytes().get(10) == Some(&b'T') => (rest, ".000000"),
                _ => (t, "2006"),
            };
            return Some(format!(
                "parsing time {t:?} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse {rest:?} as {layout:?}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(check: impl Fn(&Value, &mut Vec<FieldError>), obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        check(obj, &mut out);
        out.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn services_are_checked_like_the_api_server() {
        let svc = |spec: Value| json!({"spec": spec});
        let cases: &[(Value, &[&str])] = &[
            (svc(json!({"ports": [{"port": 80}]})), &[]),
            (svc(json!({"clusterIP": "None"})), &[]),
            (
                svc(json!({"type": "ExternalName", "externalName": "x.example"})),
                &[],
            ),
            (
                svc(json!({"type": "Magic", "ports": [{"port": 80}]})),
                &[
                    "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 70000}]})),
                &[
                    "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
                &[
                    "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ],
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81}]})),
                &["spec.ports[1].name: Required value"],
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]})),
                &["spec.ports[1].name: Duplicate value: \"a\""],
            ),
            (
                svc(json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]})),
                &["spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}"],
            ),
            (
                svc(json!({"ports": [{"port": "80"}]})),
                &["spec.ports[0].port: Required value"],
            ),
            (svc(json!({})), &["spec.ports: Required value"]),
            (
                svc(
                    json!({"type": "Magic", "ports": [{"port": 0, "protocol": "HTTP", "targetPort": 0}, {"port": 1}]}),
                ),
                &[
                    "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                    "spec.ports[0].name: Required value",
                    "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                    "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                    "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                    "spec.ports[1].name: Required value",
                ],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(all(service, obj), *want, "{obj}");
        }
    }

    #[test]
    fn endpoint_slices_data_and_annotations() {
        let slice =
            |ty: &str, addr: &str| json!({"addressType": ty, "endpoints": [{"addresses": [addr]}]});
        assert!(all(endpoint_slice, &slice("IPv4", "10.0.0.1")).is_empty());
        assert!(all(endpoint_slice, &slice("IPv6", "fd00::1")).is_empty());
        assert!(all(endpoint_slice, &slice("FQDN", "a.example")).is_empty());
        assert_eq!(
            all(endpoint_slice, &slice("IPv4", "fd00::1")),
            ["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address"]
        );
        assert_eq!(
            all(
                endpoint_slice,
                &json!({"endpoints": [{"addresses": []}], "ports": [{"port": 0}]})
            ),
            [
                "addressType: Required value",
                "endpoints[0].addresses: Required value: must contain at least 1 address",
                "ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
        let mut out = Vec::new();
        endpoint_slice(&slice("IPv5", "x"), &mut out);
        assert_eq!(out[0].reason, "FieldValueNotSupported");
        let cm = |obj: &Value, out: &mut Vec<FieldError>| config_data(obj, false, out);
        assert!(all(cm, &json!({"data": {"a.b_C-1": "x"}})).is_empty());
        let bad = all(cm, &json!({"data": {"a b": "x", "c d": "y"}}));
        assert_eq!(bad.len(), 2);
        assert!(bad[1].starts_with("data[c d]: Invalid value: \"c d\""));
        let big = "x".repeat(MAX_DATA);
        assert_eq!(
            all(cm, &json!({"data": {"k": big}})),
            ["[]: Too long: must have at most 1048576 bytes"]
        );
        let big = "x".repeat(MAX_ANNOTATIONS);
        assert_eq!(
            all(
                annotations,
                &json!({"metadata": {"annotations": {"k": big}}})
            )
            .len(),
            1
        );
        assert!(
            all(
                annotations,
                &json!({"metadata": {"annotations": {"k": "v"}}})
            )
            .is_empty()
        );
    }

    #[test]
    fn leases_are_checked_and_decoded_like_the_api_server() {
        let lease_of = |spec: Value| json!({"spec": spec});
        assert_eq!(
            all(
                lease,
                &lease_of(json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}))
            ),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let good = lease_of(json!({"holderIdentity": "a", "leaseDurationSeconds": 15,
            "renewTime": "2026-01-02T03:04:05.123456Z"}));
        assert!(all(lease, &good).is_empty());
        assert_eq!(lease_decode(&good), None);
        assert_eq!(
            lease_decode(&lease_of(json!({"holderIdentity": 7}))).as_deref(),
            Some(
                "json: cannot unmarshal number into Go struct field LeaseSpec.spec.holderIdentity of type string"
            )
        );
        assert_eq!(
            lease_decode(&lease_of(json!({"renewTime": "2026-01-02T03:04:05Z"}))).as_deref(),
            Some(
                "parsing time \"2026-01-02T03:04:05Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
            )
        );
        assert!(is_micro_time("2026-01-02T03:04:05.000000+02:00"));
        assert!(!is_micro_time("2026-01-02T03:04:05.000Z"));
    }
}
