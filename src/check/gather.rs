//! The I/O half of `mc check`: reads one cluster into [`ClusterFacts`] (API reads, one
//! SelfSubjectAccessReview per needed permission as each component's ServiceAccount, one TLS
//! handshake with the local gateway), then attaches to each Link a live view of its target when
//! the target is another given context, or with `--direct` through the link's credentials.
//!
//! Every read failure is recorded as a fact, never returned: `mc check` reports it as a check.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt as _, ResourceExt};

use super::facts::{
    AccessFact, ClusterFacts, Credentials, DeploymentFact, DeploymentState, GatewayServiceFact,
    LinkEvent, LinkFacts, MirrorFact, Read, RemoteView,
};
use super::rbac::{self, NEEDS, Need, RbacObjects};
use crate::k8s::{
    ANNOTATION_GATEWAY_PORTS, ANNOTATION_REMOTE_SERVICE, CONFIG_MAP, ClusterRole,
    ClusterRoleBinding, ConfigMap, CustomResourceDefinition, Deployment, Event, GATEWAY_NAME,
    GATEWAY_PORT, ISSUER_SECRET, LABEL_EXPORTED, LABEL_MIRROR_OF, LINK_SECRET_KEY, Link,
    MIRROR_NAME, McConfig, Namespace, REMOTE_ACCESS_ROLE, Role, RoleBinding, Secret, Service,
    ServiceAccount, TrafficSplit,
};

/// How long one TLS handshake with the gateway may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds on every API request, so that a dead API server makes a failed check, not a hang.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

use crate::runtime::client::reason;

async fn get_opt<K>(api: &Api<K>, name: &str) -> Read<Option<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|e| reason(&e))
}

/// Reads one cluster. `config` is the context's client configuration (cloned to impersonate the
/// components' ServiceAccounts).
pub async fn cluster(mut config: kube::Config, context: &str, namespace: &str) -> ClusterFacts {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    let mut f = ClusterFacts::unread(context, namespace);
    let client = match Client::try_from(config.clone()) {
        Ok(c) => c,
        Err(e) => {
            f.version = Err(e.to_string());
            return f;
        }
    };
    f.version = match client.apiserver_version().await {
        Ok(info) => {
            let num = |s: &str| {
                s.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            };
            Ok((num(&info.major), num(&info.minor), info.git_version))
        }
        Err(e) => Err(reason(&e)),
    };
    if f.version.is_err() {
        return f;
    }
    let ns = namespace;
    for name in [Link::crd_name(), TrafficSplit::crd_name()] {
        let established = get_opt(&Api::<CustomResourceDefinition>::all(client.clone()), name)
            .await
            .map(|crd| {
                crd.map(|c| {
                    c.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
            });
        f.crds.push((name.to_owned(), established));
    }
    f.rbac_objects = rbac_objects(&client, ns).await;
    (f.access, f.access_by_rules) = access(&client, &config, ns).await;
    f.namespace_exists = get_opt(&Api::<Namespace>::all(client.clone()), ns)
        .await
        .map(|n| n.is_some());
    if f.namespace_exists != Ok(true) {
        return f;
    }
    f.config = get_opt(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        CONFIG_MAP,
    )
    .await
    .map(|cm| cm.map(|cm| McConfig::from_config_map(&cm, ns).map_err(|e| e.to_string())));
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for name in [GATEWAY_NAME, MIRROR_NAME] {
        let state = get_opt(&deployments, name)
            .await
            .map(|d| d.map(deployment_state));
        f.deployments.push(DeploymentFact {
            name: name.to_owned(),
            state,
        });
    }
    let service = get_opt(
        &Api::<Service>::namespaced(client.clone(), ns),
        GATEWAY_NAME,
    )
    .await;
    f.gateway_service = service.map(|s| s.map(|s| gateway_service(&s)));
    f.issuer_pem = get_opt(
        &Api::<Secret>::namespaced(client.clone(), ns),
        ISSUER_SECRET,
    )
    .await
    .map(|s| {
        s.and_then(|s| s.data)
            .and_then(|d| d.get(crate::k8s::config::ISSUER_KEY_CERT).cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    });
    if let (Ok(Some(svc)), Ok(Some(Ok(config)))) = (&f.gateway_service, &f.config)
        && let Some(host) = svc.addresses.first()
    {
        let identity = config.gateway_identity.clone().unwrap_or_else(|| {
            crate::identity::gateway_dns_name_in(ns, &config.cluster_name, &config.trust_domain)
        });
        let addr = if host.contains(':') {
            format!("[{host}]:{GATEWAY_PORT}")
        } else {
            format!("{host}:{GATEWAY_PORT}")
        };
        f.gateway_chain = Some(
            super::tls::presented_chain(&addr, &identity, TLS_TIMEOUT)
                .await
                .map_err(|e| e.to_string()),
        );
    }
    f.links = links(&client, ns).await;
    f.mirrors = Api::<Service>::all(client.clone())
        .list(&ListParams::default().labels(LABEL_MIRROR_OF))
        .await
        .map(|l| l.items.iter().map(mirror).collect())
        .map_err(|e| reason(&e));
    f.exported = exported(&client, &format!("{LABEL_EXPORTED}=true")).await;
    f.remote_accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .map(|sa| sa.name_any())
                .filter(|n| n.starts_with(&format!("{REMOTE_ACCESS_ROLE}-")))
                .collect()
        })
        .map_err(|e| reason(&e));
    f.splits = Api::<TrafficSplit>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| reason(&e));
    f
}

