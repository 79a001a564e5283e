//! Resource verbs: get, list, create, update, patch, delete, deletecollection, and the
//! subresources status, scale and token, plus the review types (SSAR, SelfSubjectReview,
//! TokenReview). Each write runs admission defaults, stores, then lets the controllers react
//! inside the same lock so that a reader never sees a half-reconciled cluster.

use std::sync::Arc;

use http::Method;
use serde_json::{Map, Value, json};

use super::auth;
use super::context::{Ctx, Reply, RequestInfo, Shared, TABLE_CONTENT_TYPE};
use super::custom::{self, Write};
use super::list::{Filter, present, to_storage};
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::{EventType, State, meta_str};
use crate::sim::cluster::{clock, controllers};
use crate::sim::semantics::apply::{self, ApplyError};
use crate::sim::semantics::patch;
use crate::sim::semantics::proto;
use crate::sim::semantics::rbac::{self, Attributes};
use crate::sim::semantics::status::{self, ApiError};
use crate::sim::semantics::table;
use crate::sim::semantics::token::ServiceAccountClaims;
use crate::sim::semantics::validation::FieldError;

pub fn dispatch(ctx: &Ctx, rt: &Arc<ResourceType>, info: &RequestInfo) -> Result<Reply, ApiError> {
    if rt.create_only {
        return review(ctx, rt, info);
    }
    match (&ctx.method, info.name.as_deref(), info.sub.as_deref()) {
        (&Method::POST, Some(name), Some("token")) => token_request(ctx, info, name),
        (&Method::GET, Some(name), Some("log")) => pod_log(ctx, info, name),
        (&Method::GET, Some(name), Some("scale")) => get_scale(ctx, rt, info, name),
        (&Method::PUT | &Method::PATCH, Some(name), Some("scale")) => {
            update_scale(ctx, rt, info, name)
        }
        (&Method::GET | &Method::HEAD, Some(name), _) => get(ctx, rt, info, name),
        (&Method::GET | &Method::HEAD, None, None) => list(ctx, rt, info),
        (&Method::POST, None, None) => create(ctx, rt, info),
        (&Method::PUT, Some(name), _) => update(ctx, rt, info, name),
        (&Method::PATCH, Some(name), _) => patch_object(ctx, rt, info, name),
        (&Method::DELETE, Some(name), None) => delete(ctx, rt, info, name),
        (&Method::DELETE, None, None) => delete_collection(ctx, rt, info),
        _ => Err(status::method_not_allowed()),
    }
}

/// `pods/{name}/log`, read from the node's container output.
fn pod_log(ctx: &Ctx, info: &RequestInfo, name: &str) -> Result<Reply, ApiError> {
    use http_body_util::{BodyExt, StreamBody};
    let pod = ctx
        .shared
        .store
        .lock()
        .get("/pods", ns_of(info), name)
        .ok_or_else(|| status::not_found("", "pods", name))?;
    let node = ctx.shared.node.get().ok_or_else(|| {
        status::bad_request(format!(
            "pod \"{name}\" runs nowhere: this simulated cluster has no node (start it with --node)"
        ))
    })?;
    let query = crate::sim::node::LogQuery {
        container: ctx.q("container").map(str::to_string),
        previous: ctx.q_bool("previous"),
        follow: ctx.q_bool("follow"),
        tail_lines: ctx.q("tailLines").and_then(|t| t.parse().ok()),
    };
    Ok(match node.logs.read(&pod, query)? {
        crate::sim::node::LogOutput::Text(body) => Reply::Text { code: 200, body },
        crate::sim::node::LogOutput::Follow(rx) => {
            let chunks = futures::stream::unfold(rx, |mut rx| async move {
                let chunk = rx.recv().await?;
                Some((Ok(hyper::body::Frame::data(chunk)), rx))
            });
            Reply::Stream {
                body: StreamBody::new(chunks).boxed_unsync(),
                content_type: "text/plain",
            }
        }
    })
}

fn ns_of(info: &RequestInfo) -> &str {
    info.namespace.as_deref().unwrap_or("")
}

pub fn table_reply(ctx: &Ctx, rt: &ResourceType, objects: &[Value], rv: &str) -> Reply {
    let mut t = table::table_for(
        &rt.group,
        &rt.plural,
        rt.printer_columns.as_ref(),
        objects,
        rv,
        clock::now_unix(),
    );
    // kubectl asks for the full object in rows only with includeObject=Object.
    if ctx.q("includeObject") == Some("Object")
        && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
    {
        for (row, obj) in rows.iter_mut().zip(objects) {
            row["object"] = obj.clone();
        }
    }
    Reply::Json {
        code: 200,
        body: t,
        content_type: TABLE_CONTENT_TYPE,
    }
}

