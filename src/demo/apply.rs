//! `kubectl apply -f -` for the demo, without needing kubectl: every document of a multi-document
//! YAML stream is server-side applied (field manager `mc`) to the resource discovery names for
//! its apiVersion and kind, in the order given.

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{what} is not valid YAML")]
    Yaml {
        what: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("a document of {what} has no apiVersion, kind or metadata.name")]
    Incomplete { what: String },
    #[error("the API server of context {context} does not serve {kind} ({api_version})")]
    Discovery {
        context: String,
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot apply {kind} {name} in context {context}")]
    Apply {
        context: String,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Applies every document of `yaml` (named `what` in errors) to the cluster of `client`.
pub async fn apply_yaml(
    client: &Client,
    context: &str,
    what: &str,
    yaml: &str,
) -> Result<usize, ApplyError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|source| ApplyError::Yaml {
            what: what.to_owned(),
            source: Box::new(source),
        })?;
    let mut applied = 0;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let (Some(api_version), Some(kind), Some(name)) = (
            doc["apiVersion"].as_str(),
            doc["kind"].as_str(),
            doc["metadata"]["name"].as_str(),
        ) else {
            return Err(ApplyError::Incomplete {
                what: what.to_owned(),
            });
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) =
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|source| ApplyError::Discovery {
                    context: context.to_owned(),
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                    source,
                })?;
        let api: Api<DynamicObject> = match (caps.scope, doc["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(crate::k8s::FIELD_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .map_err(|source| ApplyError::Apply {
            context: context.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        })?;
        applied += 1;
    }
    Ok(applied)
}