async fn rbac_objects(client: &Client, ns: &str) -> Read<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    let mut add = |kind: &str, name: &str, found: Read<bool>| -> Result<(), String> {
        out.push((kind.to_owned(), name.to_owned(), found?));
        Ok(())
    };
    for name in [GATEWAY_NAME, MIRROR_NAME] {
        let sa = get_opt(&Api::<ServiceAccount>::namespaced(client.clone(), ns), name).await;
        add("ServiceAccount", name, sa.map(|o| o.is_some()))?;
        let crb = get_opt(&Api::<ClusterRoleBinding>::all(client.clone()), name).await;
        add("ClusterRoleBinding", name, crb.map(|o| o.is_some()))?;
        let rb = get_opt(&Api::<RoleBinding>::namespaced(client.clone(), ns), name).await;
        add("RoleBinding", name, rb.map(|o| o.is_some()))?;
    }
    for name in [GATEWAY_NAME, MIRROR_NAME, REMOTE_ACCESS_ROLE] {
        let cr = get_opt(&Api::<ClusterRole>::all(client.clone()), name).await;
        add("ClusterRole", name, cr.map(|o| o.is_some()))?;
        let r = get_opt(&Api::<Role>::namespaced(client.clone(), ns), name).await;
        add("Role", name, r.map(|o| o.is_some()))?;
    }
    Ok(out)
}

/// What each component's ServiceAccount may do: SelfSubjectAccessReviews while impersonating
/// it; when impersonation is refused, judged from the roles and bindings (the refusal is kept
/// in `ClusterFacts::access_by_rules`).
async fn access(
    client: &Client,
    config: &kube::Config,
    ns: &str,
) -> (Read<Vec<AccessFact>>, Option<String>) {
    match impersonated_reviews(config, ns).await {
        Ok(facts) => (Ok(facts), None),
        Err(refused) => match rbac_objects_of(client, ns).await {
            Ok(objects) => {
                let facts = NEEDS
                    .iter()
                    .map(|n| access_fact(n, ns, rbac::rules_allow(&objects, ns, n)))
                    .collect();
                (Ok(facts), Some(refused))
            }
            Err(e) => (
                Err(format!(
                    "cannot impersonate ({refused}) nor read the RBAC objects ({e})"
                )),
                None,
            ),
        },
    }
}

fn access_fact(n: &Need, ns: &str, allowed: bool) -> AccessFact {
    AccessFact {
        account: n.account.to_owned(),
        verb: n.verb.to_owned(),
        group: n.group.to_owned(),
        resource: n.resource_path(),
        namespace: n.namespaced.then(|| ns.to_owned()),
        allowed,
    }
}

