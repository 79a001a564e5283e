//! What `mc link` / `mc unlink` decide, without I/O: the refusals of a link request, the
//! kubeconfig handed to the source, the objects written into both clusters and what is left to
//! clean when a cluster cannot be reached. `cli::link` reads the clusters, calls these and writes
//! the results.
//!
//! ```text
//! TGT: mc-config, Service mc-gateway, kube-system uid ─┐
//! SRC: mc-config, existing Link <tgt>                  ├─▶ check_pair / check_existing ─▶ Plan
//! kubeconfig context TGT (server, CA)                  ┘      (Link, Secret, SA + bindings)
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::ObjectMeta;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

use crate::k8s::link::ProbeSpec;
use crate::k8s::{self, Link, LinkSpec, McConfig};

/// Annotation on a Link: uid of the target's `kube-system` Namespace, the one identifier a
/// cluster keeps for its life. Two clusters installed with the same name differ here, which is
/// how `mc link` tells a re-link (refresh the token) from a name collision (refuse).
pub const ANNOTATION_TARGET_ID: &str = "mc.dev/target-cluster-id";
/// Label on the objects `mc link` creates in the target: the source cluster they serve.
pub const LABEL_LINK_SOURCE: &str = "mc.dev/link-source";
/// Annotation naming the ServiceAccount of a `kubernetes.io/service-account-token` Secret.
pub const ANNOTATION_SA_NAME: &str = "kubernetes.io/service-account.name";
pub const SA_TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// Default cluster domain of the target (`--target-cluster-domain`).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Placeholder for the token in printed objects.
pub const REDACTED: &str = "<redacted: pass --show-secrets>";
/// Placeholder for the token in `--dry-run` output, where no token is issued.
pub const NOT_ISSUED: &str = "<not issued: --dry-run writes nothing, not even a TokenRequest>";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error(
        "mc is not installed in context {context}: ConfigMap {namespace}/mc-config not found; install it with `mc install --cluster-name NAME --identity-dir DIR | kubectl --context {context} apply -f -` (or pass --namespace if it lives elsewhere)"
    )]
    NotInstalled { context: String, namespace: String },
    #[error(
        "the Link resource (links.mc.dev) is not served in context {context}; re-run `mc install ... | kubectl --context {context} apply -f -` to install its CRD"
    )]
    NoCrd { context: String },
    #[error(
        "{from} and {to} are the same cluster (both mc-config files say clusterName {cluster}); link two different clusters, or reinstall one with another --cluster-name"
    )]
    SameCluster {
        from: String,
        to: String,
        cluster: String,
    },
    #[error(
        "the trust anchors of {from} and {to} share no certificate (ConfigMap mc-config key ca-bundle.crt); gateways could not authenticate each other: install both clusters from the same `mc identity init` directory"
    )]
    NoSharedAnchor { from: String, to: String },
    #[error(
        "the anchor bundle of {context} (ConfigMap {namespace}/mc-config key ca-bundle.crt) holds no PEM certificate; re-run `mc install` there"
    )]
    EmptyBundle { context: String, namespace: String },
    #[error(
        "Service {namespace}/{} in {context} has no load-balancer address yet; wait for one (`kubectl --context {context} -n {namespace} get svc {}`) or pass --gateway-address HOST[:PORT]",
        k8s::GATEWAY_NAME,
        k8s::GATEWAY_NAME
    )]
    NoGatewayAddress { context: String, namespace: String },
    #[error(
        "Link {link} in {from} already points at another cluster (its target has cluster id {existing}, {to} has {wanted}); remove it first with `mc unlink --from {from} --to <its context>`"
    )]
    LinkedElsewhere {
        from: String,
        to: String,
        /// `namespace/name`
        link: String,
        existing: String,
        wanted: String,
    },
    #[error("--gateway-address {0:?} is not HOST or HOST:PORT (IPv6 as [ADDR]:PORT)")]
    BadGatewayAddress(String),
    #[error("--api-server-address {0:?} is not an https:// or http:// URL")]
    BadApiServer(String),
    #[error("--selector {selector:?} is not a label selector: {reason}")]
    BadSelector { selector: String, reason: String },
    #[error("kubeconfig context {0:?} not found; `kubectl config get-contexts` lists the contexts")]
    NoContext(String),
    #[error(
        "kubeconfig context {context:?} names cluster {cluster:?}, which the kubeconfig does not define"
    )]
    NoCluster { context: String, cluster: String },
    #[error(
        "kubeconfig cluster {cluster:?} (context {context:?}) has no server address; pass --api-server-address URL"
    )]
    NoServer { context: String, cluster: String },
    #[error("could not write the link kubeconfig as YAML: {0}")]
    Yaml(String),
}

