//! `mc link`, `mc unlink`, `mc export`, `mc unexport` through the built binary against two
//! simulated clusters with mc installed, checked with the admin client and the real `kubectl`.
//!
//! The fixture [`installed_pair`] (sims east and west installed from one trust anchor, one
//! kubeconfig with contexts `east` and `west`) is shared with the mirror controller's tests.

mod export;
pub mod linking;
mod unlinking;

use std::path::PathBuf;
use std::process::Output;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use mc::identity::{CertKeyPem, pki};
use mc::render::{InstallInput, install_objects, values};
use mc::sim::{merged_kubeconfig, write_kubeconfig};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::sim::{Sim, start_sim};

/// Two clusters with mc installed from one anchor, and a kubeconfig naming both.
pub struct Pair {
    pub east: Sim,
    pub west: Sim,
    /// Contexts `east` and `west` (admin users); current context `east`.
    pub kubeconfig: PathBuf,
    pub anchor: CertKeyPem,
    pub dir: tempfile::TempDir,
}

pub fn new_anchor() -> CertKeyPem {
    let now = OffsetDateTime::now_utc();
    pki::new_anchor("cluster.local", now, now + Duration::days(30)).expect("anchor")
}

/// Everything `mc install --cluster-name <cluster>` renders, applied to `sim` (server-side
/// apply with the admin client, in the rendered order).
pub async fn install(sim: &Sim, anchor: &CertKeyPem, cluster: &str) {
    let now = OffsetDateTime::now_utc();
    let signer = pki::load_issuer(&anchor.cert_pem, &anchor.key_pem).expect("anchor signer");
    let issuer = pki::new_issuer(
        &signer,
        cluster,
        "cluster.local",
        now,
        now + Duration::days(30),
    )
    .expect("issuer");
    let input = InstallInput {
        cluster_name: cluster.to_owned(),
        namespace: "mc-system".to_owned(),
        trust_domain: "cluster.local".to_owned(),
        anchor_pem: anchor.cert_pem.clone(),
        issuer_cert_pem: issuer.cert_pem,
        issuer_key_pem: issuer.key_pem,
        values: values::resolve(&[], &[]).expect("default values"),
    };
    for doc in install_objects(&input).expect("install renders") {
        apply_value(&sim.client, &doc).await;
    }
}

/// Server-side apply of one manifest document of a kind mc renders.
pub async fn apply_value(client: &kube::Client, doc: &Value) {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Namespace" => "namespaces",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "Deployment" => "deployments",
        "Service" => "services",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        "Link" => "links",
        other => panic!("apply_value does not know the kind {other}"),
    };
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let name = doc["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(doc),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind}/{name}: {e}"));
}

/// Sims east and west, mc installed in both from one anchor, one kubeconfig for both.
pub async fn installed_pair() -> Pair {
    let anchor = new_anchor();
    let (east, west) = tokio::join!(start_sim("east"), start_sim("west"));
    install(&east, &anchor, "east").await;
    install(&west, &anchor, "west").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        &merged_kubeconfig(&[&east.cluster, &west.cluster]),
    )
    .expect("kubeconfig");
    Pair {
        east,
        west,
        kubeconfig,
        anchor,
        dir,
    }
}

impl Pair {
    /// A further cluster installed from this pair's anchor (for tests with several links);
    /// merge its kubeconfig with [`mc::sim::merged_kubeconfig`].
    pub async fn another_installed(&self, name: &str) -> Sim {
        let sim = start_sim(name).await;
        install(&sim, &self.anchor, name).await;
        sim
    }

    /// Runs the built `mc` with this pair's kubeconfig (stderr is not a terminal: plain lines).
    pub async fn mc(&self, args: &[&str]) -> Output {
        mc_with(&self.kubeconfig, args).await
    }

    /// Runs `mc` and asserts success; returns stdout.
    pub async fn mc_ok(&self, args: &[&str]) -> String {
        let out = self.mc(args).await;
        assert!(
            out.status.success(),
            "mc {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `mc`, asserts exit 1 and a one-line error containing `expected`; returns stderr.
    pub async fn mc_fails(&self, args: &[&str], expected: &str) -> String {
        let out = self.mc(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "mc {args:?}: {stderr}");
        let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error.len(), 1, "one error line expected: {stderr}");
        assert!(error[0].contains(expected), "{expected:?} not in: {stderr}");
        stderr
    }

    /// `mc link --from east --to west` plus `extra`.
    pub async fn link(&self, extra: &[&str]) -> String {
        let mut args = vec!["link", "--from", "east", "--to", "west"];
        args.extend_from_slice(extra);
        self.mc_ok(&args).await
    }

    /// Runs the real kubectl with `kubeconfig` (this pair's when `None`).
    pub async fn kubectl(&self, kubeconfig: Option<&std::path::Path>, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig.unwrap_or(&self.kubeconfig))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl runs")
    }
}

pub async fn mc_with(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("mc runs")
}
