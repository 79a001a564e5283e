//! `mc identity init|issue|inspect`: create the trust anchor and per-cluster issuers, and read
//! certificates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::output::{OutputFormat, print_structured};
use crate::identity::inspect::{self, CertInfo};
use crate::identity::store::{self, Layout};
use crate::identity::{self as id, DEFAULT_ANCHOR_VALIDITY, DEFAULT_ISSUER_VALIDITY};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mc identity init --dir ~/.mc/trust
  mc identity issue --dir ~/.mc/trust --cluster-name west
  mc identity inspect ~/.mc/trust/west/issuer.crt

See docs/trust.md for how anchors, issuers and gateway identities relate.")]
pub struct IdentityArgs {
    #[command(subcommand)]
    pub command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create the trust anchor (a self-signed root CA) shared by every linked cluster.
    Init(InitArgs),
    /// Create a cluster's issuer (an intermediate CA signed by the anchor).
    Issue(IssueArgs),
    /// Show certificates: subject, SANs, serial, validity, CA flag, key and chain status.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Writes DIR/anchor.crt and DIR/anchor.key (mode 0600). The trust domain is recorded in
the anchor itself (URI SAN spiffe://<trust-domain>), so later commands read it from there.
After issuing every cluster, keep anchor.key offline: only `mc identity issue` needs it.

Examples:
  mc identity init --dir ~/.mc/trust
  mc identity init --dir ~/.mc/trust --trust-domain example.org --validity 5y
  mc identity init --dir ~/.mc/trust --force      # replace an existing anchor"
)]
pub struct InitArgs {
    /// Directory for anchor.crt and anchor.key (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Trust domain of every identity under this anchor (a DNS name).
    #[arg(long, default_value = id::DEFAULT_TRUST_DOMAIN, value_name = "DOMAIN")]
    pub trust_domain: String,
    /// How long the anchor is valid, e.g. 10y, 365d, 8760h.
    #[arg(long, default_value = DEFAULT_ANCHOR_VALIDITY, value_parser = parse_validity)]
    pub validity: Duration,
    /// Replace existing anchor files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Writes DIR/NAME/issuer.crt and DIR/NAME/issuer.key (mode 0600), signed with
DIR/anchor.key. The issuer is a CA with pathLen 0 that may only certify names under
NAME.<trust-domain>; it never outlives the anchor. `mc install` puts it into Secret mc-issuer.

Examples:
  mc identity issue --dir ~/.mc/trust --cluster-name west
  mc identity issue --dir ~/.mc/trust --cluster-name east --validity 90d
  mc identity issue --dir ~/.mc/trust --cluster-name west --force   # rotate"
)]
pub struct IssueArgs {
    /// Directory holding anchor.crt and anchor.key (from `mc identity init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Name of the cluster (a DNS-1123 label), as given to `mc install --cluster-name`.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: String,
    /// How long the issuer is valid, e.g. 1y, 90d.
    #[arg(long, default_value = DEFAULT_ISSUER_VALIDITY, value_parser = parse_validity)]
    pub validity: Duration,
    /// Replace existing issuer files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The anchor is --anchor, else anchor.crt beside each file, else anchor.crt in the parent
directory (so DIR/NAME/issuer.crt finds DIR/anchor.crt). Leaf certificates are verified with
the rest of their file and an issuer.crt beside them as intermediates.

Examples:
  mc identity inspect ~/.mc/trust/anchor.crt ~/.mc/trust/west/issuer.crt
  mc identity inspect gateway.crt --anchor ~/.mc/trust/anchor.crt -o json"
)]
pub struct InspectArgs {
    /// PEM files holding one or more certificates.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Anchor certificate(s) to check the chain against.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `10y`, `90d`, `24h` (humantime; a year is 365.25 days).
fn parse_validity(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10y, 90d, 24h)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    // Past year 9999 X.509 time cannot be encoded; nobody needs a certificate that long anyway.
    if d > Duration::from_secs(200 * 366 * 86400) {
        return Err("must be at most 200y".to_owned());
    }
    Ok(d)
}

pub fn run(args: IdentityArgs) -> anyhow::Result<()> {
    // Certificates carry whole seconds; so do the dates mc prints.
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    match args.command {
        IdentityCommand::Init(args) => init(args, now),
        IdentityCommand::Issue(args) => issue(args, now),
        IdentityCommand::Inspect(args) => inspect(args, now),
    }
}

fn init(args: InitArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let InitArgs {
        dir,
        trust_domain,
        validity,
        force,
    } = args;
    id::validate_trust_domain(&trust_domain)?;
    let layout = Layout::new(&dir);
    let replacing = force && layout.anchor_cert().exists();
    let written = store::init_anchor(&layout, &trust_domain, validity, force, now)?;
    warn_if_in_git_work_tree(&dir, "anchor.key, the root of trust");
    if replacing {
        eprintln!(
            "warning: the anchor was replaced; issuers signed by the old one no longer chain to it: re-issue every cluster (see docs/trust.md, \"Rotating the anchor\")"
        );
    }
    eprintln!(
        "created the trust anchor for trust domain {trust_domain}, valid until {}:\n  {}\n  {} (private; keep it offline once every cluster has an issuer)\nnext: mc identity issue --dir {} --cluster-name NAME",
        date(written.not_after),
        written.cert.display(),
        written.key.display(),
        dir.display(),
    );
    Ok(())
}