/// How the link's token for the target is obtained (`--token-kind`); see docs/linking.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TokenKind {
    /// A TokenRequest with an expiry (`--token-ttl`): nothing stored in the target.
    #[default]
    Request,
    /// A `kubernetes.io/service-account-token` Secret in the target: no expiry.
    Secret,
}

/// How the target's API server is reached, from the operator's kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    pub server: String,
    /// base64 PEM, as in a kubeconfig.
    pub ca_data: Option<String>,
    /// A CA file the kubeconfig points at (read by the caller, then put in `ca_data`).
    pub ca_file: Option<String>,
    pub tls_server_name: Option<String>,
    pub insecure: bool,
}

/// The cluster entry behind `context` in a kubeconfig.
pub fn cluster_access(
    kc: &kube::config::Kubeconfig,
    context: &str,
) -> Result<ClusterAccess, LinkError> {
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| LinkError::NoContext(context.to_owned()))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| LinkError::NoCluster {
            context: context.to_owned(),
            cluster: ctx.cluster.clone(),
        })?;
    let server = cluster.server.clone().ok_or_else(|| LinkError::NoServer {
        context: context.to_owned(),
        cluster: ctx.cluster.clone(),
    })?;
    Ok(ClusterAccess {
        server,
        ca_data: cluster.certificate_authority_data.clone(),
        ca_file: cluster.certificate_authority.clone(),
        tls_server_name: cluster.tls_server_name.clone(),
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
    })
}

pub fn validate_api_server(url: &str) -> Result<(), LinkError> {
    let ok = ["https://", "http://"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(LinkError::BadApiServer(url.to_owned()))
    }
}

pub fn validate_selector(selector: &str) -> Result<(), LinkError> {
    crate::sim::selector::LabelSelector::parse(selector)
        .map(drop)
        .map_err(|e| LinkError::BadSelector {
            selector: selector.to_owned(),
            reason: e.to_string(),
        })
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address.
pub fn parse_gateway_address(s: &str) -> Result<(String, Option<u16>), LinkError> {
    let bad = || LinkError::BadGatewayAddress(s.to_owned());
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':').ok_or_else(bad)?).ok_or_else(bad)?),
        };
        return if host.parse::<std::net::Ipv6Addr>().is_ok() {
            Ok((host.to_owned(), port))
        } else {
            Err(bad())
        };
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((s.to_owned(), None));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(parse_port(p).ok_or_else(bad)?)),
        None => (s, None),
    };
    let host_ok = host.parse::<std::net::Ipv4Addr>().is_ok()
        || k8s::names::is_dns1123_subdomain(&host.to_ascii_lowercase());
    if host_ok {
        Ok((host.to_owned(), port))
    } else {
        Err(bad())
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse().ok().filter(|p| *p > 0)
}

/// Hosts of a LoadBalancer Service (`status.loadBalancer.ingress[].ip|hostname`) and the port
/// named `mc-gateway` (the inbound port callers dial).
pub fn gateway_of_service(svc: &Service) -> (Vec<String>, Option<u16>) {
    let hosts = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect()
        })
        .unwrap_or_default();
    let port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(k8s::GATEWAY_NAME))
        })
        .and_then(|p| u16::try_from(p.port).ok());
    (hosts, port)
}

/// Whether two PEM anchor bundles hold at least one identical certificate.
pub fn anchors_overlap(a: &str, b: &str) -> bool {
    let certs = |pem: &str| -> Vec<Vec<u8>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .filter_map(Result::ok)
            .map(|c| c.as_ref().to_vec())
            .collect()
    };
    let b = certs(b);
    certs(a).iter().any(|c| b.contains(c))
}

