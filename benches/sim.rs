//! Simulator scale benchmark (harness = false): creates/s for 10,000 Services, LIST latency
//! at 10k, watch fan-out delay to 100 watchers, and resident memory.
//!
//! `cargo bench --bench sim` (release) or `cargo bench --profile dev --bench sim` (quick).
//! `SIM_BENCH_SERVICES` and `SIM_BENCH_WATCHERS` change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use mc::sim::{SimCluster, SimConfig};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .expect("valid service")
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let services = env_usize("SIM_BENCH_SERVICES", 10_000);
    let watchers = env_usize("SIM_BENCH_WATCHERS", 100);
    let rss_before = rss_mib();
    let start = Instant::now();
    let sim = SimCluster::start(SimConfig::new("bench"))
        .await
        .expect("sim");
    let started = start.elapsed();
    let client = sim.client().await.expect("client");
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    // Creates: 16 in flight, like a busy controller.
    let t = Instant::now();
    futures::stream::iter(0..services)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &service(&format!("svc-{i:05}")))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("creates");
    let create_time = t.elapsed();
    let creates_per_sec = services as f64 / create_time.as_secs_f64();

    // LIST latency: the full list, and the kubectl/kube-rs style first page of 500.
    let mut full = Vec::new();
    let mut paged = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await.expect("list");
        full.push(t.elapsed());
        assert!(l.items.len() >= services);
        let t = Instant::now();
        api.list(&ListParams::default().limit(500))
            .await
            .expect("page");
        paged.push(t.elapsed());
    }
    // The same full LIST as raw bytes: server time plus transfer, without the client's decode.
    let mut raw = Vec::new();
    let mut raw_len = 0;
    for _ in 0..5 {
        let req = http::Request::get("/api/v1/namespaces/default/services")
            .body(Vec::new())
            .expect("request");
        let t = Instant::now();
        let text = client.request_text(req).await.expect("raw list");
        raw.push(t.elapsed());
        raw_len = text.len();
    }
    raw.sort();
    full.sort();
    paged.sort();

    // Watch fan-out: each watcher opens a watch from now; one writer creates objects and every
    // watcher records when it saw each one.
    let rv = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .expect("rv")
        .metadata
        .resource_version
        .expect("list rv");
    let rounds = 20usize;
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; rounds]));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::new();
            let stream = api
                .watch(&WatchParams::default().labels("fanout=yes"), &rv)
                .await
                .expect("watch");
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Added(s)) = ev {
                    let now = Instant::now();
                    let idx: usize = s
                        .metadata
                        .name
                        .as_deref()
                        .and_then(|n| n.strip_prefix("fan-"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if let Some(Some(t)) = sent.lock().expect("lock").get(idx) {
                        delays.push(now.duration_since(*t));
                    }
                    if delays.len() == rounds {
                        break;
                    }
                }
            }
            delays
        }));
    }
    // Give every watch time to be established before writing (a one-off setup pause).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..rounds {
        let mut s = service(&format!("fan-{i}"));
        s.metadata.labels = Some([("fanout".to_string(), "yes".to_string())].into());
        sent.lock().expect("lock")[i] = Some(Instant::now());
        api.create(&PostParams::default(), &s)
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(60), t).await {
            Ok(Ok(d)) => delays.extend(d),
            _ => eprintln!("a watcher did not finish"),
        }
    }
    delays.sort();
    let rss_after = rss_mib();

    println!(
        "mc sim benchmark ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  cluster start:            {:>10.2} ms",
        started.as_secs_f64() * 1000.0
    );
    println!(
        "  creates ({services} Services): {:>10.0} /s ({:.2} s)",
        creates_per_sec,
        create_time.as_secs_f64()
    );
    println!(
        "  LIST all ({services}+):      p50 {:>8.1} ms  max {:>8.1} ms",
        full[full.len() / 2].as_secs_f64() * 1000.0,
        full[full.len() - 1].as_secs_f64() * 1000.0
    );
    println!(
        "  LIST all, raw bytes ({:.1} MB, no client decode): p50 {:>8.1} ms",
        raw_len as f64 / 1e6,
        raw[raw.len() / 2].as_secs_f64() * 1000.0
    );
    println!(
        "  LIST limit=500:           p50 {:>8.1} ms  max {:>8.1} ms",
        paged[paged.len() / 2].as_secs_f64() * 1000.0,
        paged[paged.len() - 1].as_secs_f64() * 1000.0
    );
    println!(
        "  watch fan-out ({watchers} watchers x {rounds} events, {} deliveries): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        delays.len(),
        percentile(&delays, 0.5).as_secs_f64() * 1000.0,
        percentile(&delays, 0.99).as_secs_f64() * 1000.0,
        percentile(&delays, 1.0).as_secs_f64() * 1000.0
    );
    println!(
        "  RSS (whole process, client included): {rss_before:.0} MiB before, {rss_after:.0} MiB after"
    );
    sim.shutdown().await;
}
