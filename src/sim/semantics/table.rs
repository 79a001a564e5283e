//! `meta.k8s.io/v1` Table responses for `kubectl get` (k8s-api-surface.md §2): the columns
//! kube-apiserver's built-in printers produce for the types the simulator serves, the
//! `additionalPrinterColumns` of CRDs (JSONPath subset `.a.b`, `.a[0].b`, `.a[*].b`), and
//! NAME + AGE for everything else. Ages are rendered like apimachinery's `HumanDuration`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type Cell = fn(&Value, i64) -> Value;

struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
    cell: Cell,
}

const fn col(name: &'static str, kind: &'static str, priority: u8, cell: Cell) -> Column {
    Column {
        name,
        kind,
        priority,
        description: "",
        cell,
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn name_col() -> Column {
    Column {
        name: "Name",
        kind: "string",
        priority: 0,
        description: NAME_DESCRIPTION,
        cell: |o, _| json!(s(o, "/metadata/name")),
    }
}

fn age_col() -> Column {
    Column {
        name: "Age",
        kind: "string",
        priority: 0,
        description: AGE_DESCRIPTION,
        cell: |o, now| json!(age(o.pointer("/metadata/creationTimestamp"), now)),
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn or_none(s: String) -> Value {
    if s.is_empty() {
        json!("<none>")
    } else {
        json!(s)
    }
}

fn count(v: &Value, pointer: &str) -> i64 {
    match v.pointer(pointer) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn joined(items: &[Value], pointer: &str) -> String {
    items
        .iter()
        .map(|i| s(i, pointer))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// apimachinery `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: Option<&Value>, now: i64) -> String {
    let parsed = ts
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    match parsed {
        Some(t) => human_duration(now - t.unix_timestamp()),
        None => "<unknown>".into(),
    }
}

/// metav1.FormatLabelSelector.
fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// A label map as `k=v,k2=v2` (a Scale's `status.selector`, the SELECTOR column).
pub fn map_selector(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_external_ip(o: &Value) -> Value {
    let external: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(o, "/spec/type") {
        "ExternalName" => json!(s(o, "/spec/externalName")),
        "LoadBalancer" => {
            let mut ips: Vec<String> = arr(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = s(i, "/ip");
                    if ip.is_empty() { s(i, "/hostname") } else { ip }.to_string()
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.extend(external.iter().map(|s| s.to_string()));
            if ips.is_empty() {
                json!("<pending>")
            } else {
                json!(ips.join(","))
            }
        }
        _ => or_none(external.join(",")),
    }
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = Some(s(p, "/protocol"))
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", int(p, "/port")),
                _ => format!("{}/{proto}", int(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn pod_status(o: &Value) -> String {
    let mut reason = s(o, "/status/phase").to_string();
    if !s(o, "/status/reason").is_empty() {
        reason = s(o, "/status/reason").to_string();
    }
    for cs in arr(o, "/status/containerStatuses") {
        let waiting = s(cs, "/state/waiting/reason");
        let terminated = s(cs, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

fn role_ref(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        s(o, "/roleRef/kind"),
        s(o, "/roleRef/name")
    ))
}

fn subjects(o: &Value, kind: &str) -> Value {
    let names: Vec<String> = arr(o, "/subjects")
        .iter()
        .filter(|sub| s(sub, "/kind") == kind)
        .map(|sub| {
            let ns = s(sub, "/namespace");
            if kind == "ServiceAccount" {
                format!("{ns}/{}", s(sub, "/name"))
            } else {
                s(sub, "/name").to_string()
            }
        })
        .collect();
    json!(names.join(", "))
}

fn containers_col(prefix: &'static str) -> [Column; 2] {
    // fn pointers cannot capture, so the pod-template prefix picks one of two functions.
    if prefix == "template" {
        [
            col("Containers", "string", 1, |o, _| {
                json!(joined(arr(o, "/spec/template/spec/containers"), "/name"))
            }),
            col("Images", "string", 1, |o, _| {
                json!(joined(arr(o, "/spec/template/spec/containers"), "/image"))
            }),
        ]
    } else {
        [
            col("Containers", "string", 1, |o, _| {
                json!(joined(arr(o, "/spec/containers"), "/name"))
            }),
            col("Images", "string", 1, |o, _| {
                json!(joined(arr(o, "/spec/containers"), "/image"))
            }),
        ]
    }
}

fn builtin_columns(group: &str, resource: &str) -> Vec<Column> {
    let selector = || {
        col("Selector", "string", 1, |o, _| {
            json!(format_label_selector(o.pointer("/spec/selector")))
        })
    };
    match (group, resource) {
        ("", "namespaces") => vec![
            name_col(),
            col("Status", "string", 0, |o, _| json!(s(o, "/status/phase"))),
            age_col(),
        ],
        ("", "services") => vec![
            name_col(),
            col("Type", "string", 0, |o, _| json!(s(o, "/spec/type"))),
            col("Cluster-IP", "string", 0, |o, _| {
                or_none(s(o, "/spec/clusterIP").to_string())
            }),
            col("External-IP", "string", 0, |o, _| service_external_ip(o)),
            col("Port(s)", "string", 0, |o, _| service_ports(o)),
            age_col(),
            col("Selector", "string", 1, |o, _| {
                or_none(map_selector(o, "/spec/selector"))
            }),
        ],
        ("", "nodes") => vec![
            name_col(),
            col("Status", "string", 0, |o, _| {
                let ready = arr(o, "/status/conditions")
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                json!(if ready { "Ready" } else { "NotReady" })
            }),
            col("Roles", "string", 0, |_, _| json!("<none>")),
            age_col(),
            col("Version", "string", 0, |o, _| {
                json!(s(o, "/status/nodeInfo/kubeletVersion"))
            }),
        ],
        ("", "pods") => vec![
            name_col(),
            col("Ready", "string", 0, |o, _| {
                let ready = arr(o, "/status/containerStatuses")
                    .iter()
                    .filter(|c| c.get("ready") == Some(&json!(true)))
                    .count();
                json!(format!("{ready}/{}", arr(o, "/spec/containers").len()))
            }),
            col("Status", "string", 0, |o, _| json!(pod_status(o))),
            col("Restarts", "string", 0, |o, _| {
                let n: i64 = arr(o, "/status/containerStatuses")
                    .iter()
                    .map(|c| int(c, "/restartCount"))
                    .sum();
                json!(n.to_string())
            }),
            age_col(),
            col("IP", "string", 1, |o, _| {
                or_none(s(o, "/status/podIP").to_string())
            }),
            col("Node", "string", 1, |o, _| {
                or_none(s(o, "/spec/nodeName").to_string())
            }),
            col("Nominated Node", "string", 1, |o, _| {
                or_none(s(o, "/status/nominatedNodeName").to_string())
            }),
            col("Readiness Gates", "string", 1, |_, _| json!("<none>")),
        ],
        ("apps", "deployments") => {
            let mut c = vec![
                name_col(),
                col("Ready", "string", 0, |o, _| {
                    json!(format!(
                        "{}/{}",
                        int(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ))
                }),
                col("Up-to-date", "integer", 0, |o, _| {
                    json!(int(o, "/status/updatedReplicas"))
                }),
                col("Available", "integer", 0, |o, _| {
                    json!(int(o, "/status/availableReplicas"))
                }),
                age_col(),
            ];
            c.extend(containers_col("template"));
            c.push(selector());
            c
        }
        ("apps", "replicasets") => {
            let mut c = vec![
                name_col(),
                col("Desired", "integer", 0, |o, _| {
                    json!(int(o, "/spec/replicas"))
                }),
                col("Current", "integer", 0, |o, _| {
                    json!(int(o, "/status/replicas"))
                }),
                col("Ready", "integer", 0, |o, _| {
                    json!(int(o, "/status/readyReplicas"))
                }),
                age_col(),
            ];
            c.extend(containers_col("template"));
            c.push(selector());
            c
        }
        ("apps", "statefulsets") => {
            let mut c = vec![
                name_col(),
                col("Ready", "string", 0, |o, _| {
                    json!(format!(
                        "{}/{}",
                        int(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ))
                }),
                age_col(),
            ];
            c.extend(containers_col("template"));
            c
        }
        ("apps", "daemonsets") => {
            let mut c = vec![
                name_col(),
                col("Desired", "integer", 0, |o, _| {
                    json!(int(o, "/status/desiredNumberScheduled"))
                }),
                col("Current", "integer", 0, |o, _| {
                    json!(int(o, "/status/currentNumberScheduled"))
                }),
                col("Ready", "integer", 0, |o, _| {
                    json!(int(o, "/status/numberReady"))
                }),
                col("Up-to-date", "integer", 0, |o, _| {
                    json!(int(o, "/status/updatedNumberScheduled"))
                }),
                col("Available", "integer", 0, |o, _| {
                    json!(int(o, "/status/numberAvailable"))
                }),
                col("Node Selector", "string", 0, |o, _| {
                    or_none(map_selector(o, "/spec/template/spec/nodeSelector"))
                }),
                age_col(),
            ];
            c.extend(containers_col("template"));
            c.push(selector());
            c
        }
        ("", "secrets") => vec![
            name_col(),
            col("Type", "string", 0, |o, _| json!(s(o, "/type"))),
            col("Data", "integer", 0, |o, _| {
                json!(count(o, "/data") + count(o, "/stringData"))
            }),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name_col(),
            col("Data", "integer", 0, |o, _| {
                json!(count(o, "/data") + count(o, "/binaryData"))
            }),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![
            name_col(),
            col("Secrets", "integer", 0, |o, _| json!(count(o, "/secrets"))),
            age_col(),
        ],
        ("", "endpoints") => vec![
            name_col(),
            col("Endpoints", "string", 0, |o, _| {
                let mut eps = Vec::new();
                for subset in arr(o, "/subsets") {
                    for addr in arr(subset, "/addresses") {
                        for port in arr(subset, "/ports") {
                            eps.push(format!("{}:{}", s(addr, "/ip"), int(port, "/port")));
                        }
                    }
                }
                or_none(eps.join(","))
            }),
            age_col(),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            name_col(),
            col("AddressType", "string", 0, |o, _| {
                json!(s(o, "/addressType"))
            }),
            col("Ports", "string", 0, |o, _| {
                let ports: Vec<String> = arr(o, "/ports")
                    .iter()
                    .map(|p| int(p, "/port").to_string())
                    .collect();
                if arr(o, "/ports").is_empty() {
                    json!("<unset>")
                } else {
                    json!(ports.join(","))
                }
            }),
            col("Endpoints", "string", 0, |o, _| {
                let addrs: Vec<&str> = arr(o, "/endpoints")
                    .iter()
                    .flat_map(|e| arr(e, "/addresses").iter().filter_map(Value::as_str))
                    .collect();
                if addrs.is_empty() {
                    json!("<unset>")
                } else {
                    json!(addrs.join(","))
                }
            }),
            age_col(),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles") => vec![
            name_col(),
            col("Created At", "date", 0, |o, _| {
                json!(s(o, "/metadata/creationTimestamp"))
            }),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            name_col(),
            col("Role", "string", 0, |o, _| role_ref(o)),
            age_col(),
            col("Users", "string", 1, |o, _| subjects(o, "User")),
            col("Groups", "string", 1, |o, _| subjects(o, "Group")),
            col("ServiceAccounts", "string", 1, |o, _| {
                subjects(o, "ServiceAccount")
            }),
        ],
        ("coordination.k8s.io", "leases") => vec![
            name_col(),
            col("Holder", "string", 0, |o, _| {
                json!(s(o, "/spec/holderIdentity"))
            }),
            age_col(),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            name_col(),
            col("Min Available", "string", 0, |o, _| {
                intstr_or_na(o.pointer("/spec/minAvailable"))
            }),
            col("Max Unavailable", "string", 0, |o, _| {
                intstr_or_na(o.pointer("/spec/maxUnavailable"))
            }),
            col("Allowed Disruptions", "integer", 0, |o, _| {
                json!(int(o, "/status/disruptionsAllowed"))
            }),
            age_col(),
        ],
        ("", "events") | ("events.k8s.io", "events") => vec![
            col("Last Seen", "string", 0, |o, now| {
                let last = o
                    .pointer("/lastTimestamp")
                    .filter(|v| !v.is_null())
                    .or_else(|| o.pointer("/deprecatedLastTimestamp"))
                    .filter(|v| !v.is_null())
                    .or_else(|| o.pointer("/eventTime"))
                    .filter(|v| !v.is_null())
                    .or_else(|| o.pointer("/metadata/creationTimestamp"));
                json!(age(last, now))
            }),
            col("Type", "string", 0, |o, _| json!(s(o, "/type"))),
            col("Reason", "string", 0, |o, _| json!(s(o, "/reason"))),
            col("Object", "string", 0, |o, _| {
                let (kind, name) = if o.get("involvedObject").is_some() {
                    (s(o, "/involvedObject/kind"), s(o, "/involvedObject/name"))
                } else {
                    (s(o, "/regarding/kind"), s(o, "/regarding/name"))
                };
                json!(format!("{}/{name}", kind.to_lowercase()))
            }),
            col("Subobject", "string", 1, |o, _| {
                json!(s(o, "/involvedObject/fieldPath"))
            }),
            col("Source", "string", 1, |o, _| {
                // As kube-apiserver's printer: the reporting controller stands in for a source.
                let either = |a: &str, b: &str| match s(o, a) {
                    "" => s(o, b),
                    v => v,
                };
                let parts: Vec<&str> = [
                    either("/source/component", "/reportingComponent"),
                    either("/source/host", "/reportingInstance"),
                ]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
                json!(parts.join(", "))
            }),
            col("Message", "string", 0, |o, _| {
                let m = s(o, "/message");
                json!(if m.is_empty() { s(o, "/note") } else { m })
            }),
            col("First Seen", "string", 1, |o, now| {
                json!(age(o.pointer("/firstTimestamp"), now))
            }),
            col("Count", "string", 1, |o, _| json!(int(o, "/count"))),
            Column {
                priority: 1,
                ..name_col()
            },
        ],
        ("batch", "jobs") => {
            let mut c = vec![
                name_col(),
                col("Status", "string", 0, |o, _| json!(job_status(o))),
                col("Completions", "string", 0, |o, _| {
                    let succeeded = int(o, "/status/succeeded");
                    let completions = o.pointer("/spec/completions").and_then(Value::as_i64);
                    let parallelism = o.pointer("/spec/parallelism").and_then(Value::as_i64);
                    json!(match (completions, parallelism) {
                        (Some(c), _) => format!("{succeeded}/{c}"),
                        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
                        _ => format!("{succeeded}/1"),
                    })
                }),
                col("Duration", "string", 0, |o, now| {
                    let start = o.pointer("/status/startTime").and_then(parse_time);
                    let end = o.pointer("/status/completionTime").and_then(parse_time);
                    json!(match (start, end) {
                        (Some(s), Some(e)) => human_duration(e - s),
                        (Some(s), None) => human_duration(now - s),
                        _ => String::new(),
                    })
                }),
                age_col(),
            ];
            c.extend(containers_col("template"));
            c.push(selector());
            c
        }
        _ => vec![name_col(), age_col()],
    }
}

fn parse_time(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map(OffsetDateTime::unix_timestamp)
}

/// The STATUS column of `kubectl get jobs` (1.29+), from the job's conditions.
fn job_status(o: &Value) -> &'static str {
    let is_true = |kind: &str| {
        arr(o, "/status/conditions")
            .iter()
            .any(|c| s(c, "/type") == kind && s(c, "/status") == "True")
    };
    if is_true("Complete") {
        "Complete"
    } else if is_true("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if is_true("FailureTarget") {
        "FailureTarget"
    } else if is_true("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if is_true("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn intstr_or_na(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum JsonPathStep {
    Field(String),
    Index(usize),
    All,
}

/// Parses the CRD printer-column JSONPath subset: `.a.b`, `.a[0].b`, `.a[*].b`, optionally
/// wrapped in `{}`; `None` if it is outside the subset.
fn parse_json_path(path: &str) -> Option<Vec<JsonPathStep>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let (name, after) = r.split_at(end);
            if name.is_empty() {
                return None;
            }
            steps.push(JsonPathStep::Field(name.to_string()));
            rest = after;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let (inner, after) = r.split_at(end);
            let inner = inner.trim_matches(|c| c == '\'' || c == '"');
            if inner.is_empty() || inner.contains(['?', '@', '(', ':', ',']) {
                return None;
            }
            steps.push(if inner == "*" {
                JsonPathStep::All
            } else if let Ok(i) = inner.parse() {
                JsonPathStep::Index(i)
            } else {
                JsonPathStep::Field(inner.to_string())
            });
            rest = after.get(1..)?;
        } else {
            return None;
        }
    }
    Some(steps)
}

fn eval_json_path<'v>(root: &'v Value, steps: &[JsonPathStep]) -> Vec<&'v Value> {
    let mut current = vec![root];
    for step in steps {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&'v Value> {
                match step {
                    JsonPathStep::Field(f) => v.get(f.as_str()).into_iter().collect(),
                    JsonPathStep::Index(i) => v.get(*i).into_iter().collect(),
                    JsonPathStep::All => match v {
                        Value::Array(a) => a.iter().collect(),
                        Value::Object(m) => m.values().collect(),
                        _ => Vec::new(),
                    },
                }
            })
            .collect();
    }
    current
}

/// One cell of a CRD printer column, as apiextensions-apiserver's table convertor makes it:
/// the first JSONPath result, typed by the column type; missing → null.
fn crd_cell(column: &Value, obj: &Value, now: i64) -> Value {
    let Some(steps) = column
        .get("jsonPath")
        .and_then(Value::as_str)
        .and_then(parse_json_path)
    else {
        return Value::Null;
    };
    let Some(value) = eval_json_path(obj, &steps).into_iter().next() else {
        return Value::Null;
    };
    match (column.get("type").and_then(Value::as_str), value) {
        (Some("date"), v) => json!(age(Some(v), now)),
        (Some("integer"), Value::Number(n)) if n.is_i64() => value.clone(),
        (Some("number" | "integer" | "boolean"), Value::Number(_) | Value::Bool(_)) => {
            value.clone()
        }
        (_, Value::String(s)) => json!(s),
        (_, Value::Null) => Value::Null,
        (_, other) => json!(other.to_string()),
    }
}

fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The Table for `objects` of `group`/`resource`. `crd_printer_columns` is the served
/// version's `additionalPrinterColumns` for custom resources.
pub fn table_for(
    group: &str,
    resource: &str,
    crd_printer_columns: Option<&Value>,
    objects: &[Value],
    list_resource_version: &str,
    now_unix: i64,
) -> Value {
    let crd_columns = crd_printer_columns
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    let (definitions, rows): (Vec<Value>, Vec<Value>) = match crd_columns {
        Some(cols) => {
            let name = name_col();
            let mut defs = vec![definition(&name)];
            defs.extend(cols.iter().map(|c| {
                let mut d = Map::new();
                d.insert("name".into(), json!(s(c, "/name")));
                d.insert("type".into(), json!(s(c, "/type")));
                d.insert("format".into(), json!(s(c, "/format")));
                d.insert("description".into(), json!(s(c, "/description")));
                d.insert("priority".into(), json!(int(c, "/priority")));
                Value::Object(d)
            }));
            let rows = objects
                .iter()
                .map(|o| {
                    let mut cells = vec![(name.cell)(o, now_unix)];
                    cells.extend(cols.iter().map(|c| crd_cell(c, o, now_unix)));
                    row(cells, o)
                })
                .collect();
            (defs, rows)
        }
        None => {
            let columns = builtin_columns(group, resource);
            let defs = columns.iter().map(definition).collect();
            let rows = objects
                .iter()
                .map(|o| row(columns.iter().map(|c| (c.cell)(o, now_unix)).collect(), o))
                .collect();
            (defs, rows)
        }
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": list_resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn definition(c: &Column) -> Value {
    json!({
        "name": c.name,
        "type": c.kind,
        "format": if c.name == "Name" { "name" } else { "" },
        "description": c.description,
        "priority": c.priority,
    })
}

fn row(cells: Vec<Value>, obj: &Value) -> Value {
    json!({"cells": cells, "object": partial_object_metadata(obj)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// 2026-11-25T19:00:00Z
    const NOW: i64 = 1_795_633_200;

    fn cells(t: &Value) -> Vec<Vec<Value>> {
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cells"].as_array().unwrap().clone())
            .collect()
    }

    fn names(t: &Value) -> Vec<&str> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 1800, "3h30m"),
            (47 * 3600, "47h"),
            (49 * 3600, "2d1h"),
            (72 * 3600, "3d"),
            (10 * 86400, "10d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 5 * 86400, "2y5d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn service_table_has_kubectl_columns_and_partial_metadata_rows() {
        let svc = json!({"apiVersion":"v1","kind":"Service",
            "metadata":{"name":"web","namespace":"demo","creationTimestamp":"2026-11-25T18:55:00Z","resourceVersion":"7"},
            "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.10","selector":{"app":"web"},
                    "ports":[{"port":80,"protocol":"TCP","nodePort":30080},{"port":53,"protocol":"UDP"}]},
            "status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.42"}]}}});
        let t = table_for("", "services", None, &[svc], "12", NOW);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "12");
        assert_eq!(
            names(&t),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][6]["priority"], 1);
        assert_eq!(
            cells(&t)[0],
            vec![
                json!("web"),
                json!("LoadBalancer"),
                json!("10.96.0.10"),
                json!("127.0.0.42"),
                json!("80:30080/TCP,53/UDP"),
                json!("5m"),
                json!("app=web")
            ]
        );
        let obj = &t["rows"][0]["object"];
        assert_eq!(obj["kind"], "PartialObjectMetadata");
        assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(obj["metadata"]["namespace"], "demo");
    }

    #[test]
    fn pending_load_balancer_and_cluster_ip_without_external_show_placeholders() {
        let lb = json!({"metadata":{"name":"a"},"spec":{"type":"LoadBalancer","clusterIP":"10.0.0.1","ports":[]}});
        let cip = json!({"metadata":{"name":"b"},"spec":{"type":"ClusterIP","clusterIP":"None"}});
        let t = table_for("", "services", None, &[lb, cip], "1", NOW);
        let c = cells(&t);
        assert_eq!(c[0][3], "<pending>");
        assert_eq!(c[0][4], "<none>");
        assert_eq!(c[1][2], "None");
        assert_eq!(c[1][3], "<none>");
        assert_eq!(c[1][5], "<unknown>");
        assert_eq!(c[1][6], "<none>");
    }

    #[test]
    fn deployment_and_pod_tables_count_replicas_and_containers() {
        let d = json!({"metadata":{"name":"web","creationTimestamp":"2026-11-25T16:00:00Z"},
            "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
                    "template":{"spec":{"containers":[{"name":"web","image":"nginx"},{"name":"side","image":"busybox"}]}}},
            "status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}});
        let t = table_for("apps", "deployments", None, &[d], "1", NOW);
        assert_eq!(
            names(&t),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            cells(&t)[0],
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3h"),
                json!("web,side"),
                json!("nginx,busybox"),
                json!("app=web")
            ]
        );

        let p = json!({"metadata":{"name":"web-1","creationTimestamp":"2026-11-25T18:59:30Z"},
            "spec":{"containers":[{"name":"a"},{"name":"b"}],"nodeName":"n1"},
            "status":{"phase":"Pending","podIP":"10.1.0.5","containerStatuses":[
                {"name":"a","ready":true,"restartCount":1,"state":{"running":{}}},
                {"name":"b","ready":false,"restartCount":2,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}});
        let t = table_for("", "pods", None, &[p], "1", NOW);
        let c = &cells(&t)[0];
        assert_eq!(
            c[..5],
            [
                json!("web-1"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("3"),
                json!("30s")
            ]
        );
        assert_eq!(c[5..7], [json!("10.1.0.5"), json!("n1")]);
    }

    #[test]
    fn small_builtin_tables_have_their_columns() {
        let ts = "2026-11-25T18:00:00Z";
        let cases: Vec<(&str, &str, Value, Vec<Value>)> = vec![
            (
                "",
                "namespaces",
                json!({"metadata":{"name":"demo","creationTimestamp":ts},"status":{"phase":"Active"}}),
                vec![json!("demo"), json!("Active"), json!("60m")],
            ),
            (
                "",
                "secrets",
                json!({"metadata":{"name":"s","creationTimestamp":ts},"type":"kubernetes.io/tls","data":{"tls.crt":"","tls.key":""}}),
                vec![
                    json!("s"),
                    json!("kubernetes.io/tls"),
                    json!(2),
                    json!("60m"),
                ],
            ),
            (
                "",
                "configmaps",
                json!({"metadata":{"name":"c","creationTimestamp":ts},"data":{"a":"1"}}),
                vec![json!("c"), json!(1), json!("60m")],
            ),
            (
                "",
                "serviceaccounts",
                json!({"metadata":{"name":"sa","creationTimestamp":ts}}),
                vec![json!("sa"), json!(0), json!("60m")],
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata":{"name":"l","creationTimestamp":ts},"spec":{"holderIdentity":"pod-1"}}),
                vec![json!("l"), json!("pod-1"), json!("60m")],
            ),
            (
                "rbac.authorization.k8s.io",
                "clusterroles",
                json!({"metadata":{"name":"r","creationTimestamp":ts}}),
                vec![json!("r"), json!(ts)],
            ),
            (
                "rbac.authorization.k8s.io",
                "rolebindings",
                json!({"metadata":{"name":"rb","creationTimestamp":ts},
                "roleRef":{"kind":"ClusterRole","name":"view"},
                "subjects":[{"kind":"ServiceAccount","name":"x","namespace":"mc-system"},{"kind":"User","name":"u"}]}),
                vec![
                    json!("rb"),
                    json!("ClusterRole/view"),
                    json!("60m"),
                    json!("u"),
                    json!(""),
                    json!("mc-system/x"),
                ],
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata":{"name":"e","creationTimestamp":ts},"addressType":"IPv4",
                "ports":[{"port":8080}],"endpoints":[{"addresses":["10.0.0.1"]},{"addresses":["10.0.0.2"]}]}),
                vec![
                    json!("e"),
                    json!("IPv4"),
                    json!("8080"),
                    json!("10.0.0.1,10.0.0.2"),
                    json!("60m"),
                ],
            ),
            (
                "policy",
                "poddisruptionbudgets",
                json!({"metadata":{"name":"p","creationTimestamp":ts},"spec":{"minAvailable":1},"status":{"disruptionsAllowed":0}}),
                vec![json!("p"), json!("1"), json!("N/A"), json!(0), json!("60m")],
            ),
            (
                "example.com",
                "widgets",
                json!({"metadata":{"name":"w","creationTimestamp":ts}}),
                vec![json!("w"), json!("60m")],
            ),
        ];
        for (group, resource, obj, want) in cases {
            let t = table_for(group, resource, None, &[obj], "1", NOW);
            assert_eq!(cells(&t)[0], want, "{group}/{resource}");
            assert_eq!(
                t["columnDefinitions"].as_array().unwrap().len(),
                want.len(),
                "{group}/{resource}"
            );
        }
    }

    #[test]
    fn event_and_job_tables_have_kubectl_columns() {
        let ev = json!({"metadata":{"name":"web.1","namespace":"demo","creationTimestamp":"2026-11-25T18:50:00Z"},
            "involvedObject":{"kind":"Pod","name":"web-1","fieldPath":"spec.containers{web}"},
            "reason":"Pulled","message":"Pulled image","type":"Normal","count":3,
            "source":{"component":"kubelet","host":"n1"},
            "firstTimestamp":"2026-11-25T18:50:00Z","lastTimestamp":"2026-11-25T18:58:00Z"});
        let t = table_for("", "events", None, &[ev], "1", NOW);
        assert_eq!(
            names(&t),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(t["columnDefinitions"][9]["format"], "name");
        assert_eq!(t["columnDefinitions"][9]["priority"], 1);
        assert_eq!(
            cells(&t)[0],
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, n1"),
                json!("Pulled image"),
                json!("10m"),
                json!(3),
                json!("web.1")
            ]
        );

        let job = json!({"metadata":{"name":"j","creationTimestamp":"2026-11-25T18:00:00Z"},
            "spec":{"completions":1,"template":{"spec":{"containers":[{"name":"j","image":"busybox"}]}}},
            "status":{"succeeded":1,"startTime":"2026-11-25T18:00:00Z","completionTime":"2026-11-25T18:00:07Z",
                      "conditions":[{"type":"Complete","status":"True"}]}});
        let t = table_for("batch", "jobs", None, &[job], "1", NOW);
        assert_eq!(
            names(&t),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            cells(&t)[0][..5],
            [
                json!("j"),
                json!("Complete"),
                json!("1/1"),
                json!("7s"),
                json!("60m")
            ]
        );
    }

    #[test]
    fn crd_printer_columns_follow_json_paths_and_types() {
        let columns = json!([
            {"name":"Target","type":"string","jsonPath":".spec.targetClusterName"},
            {"name":"Gateway","type":"string","jsonPath":".spec.gatewayAddresses[0]"},
            {"name":"Ready","type":"string","jsonPath":".status.conditions[*].status"},
            {"name":"Mirrored","type":"integer","jsonPath":".status.mirroredServices","priority":1},
            {"name":"Alive","type":"boolean","jsonPath":".status.gateway.alive"},
            {"name":"Missing","type":"string","jsonPath":".status.nothing"},
            {"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}
        ]);
        let link = json!({"apiVersion":"mc.dev/v1alpha1","kind":"Link",
            "metadata":{"name":"west","namespace":"mc-system","creationTimestamp":"2026-11-25T18:58:00Z"},
            "spec":{"targetClusterName":"west","gatewayAddresses":["10.0.0.9","10.0.0.10"]},
            "status":{"conditions":[{"type":"Ready","status":"True"}],"mirroredServices":4,"gateway":{"alive":true}}});
        let t = table_for("mc.dev", "links", Some(&columns), &[link], "3", NOW);
        assert_eq!(
            names(&t),
            [
                "Name", "Target", "Gateway", "Ready", "Mirrored", "Alive", "Missing", "Age"
            ]
        );
        assert_eq!(t["columnDefinitions"][4]["priority"], 1);
        assert_eq!(
            cells(&t)[0],
            vec![
                json!("west"),
                json!("west"),
                json!("10.0.0.9"),
                json!("True"),
                json!(4),
                json!(true),
                Value::Null,
                json!("2m")
            ]
        );
        // No printer columns → NAME + AGE.
        let t = table_for("mc.dev", "links", Some(&json!([])), &[], "3", NOW);
        assert_eq!(names(&t), ["Name", "Age"]);
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn json_path_subset_parses_and_rejects() {
        use JsonPathStep::*;
        assert_eq!(
            parse_json_path("{.a[0].b}"),
            Some(vec![Field("a".into()), Index(0), Field("b".into())])
        );
        assert_eq!(
            parse_json_path(".a[*].b"),
            Some(vec![Field("a".into()), All, Field("b".into())])
        );
        assert_eq!(
            parse_json_path(".metadata.labels['app']"),
            Some(vec![
                Field("metadata".into()),
                Field("labels".into()),
                Field("app".into())
            ])
        );
        for bad in ["a.b", ".a..b", ".a[0", ".a[?(@.x)]x"] {
            assert_eq!(parse_json_path(bad), None, "{bad}");
        }
    }
}