fn bundle_is_empty(pem: &str) -> bool {
    !CertificateDer::pem_slice_iter(pem.as_bytes()).any(|c| c.is_ok())
}

/// The two installations, as read by `mc link`.
#[derive(Debug, Clone)]
pub struct Pair<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub source: &'a McConfig,
    pub source_namespace: &'a str,
    pub target: &'a McConfig,
    pub target_namespace: &'a str,
}

/// Refusals that need both installations: same cluster, empty or disjoint anchor bundles.
pub fn check_pair(p: &Pair<'_>) -> Result<(), LinkError> {
    if p.source.cluster_name == p.target.cluster_name {
        return Err(LinkError::SameCluster {
            from: p.from.to_owned(),
            to: p.to.to_owned(),
            cluster: p.source.cluster_name.clone(),
        });
    }
    for (context, namespace, config) in [
        (p.from, p.source_namespace, p.source),
        (p.to, p.target_namespace, p.target),
    ] {
        if bundle_is_empty(&config.ca_bundle) {
            return Err(LinkError::EmptyBundle {
                context: context.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
    }
    if !anchors_overlap(&p.source.ca_bundle, &p.target.ca_bundle) {
        return Err(LinkError::NoSharedAnchor {
            from: p.from.to_owned(),
            to: p.to.to_owned(),
        });
    }
    Ok(())
}

/// Refuses to overwrite a Link of the same name that was made for a different cluster. A Link
/// without the id annotation (made by hand) is compared by API server instead.
pub fn check_existing(
    existing: Option<&Link>,
    from: &str,
    to: &str,
    target_id: &str,
    api_server: &str,
) -> Result<(), LinkError> {
    let Some(link) = existing else {
        return Ok(());
    };
    let recorded = link
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_TARGET_ID));
    let (existing, wanted) = match recorded {
        Some(id) if id == target_id => return Ok(()),
        Some(id) => (id.clone(), target_id.to_owned()),
        None if link.spec.api_server == api_server => return Ok(()),
        None => (link.spec.api_server.clone(), api_server.to_owned()),
    };
    Err(LinkError::LinkedElsewhere {
        from: from.to_owned(),
        to: to.to_owned(),
        link: format!(
            "{}/{}",
            link.metadata.namespace.as_deref().unwrap_or_default(),
            link.metadata.name.as_deref().unwrap_or_default()
        ),
        existing,
        wanted,
    })
}

/// Everything the Link's spec is built from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub target: &'a McConfig,
    pub target_namespace: &'a str,
    pub target_cluster_domain: &'a str,
    pub api_server: &'a str,
    pub gateway_addresses: Vec<String>,
    pub gateway_port: u16,
    pub selector: &'a str,
}

/// The Link's spec: every field of the contract, filled.
pub fn link_spec(i: &SpecInput<'_>) -> LinkSpec {
    let t = i.target;
    LinkSpec {
        target_cluster_name: t.cluster_name.clone(),
        target_cluster_domain: i.target_cluster_domain.to_owned(),
        target_trust_domain: t.trust_domain.clone(),
        api_server: i.api_server.to_owned(),
        credentials_secret: k8s::link_secret_name(&t.cluster_name),
        gateway_addresses: i.gateway_addresses.clone(),
        gateway_port: i.gateway_port,
        gateway_identity: t.gateway_identity.clone().unwrap_or_else(|| {
            crate::identity::gateway_dns_name_in(
                i.target_namespace,
                &t.cluster_name,
                &t.trust_domain,
            )
        }),
        probe: ProbeSpec::default(),
        selector: i.selector.to_owned(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "mc");

/// `Link <tgt>` in the source's mc namespace.
pub fn link_object(namespace: &str, spec: LinkSpec, target_id: &str) -> Link {
    let name = spec.target_cluster_name.clone();
    let mut link = Link::new(&name, spec);
    link.metadata.namespace = Some(namespace.to_owned());
    link.metadata.labels = labels(&[PART_OF]);
    link.metadata.annotations = labels(&[(ANNOTATION_TARGET_ID, target_id)]);
    link
}

/// `Secret mc-link-<tgt>` holding the kubeconfig (as `stringData`, so printed YAML is readable).
pub fn link_secret(namespace: &str, target: &str, kubeconfig: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(k8s::link_secret_name(target)),
            namespace: Some(namespace.to_owned()),
            labels: labels(&[PART_OF]),
            ..Default::default()
        },
        type_: Some(k8s::LINK_SECRET_TYPE.to_owned()),
        string_data: Some(BTreeMap::from([(
            k8s::LINK_SECRET_KEY.to_owned(),
            kubeconfig.to_owned(),
        )])),
        ..Default::default()
    }
}