fn get(ctx: &Ctx, rt: &ResourceType, info: &RequestInfo, name: &str) -> Result<Reply, ApiError> {
    let state = ctx.shared.store.lock();
    let obj = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    let obj = present(&obj, rt, &info.version);
    if ctx.wants_table() {
        let rv = meta_str(&obj, "resourceVersion").to_string();
        return Ok(table_reply(ctx, rt, &[obj], &rv));
    }
    Ok(Reply::json(200, obj))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list(ctx: &Ctx, rt: &ResourceType, info: &RequestInfo) -> Result<Reply, ApiError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let filter = Filter::from_ctx(ctx, rt, info)?;
    let limit: usize = ctx
        .q("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let state = ctx.shared.store.lock();
    let (list_rv, after) = match ctx.q("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let t: ContinueToken = b64
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| status::bad_request("invalid continue token"))?;
            if t.rv < state.compacted_rv {
                return Err(status::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            (t.rv, Some((t.ns, t.name)))
        }
        None => (state.rv, None),
    };
    let candidates = state.list_after(&rt.key(), info.namespace.as_deref(), after.as_ref());
    let mut items: Vec<Arc<Value>> = Vec::new();
    let mut next = None;
    for obj in candidates {
        if !filter.matches(&obj) {
            continue;
        }
        if let Some(last) = items.last()
            && items.len() == limit
        {
            next = Some(ContinueToken {
                rv: list_rv,
                ns: meta_str(last, "namespace").to_string(),
                name: meta_str(last, "name").to_string(),
            });
            break;
        }
        items.push(obj);
    }
    drop(state);
    let rv = list_rv.to_string();
    let continue_token = next.map(|n| b64.encode(serde_json::to_vec(&n).unwrap_or_default()));
    if ctx.wants_table() {
        let objects: Vec<Value> = items
            .iter()
            .map(|o| present(o, rt, &info.version))
            .collect();
        let mut reply = table_reply(ctx, rt, &objects, &rv);
        if let (Reply::Json { body, .. }, Some(c)) = (&mut reply, &continue_token) {
            body["metadata"]["continue"] = json!(c);
        }
        return Ok(reply);
    }
    let mut metadata = json!({"resourceVersion": rv});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    // Serialized straight from the shared objects: a 10k-item list is not deep-copied.
    let list = ListBody {
        kind: format!("{}List", rt.kind),
        api_version: rt.api_version(&info.version),
        metadata,
        items: items
            .into_iter()
            .map(|o| {
                if rt.from_crd || rt.is_events_view() {
                    Item::Owned(present(&o, rt, &info.version))
                } else {
                    Item::Shared(o)
                }
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&list)
        .map_err(|e| status::internal(format!("could not serialize the list: {e}")))?;
    Ok(Reply::Bytes {
        code: 200,
        body: bytes.into(),
        content_type: "application/json",
    })
}

#[derive(serde::Serialize)]
struct ListBody {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<Item>,
}

enum Item {
    Shared(Arc<Value>),
    Owned(Value),
}

impl serde::Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::Shared(v) => v.as_ref().serialize(s),
            Item::Owned(v) => v.serialize(s),
        }
    }
}

fn parse_body(ctx: &Ctx) -> Result<Value, ApiError> {
    let ct = ctx.header("content-type");
    if ct.starts_with("application/yaml") || ct.contains("yaml") {
        let text = std::str::from_utf8(&ctx.body)
            .map_err(|_| status::bad_request("the request body is not UTF-8"))?;
        let v: Value = serde_saphyr::from_str(text)
            .map_err(|e| status::bad_request(format!("could not decode the YAML body: {e}")))?;
        validate_shape(&v)?;
        return Ok(v);
    }
    if ct.starts_with(proto::PROTOBUF_CONTENT_TYPE) {
        // kubectl's typed clients (`create namespace|sa|secret|...`, `auth can-i`, `create
        // token`) cannot be told to send JSON.
        let v = proto::decode_object(&ctx.body).map_err(|e| match e {
            proto::ProtoError::UnsupportedKind { .. } => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            other => status::bad_request(format!("could not decode the protobuf body: {other}")),
        })?;
        validate_shape(&v)?;
        return Ok(v);
    }
    let v: Value = serde_json::from_slice(&ctx.body).map_err(|e| {
        status::bad_request(format!(
            "the request body could not be decoded as JSON: {e}"
        ))
    })?;
    validate_shape(&v)?;
    Ok(v)
}

pub fn now_rfc3339() -> String {
    clock::now_rfc3339()
}

fn field_manager(ctx: &Ctx) -> String {
    if let Some(m) = ctx.q("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    // kube-apiserver derives a default manager from the user agent's program name.
    let ua = ctx.header("user-agent");
    let prog = ua.split('/').next().unwrap_or("").trim();
    if prog.is_empty() {
        "unknown".to_string()
    } else {
        prog.to_string()
    }
}

fn dry_run(ctx: &Ctx) -> bool {
    ctx.q("dryRun") == Some("All")
}

/// Rejects bodies whose well-known fields have the wrong JSON type, as the API server's decoder
/// would (400), so that the rest of the server can rely on the shape.
fn validate_shape(obj: &Value) -> Result<(), ApiError> {
    let bad = |field: &str, want: &str| {
        Err(status::bad_request(format!(
            "the request body could not be decoded: {field} must be {want}"
        )))
    };
    let is_obj_or_absent = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    if !obj.is_object() {
        return bad("the object", "a JSON object");
    }
    for field in ["metadata", "spec", "status"] {
        if !is_obj_or_absent(obj.get(field)) {
            return bad(field, "an object");
        }
    }
    let meta = obj.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(m) = meta.and_then(|m| m.get(field)).filter(|v| !v.is_null()) {
            match m.as_object() {
                Some(map) if map.values().all(Value::is_string) => {}
                _ => return bad(&format!("metadata.{field}"), "a map of strings"),
            }
        }
    }
    for field in [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
    ] {
        if meta
            .and_then(|m| m.get(field))
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return bad(&format!("metadata.{field}"), "a string");
        }
    }
    if let Some(refs) = meta
        .and_then(|m| m.get("ownerReferences"))
        .filter(|v| !v.is_null())
        && !refs
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object))
    {
        return bad("metadata.ownerReferences", "a list of objects");
    }
    if let Some(f) = meta
        .and_then(|m| m.get("finalizers"))
        .filter(|v| !v.is_null())
        && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return bad("metadata.finalizers", "a list of strings");
    }
    for field in ["data", "stringData"] {
        if !is_obj_or_absent(obj.get(field)) {
            return bad(field, "an object");
        }
    }
    if let Some(ports) = obj.pointer("/spec/ports").filter(|v| !v.is_null())
        && !ports
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object))
    {
        return bad("spec.ports", "a list of objects");
    }
    Ok(())
}

