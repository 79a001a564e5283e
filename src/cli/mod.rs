//! Command-line layer: clap structs parse, `run` functions do the work, errors map to exit codes.
//!
//! Each subcommand's arguments live in their own file so that the top level only dispatches.

mod check;
mod completions;
mod demo;
mod export;
mod gateway;
mod gateways;
mod identity;
mod install;
mod link;
mod mirror;
pub mod output;
mod progress;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Link Kubernetes clusters over mutual TLS.
///
/// mc renders the install manifests, creates trust anchors and certificates, links clusters,
/// checks them, and runs inside them as the service-mirror controller and the gateway.
#[derive(Debug, Parser)]
#[command(name = "mc", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Examples:
  mc identity init --dir ~/.mc/trust
  mc identity issue --dir ~/.mc/trust --cluster-name west
  mc install --cluster-name west --identity-dir ~/.mc/trust | kubectl apply -f -
  mc uninstall | kubectl delete --ignore-not-found -f -")]
pub struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr; the install manifests run both components with `json`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    #[command(flatten)]
    pub client: crate::runtime::ClientArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Create and inspect the trust anchor and per-cluster issuers.
    Identity(identity::IdentityArgs),
    /// Print the manifests that install mc into a cluster (pipe to `kubectl apply -f -`).
    Install(install::InstallArgs),
    /// Print references to everything `mc install` creates (pipe to `kubectl delete -f -`).
    Uninstall(install::UninstallArgs),
    /// Let one cluster (--from) mirror and call another's (--to) exported services.
    Link(Box<link::LinkArgs>),
    /// Remove a link: its mirrors, its credentials in --from and its access in --to.
    Unlink(link::UnlinkArgs),
    /// Export a Service to linked clusters (label mc.dev/exported=true).
    Export(export::ExportArgs),
    /// Stop exporting a Service (remove the label mc.dev/exported).
    Unexport(export::ExportArgs),
    /// Run the cross-cluster mTLS gateway.
    Gateway(Box<gateway::GatewayArgs>),
    /// Run the service-mirror controller (mirrors the exported Services of linked clusters).
    Mirror(mirror::MirrorArgs),
    /// Diagnose installations and their links (exit 1 when a check fails).
    Check(check::CheckArgs),
    /// Gateways of linked clusters: `mc gateways stat`.
    Gateways(gateways::GatewaysArgs),
    /// Run the seed scenario on two simulated clusters: split, failover, recovery.
    Demo(demo::DemoArgs),
    /// Run simulated Kubernetes API servers (for tests, demos and trying mc without a cluster).
    Sim(sim::SimArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    // Every TLS user in the process (kube client, sim, gateway) shares one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    init_logging(cli.verbose, cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", output::error_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Identity(args) => identity::run(args),
        Command::Install(args) => install::run_install(args),
        Command::Uninstall(args) => install::run_uninstall(args),
        Command::Link(args) => link::run_link(*args, cli.client),
        Command::Unlink(args) => link::run_unlink(args, cli.client),
        Command::Export(args) => export::run(args, cli.client, true),
        Command::Unexport(args) => export::run(args, cli.client, false),
        Command::Gateway(args) => gateway::run(*args, cli.client),
        Command::Mirror(args) => mirror::run(args, cli.client),
        Command::Sim(args) => sim::run(args),
        Command::Check(args) => check::run(args, cli.client),
        Command::Gateways(args) => gateways::run(args, cli.client),
        Command::Demo(args) => demo::run(args),
    }
}

/// Log format for long-running commands; `json` is what clusters want.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Logs go to stderr so that commands printing YAML or JSON stay pipeable.
pub fn init_logging(verbose: u8, format: Option<LogFormat>) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,mc=info",
        1 => "info,mc=debug",
        _ => "debug,mc=trace",
    };
    let filter = EnvFilter::try_from_env("MC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: not in files, pipes or `kubectl logs`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format.unwrap_or_default() {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A `--namespace`-like flag must name a namespace (a DNS-1123 label).
pub(crate) fn validate_namespace(flag: &str, ns: &str) -> anyhow::Result<()> {
    if !crate::k8s::names::is_dns1123_label(ns) {
        anyhow::bail!(
            "{flag} {ns:?} is not a namespace name (a DNS-1123 label: lowercase letters, digits and '-', at most 63); mc installs into mc-system by default"
        );
    }
    Ok(())
}

/// Tokio runtime for subcommands that do network I/O.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    crate::runtime::tokio().context("could not start the async runtime")
}

/// Writes to stdout; a closed pipe (`mc install | head`) is not worth a panic or a scary message.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to stdout"),
    }
}