fn issue(args: IssueArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let IssueArgs {
        dir,
        cluster_name,
        validity,
        force,
    } = args;
    id::validate_cluster_name(&cluster_name)?;
    let written = store::issue_issuer(&Layout::new(&dir), &cluster_name, validity, force, now)?;
    warn_if_in_git_work_tree(&dir, "the issuer key");
    if written.clamped {
        eprintln!(
            "note: the issuer's validity was shortened to the anchor's expiry ({})",
            date(written.not_after)
        );
    }
    eprintln!(
        "created the issuer of cluster {cluster_name}, valid until {}:\n  {}\n  {} (private)\nnext: mc install --cluster-name {cluster_name} --identity-dir {} | kubectl apply -f -",
        date(written.not_after),
        written.cert.display(),
        written.key.display(),
        dir.display(),
    );
    Ok(())
}

fn inspect(args: InspectArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let InspectArgs {
        files,
        anchor,
        output,
    } = args;
    let mut infos: Vec<CertInfo> = Vec::new();
    for file in &files {
        infos.extend(inspect::inspect_file(file, anchor.as_deref(), now)?);
    }
    match output {
        OutputFormat::Table => {
            print!("{}", table(&infos));
            Ok(())
        }
        other => print_structured(other, &infos).context("could not print the certificates"),
    }
}

/// One `git add -A` away from publishing a private key: say so while it is still only on disk.
fn warn_if_in_git_work_tree(dir: &Path, what: &str) {
    if let Some(root) = git_work_tree(dir) {
        eprintln!(
            "warning: {} is inside the git work tree {}; {what} must never be committed: move the directory out of the repository (e.g. --dir ~/.mc/trust) or make sure git ignores it",
            dir.display(),
            root.display()
        );
    }
}

/// The work tree containing `dir`: the nearest ancestor holding `.git` (a directory, or a file
/// for worktrees and submodules). Reads the file system only; git need not be installed.
fn git_work_tree(dir: &Path) -> Option<PathBuf> {
    let dir = std::path::absolute(dir).ok()?;
    // Resolve symlinks where the path exists, so that a link into a repository is seen.
    let dir = dir.canonicalize().unwrap_or(dir);
    dir.ancestors()
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
}

fn date(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// One block per certificate, a field per line (as `kubectl describe` does): every field fits an
/// 80-column terminal, where a one-row-per-certificate table was 250 columns wide and wrapped.
/// `-o json|yaml` give the same fields to programs.
fn table(infos: &[CertInfo]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (n, i) in infos.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let title = if i.index == 0 {
            i.file.clone()
        } else {
            format!("{} (certificate #{})", i.file, i.index)
        };
        let days = match i.validity.as_str() {
            "valid" => format!("{} days left", i.days_left),
            other => format!("{other}, {} days left", i.days_left),
        };
        let ca = match (i.ca, i.path_len) {
            (true, Some(n)) => format!("yes (pathLen {n})"),
            (true, None) => "yes".to_owned(),
            (false, _) => "no".to_owned(),
        };
        let chain = match (&i.chain.anchor, &i.chain.detail) {
            (Some(anchor), None) => format!("{} (anchor {anchor})", i.chain.status),
            (Some(anchor), Some(detail)) => {
                format!("{} (anchor {anchor}): {detail}", i.chain.status)
            }
            (None, Some(detail)) => format!("{}: {detail}", i.chain.status),
            (None, None) => i.chain.status.clone(),
        };
        let sans = if i.sans.is_empty() {
            "none".to_owned()
        } else {
            i.sans.join("\n             ")
        };
        let _ = write!(
            out,
            "{title}\n  subject    {}\n  issuer     {}\n  SANs       {sans}\n  serial     {}\n  valid      {} to {} ({days})\n  CA         {ca}\n  key        {}\n  chain      {chain}\n",
            i.subject, i.issuer, i.serial, i.not_before, i.not_after, i.key_type,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_below_a_dot_git_is_in_a_work_tree_and_one_beside_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        let found = git_work_tree(&repo.join("trust/not-yet-created")).unwrap();
        assert_eq!(found, repo.canonicalize().unwrap());
        let outside = tmp.path().join("trust");
        assert_eq!(
            git_work_tree(&outside).filter(|r| r.starts_with(tmp.path())),
            None
        );
    }

    #[test]
    fn validity_accepts_years_days_and_hours_and_refuses_nonsense() {
        assert_eq!(
            parse_validity("1y").unwrap(),
            Duration::from_secs(31_557_600)
        );
        assert_eq!(
            parse_validity("90d").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        for bad in ["", "0s", "ten years", "-1y", "1000y"] {
            assert!(parse_validity(bad).is_err(), "{bad}");
        }
    }
}