/// Checks kind/apiVersion/namespace of a body against the request and fills them in.
fn check_identity(rt: &ResourceType, info: &RequestInfo, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(status::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(status::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            rt.api_version(&info.version)
        )));
    }
    obj["kind"] = json!(rt.kind);
    obj["apiVersion"] = json!(rt.api_version(rt.preferred_version()));
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let body_ns = meta_str(obj, "namespace").to_string();
    if rt.namespaced {
        let ns = ns_of(info);
        if !body_ns.is_empty() && body_ns != ns {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["metadata"]["namespace"] = json!(ns);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(())
}

fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn require_namespace(state: &State, rt: &ResourceType, info: &RequestInfo) -> Result<(), ApiError> {
    if rt.namespaced {
        let ns = ns_of(info);
        if state.get("/namespaces", "", ns).is_none() {
            return Err(status::not_found("", "namespaces", ns));
        }
    }
    Ok(())
}

fn create(ctx: &Ctx, rt: &Arc<ResourceType>, info: &RequestInfo) -> Result<Reply, ApiError> {
    let mut obj = parse_body(ctx)?;
    check_identity(rt, info, &mut obj)?;
    let mut obj = to_storage(obj, rt);
    custom::decode(ctx, rt, info, &mut obj, Write::Object)?;
    let manager = field_manager(ctx);
    let mut state = ctx.shared.store.lock();
    require_namespace(&state, rt, info)?;
    let mut name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(status::invalid(
                &rt.group,
                &rt.kind,
                "",
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        loop {
            name = format!("{prefix}{}", random_suffix());
            if state.get(&rt.key(), ns_of(info), &name).is_none() {
                break;
            }
        }
        obj["metadata"]["name"] = json!(name);
    }
    validate_name(rt, &name)?;
    validate_labels(rt, &obj)?;
    if state.get(&rt.key(), ns_of(info), &name).is_some() {
        return Err(status::already_exists(&rt.group, &rt.plural, &name));
    }
    let crd_terminating = rt.from_crd
        && state
            .get(
                controllers::CRDS,
                "",
                &format!("{}.{}", rt.plural, rt.group),
            )
            .is_some_and(|crd| crd.pointer("/metadata/deletionTimestamp").is_some());
    if crd_terminating {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        ));
    }
    if rt.namespaced {
        let ns_obj = state.get("/namespaces", "", ns_of(info));
        if ns_obj.is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some()) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    rt.qualified(),
                    ns_of(info)
                ),
            ));
        }
    }
    auth::check_escalation(&state, &ctx.user, rt, &obj)?;
    let now = now_rfc3339();
    prepare_create(rt, &mut obj, &now);
    custom::validate(rt, info, &obj, None)?;
    controllers::admit(&ctx.shared.controllers, &mut state, rt, None, &mut obj)?;
    apply::track_update(None, &mut obj, &manager, &now);
    if dry_run(ctx) {
        return Ok(Reply::json(201, present(&obj, rt, &info.version)));
    }
    let stored = state.put(&rt.key(), obj, EventType::Added);
    ctx.shared.settle(&mut state);
    Ok(Reply::json(201, present(&stored, rt, &info.version)))
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Object names as kube-apiserver validates them: Services are DNS-1035 labels, Namespaces
/// RFC 1123 labels (both at most 63 characters, which is why mc shortens long names), RBAC
/// objects path segments, everything else RFC 1123 subdomains.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let invalid = |detail: String| {
        Err(status::invalid(
            &rt.group,
            &rt.kind,
            name,
            "FieldValueInvalid",
            "metadata.name",
            &format!("Invalid value: \"{name}\": {detail}"),
        ))
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "services") => {
            if name.len() > 63 {
                return invalid("must be no more than 63 characters".into());
            }
            if !is_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                return invalid(DNS1035_MSG.into());
            }
        }
        ("", "namespaces") => {
            if name.len() > 63 {
                return invalid("must be no more than 63 characters".into());
            }
            if !is_label(name) {
                return invalid(LABEL_MSG.into());
            }
        }
        ("rbac.authorization.k8s.io", _) => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                return invalid("may not contain '/' or '%' and may not be '.' or '..'".into());
            }
        }
        _ => {
            if name.len() > 253 {
                return invalid("must be no more than 253 characters".into());
            }
            if !name.split('.').all(is_label) {
                return invalid(SUBDOMAIN_MSG.into());
            }
        }
    }
    Ok(())
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const LABEL_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Label keys and values as kube-apiserver validates them (values at most 63 characters):
/// every bad label in one 422.
fn validate_labels(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    let mut invalid = |value: &str, detail: &str| {
        errors.push(FieldError {
            reason: "FieldValueInvalid",
            field: "metadata.labels".into(),
            message: format!("Invalid value: \"{value}\": {detail}"),
        });
    };
    for (key, value) in labels {
        let (prefix, part) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key.as_str()),
        };
        if let Some(p) = prefix
            && (p.len() > 253 || !p.split('.').all(is_label))
        {
            invalid(key, &format!("prefix part {SUBDOMAIN_MSG}"));
        }
        if part.len() > 63 {
            invalid(key, "name part must be no more than 63 characters");
        } else if !is_qualified_part(part) {
            invalid(key, LABEL_NAME_MSG);
        }
        let value = value.as_str().unwrap_or("");
        if value.len() > 63 {
            invalid(value, "must be no more than 63 characters");
        } else if !value.is_empty() && !is_qualified_part(value) {
            invalid(value, LABEL_VALUE_MSG);
        }
    }
    status::all_valid(&rt.group, &rt.kind, meta_str(obj, "name"), &errors)
}