async fn impersonated_reviews(config: &kube::Config, ns: &str) -> Read<Vec<AccessFact>> {
    let mut clients = BTreeMap::new();
    for account in [GATEWAY_NAME, MIRROR_NAME] {
        let mut c = config.clone();
        c.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{account}"));
        c.auth_info.impersonate_groups = Some(vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ]);
        clients.insert(account, Client::try_from(c).map_err(|e| e.to_string())?);
    }
    let mut out = Vec::new();
    for n in NEEDS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(n.verb.into()),
                    group: Some(n.group.into()),
                    resource: Some(n.resource.into()),
                    subresource: (!n.subresource.is_empty()).then(|| n.subresource.into()),
                    name: (!n.name.is_empty()).then(|| n.name.into()),
                    namespace: n.namespaced.then(|| ns.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(clients[n.account].clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| reason(&e))?;
        out.push(access_fact(n, ns, answer.status.is_some_and(|s| s.allowed)));
    }
    Ok(out)
}

async fn rbac_objects_of(client: &Client, ns: &str) -> Read<RbacObjects> {
    let lp = ListParams::default();
    let e = |e: kube::Error| reason(&e);
    Ok(RbacObjects {
        cluster_roles: Api::<ClusterRole>::all(client.clone())
            .list(&lp)
            .await
            .map_err(e)?
            .items,
        cluster_role_bindings: Api::<ClusterRoleBinding>::all(client.clone())
            .list(&lp)
            .await
            .map_err(e)?
            .items,
        roles: Api::<Role>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(e)?
            .items,
        role_bindings: Api::<RoleBinding>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(e)?
            .items,
    })
}

fn deployment_state(d: Deployment) -> DeploymentState {
    let status = d.status.unwrap_or_default();
    let condition = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available" && c.status != "True")
        .and_then(|c| c.message);
    DeploymentState {
        desired: d.spec.and_then(|s| s.replicas).unwrap_or(1),
        available: status.available_replicas.unwrap_or(0),
        condition,
    }
}

fn gateway_service(s: &Service) -> GatewayServiceFact {
    let spec = s.spec.clone().unwrap_or_default();
    let type_ = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let ingress: Vec<String> = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect()
        })
        .unwrap_or_default();
    let addresses = match type_.as_str() {
        "LoadBalancer" if ingress.is_empty() => spec.external_ips.unwrap_or_default(),
        "LoadBalancer" => ingress,
        _ => spec
            .external_ips
            .filter(|e| !e.is_empty())
            .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
            .unwrap_or_default(),
    };
    GatewayServiceFact { type_, addresses }
}

async fn links(client: &Client, ns: &str) -> Read<Vec<LinkFacts>> {
    let links = Api::<Link>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| reason(&e))?;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    // Events are history, not a verdict: when they cannot be read the checks go on without.
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut out = Vec::new();
    for link in links.items {
        let secret_name = link.spec.credentials_secret.clone();
        let credentials = get_opt(&secrets, &secret_name)
            .await
            .map(|s| s.map(|s| credentials(&s, &format!("{ns}/{secret_name}"))));
        let events = link_events(&events, &link.name_any());
        out.push(LinkFacts {
            link,
            credentials,
            events,
            remote: None,
        });
    }
    out.sort_by_key(|l| l.link.name_any());
    Ok(out)
}

/// The Events on Link `name`, newest first.
fn link_events(events: &[Event], name: &str) -> Vec<LinkEvent> {
    let mut out: Vec<LinkEvent> = events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Link")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .map(|e| LinkEvent {
            warning: e.type_.as_deref() == Some("Warning"),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            time: e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| {
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                }),
        })
        .collect();
    // RFC 3339 in UTC sorts as text.
    out.sort_by(|a, b| b.time.cmp(&a.time));
    out
}

