//! `mc link` and `mc unlink`: give one cluster (SRC) read access to another (TGT) and record the
//! link in SRC, or take both back. The decisions are in [`crate::link`]; this file reads the
//! clusters, writes the objects and reports progress.
//!
//! ```text
//! link:   read TGT (mc-config, mc-gateway, kube-system uid) + SRC (mc-config, Link) ─▶ refuse?
//!         ─▶ TGT: SA + bindings (apply), token ─▶ SRC: Secret, then Link (apply) ─▶ --wait Ready
//! unlink: SRC: delete Link, wait for the controller's finalizer (--force removes it)
//!         ─▶ SRC: delete Secret ─▶ TGT: delete SA + bindings (or say what is left there)
//! ```
//!
//! Two stages: [`LinkArgs`] → [`LinkConfig`] (validated, no network I/O) → [`run_link`].

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;

use super::progress::Progress;
use crate::k8s::{
    self, ClusterRoleBinding, ConfigMap, Link, McConfig, Namespace, RoleBinding, Secret, Service,
    ServiceAccount,
};
use crate::link::{self as plan, LinkError, TokenKind};
use crate::runtime::ClientArgs;

const DEFAULT_TOKEN_TTL: &str = "1y";
const DEFAULT_TIMEOUT: &str = "60s";
const POLL: Duration = Duration::from_millis(200);
/// A cluster that does not answer within this is reported as unreachable by `mc unlink`.
const UNLINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "SRC and TGT are kubeconfig contexts (--kubeconfig applies). Afterwards SRC's mirror
controller mirrors TGT's exported services, and SRC can call them through the gateways.

In TGT: ServiceAccount mc-remote-access-<src cluster> bound to the mc-remote-access roles, and a
token for it. In SRC: Secret mc-link-<tgt cluster> (a kubeconfig for TGT) and Link <tgt cluster>.
Running it again issues a fresh token and changes nothing else. Credentials and their expiry:
docs/linking.md.

Examples:
  mc link --from east --to west
  mc link --from east --to west --dry-run
  mc link --from east --to west --gateway-address gw.west.example.com:4143 --wait
  mc link --from east --to west --api-server-address https://10.0.0.10:6443 --token-ttl 90d"
)]
pub struct LinkArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// TGT's API server as reached from inside SRC (default: the server of the TGT context).
    #[arg(long, value_name = "URL")]
    pub api_server_address: Option<String>,
    /// TGT's gateway as reached from SRC (default: the load-balancer address of mc-gateway).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub gateway_address: Vec<String>,
    /// Cluster domain of TGT's Service names.
    #[arg(long, default_value = plan::DEFAULT_CLUSTER_DOMAIN, value_name = "DOMAIN")]
    pub target_cluster_domain: String,
    /// Label selector of the TGT Services to mirror.
    #[arg(long, default_value_t = format!("{}=true", k8s::LABEL_EXPORTED), value_name = "SELECTOR")]
    pub selector: String,
    /// How the link's token is issued: a TokenRequest that expires, or a Secret that does not.
    #[arg(long, value_enum, default_value_t = TokenKind::Request, value_name = "KIND")]
    pub token_kind: TokenKind,
    /// Lifetime asked for a `request` token (the API server may grant less; mc prints the expiry).
    #[arg(long, default_value = DEFAULT_TOKEN_TTL, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub token_ttl: Duration,
    /// Print the objects that would be written (YAML) and write nothing, in either cluster.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until SRC's mirror controller reports the Link Ready.
    #[arg(long, conflicts_with = "dry_run")]
    pub wait: bool,
    /// How long --wait waits, and how long a `secret` token may take to be filled.
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Deletes Link <tgt cluster> in SRC and waits until SRC's mirror controller has removed its
mirrors (finalizer mc.dev/mirrors), then Secret mc-link-<tgt cluster> in SRC, then in TGT the
ServiceAccount mc-remote-access-<src cluster> and its two bindings, so its tokens stop working.

Without a running controller the Link stays; --force removes the finalizer after --timeout and
lists the mirrors left behind. When TGT cannot be reached, SRC is cleaned and mc says what is
left to delete in TGT (exit 1, since the old token still works there).

