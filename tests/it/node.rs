//! The simulated node, driven as a user drives a cluster: the real `kubectl`, agnhost Pods,
//! `mc install | kubectl apply`, and traffic to ClusterIPs and load-balancer addresses.
//!
//! Each test gives its clusters ClusterIP bases of their own (127.20-127.29 here; the
//! `mc sim serve` test gets the command's 127.10), so that Pod and load-balancer ranges
//! (derived: +90 and +190 in the second octet) never overlap. `mc check`'s tests (tests/it/check.rs)
//! use 127.26-127.27 and the helpers marked `pub` here.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sim::{Sim, have_kubectl, start_sim_with};
use crate::support::eventually;
use mc::sim::{NodeConfig, SimConfig};

const LIMIT: Duration = Duration::from_secs(30);
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

pub fn node_config(name: &str, second_octet: u8) -> SimConfig {
    let mut c = SimConfig::new(name);
    c.cluster_ip_base = Ipv4Addr::new(127, second_octet, 0, 0);
    let mut node = NodeConfig::new(env!("CARGO_BIN_EXE_mc"));
    // Tests restart crashed containers quickly; the kubelet's 10 s is the default.
    node.crash_loop_backoff = Duration::from_millis(500);
    c.node = Some(node);
    c
}

/// The body of an HTTP/1.0 GET, or None if the connection fails.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

pub async fn jsonpath(sim: &Sim, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    sim.kubectl_ok(&a).await
}

