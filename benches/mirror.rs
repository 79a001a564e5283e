//! Mirror controller benchmark (harness = false): one link, N exported Services in west, the
//! real `mc mirror` binary as a child process against east. Reports, per size:
//! - time to converge (every mirror Service and EndpointSlice written) next to the baseline:
//!   the same 2×N objects written straight into the sim by one client, sequentially;
//! - API writes per mirrored Service (the floor is 2: the Service and its EndpointSlice);
//! - the controller's peak RSS (VmHWM of the child);
//! - p50/p99 delay from a remote change to the local mirror's update, over 200 changes.
//!
//! `cargo bench --bench mirror` (release) or `cargo bench --profile dev --bench mirror`.
//! `MIRROR_BENCH_SIZES=1000,10000` (the default) sets the sizes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResourceExt, ResourceExt};
use mc::k8s::{Link, LinkSpec, TrafficSplit};
use mc::sim::{SimCluster, SimConfig};
use serde_json::json;

fn sizes() -> Vec<usize> {
    std::env::var("MIRROR_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000])
}

fn svc(ns: &str, name: &str, exported: bool) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns,
                     "labels": if exported { json!({"mc.dev/exported": "true"}) } else { json!({}) }},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .expect("valid service")
}

fn slice(ns: &str, name: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 10000, "protocol": "TCP"}],
    }))
    .expect("valid slice")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn vm_hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Kills the controller however the bench ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| services | baseline: 2N sim writes | mirror converged | ratio | writes/service | controller peak RSS | change→mirror p50 | p99 |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in sizes() {
        rt.block_on(run(n));
    }
}

