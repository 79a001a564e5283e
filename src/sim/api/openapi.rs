//! Minimal OpenAPI v3: a root listing every group-version (CRD groups included, at once) and
//! per-GV documents whose PATCH operations carry `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter. That is what `kubectl apply`'s default validation looks for;
//! it then leaves validation to the server (k8s-api-surface.md §4). Schemas stay empty.
//! OpenAPI v2 is an empty document: kubectl falls back to it (client-side validation) for a
//! kind the v3 documents do not list, finds nothing there and goes on to its own "resource
//! mapping not found ... ensure CRDs are installed first", as against a cluster.

use serde_json::{Value, json};

use super::context::Reply;
use crate::sim::cluster::registry::Registry;

/// `/openapi/v2`: an empty `openapi_v2.Document` (zero protobuf bytes), which is all kubectl
/// asks of it.
pub fn v2() -> Reply {
    Reply::Bytes {
        code: 200,
        body: bytes::Bytes::new(),
        content_type: "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A content hash so kubectl's cache notices when a document changes (CRDs come and go).
fn hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA512, &bytes);
    hex::encode_upper(&digest.as_ref()[..64])
}

pub fn root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.groups() {
        for v in versions {
            let p = gv_path(&group, &v);
            let doc = document(registry, &group, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

/// `rest` is the path below `/openapi/v3/`: `api/v1` or `apis/{g}/{v}`.
pub fn group_version(registry: &Registry, rest: &[&str]) -> Option<Value> {
    let (group, version) = match rest {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    if registry.in_group_version(group, version).is_empty() {
        return None;
    }
    Some(document(registry, group, version))
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn document(registry: &Registry, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for t in registry.in_group_version(group, version) {
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let base = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        let write_params = json!([
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation")
        ]);
        let op = |action: &str, params: &Value| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let mut collection = json!({"post": op("post", &write_params)});
        if t.create_only {
            paths.insert(base, collection);
            continue;
        }
        collection["get"] = op(
            "list",
            &json!([param("labelSelector"), param("fieldSelector")]),
        );
        paths.insert(base.clone(), collection);
        let mut patch_params = write_params.clone();
        if let Some(a) = patch_params.as_array_mut() {
            a.push(param("force"));
        }
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": op("get", &json!([])),
                "put": op("put", &write_params),
                "patch": op("patch", &patch_params),
                "delete": op("delete", &json!([param("dryRun")])),
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