/// A kubeconfig for the target with one context, authenticated by `token`.
pub fn remote_kubeconfig(
    target: &str,
    user: &str,
    access: &ClusterAccess,
    token: &str,
) -> Result<String, LinkError> {
    let mut cluster = json!({"server": access.server});
    if let Some(ca) = &access.ca_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if let Some(name) = &access.tls_server_name {
        cluster["tls-server-name"] = json!(name);
    }
    if access.insecure {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": target, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": target, "context": {"cluster": target, "user": user}}],
        "current-context": target,
    });
    serde_saphyr::to_string(&kc).map_err(|e| LinkError::Yaml(e.to_string()))
}

/// base64 of a PEM, as a kubeconfig's `certificate-authority-data`.
pub fn ca_data_of_pem(pem: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// The objects in the target that give `source` its read access.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteAccess {
    pub service_account: ServiceAccount,
    pub cluster_role_binding: ClusterRoleBinding,
    pub role_binding: RoleBinding,
}

pub fn remote_access(target_namespace: &str, source: &str) -> RemoteAccess {
    let name = k8s::remote_access_account(source);
    let meta = |namespace: Option<&str>| ObjectMeta {
        name: Some(name.clone()),
        namespace: namespace.map(str::to_owned),
        labels: labels(&[PART_OF, (LABEL_LINK_SOURCE, source)]),
        ..Default::default()
    };
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(target_namespace.to_owned()),
        api_group: None,
    }]);
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: k8s::REMOTE_ACCESS_ROLE.into(),
    };
    RemoteAccess {
        service_account: ServiceAccount {
            metadata: meta(Some(target_namespace)),
            ..Default::default()
        },
        cluster_role_binding: ClusterRoleBinding {
            metadata: meta(None),
            role_ref: role_ref("ClusterRole"),
            subjects: subjects.clone(),
        },
        role_binding: RoleBinding {
            metadata: meta(Some(target_namespace)),
            role_ref: role_ref("Role"),
            subjects,
        },
    }
}

/// A `kubernetes.io/service-account-token` Secret for `--token-kind secret`. Each run creates a
/// new one (`generateName`) before deleting the older ones, so the source never holds a token
/// that was already revoked.
pub fn token_secret(target_namespace: &str, source: &str) -> Secret {
    let account = k8s::remote_access_account(source);
    Secret {
        metadata: ObjectMeta {
            generate_name: Some(format!("{account}-token-")),
            namespace: Some(target_namespace.to_owned()),
            labels: labels(&[PART_OF, (LABEL_LINK_SOURCE, source)]),
            annotations: labels(&[(ANNOTATION_SA_NAME, &account)]),
            ..Default::default()
        },
        type_: Some(SA_TOKEN_SECRET_TYPE.to_owned()),
        ..Default::default()
    }
}

/// What `mc unlink` could not delete in an unreachable target, and the commands that do it.
pub fn leftovers_in_target(to: &str, target_namespace: &str, source: &str) -> String {
    let name = k8s::remote_access_account(source);
    format!(
        "still to delete in {to}: ServiceAccount {target_namespace}/{name} (its tokens stop working with it), RoleBinding {target_namespace}/{name} and ClusterRoleBinding {name}; when {to} is back, run `kubectl --context {to} -n {target_namespace} delete --ignore-not-found serviceaccount/{name} rolebinding/{name} && kubectl --context {to} delete --ignore-not-found clusterrolebinding/{name}` (or re-run `mc unlink`)"
    )
}

/// The finalizers of an object without `ours`.
pub fn without_finalizer(finalizers: &[String], ours: &str) -> Vec<String> {
    finalizers.iter().filter(|f| *f != ours).cloned().collect()
}

#[cfg(test)]
mod tests;
