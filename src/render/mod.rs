//! Install manifests: minijinja templates embedded from `templates/` plus the `Link` CRD generated
//! from `mc::k8s::Link`, rendered to multi-document YAML. Pure: no files, no network.
//!
//! ```text
//! values.yaml ─┐
//! --values ────┼─ values::resolve ─┐
//! --set ───────┘                   ├─ minijinja (every {{ }} JSON-escaped) ─ parse ─ sort ─ YAML
//! identity (checked by caller) ────┘   Link::crd(), TrafficSplit::crd() ────────┘
//! ```
//!
//! Every document goes through `serde_json::Value` (sorted maps) and back, so the output is
//! canonical and byte-identical for the same inputs, and a template can never emit YAML that does
//! not parse.

pub mod values;

use std::collections::BTreeMap;

use base64::Engine;
use kube::CustomResourceExt;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Value, json};

use crate::k8s;

/// Templates in output order (the CRD goes right after the namespace).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "namespace.yaml",
        include_str!("../../templates/namespace.yaml"),
    ),
    ("rbac.yaml", include_str!("../../templates/rbac.yaml")),
    ("config.yaml", include_str!("../../templates/config.yaml")),
    ("gateway.yaml", include_str!("../../templates/gateway.yaml")),
    ("mirror.yaml", include_str!("../../templates/mirror.yaml")),
];
/// Included by the templates above, never rendered alone.
const PARTIALS: &[(&str, &str)] = &[
    (
        "pod-common.yaml",
        include_str!("../../templates/pod-common.yaml"),
    ),
    (
        "container-common.yaml",
        include_str!("../../templates/container-common.yaml"),
    ),
];

pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "mc";
/// Pod annotation holding a hash of what the pods read from `mc-config` and `mc-issuer`, so that
/// re-rendering with a rotated issuer or a new anchor bundle rolls the pods.
pub const ANNOTATION_CONFIG_CHECKSUM: &str = "mc.dev/config-checksum";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Values(#[from] values::ValuesError),
    #[error("the built-in template {0} is invalid")]
    Template(String, #[source] minijinja::Error),
    #[error("rendering the built-in template {0} failed")]
    Render(String, #[source] minijinja::Error),
    #[error("the built-in template {0} produced invalid YAML")]
    Yaml(String, #[source] Box<serde_saphyr::Error>),
    #[error("could not serialize a {0} document")]
    Serialize(String, #[source] Box<serde_saphyr::SerializeError>),
    #[error("could not serialize the Link CRD")]
    Crd(#[source] serde_json::Error),
    #[error("a document of the built-in template {0} has no kind")]
    NoKind(String),
    #[error("imagePullSecrets must be a list of Secret names")]
    PullSecrets,
}

/// Everything an install is rendered from; the identity was checked by the caller.
#[derive(Clone)]
pub struct InstallInput {
    pub cluster_name: String,
    pub namespace: String,
    pub trust_domain: String,
    pub anchor_pem: String,
    pub issuer_cert_pem: String,
    pub issuer_key_pem: String,
    /// Resolved values (see [`values::resolve`]).
    pub values: Value,
}

impl std::fmt::Debug for InstallInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallInput")
            .field("cluster_name", &self.cluster_name)
            .field("namespace", &self.namespace)
            .field("trust_domain", &self.trust_domain)
            .field("issuer_key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    // JSON is YAML: emitting every value as JSON makes quoting and injection a non-issue.
    env.set_auto_escape_callback(|_| AutoEscape::Json);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES.iter().chain(PARTIALS) {
        env.add_template(name, source)
            .map_err(|e| RenderError::Template((*name).to_owned(), e))?;
    }
    Ok(env)
}

fn labels(cluster: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([
        (LABEL_PART_OF.to_owned(), PART_OF.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), PART_OF.to_owned()),
        (crate::k8s::LABEL_CLUSTER.to_owned(), cluster.to_owned()),
    ]);
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PART_OF.to_owned(), PART_OF.to_owned()),
        (LABEL_NAME.to_owned(), name.to_owned()),
    ])
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        // Length-prefix each part so that ("ab","c") and ("a","bc") differ.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish())
}

fn context(input: &InstallInput) -> Result<Value, RenderError> {
    let InstallInput {
        cluster_name,
        namespace,
        trust_domain,
        anchor_pem,
        issuer_cert_pem,
        issuer_key_pem,
        values,
    } = input;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let component = |name: &str, component: &str| {
        labels(
            cluster_name,
            &[(LABEL_NAME, name), (LABEL_COMPONENT, component)],
        )
    };
    let gateway_labels = component(k8s::GATEWAY_NAME, "gateway");
    let mirror_labels = component(k8s::MIRROR_NAME, "mirror");
    let pod_labels = string_map(&values["podLabels"]);
    let pod_annotations = string_map(&values["podAnnotations"]);
    // Only what the pods read from the API (mc-config, mc-issuer): scaling must not restart pods.
    let checksum = sha256_hex(&[
        cluster_name,
        trust_domain,
        anchor_pem,
        issuer_cert_pem,
        values["gateway"]["outboundPortRange"]
            .as_str()
            .unwrap_or_default(),
    ]);
    let pod = |labels: &BTreeMap<String, String>, port: u16| {
        // mc's own labels win over user podLabels: the selector depends on them.
        let mut l = pod_labels.clone();
        l.extend(labels.clone());
        let mut a = pod_annotations.clone();
        a.extend([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            ("prometheus.io/port".to_owned(), port.to_string()),
            ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
            (ANNOTATION_CONFIG_CHECKSUM.to_owned(), checksum.clone()),
        ]);
        json!({ "labels": l, "annotations": a })
    };
    let pull_secrets = values["imagePullSecrets"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| s.as_str().map(|name| json!({ "name": name })))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(Some(Vec::new()))
        .ok_or(RenderError::PullSecrets)?;
    let image = format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap_or_default(),
        values["image"]["tag"].as_str().unwrap_or_default()
    );
    Ok(json!({
        "clusterName": cluster_name,
        "namespace": namespace,
        "trustDomain": trust_domain,
        "gatewayIdentity": crate::identity::gateway_dns_name_in(namespace, cluster_name, trust_domain),
        "anchorPem": anchor_pem,
        "issuer": { "crt": b64(issuer_cert_pem), "key": b64(issuer_key_pem), "ca": b64(anchor_pem) },
        "values": values,
        "image": image,
        "imagePullSecrets": pull_secrets,
        "labels": {
            "common": labels(cluster_name, &[]),
            "gateway": gateway_labels,
            "mirror": mirror_labels,
        },
        "selector": { "gateway": selector(k8s::GATEWAY_NAME), "mirror": selector(k8s::MIRROR_NAME) },
        "pod": {
            "gateway": pod(&gateway_labels, k8s::GATEWAY_PROBE_PORT),
            "mirror": pod(&mirror_labels, k8s::MIRROR_ADMIN_PORT),
        },
        "keys": k8s::McConfig::template_keys(),
        "names": {
            "gateway": k8s::GATEWAY_NAME,
            "mirror": k8s::MIRROR_NAME,
            "mirrorLease": k8s::MIRROR_LEASE,
            "config": k8s::CONFIG_MAP,
            "issuer": k8s::ISSUER_SECRET,
            "remoteAccess": k8s::REMOTE_ACCESS_ROLE,
        },
        "ports": {
            "gateway": k8s::GATEWAY_PORT,
            "probe": k8s::GATEWAY_PROBE_PORT,
            "mirrorAdmin": k8s::MIRROR_ADMIN_PORT,
        },
    }))
}

