//! `mc demo`: the seed scenario on two simulated clusters (the orchestration is in
//! [`crate::demo`]), and the hidden `mc demo client` that the demo's client Pod runs.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::output::OutputFormat;
use super::progress::Progress;
use crate::demo::{Demo, DemoConfig, Steps, Summary, report};

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Starts clusters east and west (simulated, with nodes that run mc's own Pods), installs mc,
links them both ways, deploys backend-svc in both, exports west's, splits connections 50/50 in
east with a TrafficSplit, and counts which cluster answers a client Pod. Then it kills west's
gateways, shows the traffic move to east, brings them back and shows the split return.

Every step prints what mc did and the command that does it on real clusters (docs/demo.md).
Nothing is left behind: no process, port or file (unless --keep).

Examples:
  mc demo
  mc demo -o json
  mc demo --keep      # then: export KUBECONFIG=... and kubectl --context east get trafficsplit"
)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
    /// Leave the clusters running at the end and print the KUBECONFIG to explore them; Ctrl-C stops.
    #[arg(long)]
    pub keep: bool,
    /// Output of the summary: a table with bar charts, or every phase as JSON/YAML.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Connections counted in the split and recovery phases.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub connections: u32,
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// The demo's client Pod: counts which Pods answer N new connections (GET /burst).
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Runs in the demo's client Pod (mc's image). Examples:
  mc demo client --listen 127.0.0.1:8080
  curl '127.0.0.1:8080/burst?target=127.60.0.5:8080&n=100&concurrency=8'")]
pub struct ClientArgs {
    /// Address to serve /burst on (the Pod IP).
    #[arg(long)]
    pub listen: SocketAddr,
}

struct ProgressSteps(Progress);

impl Steps for ProgressSteps {
    fn step(&self, what: &str) {
        self.0.step(what);
    }
    fn done(&self, what: &str, command: &str) {
        self.0.done(format!("{what}   $ {command}"));
    }
    fn note(&self, text: &str) {
        self.0.text(text);
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        command,
        keep,
        output,
        connections,
    } = args;
    let runtime = super::runtime()?;
    let result = match command {
        Some(DemoCommand::Client(c)) => runtime
            .block_on(async {
                let stop = crate::runtime::shutdown_token();
                crate::demo::client::serve(c.listen, stop).await
            })
            .context("the demo client failed"),
        None => {
            let exe = std::env::current_exe()
                .context("could not find the mc executable to run the demo's Pods")?;
            let mut config = DemoConfig::new(exe);
            config.connections = connections;
            runtime.block_on(demo(config, keep, output))
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn demo(config: DemoConfig, keep: bool, output: OutputFormat) -> anyhow::Result<()> {
    let stop = crate::runtime::shutdown_token();
    let steps = ProgressSteps(Progress::new());
    let mut demo = tokio::select! {
        d = Demo::start(config, &steps) => d?,
        _ = stop.cancelled() => anyhow::bail!("interrupted"),
    };
    let result = tokio::select! {
        r = demo.scenario(&steps) => r,
        _ = stop.cancelled() => Err(crate::demo::DemoError::Interrupted),
    };
    drop(steps);
    let result = result.map_err(anyhow::Error::from);
    match &result {
        Ok(summary) => print_summary(summary, output)?,
        // Printed now: with --keep the clusters stay up to look at what went wrong.
        Err(e) => eprintln!("error: {e:#}"),
    }
    if keep && !stop.is_cancelled() {
        eprintln!(
            "\nThe clusters keep running. In another shell:\n  export KUBECONFIG={}\n  kubectl --context east get trafficsplit,svc,pods\n  kubectl --context east -n mc-system get links\nPress Ctrl-C to stop them.",
            demo.kubeconfig().display()
        );
        stop.cancelled().await;
    }
    let left = demo.shutdown().await;
    if !left.is_empty() {
        eprintln!("! Pod processes still running after the demo: {left:?}");
    }
    match result {
        Ok(_) => Ok(()),
        Err(_) => anyhow::bail!("the demo did not complete (see above)"),
    }
}

fn print_summary(s: &Summary, output: OutputFormat) -> anyhow::Result<()> {
    if output != OutputFormat::Table {
        return super::output::print_structured(output, s);
    }
    let mut out = String::new();
    out.push_str(&report::table(&s.phases));
    for t in &s.phases {
        out.push_str(&format!("\n{} ({} connections)\n", t.phase, t.connections));
        out.push_str(&report::bars(t, 40));
    }
    out.push_str(&format!(
        "\nfailover: all new connections on east after {} ms (probe period {} ms; split status after {} ms)\n",
        s.failover.traffic_ms, s.probe_period_ms, s.failover.status_ms
    ));
    out.push_str(&format!(
        "recovery: west answering again after {} ms (split status after {} ms)\n",
        s.recovery.traffic_ms, s.recovery.status_ms
    ));
    for c in &s.checks {
        out.push_str(&format!(
            "check of {}: {} ({})\n",
            c.context, c.status, c.detail
        ));
    }
    out.push_str(&format!(
        "finished in {:.1} s\n",
        s.elapsed_ms as f64 / 1000.0
    ));
    super::write_stdout(&out)
}
