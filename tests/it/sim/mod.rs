//! Tests of `mc sim` with real clients: kube-rs and the real `kubectl`.
//!
//! `start_sim("west")` gives a running cluster, an admin client and a kubeconfig file.

mod api;
mod conventions;
mod crds;
mod kube_rs;
mod kubectl;
mod serve;

use std::path::PathBuf;
use std::process::Output;

use mc::sim::{SimCluster, SimConfig, write_kubeconfig};

pub struct Sim {
    pub cluster: SimCluster,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

pub async fn start_sim(name: &str) -> Sim {
    start_sim_with(SimConfig::new(name)).await
}

pub async fn start_sim_with(config: SimConfig) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = SimCluster::start(config).await.expect("sim starts");
    let client = cluster.client().await.expect("admin client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &cluster.kubeconfig()).expect("kubeconfig written");
    Sim {
        cluster,
        client,
        kubeconfig,
        dir,
    }
}

pub use crate::support::have_kubectl;

impl Sim {
    /// Runs kubectl against this cluster with a cache dir of its own.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None).await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<String>) -> Output {
        let mut cmd = self.kubectl_command(args);
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            // kubectl exits once its stdin closes; only a missing kubectl needs a word here.
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("{}", crate::support::spawn_error(&cmd, &e)));
            if let Some(input) = stdin
                && let Some(mut s) = child.stdin.take()
            {
                s.write_all(input.as_bytes()).expect("stdin written");
            }
            drop(child.stdin.take());
            child.wait_with_output().expect("kubectl finishes")
        })
        .await
        .expect("kubectl task")
    }

    pub fn kubectl_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = crate::support::kubectl(self.dir.path());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `stdin` and asserts success; returns stdout.
    pub async fn kubectl_ok_stdin(&self, args: &[&str], stdin: String) -> String {
        let out = self.kubectl_stdin(args, Some(stdin)).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("file written");
        p
    }
}