Examples:
  mc unlink --from east --to west
  mc unlink --from east --to west --force --timeout 10s
  mc unlink --from east --to west --target-cluster-name west   # TGT unreachable, Link made with --api-server-address"
)]
pub struct UnlinkArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// After --timeout, remove the Link's finalizer instead of failing (mirrors may be left).
    #[arg(long)]
    pub force: bool,
    /// How long to wait for the controller to remove the Link's mirrors.
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// TGT's cluster name, when TGT cannot be reached to read it from its mc-config.
    #[arg(long, value_name = "NAME")]
    pub target_cluster_name: Option<String>,
}

/// A validated `mc link` request.
#[derive(Debug)]
pub struct LinkConfig {
    pub from: String,
    pub to: String,
    pub namespace: String,
    pub target_namespace: String,
    pub api_server: Option<String>,
    /// Hosts and the port (the same for all of them) given with --gateway-address.
    pub gateway: Option<(Vec<String>, Option<u16>)>,
    pub target_cluster_domain: String,
    pub selector: String,
    pub token_kind: TokenKind,
    pub token_ttl: Duration,
    pub dry_run: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// The two clusters of a link and mc's namespaces in them (`mc link`, `mc unlink`).
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// Context of the source cluster: the one that will call TGT's services.
    #[arg(long, value_name = "SRC")]
    pub from: String,
    /// Context of the target cluster: the one whose exported services SRC will see.
    #[arg(long, value_name = "TGT")]
    pub to: String,
    /// Namespace mc is installed in (in SRC, and in TGT unless --target-namespace).
    #[arg(long, short = 'n', default_value = k8s::DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// Namespace mc is installed in, in TGT.
    #[arg(long, value_name = "NS")]
    pub target_namespace: Option<String>,
}

impl PairArgs {
    /// `(from, to, namespace, target_namespace)`, validated; the target namespace defaults to
    /// `--namespace`.
    fn resolve(self) -> anyhow::Result<(String, String, String, String)> {
        let PairArgs {
            from,
            to,
            namespace,
            target_namespace,
        } = self;
        validate_contexts(&from, &to)?;
        super::validate_namespace("--namespace", &namespace)?;
        let target_namespace = target_namespace.unwrap_or_else(|| namespace.clone());
        super::validate_namespace("--target-namespace", &target_namespace)?;
        Ok((from, to, namespace, target_namespace))
    }
}

fn validate_contexts(from: &str, to: &str) -> anyhow::Result<()> {
    if from == to {
        bail!(
            "--from and --to are both {from:?}; a link joins two different clusters (give the context of each)"
        );
    }
    Ok(())
}

impl TryFrom<LinkArgs> for LinkConfig {
    type Error = anyhow::Error;

    fn try_from(args: LinkArgs) -> anyhow::Result<Self> {
        let LinkArgs {
            pair,
            api_server_address,
            gateway_address,
            target_cluster_domain,
            selector,
            token_kind,
            token_ttl,
            dry_run,
            wait,
            timeout,
        } = args;
        let (from, to, namespace, target_namespace) = pair.resolve()?;
        if let Some(url) = &api_server_address {
            plan::validate_api_server(url)?;
        }
        let gateway = if gateway_address.is_empty() {
            None
        } else {
            let mut hosts = Vec::new();
            let mut ports = Vec::new();
            for a in &gateway_address {
                let (host, port) = plan::parse_gateway_address(a)?;
                hosts.push(host);
                ports.push(port);
            }
            ports.dedup();
            if ports.len() > 1 {
                bail!(
                    "the --gateway-address values name different ports ({}); a Link has one gateway port",
                    gateway_address.join(", ")
                );
            }
            Some((hosts, ports[0]))
        };
        if !k8s::names::is_dns1123_subdomain(target_cluster_domain.trim_end_matches('.')) {
            bail!("--target-cluster-domain {target_cluster_domain:?} is not a DNS name");
        }
        plan::validate_selector(&selector)?;
        if token_ttl < Duration::from_secs(600) {
            bail!(
                "--token-ttl {} is shorter than 10m, the least a Kubernetes API server issues",
                humantime::format_duration(token_ttl)
            );
        }
        Ok(LinkConfig {
            from,
            to,
            namespace,
            target_namespace,
            api_server: api_server_address,
            gateway,
            target_cluster_domain,
            selector,
            token_kind,
            token_ttl,
            dry_run,
            wait,
            timeout,
        })
    }
}