/// The `Link` CRD from the Rust type, with mc's labels.
fn link_crd(cluster: &str) -> Result<Value, RenderError> {
    let mut crd = serde_json::to_value(k8s::Link::crd()).map_err(RenderError::Crd)?;
    crd["metadata"]["labels"] = json!(labels(cluster, &[]));
    Ok(crd)
}

/// The `TrafficSplit` CRD from the Rust type, with mc's labels.
fn split_crd(cluster: &str) -> Result<Value, RenderError> {
    let mut crd = serde_json::to_value(k8s::TrafficSplit::crd()).map_err(RenderError::Crd)?;
    crd["metadata"]["labels"] = json!(labels(cluster, &[]));
    Ok(crd)
}

/// Every install object, in apply order.
pub fn install_objects(input: &InstallInput) -> Result<Vec<Value>, RenderError> {
    let env = environment()?;
    let ctx = context(input)?;
    let mut docs = Vec::new();
    for (name, _) in TEMPLATES {
        let template = env
            .get_template(name)
            .map_err(|e| RenderError::Template((*name).to_owned(), e))?;
        let text = template
            .render(minijinja::value::Serde(&ctx))
            .map_err(|e| RenderError::Render((*name).to_owned(), e))?;
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| RenderError::Yaml((*name).to_owned(), Box::new(e)))?;
        for doc in parsed.into_iter().filter(|d| !d.is_null()) {
            if doc["kind"].as_str().is_none() {
                return Err(RenderError::NoKind((*name).to_owned()));
            }
            docs.push(doc);
        }
        if *name == "namespace.yaml" {
            docs.push(link_crd(&input.cluster_name)?);
            docs.push(split_crd(&input.cluster_name)?);
        }
    }
    Ok(docs)
}

fn to_yaml(docs: &[Value], header: &str) -> Result<String, RenderError> {
    let mut out = String::from(header);
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or("object").to_owned();
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(doc).map_err(|e| RenderError::Serialize(kind, Box::new(e)))?,
        );
    }
    Ok(out)
}