/// Server-set metadata of a new object.
fn prepare_create(rt: &ResourceType, obj: &mut Value, now: &str) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now));
        if rt.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
    }
    // Types with a status subresource start without status (their controllers own it).
    if rt.has_status()
        && rt.plural != "pods"
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
}

/// What a change bumps `generation` for: everything but metadata, and but status where status
/// is a subresource of its own.
fn spec_part(rt: &ResourceType, obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| match k.as_str() {
                    "metadata" | "kind" | "apiVersion" => false,
                    "status" => !rt.has_status(),
                    _ => true,
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn same_ignoring_bookkeeping(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// Common tail of update and patch: subresource rules, immutable metadata, generation,
/// finalizer completion, no-op detection, store.
#[allow(clippy::too_many_arguments)] // one call per write path; a struct would only rename them
fn finish_update(
    ctx: &Ctx,
    state: &mut State,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
    live: &Value,
    mut new: Value,
    manager: Option<&str>,
    check_rv: bool,
) -> Result<Reply, ApiError> {
    let name = meta_str(live, "name").to_string();
    let body_rv = meta_str(&new, "resourceVersion").to_string();
    if check_rv && !body_rv.is_empty() && body_rv != meta_str(live, "resourceVersion") {
        return Err(status::conflict(&rt.group, &rt.plural, &name));
    }
    let body_name = meta_str(&new, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    validate_shape(&new)?;
    validate_labels(rt, &new)?;
    let write = if ctx.method == Method::PUT {
        Write::Object
    } else {
        Write::Patch
    };
    custom::decode(ctx, rt, info, &mut new, write)?;
    new["kind"] = json!(rt.kind);
    new["apiVersion"] = json!(rt.api_version(rt.preferred_version()));
    let mut new = to_storage(new, rt);
    if info.sub.as_deref() == Some("status") {
        // Only .status changes through /status, and the managedFields an apply computed.
        let status = new.get("status").cloned();
        let applied_fields = new
            .pointer("/metadata/managedFields")
            .filter(|_| manager.is_none())
            .cloned();
        new = live.clone();
        if let Some(fields) = applied_fields {
            new["metadata"]["managedFields"] = fields;
        }
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    } else if rt.has_status() {
        match live.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
        "generation",
    ] {
        match live["metadata"].get(key) {
            Some(v) => new["metadata"][key] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(key);
                }
            }
        }
    }
    auth::check_escalation(state, &ctx.user, rt, &new)?;
    custom::validate(rt, info, &new, Some(live))?;
    controllers::admit(&ctx.shared.controllers, state, rt, Some(live), &mut new)?;
    // After admission: defaulting (e.g. stringData folded into data) is not a change.
    if rt.has_generation() && spec_part(rt, live) != spec_part(rt, &new) {
        let gen_ = live
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        new["metadata"]["generation"] = json!(gen_ + 1);
    }
    let now = now_rfc3339();
    if let Some(manager) = manager {
        let subresource = info.sub.as_deref().filter(|s| *s == "status");
        apply::track_update_to(Some(live), &mut new, manager, subresource, &now);
    }
    new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    if same_ignoring_bookkeeping(live, &new) {
        return Ok(Reply::json(200, present(live, rt, &info.version)));
    }
    if dry_run(ctx) {
        return Ok(Reply::json(200, present(&new, rt, &info.version)));
    }
    let terminating = new.pointer("/metadata/deletionTimestamp").is_some();
    // A namespace is also held by its spec finalizers (`kubernetes`: the namespace controller).
    let no_finalizers = ["/metadata/finalizers", "/spec/finalizers"]
        .iter()
        .filter(|p| p.starts_with("/metadata") || rt.key() == "/namespaces")
        .all(|p| {
            new.pointer(p)
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
        });
    let stored = state.put(&rt.key(), new, EventType::Modified);
    if terminating && no_finalizers {
        state.remove(&rt.key(), ns_of(info), &name);
    }
    ctx.shared.settle(state);
    Ok(Reply::json(200, present(&stored, rt, &info.version)))
}

fn update(
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
    name: &str,
) -> Result<Reply, ApiError> {
    let mut obj = parse_body(ctx)?;
    check_identity(rt, info, &mut obj)?;
    let manager = field_manager(ctx);
    let mut state = ctx.shared.store.lock();
    let live = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    finish_update(ctx, &mut state, rt, info, &live, obj, Some(&manager), true)
}

fn patch_object(
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
    name: &str,
) -> Result<Reply, ApiError> {
    let ct = ctx
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let is_apply = ct == "application/apply-patch+yaml" || ct == "application/apply-patch+json";
    if !is_apply
        && !matches!(
            ct.as_str(),
            "application/merge-patch+json"
                | "application/json-patch+json"
                | "application/strategic-merge-patch+json"
        )
    {
        return Err(status::unsupported_media_type(!rt.from_crd));
    }
    if ct == "application/strategic-merge-patch+json" && rt.from_crd {
        return Err(status::unsupported_media_type(!rt.from_crd));
    }
    let force = ctx.q_bool("force");
    if is_apply && ctx.q("fieldManager").is_none_or(str::is_empty) {
        return Err(patch_options_invalid(
            "FieldValueRequired",
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    if !is_apply && ctx.q("force").is_some() {
        return Err(patch_options_invalid(
            "FieldValueForbidden",
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let body: Value = if is_apply {
        let text = std::str::from_utf8(&ctx.body)
            .map_err(|_| status::bad_request("the apply patch is not UTF-8"))?;
        // JSON is YAML, but parse JSON first: it is what clients send and it is exact.
        serde_json::from_str(text)
            .or_else(|_| serde_saphyr::from_str(text))
            .map_err(|e| status::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&ctx.body)
            .map_err(|e| status::bad_request(format!("error decoding patch: {e}")))?
    };
    let manager = field_manager(ctx);
    let mut state = ctx.shared.store.lock();
    let live = state.get(&rt.key(), ns_of(info), name);
    let now = now_rfc3339();
    if is_apply {
        let mut applied = body;
        validate_shape(&applied)?;
        let applied_name = meta_str(&applied, "name");
        if !applied_name.is_empty() && applied_name != name {
            return Err(status::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        applied["metadata"]["name"] = json!(name);
        check_identity(rt, info, &mut applied)?;
        custom::check_applied(rt, info, &applied)?;
        let subresource = info.sub.as_deref().filter(|s| *s == "status");
        if subresource.is_none()
            && rt.has_status()
            && let Some(o) = applied.as_object_mut()
        {
            // The main resource ignores status for kinds with a status subresource.
            o.remove("status");
        }
        // Events written through events.k8s.io are applied to what that API shows.
        let live_view = live.as_deref().map(|l| match rt.is_events_view() {
            true => present(l, rt, &info.version),
            false => l.clone(),
        });
        let result = apply::server_side_apply_to(
            live_view.as_ref(),
            &applied,
            &manager,
            subresource,
            force,
            &now,
        )
        .map_err(|e| apply_error(rt, name, e))?;
        return match live {
            None => {
                if info.sub.is_some() {
                    return Err(status::not_found(&rt.group, &rt.plural, name));
                }
                require_namespace(&state, rt, info)?;
                validate_name(rt, name)?;
                validate_labels(rt, &result)?;
                let mut obj = to_storage(result, rt);
                check_identity(rt, info, &mut obj)?;
                custom::decode(ctx, rt, info, &mut obj, Write::Patch)?;
                auth::check_escalation(&state, &ctx.user, rt, &obj)?;
                prepare_create(rt, &mut obj, &now);
                custom::validate(rt, info, &obj, None)?;
                // prepare_create drops status; an apply may not set it on create either.
                controllers::admit(&ctx.shared.controllers, &mut state, rt, None, &mut obj)?;
                if dry_run(ctx) {
                    return Ok(Reply::json(201, present(&obj, rt, &info.version)));
                }
                let stored = state.put(&rt.key(), obj, EventType::Added);
                ctx.shared.settle(&mut state);
                Ok(Reply::json(201, present(&stored, rt, &info.version)))
            }
            Some(live) => {
                // managedFields were maintained by the apply itself.
                finish_update(ctx, &mut state, rt, info, &live, result, None, true)
            }
        };
    }
    let live = live.ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    let mut target = present(&live, rt, &info.version);
    match ct.as_str() {
        "application/merge-patch+json" => patch::merge_patch(&mut target, &body),
        "application/json-patch+json" => {
            patch::json_patch(&mut target, &body).map_err(patch_error)?
        }
        _ => patch::strategic_merge_patch(&mut target, &body).map_err(patch_error)?,
    }
    // A patch that names a resourceVersion is a precondition, like a PUT.
    let patch_rv = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let check = !patch_rv.is_empty();
    finish_update(
        ctx,
        &mut state,
        rt,
        info,
        &live,
        target,
        Some(&manager),
        check,
    )
}

fn patch_options_invalid(reason: &str, field: &str, message: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {message}"),
    )
    .with_details(json!({
        "group": "meta.k8s.io",
        "kind": "PatchOptions",
        "causes": [{"reason": reason, "message": message, "field": field}],
    }))
}

fn apply_error(rt: &ResourceType, name: &str, err: ApplyError) -> ApiError {
    let message = err.to_string();
    match err {
        ApplyError::Conflict { causes } => {
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({"type": "FieldManagerConflict", "message": c.message, "field": c.field}))
                .collect();
            let mut d = json!({"name": name, "kind": rt.plural, "causes": causes});
            if !rt.group.is_empty() {
                d["group"] = json!(rt.group);
            }
            ApiError::new(409, "Conflict", message).with_details(d)
        }
        ApplyError::Invalid(msg) => ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {msg}", group_kind(rt)),
        ),
    }
}

/// `Kind.group` as kube-apiserver names a type in messages (`Kind` for the core group).
fn group_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

/// Malformed patches are 400; a JSON patch that cannot apply (failed `test`, missing path) is 422.
fn patch_error(err: patch::PatchError) -> ApiError {
    match err {
        patch::PatchError::JsonPatchApply(_) => ApiError::new(422, "Invalid", err.to_string()),
        other => status::bad_request(other.to_string()),
    }
}

#[derive(Default)]
struct DeleteOptions {
    propagation: Option<String>,
    dry_run: bool,
    uid: Option<String>,
    rv: Option<String>,
    grace: Option<i64>,
}

fn delete_options(ctx: &Ctx) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        propagation: ctx.q("propagationPolicy").map(str::to_string),
        dry_run: dry_run(ctx),
        grace: ctx.q("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        ..Default::default()
    };
    if !ctx.body.is_empty() {
        let body: Value = serde_json::from_slice(&ctx.body)
            .map_err(|e| status::bad_request(format!("could not decode DeleteOptions: {e}")))?;
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_string());
        }
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
        {
            opts.dry_run = true;
        }
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace = Some(g);
        }
        opts.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.rv = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(opts)
}

fn delete(
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
    name: &str,
) -> Result<Reply, ApiError> {
    let opts = delete_options(ctx)?;
    if rt.key() == "/namespaces" && matches!(name, "default" | "kube-system" | "kube-public") {
        return Err(status::forbidden(
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            name,
            "",
            "namespaces",
        ));
    }
    let mut state = ctx.shared.store.lock();
    let live = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    if let Some(uid) = &opts.uid
        && uid != meta_str(&live, "uid")
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                rt.qualified(),
                meta_str(&live, "uid")
            ),
        ));
    }
    if let Some(rv) = &opts.rv
        && rv != meta_str(&live, "resourceVersion")
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                rt.qualified(),
                meta_str(&live, "resourceVersion")
            ),
        ));
    }
    if opts.dry_run {
        return Ok(Reply::json(200, present(&live, rt, &info.version)));
    }
    let reply = delete_one(
        &ctx.shared,
        &mut state,
        rt,
        &live,
        opts.propagation.as_deref(),
        opts.grace,
    );
    ctx.shared.settle(&mut state);
    Ok(match reply {
        controllers::Deletion {
            object: last,
            gone: true,
            ..
        } => {
            if rt.plural == "namespaces" || rt.plural == "pods" {
                Reply::json(200, present(&last, rt, &info.version))
            } else {
                Reply::json(
                    200,
                    status::delete_success(&rt.group, &rt.plural, name, meta_str(&last, "uid")),
                )
            }
        }
        controllers::Deletion { object, .. } => {
            Reply::json(200, present(&object, rt, &info.version))
        }
    })
}

