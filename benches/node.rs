//! Start-up benchmark of simulated clusters with nodes (harness = false): two clusters
//! started, `mc install | kubectl apply -f -` into both, until every `mc-gateway` Pod of both
//! is Ready by its readiness probe.
//!
//! `cargo bench --profile dev --bench node` (quick) or `cargo bench --bench node` (release).
//! `NODE_BENCH_RUNS` sets the number of runs (default 5). Needs `kubectl` on PATH.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use mc::sim::{NodeConfig, SimCluster, SimConfig, write_kubeconfig};

const MC: &str = env!("CARGO_BIN_EXE_mc");

fn mc(args: &[&str]) -> Vec<u8> {
    let out = Command::new(MC).args(args).output().expect("mc runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn kubectl_apply(kubeconfig: &Path, yaml: &[u8]) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("yaml written");
    let out = child.wait_with_output().expect("kubectl finishes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn gateways_ready(client: kube::Client) {
    let api = Api::<Deployment>::namespaced(client, "mc-system");
    loop {
        if let Ok(d) = api.get("mc-gateway").await {
            let status = d.status.unwrap_or_default();
            if status.ready_replicas == Some(2) && status.updated_replicas == Some(2) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Run {
    started: Duration,
    applied: Duration,
    ready: Duration,
}

async fn one_run(dir: &Path, run: u8) -> Run {
    let t0 = Instant::now();
    let mut clusters = Vec::new();
    for (i, name) in ["east", "west"].into_iter().enumerate() {
        let mut c = SimConfig::new(name);
        c.cluster_ip_base = Ipv4Addr::new(127, 30 + 2 * (run % 20) + i as u8, 0, 0);
        c.node = Some(NodeConfig::new(MC));
        clusters.push(SimCluster::start(c).await.expect("sim starts"));
    }
    let started = t0.elapsed();
    let mut clients = Vec::new();
    for c in &clusters {
        let kc = dir.join(format!("{}-{run}.kubeconfig", c.name()));
        write_kubeconfig(&kc, &c.kubeconfig()).expect("kubeconfig");
        let yaml = mc(&[
            "install",
            "--cluster-name",
            c.name(),
            "--identity-dir",
            dir.join("id").to_str().expect("utf-8 path"),
        ]);
        let kc2 = kc.clone();
        tokio::task::spawn_blocking(move || kubectl_apply(&kc2, &yaml))
            .await
            .expect("apply task");
        clients.push(c.client().await.expect("client"));
    }
    let applied = t0.elapsed();
    for client in clients {
        gateways_ready(client).await;
    }
    let ready = t0.elapsed();
    for c in clusters {
        c.shutdown().await;
    }
    Run {
        started,
        applied,
        ready,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runs: u8 = std::env::var("NODE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let id = dir.path().join("id");
    let id = id.to_str().expect("utf-8 path");
    mc(&["identity", "init", "--dir", id]);
    for c in ["east", "west"] {
        mc(&["identity", "issue", "--dir", id, "--cluster-name", c]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    for run in 0..runs {
        let r = rt.block_on(one_run(dir.path(), run));
        println!(
            "run {run}: sims started {:>6.1} ms, mc installed (kubectl apply done) {:>6.1} ms, 4 gateway Pods Ready {:>6.1} ms",
            r.started.as_secs_f64() * 1e3,
            r.applied.as_secs_f64() * 1e3,
            r.ready.as_secs_f64() * 1e3
        );
        results.push(r.ready);
    }
    results.sort();
    if let (Some(min), Some(max)) = (results.first(), results.last()) {
        let median = results[results.len() / 2];
        println!(
            "2 clusters with nodes, mc installed, gateways Ready: min {:.0} ms, median {:.0} ms, max {:.0} ms ({runs} runs)",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