async fn run(n: usize) {
    let mut east_cfg = SimConfig::new("east");
    east_cfg.cluster_ip_base = std::net::Ipv4Addr::new(127, 90, 0, 0);
    let mut west_cfg = SimConfig::new("west");
    west_cfg.cluster_ip_base = std::net::Ipv4Addr::new(127, 91, 0, 0);
    let east = SimCluster::start(east_cfg).await.expect("east");
    let west = SimCluster::start(west_cfg).await.expect("west");
    let ec = east.client().await.expect("client");
    let wc = west.client().await.expect("client");
    let pp = PostParams::default();

    // Baseline: the same objects, written directly, one after another.
    let ns_obj = |name: &str| -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns")
    };
    Api::<Namespace>::all(ec.clone())
        .create(&pp, &ns_obj("baseline"))
        .await
        .expect("ns");
    let started = Instant::now();
    let (bs, bsl) = (
        Api::<Service>::namespaced(ec.clone(), "baseline"),
        Api::<EndpointSlice>::namespaced(ec.clone(), "baseline"),
    );
    for i in 0..n {
        let name = format!("s{i}");
        bs.create(&pp, &svc("baseline", &name, false))
            .await
            .expect("create");
        bsl.create(&pp, &slice("baseline", &name))
            .await
            .expect("create");
    }
    let baseline = started.elapsed();

    // East: what the mirror needs of an install.
    Api::<Namespace>::all(ec.clone())
        .create(&pp, &ns_obj("mc-system"))
        .await
        .expect("ns");
    for crd in [Link::crd(), TrafficSplit::crd()] {
        Api::<CustomResourceDefinition>::all(ec.clone())
            .create(&pp, &crd)
            .await
            .expect("crd");
    }
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "mc-config", "namespace": "mc-system"},
        "data": {"clusterName": "east", "trustDomain": "cluster.local", "ca-bundle.crt": "unused",
                 "outboundPortRange": "10000-39999"},
    }))
    .expect("cm");
    Api::<ConfigMap>::namespaced(ec.clone(), "mc-system")
        .create(&pp, &cm)
        .await
        .expect("cm");
    let kubeconfig = serde_saphyr::to_string(&west.kubeconfig()).expect("yaml");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("mc-link-west".into()),
            namespace: Some("mc-system".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "kubeconfig".into(),
            ByteString(kubeconfig.into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(ec.clone(), "mc-system")
        .create(&pp, &secret)
        .await
        .expect("secret");

    // West: N exported Services.
    let ws = Api::<Service>::namespaced(wc.clone(), "default");
    for i in 0..n {
        ws.create(&pp, &svc("default", &format!("s{i}"), true))
            .await
            .expect("create");
    }

    // Watch east's mirrors: when each name was last updated, and with which remote version.
    let seen: Arc<Mutex<HashMap<String, (String, Instant)>>> = Arc::default();
    let s2 = seen.clone();
    let mirrors = Api::<Service>::namespaced(ec.clone(), "default");
    tokio::spawn(
        watcher(
            mirrors.clone(),
            watcher::Config::default().labels("mc.dev/mirror-of=west"),
        )
        .default_backoff()
        .applied_objects()
        .for_each(move |o| {
            if let Ok(s) = o {
                let rv = s
                    .annotations()
                    .get("mc.dev/remote-resource-version")
                    .cloned()
                    .unwrap_or_default();
                s2.lock()
                    .unwrap()
                    .insert(s.name_any(), (rv, Instant::now()));
            }
            async {}
        }),
    );

    let kc_path =
        std::env::temp_dir().join(format!("mc-bench-mirror-{}.kubeconfig", std::process::id()));
    mc::sim::write_kubeconfig(&kc_path, &east.kubeconfig()).expect("kubeconfig");
    let admin_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let link = {
        let mut l = Link::new(
            "west",
            LinkSpec {
                target_cluster_name: "west".into(),
                target_cluster_domain: "cluster.local".into(),
                target_trust_domain: "cluster.local".into(),
                api_server: west.url(),
                credentials_secret: "mc-link-west".into(),
                gateway_addresses: vec!["127.0.0.1".into()],
                gateway_port: 4143,
                gateway_identity: "mc-gateway.mc-system.west.cluster.local".into(),
                probe: Default::default(),
                selector: "mc.dev/exported=true".into(),
            },
        );
        l.metadata.namespace = Some("mc-system".into());
        l
    };
    let started = Instant::now();
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(["mirror", "--admin-addr", &format!("127.0.0.1:{admin_port}")])
            .arg("--kubeconfig")
            .arg(&kc_path)
            .env("MC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("mc mirror runs"),
    );
    Api::<Link>::namespaced(ec.clone(), "mc-system")
        .create(&pp, &link)
        .await
        .expect("link");
    let slices = Api::<EndpointSlice>::namespaced(ec.clone(), "default");
    let lp = ListParams::default().labels("mc.dev/mirror-of=west");
    loop {
        let have_svcs = seen.lock().unwrap().len();
        if have_svcs >= n {
            let have_slices = slices
                .list_metadata(&lp)
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            if have_slices >= n {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "no convergence"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = started.elapsed();
    // Let the controller settle (status writes, a resync) before counting writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = reqwest_metrics(admin_port).await;
    let writes: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("mc_mirror_actions_total{") && l.contains("result=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();

    // Remote changes: 200 port edits, one every 10 ms.
    let changes = 200.min(n);
    let mut patched = Vec::new();
    for i in 0..changes {
        let name = format!("s{i}");
        let p = json!({"spec": {"ports": [{"name": "http", "port": 81, "targetPort": 8080}]}});
        let updated = ws
            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("patch");
        patched.push((
            format!("{name}-west"),
            updated.resource_version().unwrap_or_default(),
            Instant::now(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (name, rv, at) in &patched {
        loop {
            let got = seen.lock().unwrap().get(name).cloned();
            if let Some((seen_rv, when)) = got
                && &seen_rv == rv
            {
                delays.push(when.saturating_duration_since(*at));
                break;
            }
            assert!(Instant::now() < deadline, "change to {name} never mirrored");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    delays.sort();
    let rss = vm_hwm_mib(child.0.id());
    println!(
        "| {n} | {:.2} s | {:.2} s | {:.2} | {:.2} | {:.0} MiB | {:.0} ms | {:.0} ms |",
        baseline.as_secs_f64(),
        converged.as_secs_f64(),
        converged.as_secs_f64() / baseline.as_secs_f64(),
        writes / n as f64,
        rss,
        percentile(&delays, 0.5).as_secs_f64() * 1000.0,
        percentile(&delays, 0.99).as_secs_f64() * 1000.0,
    );
    drop(child);
    let _ = std::fs::remove_file(&kc_path);
    east.shutdown().await;
    west.shutdown().await;
}

/// GET /metrics from the controller's admin port (plain HTTP/1.0).
async fn reqwest_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}