/// The message of a kube error, without kube's repetition of its source.
pub(super) fn reason(e: &kube::Error) -> String {
    crate::runtime::client::reason(e)
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The mc-config of the installation behind `context`.
async fn read_config(client: &Client, context: &str, namespace: &str) -> anyhow::Result<McConfig> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let cm = match api.get(k8s::CONFIG_MAP).await {
        Ok(cm) => cm,
        Err(e) if is_not_found(&e) => {
            return Err(LinkError::NotInstalled {
                context: context.to_owned(),
                namespace: namespace.to_owned(),
            }
            .into());
        }
        Err(e) => bail!(
            "cannot read ConfigMap {namespace}/{} in context {context}: {}; is the cluster reachable (`kubectl --context {context} get ns`)?",
            k8s::CONFIG_MAP,
            reason(&e)
        ),
    };
    McConfig::from_config_map(&cm, namespace)
        .with_context(|| format!("the mc installation in context {context} is incomplete"))
}

fn apply_params() -> PatchParams {
    PatchParams::apply(k8s::FIELD_MANAGER).force()
}

/// Server-side apply of a typed object with mc's field manager.
async fn apply<K>(api: &Api<K>, obj: &K, context: &str) -> anyhow::Result<K>
where
    K: Resource + Serialize + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(obj))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot write {} {} in context {context}: {}; check that your kubeconfig user may write it there",
                K::kind(&K::DynamicType::default()),
                shown_name(obj.meta()),
                reason(&e)
            )
        })
}

