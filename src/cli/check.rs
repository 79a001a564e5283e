//! `mc check`: diagnose installations and their links, Linkerd-style, from what the
//! controllers observed. Gathering and judging live in `crate::check`; this file parses flags,
//! repeats with `--wait`, and prints.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::check::render::{self, Style};
use crate::check::{Check, Summary, gather, rules};
use crate::runtime::ClientArgs;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckOutput {
    /// Categories, one line per check, hints under problems.
    #[default]
    Table,
    /// Every check with category, name, result, message and hint.
    Json,
    /// Only warnings and errors, and the summary.
    Short,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mc check                                   # the current context
  mc check --context east --context west     # both, and the links between them
  mc check --all-contexts -o short
  mc check --wait 2m                         # until everything passes (e.g. after install)

Exits 1 when a check fails, 0 when there are only warnings. Each problem has a hint pointing
into docs/troubleshooting.md. Links are judged by what mc mirror recorded in their status;
add the target's --context, or --direct, to also compare both sides live.")]
pub struct CheckArgs {
    /// Check every context of the kubeconfig.
    #[arg(long)]
    pub all_contexts: bool,
    /// Retry while checks fail, up to this long (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: CheckOutput,
    /// Also read each Link's target through the link's own credentials (from this machine).
    #[arg(long)]
    pub direct: bool,
    /// Namespace mc is installed in.
    #[arg(long, default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// The contexts a multi-cluster command looks at: `(context to connect to, label to show)`.
pub(super) fn contexts(
    client: &ClientArgs,
    all: bool,
) -> anyhow::Result<Vec<(Option<String>, String)>> {
    if all {
        let kc = client.kubeconfig_file()?;
        let names: Vec<(Option<String>, String)> = kc
            .contexts
            .iter()
            .map(|c| (Some(c.name.clone()), c.name.clone()))
            .collect();
        anyhow::ensure!(
            !names.is_empty(),
            "--all-contexts: the kubeconfig has no contexts; pass --kubeconfig"
        );
        return Ok(names);
    }
    if client.contexts.is_empty() {
        let label = client
            .kubeconfig_file()
            .ok()
            .and_then(|kc| kc.current_context)
            .unwrap_or_else(|| "(current)".into());
        return Ok(vec![(None, label)]);
    }
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for c in &client.contexts {
        if !out.iter().any(|(_, l)| l == c) {
            out.push((Some(c.clone()), c.clone()));
        }
    }
    Ok(out)
}

async fn run_once(
    client: &ClientArgs,
    contexts: &[(Option<String>, String)],
    namespace: &str,
    direct: bool,
) -> anyhow::Result<Vec<Check>> {
    let mut gathered = Vec::new();
    for (context, label) in contexts {
        let config = client.config_for(context.as_deref()).await?;
        gathered.push(gather::cluster(config, label, namespace));
    }
    let mut facts = futures::future::join_all(gathered).await;
    gather::attach_remotes(&mut facts, direct).await;
    Ok(rules::evaluate(&facts, time::OffsetDateTime::now_utc()))
}

pub fn run(args: CheckArgs, client: ClientArgs) -> anyhow::Result<()> {
    let CheckArgs {
        all_contexts,
        wait,
        output,
        direct,
        namespace,
    } = args;
    anyhow::ensure!(
        crate::k8s::names::is_dns1123_label(&namespace),
        "--namespace {namespace:?} is not a namespace name; mc installs into mc-system by default"
    );
    let contexts = contexts(&client, all_contexts)?;
    let checks = super::runtime()?.block_on(async {
        let deadline = wait.map(|w| Instant::now() + w);
        let progress = wait.map(|_| super::progress::Progress::new());
        loop {
            let checks = run_once(&client, &contexts, &namespace, direct).await?;
            let failing: Vec<&Check> = checks
                .iter()
                .filter(|c| c.result == crate::check::Outcome::Error)
                .collect();
            match (deadline, &progress, failing.first()) {
                (Some(d), Some(p), Some(first)) if Instant::now() < d => {
                    p.step(format!(
                        "waiting for {} failing check(s): {} ({})",
                        failing.len(),
                        first.name,
                        first.context
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => return anyhow::Ok(checks),
            }
        }
    })?;
    let summary = Summary::of(&checks);
    match output {
        CheckOutput::Json => {
            let doc = serde_json::json!({ "checks": checks, "summary": summary });
            super::write_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).context("cannot encode the checks")?
            ))?;
        }
        CheckOutput::Table | CheckOutput::Short => {
            let fancy = std::io::stdout().is_terminal();
            let color = fancy && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let style = Style {
                fancy,
                color,
                short: output == CheckOutput::Short,
            };
            super::write_stdout(&render::text(&checks, style))?;
        }
    }
    if summary.errors > 0 {
        anyhow::bail!(
            "{} check(s) failed; each hint above names the fix (docs/troubleshooting.md)",
            summary.errors
        );
    }
    Ok(())
}