/// `mc install`: the whole installation as multi-document YAML.
pub fn render_install(input: &InstallInput) -> Result<String, RenderError> {
    let header = format!(
        "# mc install for cluster {} (namespace {}); apply with `kubectl apply -f -`.\n# Contains Secret {}, the cluster's issuer key: treat this output as secret.\n",
        input.cluster_name,
        input.namespace,
        k8s::ISSUER_SECRET
    );
    to_yaml(&install_objects(input)?, &header)
}

/// Kinds that are not namespaced, for ordering and for stripping `namespace` in references.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
    )
}

/// `mc uninstall`: a reference (apiVersion, kind, name, namespace) to every object install
/// creates, namespaced objects first, the Namespace next and the CRD last. The list is derived
/// from the install templates themselves (rendered with placeholders), so it cannot drift.
pub fn render_uninstall(namespace: &str) -> Result<String, RenderError> {
    let placeholder = InstallInput {
        cluster_name: "uninstall".to_owned(),
        namespace: namespace.to_owned(),
        trust_domain: crate::identity::DEFAULT_TRUST_DOMAIN.to_owned(),
        anchor_pem: String::new(),
        issuer_cert_pem: String::new(),
        issuer_key_pem: String::new(),
        values: values::defaults()?,
    };
    let mut refs: Vec<Value> = install_objects(&placeholder)?
        .iter()
        .map(|doc| {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let mut metadata = json!({ "name": doc["metadata"]["name"] });
            if !cluster_scoped(kind) {
                metadata["namespace"] = doc["metadata"]["namespace"].clone();
            }
            json!({ "apiVersion": doc["apiVersion"], "kind": kind, "metadata": metadata })
        })
        .collect();
    refs.reverse();
    let rank = |doc: &Value| match doc["kind"].as_str().unwrap_or_default() {
        "CustomResourceDefinition" => 3,
        "Namespace" => 2,
        kind if cluster_scoped(kind) => 1,
        _ => 0,
    };
    refs.sort_by_key(rank); // stable: keeps reverse install order within a rank
    let header = format!(
        "# mc uninstall (namespace {namespace}); delete with `kubectl delete --ignore-not-found -f -`.\n# First remove every Link (`mc unlink`, or `kubectl delete links.mc.dev --all -n {namespace}`)\n# while mc-mirror still runs, so that its finalizer deletes the mirror Services.\n"
    );
    to_yaml(&refs, &header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> InstallInput {
        InstallInput {
            cluster_name: "west".into(),
            namespace: "mc-system".into(),
            trust_domain: "cluster.local".into(),
            anchor_pem: "-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n".into(),
            issuer_cert_pem: "cert".into(),
            issuer_key_pem: "key".into(),
            values: values::defaults().unwrap(),
        }
    }

    #[test]
    fn every_document_carries_the_part_of_and_cluster_labels() {
        for doc in install_objects(&input()).unwrap() {
            let labels = &doc["metadata"]["labels"];
            assert_eq!(labels[LABEL_PART_OF], "mc", "{doc}");
            assert_eq!(labels[k8s::LABEL_CLUSTER], "west", "{doc}");
        }
    }

    #[test]
    fn rendering_twice_is_byte_identical() {
        assert_eq!(
            render_install(&input()).unwrap(),
            render_install(&input()).unwrap()
        );
    }

    #[test]
    fn config_checksum_changes_with_the_issuer_but_not_with_replicas() {
        let checksum = |i: &InstallInput| {
            let docs = install_objects(i).unwrap();
            let deploy = docs
                .iter()
                .find(|d| d["kind"] == "Deployment")
                .unwrap()
                .clone();
            deploy["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG_CHECKSUM]
                .clone()
        };
        let base = checksum(&input());
        let mut scaled = input();
        scaled.values["gateway"]["replicas"] = json!(5);
        assert_eq!(checksum(&scaled), base);
        let mut rotated = input();
        rotated.issuer_cert_pem = "another cert".into();
        assert_ne!(checksum(&rotated), base);
    }

    #[test]
    fn values_cannot_inject_yaml() {
        let mut i = input();
        i.values["image"]["tag"] = json!("1\nkind: Secret\n---\nkind: Pod");
        let docs = install_objects(&i).unwrap();
        assert_eq!(docs.len(), install_objects(&input()).unwrap().len());
        let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        assert!(
            deploy["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .contains("kind: Pod")
        );
    }

    #[test]
    fn uninstall_names_every_installed_object_and_ends_with_the_crd() {
        let yaml = render_uninstall("mc-system").unwrap();
        let refs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        let refs: Vec<Value> = refs.into_iter().filter(|d| !d.is_null()).collect();
        assert_eq!(refs.last().unwrap()["kind"], "CustomResourceDefinition");
        let installed = install_objects(&input()).unwrap();
        assert_eq!(refs.len(), installed.len());
        for doc in installed {
            assert!(
                refs.iter().any(|r| r["kind"] == doc["kind"]
                    && r["metadata"]["name"] == doc["metadata"]["name"]),
                "{} {} missing from uninstall",
                doc["kind"],
                doc["metadata"]["name"]
            );
        }
    }
}