/// Deletes one object through the controllers and starts the timer of a namespace removal.
fn delete_one(
    shared: &Arc<Shared>,
    state: &mut State,
    rt: &ResourceType,
    live: &Value,
    propagation: Option<&str>,
    grace: Option<i64>,
) -> controllers::Deletion {
    let mut deletion =
        controllers::delete(&shared.controllers, state, rt, live, propagation, grace);
    if let Some(removal) = deletion.later.take() {
        shared.schedule_namespace_removal(removal);
    }
    deletion
}

fn delete_collection(
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
) -> Result<Reply, ApiError> {
    let opts = delete_options(ctx)?;
    let filter = Filter::from_ctx(ctx, rt, info)?;
    let mut state = ctx.shared.store.lock();
    let victims: Vec<Arc<Value>> = state
        .list(&rt.key(), info.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    let mut items = Vec::new();
    for v in victims {
        if opts.dry_run {
            items.push(present(&v, rt, &info.version));
            continue;
        }
        let deletion = delete_one(
            &ctx.shared,
            &mut state,
            rt,
            &v,
            opts.propagation.as_deref(),
            opts.grace,
        );
        items.push(present(&deletion.object, rt, &info.version));
    }
    ctx.shared.settle(&mut state);
    Ok(Reply::json(
        200,
        json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(&info.version),
            "metadata": {"resourceVersion": state.rv.to_string()},
            "items": items,
        }),
    ))
}

