//! Kubernetes client set-up shared by every command that talks to a cluster: the global
//! `--kubeconfig`/`--context` flags and one way to turn them into a `kube::Client`.
//!
//! Order, as kubectl and kube-rs do it: `--kubeconfig` file, else `$KUBECONFIG`/`~/.kube/config`,
//! else (no context asked for) the in-cluster ServiceAccount. Errors carry kube's reason once:
//! kube's own errors repeat their source in their message, so they are flattened to text here.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Global flags: `mc --context west gateway` and `mc gateway --context west` are the same.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else the in-cluster config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context). Commands that look at several
    /// clusters (`mc check`, `mc gateways stat`) take it more than once.
    #[arg(long = "context", global = true, value_name = "CONTEXT")]
    pub contexts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    File(#[from] super::kubeconfig::KubeconfigFileError),
    #[error(
        "cannot read the kubeconfig ($KUBECONFIG or ~/.kube/config): {reason}; pass --kubeconfig"
    )]
    ReadDefault { reason: String },
    #[error(
        "kubeconfig context {context:?} is not usable: {reason}; `kubectl config get-contexts` lists the contexts"
    )]
    Context { context: String, reason: String },
    #[error(
        "no Kubernetes configuration found ({reason}); pass --kubeconfig and --context, or set KUBECONFIG"
    )]
    Infer { reason: String },
    #[error("cannot build a Kubernetes client for {target}: {reason}")]
    Build { target: String, reason: String },
    #[error("this command talks to one cluster, but --context was given {0} times; give it once")]
    TooManyContexts(usize),
}

impl ClientArgs {
    /// The one context a single-cluster command uses (`None`: the kubeconfig's current one).
    pub fn single_context(&self) -> Result<Option<&str>, ClientError> {
        match self.contexts.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.as_str())),
            many => Err(ClientError::TooManyContexts(many.len())),
        }
    }

    /// A client for the single context of a one-cluster command.
    pub async fn connect(&self) -> Result<kube::Client, ClientError> {
        let context = self.single_context()?.map(str::to_owned);
        self.connect_to(context.as_deref()).await
    }

    /// A client for `context` (`None`: current context, or in-cluster when there is no file).
    pub async fn connect_to(&self, context: Option<&str>) -> Result<kube::Client, ClientError> {
        let config = self.config_for(context).await?;
        let target = context.unwrap_or("the current context").to_owned();
        kube::Client::try_from(config).map_err(|e| ClientError::Build {
            target,
            reason: e.to_string(),
        })
    }

    /// The kube `Config` for `context`.
    pub async fn config_for(&self, context: Option<&str>) -> Result<kube::Config, ClientError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        if self.kubeconfig.is_none() && context.is_none() {
            return kube::Config::infer().await.map_err(|e| ClientError::Infer {
                reason: e.to_string(),
            });
        }
        let kc = self.kubeconfig_file()?;
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| ClientError::Context {
                context: context
                    .map(str::to_owned)
                    .unwrap_or_else(|| "(current)".into()),
                reason: e.to_string(),
            })
    }

    /// The parsed kubeconfig (`--kubeconfig`, else `$KUBECONFIG`/`~/.kube/config`).
    pub fn kubeconfig_file(&self) -> Result<Kubeconfig, ClientError> {
        match &self.kubeconfig {
            Some(path) => read_kubeconfig(path),
            None => Kubeconfig::read().map_err(|e| ClientError::ReadDefault {
                reason: flatten(&e),
            }),
        }
    }
}

/// The message of a kube error, without kube's repetition of its source: the API server's own
/// message for API errors, else the innermost cause.
pub fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => {
            let mut innermost: &dyn std::error::Error = other;
            while let Some(next) = innermost.source() {
                innermost = next;
            }
            innermost.to_string()
        }
    }
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ClientError> {
    Ok(super::kubeconfig::read(path)?)
}

/// kube's kubeconfig errors embed their source in their message: keep the innermost text.
fn flatten(e: &kube::config::KubeconfigError) -> String {
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubeconfig_is_named_once_with_the_os_reason() {
        let args = ClientArgs {
            kubeconfig: Some("/nonexistent/kc".into()),
            contexts: vec![],
        };
        let msg = args.kubeconfig_file().unwrap_err().to_string();
        assert_eq!(msg.matches("/nonexistent/kc").count(), 1, "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn one_cluster_commands_refuse_two_contexts() {
        let args = ClientArgs {
            kubeconfig: None,
            contexts: vec!["a".into(), "b".into()],
        };
        assert!(matches!(
            args.single_context(),
            Err(ClientError::TooManyContexts(2))
        ));
    }
}
