//! `mc install` and `mc uninstall`: print the manifests of an installation (no cluster access).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use time::OffsetDateTime;

use crate::identity::store::{self, Layout};
use crate::render::{self, InstallInput, values};

#[derive(Debug, Args)]
#[command(
    after_help = "Prints multi-document YAML to stdout; nothing is sent to a cluster. The output holds the
cluster's issuer key (Secret mc-issuer): pipe it to kubectl, do not commit it.

Needs DIR/anchor.crt and DIR/NAME/issuer.{crt,key} (from `mc identity init` and
`mc identity issue`), checked before anything is printed. The anchor key is not needed.
Values and their defaults: docs/installation.md (templates/values.yaml).

Examples:
  mc install --cluster-name west --identity-dir ~/.mc/trust | kubectl apply -f -
  mc install --cluster-name west --identity-dir ~/.mc/trust --set image.tag=0.2.0 --set gateway.replicas=3
  mc install --cluster-name east --identity-dir ~/.mc/trust --values east.yaml > east.yaml"
)]
pub struct InstallArgs {
    /// Name of this cluster (a DNS-1123 label), as used with `mc identity issue`.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Directory from `mc identity init` holding anchor.crt and NAME/issuer.{crt,key}.
    #[arg(long, value_name = "DIR")]
    pub identity_dir: Option<PathBuf>,
    /// Namespace to install into.
    #[arg(long, short = 'n', default_value = crate::k8s::DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// Override one value (dotted key), after --values; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// YAML file of values overriding the defaults; repeatable, later files win.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Prints a reference to every object `mc install` creates, namespaced objects first and the
Link CRD last; needs no identity directory. Delete every Link first
(`kubectl delete links.mc.dev --all -n mc-system`) while mc-mirror still runs, so that its
finalizer removes the mirror Services.

Examples:
  mc uninstall | kubectl delete --ignore-not-found -f -
  mc uninstall --namespace mc-west | kubectl delete --ignore-not-found -f -"
)]
pub struct UninstallArgs {
    /// Namespace mc was installed into.
    #[arg(long, short = 'n', default_value = crate::k8s::DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
}

/// A validated install request: names checked, values resolved (files read, no network).
#[derive(Debug)]
pub struct InstallConfig {
    pub cluster_name: String,
    pub identity: Layout,
    pub namespace: String,
    pub values: serde_json::Value,
}

impl TryFrom<InstallArgs> for InstallConfig {
    type Error = anyhow::Error;

    fn try_from(args: InstallArgs) -> anyhow::Result<Self> {
        let InstallArgs {
            cluster_name,
            identity_dir,
            namespace,
            set,
            values: value_files,
        } = args;
        let Some(cluster_name) = cluster_name else {
            bail!(
                "no cluster name given; pass --cluster-name NAME, the name its issuer was made with (`mc identity issue --cluster-name NAME`)"
            );
        };
        crate::identity::validate_cluster_name(&cluster_name)?;
        let Some(identity_dir) = identity_dir else {
            bail!(
                "no identity directory given; pass --identity-dir DIR, created with `mc identity init --dir DIR` and `mc identity issue --dir DIR --cluster-name {cluster_name}`"
            );
        };
        super::validate_namespace("--namespace", &namespace)?;
        let sets = set
            .iter()
            .map(|s| values::parse_set(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut files = Vec::new();
        for path in &value_files {
            let bytes = store::read_small_file(path, "check the --values path")?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("the values file {} is not UTF-8 text", path.display()))?;
            files.push((path.display().to_string(), text));
        }
        Ok(Self {
            cluster_name,
            identity: Layout::new(identity_dir),
            namespace,
            values: values::resolve(&files, &sets)?,
        })
    }
}

pub fn run_install(args: InstallArgs) -> anyhow::Result<()> {
    let InstallConfig {
        cluster_name,
        identity,
        namespace,
        values,
    } = InstallConfig::try_from(args)?;
    let now = OffsetDateTime::now_utc();
    let identity = store::load_for_install(&identity, &cluster_name, now)?;
    let input = InstallInput {
        cluster_name,
        namespace,
        trust_domain: identity.trust_domain,
        anchor_pem: identity.anchor_pem,
        issuer_cert_pem: identity.issuer_cert_pem,
        issuer_key_pem: identity.issuer_key_pem,
        values,
    };
    super::write_stdout(&render::render_install(&input)?)
}

pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let UninstallArgs { namespace } = args;
    super::validate_namespace("--namespace", &namespace)?;
    super::write_stdout(&render::render_uninstall(&namespace)?)
}