fn get_scale(
    ctx: &Ctx,
    rt: &ResourceType,
    info: &RequestInfo,
    name: &str,
) -> Result<Reply, ApiError> {
    let state = ctx.shared.store.lock();
    let obj = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    Ok(Reply::json(200, scale_of(&obj)))
}

fn scale_of(obj: &Value) -> Value {
    let selector = crate::sim::semantics::table::map_selector(obj, "/spec/selector/matchLabels");
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta_str(obj, "name"),
            "namespace": meta_str(obj, "namespace"),
            "uid": meta_str(obj, "uid"),
            "resourceVersion": meta_str(obj, "resourceVersion"),
            "creationTimestamp": meta_str(obj, "creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn update_scale(
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    info: &RequestInfo,
    name: &str,
) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| status::bad_request(format!("could not decode the Scale: {e}")))?;
    let mut state = ctx.shared.store.lock();
    let live = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    let mut scale = scale_of(&live);
    if ctx.method == Method::PATCH {
        match ctx.header("content-type").split(';').next().unwrap_or("") {
            "application/json-patch+json" => patch::json_patch(&mut scale, &body)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
            _ => patch::merge_patch(&mut scale, &body),
        }
    } else {
        scale = body;
    }
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let mut new = (*live).clone();
    new["spec"]["replicas"] = replicas;
    let main = RequestInfo {
        sub: None,
        ..info.clone()
    };
    finish_update(
        ctx,
        &mut state,
        rt,
        &main,
        &live,
        new,
        Some(&field_manager(ctx)),
        false,
    )?;
    let updated = state
        .get(&rt.key(), ns_of(info), name)
        .ok_or_else(|| status::not_found(&rt.group, &rt.plural, name))?;
    Ok(Reply::json(200, scale_of(&updated)))
}

