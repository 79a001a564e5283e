//! `mc gateways stat`: one row per Link per source cluster, from the Link status the mirror
//! controller writes; `--watch` refreshes every probe period.

use std::io::IsTerminal as _;
use std::time::Duration;

use kube::api::{Api, ListParams};

use super::output::OutputFormat;
use crate::check::stat::{self, GatewayRow};
use crate::k8s::Link;
use crate::runtime::ClientArgs;

#[derive(Debug, clap::Args)]
pub struct GatewaysArgs {
    #[command(subcommand)]
    pub command: GatewaysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum GatewaysCommand {
    /// Liveness and probe latency of every linked gateway, as each source cluster sees it.
    Stat(StatArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mc gateways stat --context east --context west
  mc gateways stat --all-contexts --watch
  mc gateways stat -o json | jq '.[] | select(.alive == false)'

Latencies are the p50/p95/p99 of the probe window that mc mirror records in each Link's status
(only read access to Links is needed).")]
pub struct StatArgs {
    /// Every context of the kubeconfig.
    #[arg(long)]
    pub all_contexts: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Refresh in place every probe period until interrupted.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Namespace mc is installed in.
    #[arg(long, default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

pub fn run(args: GatewaysArgs, client: ClientArgs) -> anyhow::Result<()> {
    let GatewaysCommand::Stat(args) = args.command;
    let StatArgs {
        all_contexts,
        output,
        watch,
        namespace,
    } = args;
    let contexts = super::check::contexts(&client, all_contexts)?;
    super::runtime()?.block_on(async {
        let stop = crate::runtime::shutdown_token();
        let mut clients = Vec::new();
        for (context, label) in &contexts {
            clients.push((client.connect_to(context.as_deref()).await?, label.clone()));
        }
        let terminal = std::io::stdout().is_terminal();
        loop {
            let (rows, period) = read_rows(&clients, &namespace).await?;
            let mut text = match output {
                OutputFormat::Table if rows.is_empty() => format!(
                    "No Links in {} (namespace {namespace}): nothing is linked yet. Link two clusters with `mc link --from SOURCE --to TARGET`.\n",
                    contexts.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join(", ")
                ),
                OutputFormat::Table => format!("{}\n", stat::table(&rows)),
                OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Yaml => serde_saphyr::to_string(&rows)?,
            };
            if watch && terminal {
                // Clear the screen and home the cursor: the table refreshes in place.
                text = format!("\x1b[2J\x1b[H{text}");
            } else if watch {
                text.push('\n');
            }
            super::write_stdout(&text)?;
            if !watch {
                return anyhow::Ok(());
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(period) => {}
            }
        }
    })
}

/// Rows of every context, and the shortest probe period among their Links.
async fn read_rows(
    clients: &[(kube::Client, String)],
    namespace: &str,
) -> anyhow::Result<(Vec<GatewayRow>, Duration)> {
    let now = time::OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    let mut period = 3;
    for (client, label) in clients {
        let links = Api::<Link>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot list Links in {namespace} of context {label}: {}; check that mc is installed there (`mc check --context {label}`)",
                    super::link::reason(&e)
                )
            })?;
        for l in &links.items {
            period = period.min(l.spec.probe.period_seconds.max(1));
        }
        rows.extend(stat::rows(label, &links.items, now));
    }
    Ok((rows, Duration::from_secs(u64::from(period))))
}
