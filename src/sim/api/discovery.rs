//! Discovery documents: aggregated v2 (`APIGroupDiscoveryList`, chosen by the Accept header,
//! answered with the matching Content-Type) and the plain `APIVersions` / `APIGroupList` /
//! `APIResourceList` documents that `kubectl` falls back to and `Discovery::run` uses.

use serde_json::{Value, json};

use super::context::{Ctx, Reply};
use crate::sim::cluster::registry::{Registry, ResourceType, Sub};

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated version the client accepts, if any (first acceptable one wins).
fn aggregated(ctx: &Ctx) -> Option<(&'static str, &'static str)> {
    for part in ctx.header("accept").split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some((AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1"));
            }
            if p.contains("v=v2") {
                return Some((AGGREGATED_V2, "apidiscovery.k8s.io/v2"));
            }
        }
        if p.starts_with("application/json") && !p.contains("as=") {
            return None;
        }
    }
    None
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn sub_entries(t: &ResourceType, version: &str) -> Vec<Value> {
    t.subresources
        .iter()
        .map(|s| match s {
            Sub::Status => json!({"subresource": "status",
                "responseKind": response_kind(&t.group, version, &t.kind), "verbs": ["get", "patch", "update"]}),
            Sub::Scale => json!({"subresource": "scale",
                "responseKind": response_kind("autoscaling", "v1", "Scale"), "verbs": ["get", "patch", "update"]}),
            Sub::Token => json!({"subresource": "token",
                "responseKind": response_kind("authentication.k8s.io", "v1", "TokenRequest"), "verbs": ["create"]}),
        })
        .collect()
}

fn aggregated_resource(t: &ResourceType, version: &str) -> Value {
    let mut r = json!({
        "resource": t.plural,
        "responseKind": response_kind(&t.group, version, &t.kind),
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs(),
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let subs = sub_entries(t, version);
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

fn aggregated_group(registry: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = registry
                .in_group_version(group, v)
                .iter()
                .map(|t| aggregated_resource(t, v))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

fn aggregated_list(api_version: &str, items: Vec<Value>) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

pub fn api_root(ctx: &Ctx, registry: &Registry) -> Reply {
    let groups = registry.groups();
    if let Some((ct, av)) = aggregated(ctx) {
        let items = groups
            .iter()
            .filter(|(g, _)| g.is_empty())
            .map(|(g, vs)| aggregated_group(registry, g, vs))
            .collect();
        return Reply::Json {
            code: 200,
            body: aggregated_list(av, items),
            content_type: ct,
        };
    }
    Reply::json(
        200,
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ctx.shared.addr().to_string()}],
        }),
    )
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(json!({}));
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

pub fn apis_root(ctx: &Ctx, registry: &Registry) -> Reply {
    let groups: Vec<(String, Vec<String>)> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    if let Some((ct, av)) = aggregated(ctx) {
        let items = groups
            .iter()
            .map(|(g, vs)| aggregated_group(registry, g, vs))
            .collect();
        return Reply::Json {
            code: 200,
            body: aggregated_list(av, items),
            content_type: ct,
        };
    }
    let docs: Vec<Value> = groups.iter().map(|(g, vs)| group_doc(g, vs)).collect();
    Reply::json(
        200,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": docs}),
    )
}

pub fn api_group(registry: &Registry, group: &str) -> Option<Reply> {
    let (_, versions) = registry
        .groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())?;
    let mut doc = group_doc(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(Reply::json(200, doc))
}

pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Reply> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for s in &t.subresources {
            resources.push(match s {
                Sub::Status => json!({"name": format!("{}/status", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}),
                Sub::Scale => json!({"name": format!("{}/scale", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]}),
                Sub::Token => json!({"name": format!("{}/token", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "group": "authentication.k8s.io", "version": "v1",
                    "kind": "TokenRequest", "verbs": ["create"]}),
            });
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(Reply::json(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}
