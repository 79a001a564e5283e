//! `mc export` / `mc unexport`: set or remove the label `mc.dev/exported=true` on a Service, after
//! checking that it exists and is not itself a mirror (re-exporting a mirror would chain links).
//!
//! The label is written with a JSON merge patch, not server-side apply: the Service belongs to
//! its owner, and an apply by mc would make the label mc's field, so that the owner's next
//! `kubectl apply` without it could not remove it, and `mc unexport` could not remove a label
//! the owner set by hand.

use anyhow::bail;
use clap::Args;
use kube::api::{Api, Patch, PatchParams};

use super::link::{is_not_found, reason};
use crate::k8s::{self, Service};
use crate::runtime::ClientArgs;

#[derive(Debug, Args)]
#[command(
    after_help = "Uses the global --context (default: the current context) and the context's namespace
unless -n is given. Linked clusters mirror the Service while it carries the label; the gateway
refuses new connections to it as soon as the label is gone.

Examples:
  mc --context west export backend-svc -n default
  mc --context west unexport backend-svc -n default
  kubectl --context west get svc -A -l mc.dev/exported=true     # what is exported"
)]
pub struct ExportArgs {
    /// Name of the Service.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Namespace of the Service (default: the context's namespace, else `default`).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
}

/// A validated export request.
#[derive(Debug)]
pub struct ExportConfig {
    pub service: String,
    pub namespace: Option<String>,
    pub context: Option<String>,
    pub export: bool,
}

impl ExportConfig {
    fn new(args: ExportArgs, client: &ClientArgs, export: bool) -> anyhow::Result<Self> {
        let ExportArgs { service, namespace } = args;
        if !k8s::names::is_dns1123_label(&service) {
            bail!(
                "{service:?} is not a Service name (lowercase letters, digits and '-', at most 63)"
            );
        }
        if let Some(ns) = &namespace
            && !k8s::names::is_dns1123_label(ns)
        {
            bail!("-n {ns:?} is not a namespace name");
        }
        Ok(ExportConfig {
            service,
            namespace,
            context: client.single_context()?.map(str::to_owned),
            export,
        })
    }
}

pub fn run(args: ExportArgs, client: ClientArgs, export: bool) -> anyhow::Result<()> {
    let config = ExportConfig::new(args, &client, export)?;
    super::runtime()?.block_on(run_async(config, client))
}

async fn run_async(config: ExportConfig, client_args: ClientArgs) -> anyhow::Result<()> {
    let ExportConfig {
        service,
        namespace,
        context,
        export,
    } = config;
    let client = client_args.connect_to(context.as_deref()).await?;
    let shown_context = context.as_deref().unwrap_or("the current context");
    let kubectl_context = context
        .as_deref()
        .map(|c| format!(" --context {c}"))
        .unwrap_or_default();
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    let api = Api::<Service>::namespaced(client, &namespace);
    let svc = match api.get(&service).await {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => bail!(
            "Service {namespace}/{service} not found in {shown_context}; `kubectl{kubectl_context} -n {namespace} get services` lists the Services there"
        ),
        Err(e) => bail!(
            "cannot read Service {namespace}/{service} in {shown_context}: {}",
            reason(&e)
        ),
    };
    let labels = svc.metadata.labels.unwrap_or_default();
    if let Some(target) = labels.get(k8s::LABEL_MIRROR_OF) {
        let remote = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k8s::ANNOTATION_REMOTE_SERVICE))
            .cloned()
            .unwrap_or_else(|| "its Service".into());
        bail!(
            "Service {namespace}/{service} in {shown_context} is a mirror of {remote} in cluster {target} (label {}); {} the original in {target} instead",
            k8s::LABEL_MIRROR_OF,
            if export { "export" } else { "unexport" }
        );
    }
    let exported = labels.get(k8s::LABEL_EXPORTED).map(String::as_str) == Some("true");
    let verb = if export { "exported" } else { "unexported" };
    if exported == export && (export || !labels.contains_key(k8s::LABEL_EXPORTED)) {
        println!("Service {namespace}/{service} is already {verb}");
        return Ok(());
    }
    let value = if export {
        serde_json::json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({"metadata": {"labels": {k8s::LABEL_EXPORTED: value}}});
    api.patch(
        &service,
        &PatchParams {
            field_manager: Some(k8s::FIELD_MANAGER.to_owned()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot label Service {namespace}/{service} in {shown_context}: {}",
            reason(&e)
        )
    })?;
    println!("Service {namespace}/{service} {verb}");
    Ok(())
}