/// Decodes a review or TokenRequest body: JSON, or the protobuf kubectl's typed clients send.
fn review_body(
    ctx: &Ctx,
    decode: fn(&[u8]) -> Result<Value, proto::ProtoError>,
) -> Result<Value, ApiError> {
    if ctx
        .header("content-type")
        .starts_with(proto::PROTOBUF_CONTENT_TYPE)
    {
        let v = decode(&ctx.body)
            .map_err(|e| status::bad_request(format!("could not decode the protobuf body: {e}")))?;
        validate_shape(&v)?;
        return Ok(v);
    }
    parse_body(ctx)
}

fn review(ctx: &Ctx, rt: &ResourceType, info: &RequestInfo) -> Result<Reply, ApiError> {
    let api_version = rt.api_version(&info.version);
    match rt.plural.as_str() {
        "selfsubjectaccessreviews" => {
            let mut body = review_body(ctx, proto::decode_self_subject_access_review)?;
            let spec = body.get("spec").cloned().unwrap_or(json!({}));
            let attrs = if let Some(ra) = spec.get("resourceAttributes") {
                let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                Attributes {
                    verb: s("verb"),
                    api_group: s("group"),
                    resource: s("resource"),
                    subresource: s("subresource"),
                    name: s("name"),
                    namespace: s("namespace"),
                    path: String::new(),
                    resource_request: true,
                }
            } else {
                let nra = spec
                    .get("nonResourceAttributes")
                    .cloned()
                    .unwrap_or(json!({}));
                let s = |k: &str| nra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                Attributes {
                    verb: s("verb"),
                    path: s("path"),
                    resource_request: false,
                    ..Default::default()
                }
            };
            let decision = if ctx.is_admin() {
                rbac::Decision {
                    allowed: true,
                    reason: String::new(),
                }
            } else {
                let snapshot = super::auth::rbac_snapshot(&ctx.shared);
                rbac::authorize(&snapshot, &ctx.user, &attrs)
            };
            let mut st = json!({"allowed": decision.allowed});
            if !decision.reason.is_empty() {
                st["reason"] = json!(decision.reason);
            }
            body["status"] = st;
            body["kind"] = json!("SelfSubjectAccessReview");
            body["apiVersion"] = json!(api_version);
            if !body.get("metadata").is_some_and(Value::is_object) {
                body["metadata"] = json!({});
            }
            body["metadata"]["creationTimestamp"] = Value::Null;
            Ok(Reply::json(201, body))
        }
        "selfsubjectrulesreviews" => {
            let mut body = review_body(ctx, proto::decode_self_subject_rules_review)?;
            let namespace = body
                .pointer("/spec/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let snapshot = super::auth::rbac_snapshot(&ctx.shared);
            body["status"] = rbac::rules_review_status(&snapshot, &ctx.user, &namespace);
            body["kind"] = json!("SelfSubjectRulesReview");
            body["apiVersion"] = json!(api_version);
            Ok(Reply::json(201, body))
        }
        "selfsubjectreviews" => Ok(Reply::json(
            201,
            json!({
                "kind": "SelfSubjectReview",
                "apiVersion": api_version,
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": {"username": ctx.user.username, "groups": ctx.user.groups}},
            }),
        )),
        "tokenreviews" => {
            let mut body = parse_body(ctx)?;
            let token = body
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
            body["status"] = match super::auth::authenticate(&ctx.shared, &headers) {
                Ok(user) => json!({
                    "authenticated": true,
                    "user": {"username": user.username, "groups": user.groups},
                    "audiences": [super::context::API_AUDIENCE],
                }),
                Err(_) => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            body["kind"] = json!("TokenReview");
            body["apiVersion"] = json!(api_version);
            Ok(Reply::json(201, body))
        }
        _ => {
            // SubjectAccessReview & co: answer with RBAC for the given user.
            let mut body = parse_body(ctx)?;
            let spec = body.get("spec").cloned().unwrap_or(json!({}));
            let user = rbac::UserInfo {
                username: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let ra = spec.get("resourceAttributes").cloned().unwrap_or(json!({}));
            let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let attrs = Attributes {
                verb: s("verb"),
                api_group: s("group"),
                resource: s("resource"),
                subresource: s("subresource"),
                name: s("name"),
                namespace: if rt.namespaced {
                    ns_of(info).to_string()
                } else {
                    s("namespace")
                },
                path: String::new(),
                resource_request: true,
            };
            let allowed = user.groups.iter().any(|g| g == "system:masters")
                || rbac::authorize(&super::auth::rbac_snapshot(&ctx.shared), &user, &attrs).allowed;
            body["status"] = json!({"allowed": allowed});
            Ok(Reply::json(201, body))
        }
    }
}

fn token_request(ctx: &Ctx, info: &RequestInfo, name: &str) -> Result<Reply, ApiError> {
    let mut body = review_body(ctx, proto::decode_token_request)?;
    let ns = ns_of(info).to_string();
    let sa = ctx
        .shared
        .store
        .lock()
        .get("/serviceaccounts", &ns, name)
        .ok_or_else(|| status::not_found("", "serviceaccounts", name))?;
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![super::context::API_AUDIENCE.to_string()]);
    let seconds = body
        .pointer("/spec/expirationSeconds")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(status::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            "FieldValueInvalid",
            "spec.expirationSeconds",
            &format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    // A token bound to a Secret dies with it (Pods are not run, so only Secrets are bound).
    let (secret_name, secret_uid) = match body.pointer("/spec/boundObjectRef") {
        Some(r) if r.get("kind").and_then(Value::as_str) == Some("Secret") => {
            let secret = r.get("name").and_then(Value::as_str).unwrap_or("");
            let obj = ctx
                .shared
                .store
                .lock()
                .get("/secrets", &ns, secret)
                .ok_or_else(|| status::not_found("", "secrets", secret))?;
            (
                Some(secret.to_string()),
                Some(meta_str(&obj, "uid").to_string()),
            )
        }
        _ => (None, None),
    };
    let now = clock::now_unix();
    let claims = ServiceAccountClaims {
        issuer: ctx.shared.issuer.clone(),
        audiences: audiences.clone(),
        expires_at: now + seconds,
        issued_at: now,
        namespace: ns.clone(),
        service_account_name: name.to_string(),
        service_account_uid: meta_str(&sa, "uid").to_string(),
        secret_name,
        secret_uid,
    };
    let token = ctx
        .shared
        .signer
        .sign(&claims)
        .map_err(|e| status::internal(format!("could not sign the token: {e}")))?;
    body["kind"] = json!("TokenRequest");
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
    body["metadata"]["name"] = json!(name);
    body["metadata"]["namespace"] = json!(ns);
    body["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    body["spec"]["audiences"] = json!(audiences);
    body["spec"]["expirationSeconds"] = json!(seconds);
    body["status"] = json!({
        "token": token,
        "expirationTimestamp": clock::rfc3339_of(now + seconds),
    });
    Ok(Reply::json(201, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cluster::registry::Registry;

    fn rt(group: &str, plural: &str) -> Arc<ResourceType> {
        let reg = Registry::builtin();
        reg.find(group, "v1", plural).expect("builtin")
    }

    #[test]
    fn service_names_are_dns_1035_labels_of_at_most_63_characters() {
        let svc = rt("", "services");
        assert!(validate_name(&svc, "web-1").is_ok());
        assert!(validate_name(&svc, "1web").is_err());
        assert!(validate_name(&svc, &"a".repeat(63)).is_ok());
        assert!(validate_name(&svc, &"a".repeat(64)).is_err());
        assert!(validate_name(&svc, "a.b").is_err());
    }

    #[test]
    fn other_names_are_subdomains_and_rbac_names_may_hold_colons() {
        assert!(validate_name(&rt("", "configmaps"), "kube-root-ca.crt").is_ok());
        assert!(validate_name(&rt("", "configmaps"), "Upper").is_err());
        assert!(validate_name(&rt("", "configmaps"), "a..b").is_err());
        let cr = rt("rbac.authorization.k8s.io", "clusterroles");
        assert!(validate_name(&cr, "system:basic-user").is_ok());
        assert!(validate_name(&cr, "a/b").is_err());
    }

    #[test]
    fn label_values_over_63_characters_or_with_slashes_are_invalid() {
        let cm = rt("", "configmaps");
        let with = |labels: Value| json!({"metadata": {"name": "x", "labels": labels}});
        assert!(validate_labels(&cm, &with(json!({"mc.dev/exported": "true", "a": ""}))).is_ok());
        assert!(validate_labels(&cm, &with(json!({"a": "x".repeat(64)}))).is_err());
        assert!(validate_labels(&cm, &with(json!({"a": "ns/name"}))).is_err());
        assert!(validate_labels(&cm, &with(json!({"Bad_Prefix/a": "v"}))).is_err());
        assert!(validate_labels(&cm, &with(json!({"-a": "v"}))).is_err());
        let both = validate_labels(&cm, &with(json!({"-a": "v", "b": "ns/name"}))).unwrap_err();
        assert_eq!(
            both.details.as_ref().unwrap()["causes"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(
            both.message
                .starts_with("ConfigMap \"x\" is invalid: [metadata.labels: ")
        );
    }

    #[test]
    fn mistyped_well_known_fields_are_rejected() {
        assert!(validate_shape(&json!({"metadata": {"name": "x"}, "spec": {}})).is_ok());
        assert!(validate_shape(&json!({"metadata": []})).is_err());
        assert!(validate_shape(&json!({"metadata": {"finalizers": [1]}})).is_err());
        assert!(validate_shape(&json!({"spec": {"ports": [1]}})).is_err());
        assert!(validate_shape(&json!("x")).is_err());
    }
}