fn shown_name(meta: &kube::api::ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

/// Prints the objects of a dry run as YAML documents, each headed by the context it is for.
fn print_dry_run(docs: &[(String, serde_json::Value)]) -> anyhow::Result<()> {
    let mut out = String::new();
    for (context, doc) in docs {
        out.push_str(&format!("---\n# in context {context}\n"));
        out.push_str(&serde_saphyr::to_string(doc).context("could not print an object as YAML")?);
    }
    super::write_stdout(&out)
}

pub fn run_link(args: LinkArgs, client: ClientArgs) -> anyhow::Result<()> {
    let config = LinkConfig::try_from(args)?;
    super::runtime()?.block_on(link(config, client))
}

async fn link(config: LinkConfig, client_args: ClientArgs) -> anyhow::Result<()> {
    let LinkConfig {
        from,
        to,
        namespace,
        target_namespace,
        api_server,
        gateway,
        target_cluster_domain,
        selector,
        token_kind,
        token_ttl,
        dry_run,
        wait,
        timeout,
    } = config;
    let progress = Progress::new();

    progress.step(format!("reading the kubeconfig entry of {to}"));
    let kc = client_args.kubeconfig_file()?;
    let mut access = plan::cluster_access(&kc, &to)?;
    if access.ca_data.is_none()
        && let Some(file) = &access.ca_file
    {
        let pem = std::fs::read(file).with_context(|| {
            format!("cannot read {file}, the certificate-authority of context {to}")
        })?;
        access.ca_data = Some(plan::ca_data_of_pem(&pem));
    }
    if let Some(url) = api_server {
        access.server = url;
    }
    if access.insecure {
        progress.warn(format!(
            "context {to} skips TLS verification (insecure-skip-tls-verify); so will the link"
        ));
    }

    progress.step(format!("reading the mc installations in {from} and {to}"));
    let src = client_args.connect_to(Some(&from)).await?;
    let tgt = client_args.connect_to(Some(&to)).await?;
    let (source, target) = tokio::try_join!(
        read_config(&src, &from, &namespace),
        read_config(&tgt, &to, &target_namespace)
    )?;
    plan::check_pair(&plan::Pair {
        from: &from,
        to: &to,
        source: &source,
        source_namespace: &namespace,
        target: &target,
        target_namespace: &target_namespace,
    })?;
    let target_id = Api::<Namespace>::all(tgt.clone())
        .get("kube-system")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read Namespace kube-system in context {to} (its uid identifies the cluster): {}",
                reason(&e)
            )
        })?
        .metadata
        .uid
        .unwrap_or_default();

    let (gateway_addresses, gateway_port) = match gateway {
        Some((hosts, port)) => (hosts, port.unwrap_or(k8s::GATEWAY_PORT)),
        None => {
            let svc = Api::<Service>::namespaced(tgt.clone(), &target_namespace)
                .get(k8s::GATEWAY_NAME)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read Service {target_namespace}/{} in context {to}: {}; re-run `mc install` there, or pass --gateway-address HOST[:PORT]",
                        k8s::GATEWAY_NAME,
                        reason(&e)
                    )
                })?;
            let (hosts, port) = plan::gateway_of_service(&svc);
            if hosts.is_empty() {
                return Err(LinkError::NoGatewayAddress {
                    context: to.clone(),
                    namespace: target_namespace.clone(),
                }
                .into());
            }
            (hosts, port.unwrap_or(k8s::GATEWAY_PORT))
        }
    };

    let links = Api::<Link>::namespaced(src.clone(), &namespace);
    // get_opt turns every 404 into None; a 404 on a list means the type is not served.
    if let Err(e) = links.list(&ListParams::default().limit(1)).await {
        if is_not_found(&e) {
            return Err(LinkError::NoCrd {
                context: from.clone(),
            }
            .into());
        }
        bail!(
            "cannot list Links in {namespace} in context {from}: {}",
            reason(&e)
        );
    }
    let existing = match links.get_opt(&target.cluster_name).await {
        Ok(l) => l,
        Err(e) => bail!(
            "cannot read Link {namespace}/{} in context {from}: {}",
            target.cluster_name,
            reason(&e)
        ),
    };
    plan::check_existing(existing.as_ref(), &from, &to, &target_id, &access.server)?;

    let spec = plan::link_spec(&plan::SpecInput {
        target: &target,
        target_namespace: &target_namespace,
        target_cluster_domain: &target_cluster_domain,
        api_server: &access.server,
        gateway_addresses,
        gateway_port,
        selector: &selector,
    });
    let link_obj = plan::link_object(&namespace, spec, &target_id);
    let remote = plan::remote_access(&target_namespace, &source.cluster_name);
    let user = k8s::remote_access_account(&source.cluster_name);

    if dry_run {
        drop(progress);
        let kubeconfig =
            plan::remote_kubeconfig(&target.cluster_name, &user, &access, plan::NOT_ISSUED)?;
        let mut docs = vec![
            (to.clone(), serde_json::to_value(&remote.service_account)?),
            (
                to.clone(),
                serde_json::to_value(&remote.cluster_role_binding)?,
            ),
            (to.clone(), serde_json::to_value(&remote.role_binding)?),
        ];
        if token_kind == TokenKind::Secret {
            docs.push((
                to.clone(),
                serde_json::to_value(plan::token_secret(&target_namespace, &source.cluster_name))?,
            ));
        }
        docs.push((
            from.clone(),
            serde_json::to_value(plan::link_secret(
                &namespace,
                &target.cluster_name,
                &kubeconfig,
            ))?,
        ));
        docs.push((from.clone(), serde_json::to_value(&link_obj)?));
        return print_dry_run(&docs);
    }

    progress.step(format!(
        "granting {} read access in {to}",
        source.cluster_name
    ));
    apply(
        &Api::<ServiceAccount>::namespaced(tgt.clone(), &target_namespace),
        &remote.service_account,
        &to,
    )
    .await?;
    apply(
        &Api::<ClusterRoleBinding>::all(tgt.clone()),
        &remote.cluster_role_binding,
        &to,
    )
    .await?;
    apply(
        &Api::<RoleBinding>::namespaced(tgt.clone(), &target_namespace),
        &remote.role_binding,
        &to,
    )
    .await?;
    progress.done(format!(
        "ServiceAccount {target_namespace}/{user} and its bindings in {to}"
    ));

    progress.step(format!("issuing a token for {user} in {to}"));
    let issued = match token_kind {
        TokenKind::Request => request_token(&tgt, &to, &target_namespace, &user, token_ttl).await?,
        TokenKind::Secret => {
            secret_token(&tgt, &to, &target_namespace, &source.cluster_name, timeout).await?
        }
    };

    progress.step(format!("writing the link into {from}"));
    let kubeconfig = plan::remote_kubeconfig(&target.cluster_name, &user, &access, &issued.token)?;
    let mut secret = plan::link_secret(&namespace, &target.cluster_name, &kubeconfig);
    // Written as `data`: `stringData` under server-side apply leaves `data` owned by nobody.
    secret.data = secret.string_data.take().map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, ByteString(v.into_bytes())))
            .collect()
    });
    apply(
        &Api::<Secret>::namespaced(src.clone(), &namespace),
        &secret,
        &from,
    )
    .await?;
    let written = apply(&links, &link_obj, &from).await?;
    progress.done(format!(
        "Secret {namespace}/{} and Link {namespace}/{} in {from}",
        k8s::link_secret_name(&target.cluster_name),
        target.cluster_name
    ));
    if let Some(old) = issued.superseded {
        // Only now that SRC holds the new token may the previous ones stop working.
        delete_token_secrets(&tgt, &target_namespace, &source.cluster_name, Some(&old)).await?;
    }
    match &issued.expires {
        Some(when) => progress.done(format!(
            "token expires {when}; run `mc link --from {from} --to {to}` again before then"
        )),
        None => progress.done("token does not expire; `mc unlink` revokes it"),
    }

    if wait {
        progress.step(format!(
            "waiting for {from}'s mirror controller to report Link {namespace}/{} Ready",
            target.cluster_name
        ));
        wait_ready(&links, &from, &namespace, &target.cluster_name, timeout).await?;
        progress.done(format!("Link {namespace}/{} is Ready", target.cluster_name));
    }
    drop(progress);
    println!(
        "linked {from} → {to}: {from} mirrors {}'s exported services (Link {namespace}/{}, generation {})",
        target.cluster_name,
        target.cluster_name,
        written.metadata.generation.unwrap_or_default()
    );
    Ok(())
}