async fn pod_names(sim: &Sim, ns: &str, selector: &str) -> BTreeSet<String> {
    jsonpath(
        sim,
        &["-n", ns, "get", "pods", "-l", selector],
        "{.items[*].metadata.name}",
    )
    .await
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_deployments_of_agnhost_answer_on_their_cluster_ip() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim_with(node_config("node-kubectl", 20)).await;
    assert!(sim.kubectl_ok(&["get", "nodes"]).await.contains("Ready"));
    sim.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        &format!("--image={AGNHOST}"),
        "--",
        "/agnhost",
        "serve-hostname",
    ])
    .await;
    sim.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "9376",
    ])
    .await;
    let ip = jsonpath(&sim, &["get", "svc", "web"], "{.spec.clusterIP}").await;
    let vip: SocketAddr = format!("{ip}:80").parse().unwrap();
    let first = eventually("the ClusterIP to answer", LIMIT, || async {
        http_get(vip, "/").await
    })
    .await;
    assert_eq!(
        pod_names(&sim, "default", "app=web").await,
        BTreeSet::from([first])
    );

    // Scale: the answers spread over the three Pods, round-robin.
    sim.kubectl_ok(&["scale", "deployment", "web", "--replicas", "3"])
        .await;
    sim.kubectl_ok(&["rollout", "status", "deployment", "web", "--timeout", "30s"])
        .await;
    let pods = pod_names(&sim, "default", "app=web").await;
    assert_eq!(pods.len(), 3);
    let mut answers = BTreeSet::new();
    for _ in 0..6 {
        answers.insert(http_get(vip, "/").await.expect("answer"));
    }
    assert_eq!(answers, pods);

    // A deleted Pod is replaced; `kubectl logs -f` of it ends when its container stops.
    let victim = pods.iter().next().unwrap().clone();
    let mut follow = sim
        .kubectl_command(&["logs", "-f", &victim])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    // Once the first line is read, kubectl is following.
    let mut lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("Serving on port 9376"), "{first}");
        lines
    })
    .await
    .unwrap();
    sim.kubectl_ok(&["delete", "pod", &victim]).await;
    tokio::task::spawn_blocking(move || {
        assert!(lines.all(|l| l.is_ok()));
        assert!(
            follow.wait().unwrap().success(),
            "kubectl logs -f ended with an error"
        );
    })
    .await
    .unwrap();
    eventually("a replacement Pod", LIMIT, || async {
        let now = pod_names(&sim, "default", "app=web").await;
        (now.len() == 3 && !now.contains(&victim)).then_some(())
    })
    .await;
    sim.kubectl_ok(&["rollout", "status", "deployment", "web", "--timeout", "30s"])
        .await;
    let rs = sim
        .kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(rs.lines().count(), 1, "{rs}");

    // Logs, and a rollout restart that replaces every Pod.
    let any = pod_names(&sim, "default", "app=web")
        .await
        .into_iter()
        .next()
        .unwrap();
    assert!(
        sim.kubectl_ok(&["logs", &any])
            .await
            .contains("Serving on port 9376")
    );
    sim.kubectl_ok(&["rollout", "restart", "deployment", "web"])
        .await;
    sim.kubectl_ok(&["rollout", "status", "deployment", "web", "--timeout", "30s"])
        .await;
    eventually("old Pods to go", LIMIT, || async {
        let now = pod_names(&sim, "default", "app=web").await;
        (now.len() == 3 && !now.contains(&any)).then_some(())
    })
    .await;

    // An image the node cannot run.
    sim.kubectl_ok(&["create", "deployment", "bad", "--image=nginx:1.27"])
        .await;
    let (reason, message) = eventually("ErrImagePull", LIMIT, || async {
        let out = jsonpath(
            &sim,
            &["get", "pods", "-l", "app=bad"],
            "{.items[0].status.containerStatuses[0].state.waiting.reason}|{.items[0].status.containerStatuses[0].state.waiting.message}",
        )
        .await;
        let (r, m) = out.split_once('|')?;
        (r == "ErrImagePull").then(|| (r.to_string(), m.to_string()))
    })
    .await;
    assert_eq!(reason, "ErrImagePull");
    assert!(
        message.contains("agnhost") && message.contains("nginx:1.27"),
        "{message}"
    );

    // No ready endpoint: connections are refused.
    sim.kubectl_ok(&["scale", "deployment", "web", "--replicas", "0"])
        .await;
    eventually("the ClusterIP to refuse", LIMIT, || async {
        match tokio::net::TcpStream::connect(vip).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
}

/// `mc install` rendered with the identity in `dir` and applied with kubectl.
pub async fn install(sim: &Sim, cluster: &str, dir: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["install", "--cluster-name", cluster, "--identity-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = sim
        .kubectl_stdin(
            &["apply", "-f", "-"],
            Some(String::from_utf8(out.stdout).unwrap()),
        )
        .await;
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// `mc identity init` and `mc identity issue` for `clusters` into `dir`.
pub fn identity(dir: &Path, clusters: &[&str]) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(args)
            .arg("--dir")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["identity", "init"]);
    for c in clusters {
        run(&["identity", "issue", "--cluster-name", c]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_gateway_pods_become_ready_and_restart_after_kill_9() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim_with(node_config("west", 21)).await;
    identity(&sim.dir.path().join("id"), &["west"]);
    install(&sim, "west", &sim.dir.path().join("id")).await;
    sim.kubectl_ok(&[
        "-n",
        "mc-system",
        "rollout",
        "status",
        "deployment/mc-gateway",
        "--timeout",
        "30s",
    ])
    .await;
    let gw = "app.kubernetes.io/name=mc-gateway";
    let pods = pod_names(&sim, "mc-system", gw).await;
    assert_eq!(pods.len(), 2);
    // Ready was decided by the readiness probe against the Pod IP.
    let ready = jsonpath(
        &sim,
        &["-n", "mc-system", "get", "pods", "-l", gw],
        "{.items[*].status.containerStatuses[0].ready}",
    )
    .await;
    assert_eq!(ready, "true true");
    // The gateway's Service answers on its load-balancer address, through the proxy.
    let lb = jsonpath(
        &sim,
        &["-n", "mc-system", "get", "svc", "mc-gateway"],
        "{.status.loadBalancer.ingress[0].ip}",
    )
    .await;
    assert!(lb.starts_with("127.211."), "{lb}");
    let probe: SocketAddr = format!("{lb}:4191").parse().unwrap();
    eventually("/ready through the load balancer", LIMIT, || async {
        http_get(probe, "/ready").await
    })
    .await;

    // kill -9 of one gateway's process: a restart, then Ready again.
    let pod = pods.iter().next().unwrap().clone();
    let id = jsonpath(
        &sim,
        &["-n", "mc-system", "get", "pod", &pod],
        "{.status.containerStatuses[0].containerID}",
    )
    .await;
    let pid: i32 = id
        .strip_prefix("process://")
        .expect("process container id")
        .parse()
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    eventually("the restarted gateway to be Ready", LIMIT, || async {
        let out = jsonpath(
            &sim,
            &["-n", "mc-system", "get", "pod", &pod],
            "{.status.containerStatuses[0].restartCount}|{.status.containerStatuses[0].ready}|{.status.containerStatuses[0].lastState.terminated.exitCode}",
        )
        .await;
        (out == "1|true|137").then_some(())
    })
    .await;
    let previous = sim
        .kubectl_ok(&["-n", "mc-system", "logs", &pod, "--previous"])
        .await;
    assert!(previous.contains("gateway started"), "{previous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_mirror_pod_becomes_ready() {
    let sim = start_sim_with(node_config("west", 24)).await;
    identity(&sim.dir.path().join("id"), &["west"]);
    install(&sim, "west", &sim.dir.path().join("id")).await;
    sim.kubectl_ok(&[
        "-n",
        "mc-system",
        "rollout",
        "status",
        "deployment/mc-mirror",
        "--timeout",
        "30s",
    ])
    .await;
}

/// The whole data path on two nodes, every hop a Pod or a Service address as in a cluster:
/// client ─▶ mirror ClusterIP (east) ─▶ east gateway Pod ─▶ west gateway's load-balancer
/// address ─▶ exported Service's ClusterIP (west) ─▶ agnhost Pod, which answers its name.
/// The mirror is written by the mc-mirror Pod; only the Link and its credentials are made here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_crosses_two_nodes_from_a_mirror_cluster_ip_to_an_agnhost_pod() {
    if !have_kubectl() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let east = start_sim_with(node_config("east", 22)).await;
    let west = start_sim_with(node_config("west", 23)).await;
    let id = east.dir.path().join("id");
    identity(&id, &["east", "west"]);
    install(&east, "east", &id).await;
    install(&west, "west", &id).await;

    west.kubectl_ok(&[
        "create",
        "deployment",
        "backend",
        &format!("--image={AGNHOST}"),
        "--",
        "/agnhost",
        "serve-hostname",
    ])
    .await;
    west.kubectl_ok(&[
        "expose",
        "deployment",
        "backend",
        "--port",
        "8888",
        "--target-port",
        "9376",
    ])
    .await;
    west.kubectl_ok(&["label", "service", "backend", "mc.dev/exported=true"])
        .await;
    for (sim, deploy) in [
        (&east, "mc-system/mc-gateway"),
        (&west, "mc-system/mc-gateway"),
        (&west, "default/backend"),
    ] {
        let (ns, name) = deploy.split_once('/').unwrap();
        sim.kubectl_ok(&[
            "-n",
            ns,
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout",
            "30s",
        ])
        .await;
    }
    let west_lb = jsonpath(
        &west,
        &["-n", "mc-system", "get", "svc", "mc-gateway"],
        "{.status.loadBalancer.ingress[0].ip}",
    )
    .await;

    // `mc mirror` runs as the mc-mirror Pod in east: the Link and its credentials are all it
    // needs to write the mirror and point its EndpointSlice at east's gateway Pods.
    crate::support::link_by_hand(
        &east,
        "east",
        &west,
        "west",
        &crate::support::GatewayAt {
            host: west_lb,
            port: 4143,
            probe_port: 4191,
        },
    )
    .await;
    let gateway_ips = jsonpath(
        &east,
        &[
            "-n",
            "mc-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=mc-gateway",
        ],
        "{.items[*].status.podIP}",
    )
    .await;
    assert_eq!(gateway_ips.split_whitespace().count(), 2);
    let allocated = eventually("the mirror written by the mc-mirror Pod", LIMIT, || async {
        let ports = jsonpath(
            &east,
            &["get", "svc", "backend-west", "--ignore-not-found"],
            "{.metadata.annotations.mc\\.dev/gateway-ports}",
        )
        .await;
        serde_json::from_str::<std::collections::BTreeMap<String, u16>>(&ports)
            .ok()
            .and_then(|m| m.get("8888").copied())
    })
    .await;
    let ip = jsonpath(&east, &["get", "svc", "backend-west"], "{.spec.clusterIP}").await;
    let vip: SocketAddr = format!("{ip}:8888").parse().unwrap();
    let answer = eventually("an answer through both gateways", LIMIT, || async {
        http_get(vip, "/").await
    })
    .await;
    let backends = pod_names(&west, "default", "app=backend").await;
    assert!(
        backends.contains(&answer),
        "{answer:?} is not one of {backends:?}"
    );

    // Unexport in west: the mirror controller deletes the mirror, and east's gateway Pods
    // close its outbound port.
    west.kubectl_ok(&["label", "service", "backend", "mc.dev/exported-"])
        .await;
    eventually("the path to close", LIMIT, || async {
        http_get(vip, "/").await.is_none().then_some(())
    })
    .await;
    eventually("the mirror to be deleted", LIMIT, || async {
        let out = east
            .kubectl_ok(&["get", "svc", "backend-west", "--ignore-not-found"])
            .await;
        out.trim().is_empty().then_some(())
    })
    .await;
    for ip in gateway_ips.split_whitespace() {
        let port: SocketAddr = format!("{ip}:{allocated}").parse().unwrap();
        eventually("east's outbound port to close", LIMIT, || async {
            tokio::net::TcpStream::connect(port)
                .await
                .is_err()
                .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_decide_readiness_and_a_failing_liveness_probe_restarts_the_container() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim_with(node_config("node-probes", 25)).await;
    let pod = |name: &str, live_port: u16| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
  - name: netexec
    image: {AGNHOST}
    args: ["netexec", "--http-port=8080"]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
    livenessProbe: {{tcpSocket: {{port: {live_port}}}, periodSeconds: 1, failureThreshold: 1}}
"#
        )
    };
    let both = format!("{}---\n{}", pod("healthy", 8080), pod("dying", 8081));
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], Some(both)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = |name: &'static str| {
        let sim = &sim;
        async move {
            jsonpath(
                sim,
                &["get", "pod", name],
                "{.status.containerStatuses[0].ready}|{.status.containerStatuses[0].restartCount}",
            )
            .await
        }
    };
    eventually("the healthy Pod to be Ready", LIMIT, || async {
        (status("healthy").await == "true|0").then_some(())
    })
    .await;
    eventually("the dying Pod to be restarted twice", LIMIT, || async {
        let s = status("dying").await;
        let restarts: u32 = s.split('|').nth(1)?.parse().ok()?;
        (restarts >= 2).then_some(())
    })
    .await;
    let netexec_ip = jsonpath(&sim, &["get", "pod", "healthy"], "{.status.podIP}").await;
    let echo = http_get(
        format!("{netexec_ip}:8080").parse().unwrap(),
        "/echo?msg=hello%20there",
    )
    .await;
    assert_eq!(echo.as_deref(), Some("hello there"));
    assert_eq!(
        status("healthy").await,
        "true|0",
        "the healthy Pod was never restarted"
    );
    // The back-off between restarts shows as CrashLoopBackOff at some point.
    eventually("CrashLoopBackOff", LIMIT, || async {
        let reason = jsonpath(
            &sim,
            &["get", "pod", "dying"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        )
        .await;
        (reason == "CrashLoopBackOff").then_some(())
    })
    .await;
}

/// `mc sim serve --node` runs its own executable in Pods, and those processes end with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_serve_with_a_node_runs_mc_pods_and_takes_them_down_on_sigterm() {
    use std::io::BufRead as _;
    if !have_kubectl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .args([
            "sim",
            "serve",
            "--name",
            "west",
            "--node",
            "--kubeconfig-out",
        ])
        .arg(&kc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.contains("kubeconfig written"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("node west-node")),
        "{lines:?}"
    );
    let kubectl = |args: &[&str], stdin: Option<Vec<u8>>| {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&kc)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"));
        cmd.args(args).env_remove("KUBECONFIG");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/identity");
    let yaml = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["install", "--cluster-name", "west", "--identity-dir"])
        .arg(&fixtures)
        .output()
        .unwrap()
        .stdout;
    kubectl(&["apply", "-f", "-"], Some(yaml));
    kubectl(
        &[
            "-n",
            "mc-system",
            "rollout",
            "status",
            "deployment/mc-gateway",
            "--timeout",
            "30s",
        ],
        None,
    );
    let ids = kubectl(
        &[
            "-n",
            "mc-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=mc-gateway",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[0].containerID}",
        ],
        None,
    );
    let pids: Vec<String> = ids
        .split_whitespace()
        .map(|id| id.strip_prefix("process://").unwrap().to_string())
        .collect();
    assert_eq!(pids.len(), 2);
    let alive = |pid: &str| {
        // A killed child may linger as a zombie until init reaps it; that is not running.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    assert!(pids.iter().all(|p| alive(p)));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(serve.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || serve.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    eventually("the gateway processes to be gone", LIMIT, || async {
        pids.iter().all(|p| !alive(p)).then_some(())
    })
    .await;
}