/// The kubeconfig of a link Secret and its token's expiry.
pub fn credentials(secret: &Secret, shown: &str) -> Result<Credentials, String> {
    let yaml = secret
        .data
        .as_ref()
        .and_then(|d| d.get(LINK_SECRET_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| format!("Secret {shown} has no key {LINK_SECRET_KEY}"))?;
    kube::config::Kubeconfig::from_yaml(&yaml)
        .map_err(|e| format!("the kubeconfig in Secret {shown} is not valid: {e}"))?;
    // kube keeps the token behind `secrecy`; the plain YAML is enough to read its claims.
    let doc: serde_json::Value = serde_saphyr::from_str(&yaml)
        .map_err(|e| format!("the kubeconfig in Secret {shown} is not valid: {e}"))?;
    let token = doc["users"][0]["user"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the kubeconfig in Secret {shown} has no token"))?;
    Ok(Credentials {
        token_expiry: jwt_expiry(&token),
        kubeconfig: yaml,
    })
}

/// `exp` of a JWT (not verified: only the API server can, and it is only shown).
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

fn mirror(s: &Service) -> MirrorFact {
    let ann = s.annotations();
    MirrorFact {
        service: format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()),
        target: s.labels().get(LABEL_MIRROR_OF).cloned().unwrap_or_default(),
        remote: ann.get(ANNOTATION_REMOTE_SERVICE).cloned(),
        gateway_ports: match ann.get(ANNOTATION_GATEWAY_PORTS) {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str::<BTreeMap<String, u16>>(v)
                .map_err(|e| format!("annotation {ANNOTATION_GATEWAY_PORTS} is not valid: {e}"))
                .and_then(|m| {
                    m.into_iter()
                        .map(|(k, v)| {
                            k.parse::<u16>()
                                .map(|k| (k, v))
                                .map_err(|_| format!("{k:?} is not a port"))
                        })
                        .collect()
                }),
        },
        exported: s.labels().get(LABEL_EXPORTED).map(String::as_str) == Some("true"),
    }
}

async fn exported(client: &Client, selector: &str) -> Read<Vec<(String, bool)>> {
    let list = Api::<Service>::all(client.clone())
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| reason(&e))?;
    let mut out: Vec<(String, bool)> = list
        .items
        .iter()
        .map(|s| {
            (
                format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()),
                s.labels().contains_key(LABEL_MIRROR_OF),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Gives each Link the live view of its target: another gathered cluster with that name, else
/// (`direct`) a read through the link's own credentials.
pub async fn attach_remotes(clusters: &mut [ClusterFacts], direct: bool) {
    let by_name: BTreeMap<String, RemoteView> = clusters
        .iter()
        .filter_map(|c| match &c.config {
            Ok(Some(Ok(config))) => Some((
                config.cluster_name.clone(),
                RemoteView {
                    via: format!("context {}", c.context),
                    config: c.config.clone(),
                    exported: c.exported.clone(),
                    remote_accounts: Some(c.remote_accounts.clone()),
                },
            )),
            _ => None,
        })
        .collect();
    for c in clusters.iter_mut() {
        let Ok(links) = &mut c.links else { continue };
        for lf in links.iter_mut() {
            if let Some(view) = by_name.get(&lf.link.spec.target_cluster_name) {
                lf.remote = Some(view.clone());
            } else if direct {
                lf.remote = Some(direct_view(lf, &c.namespace).await);
            }
        }
    }
}

async fn direct_view(lf: &LinkFacts, namespace: &str) -> RemoteView {
    let via = "the link's credentials".to_owned();
    let failed = |e: String| RemoteView {
        via: via.clone(),
        config: Err(e.clone()),
        exported: Err(e),
        remote_accounts: None,
    };
    let yaml = match &lf.credentials {
        Ok(Some(Ok(c))) => c.kubeconfig.clone(),
        _ => return failed("the credentials Secret is missing or invalid".into()),
    };
    let client = match crate::mirror::remote::client_from_kubeconfig(
        &lf.link.spec.credentials_secret,
        &yaml,
        &lf.link.spec.api_server,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let config = get_opt(
        &Api::<ConfigMap>::namespaced(client.clone(), namespace),
        CONFIG_MAP,
    )
    .await
    .map(|cm| cm.map(|cm| McConfig::from_config_map(&cm, namespace).map_err(|e| e.to_string())));
    let exported = exported(&client, &lf.link.spec.selector).await;
    RemoteView {
        via,
        config,
        exported,
        remote_accounts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_of_a_jwt_is_read_and_other_tokens_have_none() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1800000000}"#)
        );
        assert_eq!(jwt_expiry(&jwt), Some(1_800_000_000));
        assert_eq!(jwt_expiry("legacy-opaque-token"), None);
        assert_eq!(jwt_expiry(&format!("a.{}.c", b64("not json"))), None);
    }
}