struct Issued {
    token: String,
    expires: Option<String>,
    /// For a `secret` token: the name of the new Secret; the older ones are deleted after SRC
    /// holds the new token.
    superseded: Option<String>,
}

async fn request_token(
    tgt: &Client,
    to: &str,
    namespace: &str,
    account: &str,
    ttl: Duration,
) -> anyhow::Result<Issued> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            // The target's own API server is the audience: no audience list means exactly that.
            audiences: Vec::new(),
            expiration_seconds: Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(tgt.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot issue a token for ServiceAccount {namespace}/{account} in context {to}: {}; your user needs `create` on serviceaccounts/token there",
                reason(&e)
            )
        })?;
    let status = answer.status.with_context(|| {
        format!("the TokenRequest for {namespace}/{account} in context {to} returned no token")
    })?;
    Ok(Issued {
        token: status.token,
        expires: Some(status.expiration_timestamp.0.to_string()),
        superseded: None,
    })
}

async fn secret_token(
    tgt: &Client,
    to: &str,
    namespace: &str,
    source: &str,
    timeout: Duration,
) -> anyhow::Result<Issued> {
    let secrets = Api::<Secret>::namespaced(tgt.clone(), namespace);
    let created = secrets
        .create(
            &PostParams::default(),
            &plan::token_secret(namespace, source),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create a service-account-token Secret in {namespace} in context {to}: {}",
                reason(&e)
            )
        })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        let s = secrets.get(&name).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot read Secret {namespace}/{name} in context {to}: {}",
                reason(&e)
            )
        })?;
        if let Some(token) = s.data.as_ref().and_then(|d| d.get("token")) {
            let token = String::from_utf8(token.0.clone()).with_context(|| {
                format!("Secret {namespace}/{name} in {to} holds a token that is not text")
            })?;
            return Ok(Issued {
                token,
                expires: None,
                superseded: Some(name),
            });
        }
        if Instant::now() > deadline {
            bail!(
                "Secret {namespace}/{name} in context {to} got no token within {}; is the token controller of kube-controller-manager running? Use --token-kind request instead",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes the `secret`-kind token Secrets of `source` (all, or all but `keep`).
async fn delete_token_secrets(
    tgt: &Client,
    namespace: &str,
    source: &str,
    keep: Option<&str>,
) -> anyhow::Result<()> {
    let secrets = Api::<Secret>::namespaced(tgt.clone(), namespace);
    let selector = format!("{}={source}", plan::LABEL_LINK_SOURCE);
    let list = secrets
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| anyhow::anyhow!("cannot list token Secrets ({selector}): {}", reason(&e)))?;
    for s in list {
        let name = s.metadata.name.unwrap_or_default();
        if Some(name.as_str()) == keep || s.type_.as_deref() != Some(plan::SA_TOKEN_SECRET_TYPE) {
            continue;
        }
        delete_ok_if_gone(&secrets, &name).await.map_err(|e| {
            anyhow::anyhow!("cannot delete Secret {namespace}/{name}: {}", reason(&e))
        })?;
    }
    Ok(())
}

/// Deletes an object; already gone is success.
async fn delete_ok_if_gone<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn wait_ready(
    links: &Api<Link>,
    from: &str,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use crate::k8s::link::condition;
    let deadline = Instant::now() + timeout;
    loop {
        let link = links.get(name).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot read Link {namespace}/{name} in context {from}: {}",
                reason(&e)
            )
        })?;
        let conditions = link.status.map(|s| s.conditions).unwrap_or_default();
        let ready = conditions
            .iter()
            .any(|c| c.type_ == condition::READY && c.status == "True");
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            let waited = humantime::format_duration(timeout);
            if conditions.is_empty() {
                bail!(
                    "Link {namespace}/{name} in context {from} has no status after {waited}: no mirror controller has reported on it; is mc-mirror running (`kubectl --context {from} -n {namespace} get deploy mc-mirror`)?"
                );
            }
            let unmet: Vec<String> = [
                condition::READY,
                condition::REMOTE_REACHABLE,
                condition::GATEWAY_ALIVE,
            ]
            .iter()
            .filter_map(|t| match conditions.iter().find(|c| c.type_ == *t) {
                Some(c) if c.status == "True" => None,
                Some(c) => Some(format!("{t}={} ({}: {})", c.status, c.reason, c.message)),
                None => Some(format!("{t} not reported")),
            })
            .collect();
            bail!(
                "Link {namespace}/{name} in context {from} is not Ready after {waited}: {}; `kubectl --context {from} -n {namespace} describe link {name}` shows its status",
                unmet.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---- mc unlink ----

#[derive(Debug)]
pub struct UnlinkConfig {
    pub from: String,
    pub to: String,
    pub namespace: String,
    pub target_namespace: String,
    pub force: bool,
    pub timeout: Duration,
    pub target_cluster_name: Option<String>,
}

impl TryFrom<UnlinkArgs> for UnlinkConfig {
    type Error = anyhow::Error;

    fn try_from(args: UnlinkArgs) -> anyhow::Result<Self> {
        let UnlinkArgs {
            pair,
            force,
            timeout,
            target_cluster_name,
        } = args;
        let (from, to, namespace, target_namespace) = pair.resolve()?;
        if let Some(name) = &target_cluster_name {
            crate::identity::validate_cluster_name(name)?;
        }
        Ok(UnlinkConfig {
            from,
            to,
            namespace,
            target_namespace,
            force,
            timeout,
            target_cluster_name,
        })
    }
}

pub fn run_unlink(args: UnlinkArgs, client: ClientArgs) -> anyhow::Result<()> {
    let config = UnlinkConfig::try_from(args)?;
    super::runtime()?.block_on(unlink(config, client))
}

/// A client for TGT that gives up quickly, so that an unreachable target is reported instead
/// of waited on.
async fn impatient_client(client_args: &ClientArgs, context: &str) -> anyhow::Result<Client> {
    let mut config = client_args.config_for(Some(context)).await?;
    config.connect_timeout = Some(UNLINK_CONNECT_TIMEOUT);
    config.read_timeout = Some(UNLINK_CONNECT_TIMEOUT * 2);
    Client::try_from(config).map_err(|e| {
        anyhow::anyhow!(
            "cannot build a client for context {context}: {}",
            reason(&e)
        )
    })
}

async fn unlink(config: UnlinkConfig, client_args: ClientArgs) -> anyhow::Result<()> {
    let UnlinkConfig {
        from,
        to,
        namespace,
        target_namespace,
        force,
        timeout,
        target_cluster_name,
    } = config;
    let progress = Progress::new();
    progress.step(format!("reading the mc installations in {from} and {to}"));
    let src = client_args.connect_to(Some(&from)).await?;
    let source = read_config(&src, &from, &namespace).await?;
    let tgt = impatient_client(&client_args, &to).await?;
    // TGT being unreachable must not stop the cleanup of SRC: remember why and carry on.
    let (target_name, tgt_error) = match read_config(&tgt, &to, &target_namespace).await {
        Ok(t) => (Some(t.cluster_name), None),
        // Reachable, but mc is gone there: its name comes from SRC's Link, and the account
        // (which `mc uninstall` does not delete) can still be revoked.
        Err(e) if matches!(e.downcast_ref(), Some(LinkError::NotInstalled { .. })) => {
            progress.warn(format!("{e:#}"));
            (None, None)
        }
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let links = Api::<Link>::namespaced(src.clone(), &namespace);
    let target = match (target_name, target_cluster_name) {
        (Some(name), _) | (None, Some(name)) => name,
        (None, None) => {
            let server = plan::cluster_access(&client_args.kubeconfig_file()?, &to)?.server;
            find_link_by_server(&links, &from, &server)
                .await?
                .with_context(|| {
                    format!(
                        "{}no Link in {from} points at {to}'s API server {server}, so {to}'s cluster name is unknown: pass --target-cluster-name NAME",
                        tgt_error.as_ref().map(|e| format!("{e}; ")).unwrap_or_default()
                    )
                })?
        }
    };

    progress.step(format!(
        "deleting Link {namespace}/{target} in {from} (its mirrors go first)"
    ));
    match delete_ok_if_gone(&links, &target).await {
        Ok(true) => {
            wait_link_gone(
                &src, &links, &progress, &from, &namespace, &target, force, timeout,
            )
            .await?;
            progress.done(format!("deleted Link {namespace}/{target} in {from}"));
        }
        Ok(false) => progress.done(format!("no Link {namespace}/{target} in {from}")),
        Err(e) => bail!(
            "cannot delete Link {namespace}/{target} in context {from}: {}",
            reason(&e)
        ),
    }

    let secret = k8s::link_secret_name(&target);
    match delete_ok_if_gone(&Api::<Secret>::namespaced(src.clone(), &namespace), &secret).await {
        Ok(true) => progress.done(format!("deleted Secret {namespace}/{secret} in {from}")),
        Ok(false) => progress.done(format!("no Secret {namespace}/{secret} in {from}")),
        Err(e) => bail!(
            "cannot delete Secret {namespace}/{secret} in context {from}: {}",
            reason(&e)
        ),
    }

    let leftovers = plan::leftovers_in_target(&to, &target_namespace, &source.cluster_name);
    if let Some(why) = tgt_error {
        bail!(
            "{from} is unlinked from {target}, but {to} could not be reached ({why}); {leftovers}"
        );
    }
    progress.step(format!("revoking {}'s access in {to}", source.cluster_name));
    let account = k8s::remote_access_account(&source.cluster_name);
    let revoke = async {
        delete_ok_if_gone(
            &Api::<RoleBinding>::namespaced(tgt.clone(), &target_namespace),
            &account,
        )
        .await?;
        delete_ok_if_gone(&Api::<ClusterRoleBinding>::all(tgt.clone()), &account).await?;
        delete_ok_if_gone(
            &Api::<ServiceAccount>::namespaced(tgt.clone(), &target_namespace),
            &account,
        )
        .await?;
        Ok::<_, kube::Error>(())
    };
    if let Err(e) = revoke.await {
        bail!(
            "{from} is unlinked from {target}, but revoking its access in {to} failed ({}); {leftovers}",
            reason(&e)
        );
    }
    delete_token_secrets(&tgt, &target_namespace, &source.cluster_name, None).await?;
    progress.done(format!(
        "deleted ServiceAccount {target_namespace}/{account} and its bindings in {to}; its tokens no longer work"
    ));
    drop(progress);
    println!("unlinked {from} from {to}");
    Ok(())
}

async fn find_link_by_server(
    links: &Api<Link>,
    from: &str,
    server: &str,
) -> anyhow::Result<Option<String>> {
    let list = links
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot list Links in context {from}: {}", reason(&e)))?;
    Ok(list
        .into_iter()
        .find(|l| l.spec.api_server == server)
        .and_then(|l| l.metadata.name))
}

/// Waits for the controller to let the Link go; with `force`, removes the finalizer after the
/// timeout and reports the mirrors that stay.
#[allow(clippy::too_many_arguments)]
async fn wait_link_gone(
    src: &Client,
    links: &Api<Link>,
    progress: &Progress,
    from: &str,
    namespace: &str,
    name: &str,
    force: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let read = |e: kube::Error| {
        anyhow::anyhow!(
            "cannot read Link {namespace}/{name} in context {from}: {}",
            reason(&e)
        )
    };
    loop {
        let Some(link) = links.get_opt(name).await.map_err(read)? else {
            return Ok(());
        };
        if Instant::now() <= deadline {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let waited = humantime::format_duration(timeout);
        if !force {
            bail!(
                "Link {namespace}/{name} in context {from} is still there after {waited}: its finalizer {} waits for the mirror controller to delete its mirrors; is mc-mirror running (`kubectl --context {from} -n {namespace} get deploy mc-mirror`)? Re-run with --force to remove the finalizer and leave the mirrors",
                k8s::LINK_FINALIZER
            );
        }
        let finalizers = link.metadata.finalizers.clone().unwrap_or_default();
        let kept = plan::without_finalizer(&finalizers, k8s::LINK_FINALIZER);
        let patch = serde_json::json!({"metadata": {"finalizers": kept}});
        links
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot remove the finalizer of Link {namespace}/{name} in context {from}: {}",
                    reason(&e)
                )
            })?;
        let mirrors = Api::<Service>::all(src.clone())
            .list(&ListParams::default().labels(&format!("{}={name}", k8s::LABEL_MIRROR_OF)))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot list the mirrors of {name} in {from}: {}",
                    reason(&e)
                )
            })?;
        let left: Vec<String> = mirrors.iter().map(|s| shown_name(&s.metadata)).collect();
        if left.is_empty() {
            progress.warn(format!(
                "removed finalizer {} of Link {namespace}/{name} after {waited}; no mirrors of {name} are left",
                k8s::LINK_FINALIZER
            ));
        } else {
            progress.warn(format!(
                "removed finalizer {} of Link {namespace}/{name} after {waited}; mirrors left in {from}: {} (delete them with `kubectl --context {from} delete services -A -l {}={name}`)",
                k8s::LINK_FINALIZER,
                left.join(", "),
                k8s::LABEL_MIRROR_OF
            ));
        }
        if kept.is_empty() {
            // Other finalizers are someone else's business; ours was the last one.
            let gone_by = Instant::now() + Duration::from_secs(10);
            while links.get_opt(name).await.map_err(read)?.is_some() && Instant::now() < gone_by {
                tokio::time::sleep(POLL).await;
            }
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(extra: &[&str]) -> anyhow::Result<LinkConfig> {
        let argv = ["mc", "link", "--from", "east", "--to", "west"]
            .into_iter()
            .chain(extra.iter().copied());
        let cli = crate::cli::Cli::try_parse_from(argv)?;
        match cli.command {
            crate::cli::Command::Link(args) => LinkConfig::try_from(*args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_the_target_namespace_token_and_selector() {
        let c = config(&[]).unwrap();
        assert_eq!(c.target_namespace, "mc-system");
        assert_eq!(c.token_kind, TokenKind::Request);
        assert_eq!(c.token_ttl, Duration::from_secs(365 * 86400 + 6 * 3600));
        assert_eq!(c.selector, "mc.dev/exported=true");
        assert_eq!(c.gateway, None);
        let c = config(&["-n", "mc-east", "--target-namespace", "mc-west"]).unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.target_namespace.as_str()),
            ("mc-east", "mc-west")
        );
    }

    #[test]
    fn gateway_addresses_must_share_one_port() {
        let c = config(&[
            "--gateway-address",
            "a.example:443",
            "--gateway-address",
            "192.0.2.1:443",
        ])
        .unwrap();
        assert_eq!(
            c.gateway,
            Some((vec!["a.example".into(), "192.0.2.1".into()], Some(443)))
        );
        let e = config(&["--gateway-address", "a:443", "--gateway-address", "b"]).unwrap_err();
        assert!(e.to_string().contains("different ports"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_before_any_cluster_is_asked() {
        for (args, expected) in [
            (&["--token-ttl", "5m"][..], "shorter than 10m"),
            (
                &["--api-server-address", "10.0.0.1:6443"],
                "not an https://",
            ),
            (&["--selector", "a=("], "not a label selector"),
            (&["--target-namespace", "Bad"], "--target-namespace \"Bad\""),
            (&["--target-cluster-domain", "a..b"], "not a DNS name"),
        ] {
            let e = config(args).unwrap_err();
            assert!(e.to_string().contains(expected), "{args:?}: {e}");
        }
        // --wait has nothing to wait for in a dry run: a usage error.
        assert!(config(&["--dry-run", "--wait"]).is_err());
    }
}
