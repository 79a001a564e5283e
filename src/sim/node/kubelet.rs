//! The kubelet: runs the Pods scheduled to the node, one task per Pod and one per container.
//!
//! ```text
//! store events (pods) ─▶ resync ─▶ new Pod: allocate IP, spawn run_pod
//!                                  deletionTimestamp / gone: stop(grace) ─▶ SIGTERM … SIGKILL
//! run_container: prepare (env, KUBECONFIG) ─▶ launch (process | agnhost task) ─▶ supervise
//!   (exit, probe events, stop) ─▶ restart with CrashLoopBackOff ─▶ status written to the Pod
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, mpsc, watch};

use super::logs::ContainerLog;
use super::now_rfc3339;
use super::probe::{self, ProbeEvent};
use super::spec::{self, Runtime};
use super::{Host, NodeShared, agnhost};
use crate::sim::cluster::store::meta_str;

/// Longest CrashLoopBackOff delay (the kubelet's).
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off from the beginning again.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a container waiting for configuration (ServiceAccount, ConfigMap key) retries.
const CONFIG_RETRY: Duration = Duration::from_secs(1);
/// Lifetime of the ServiceAccount token given to a container; a restart gets a fresh one.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A container environment's PATH, as most images set it.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running Pod: `stop` carries the grace period once the Pod is to go.
struct PodHandle {
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
    grace: Duration,
    uid: String,
}

pub async fn run(sim: Arc<dyn Host>, node: Arc<NodeShared>) {
    let mut rx = sim.store().lock().subscribe();
    let mut pods: HashMap<String, PodHandle> = HashMap::new();
    let mut stopping: Vec<PodHandle> = Vec::new();
    let node_name = super::node_name(sim.config());
    loop {
        resync(&sim, &node, &node_name, &mut pods, &mut stopping);
        loop {
            tokio::select! {
                _ = node.stop.cancelled() => {
                    for h in pods.values().chain(stopping.iter()) {
                        h.task.abort();
                    }
                    return;
                }
                r = rx.recv() => match r {
                    Ok(ev) if ev.key == "/pods" => break,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

impl Drop for PodHandle {
    fn drop(&mut self) {
        // Only when the kubelet itself goes (its map is dropped): the Pod's task and, through
        // its JoinSet and `Instance`'s Drop, its containers go with it.
        self.task.abort();
    }
}

fn grace_of(pod: &Value) -> Duration {
    let secs = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Brings the running Pods in line with the store: start new ones, stop deleted ones.
fn resync(
    sim: &Arc<dyn Host>,
    node: &Arc<NodeShared>,
    node_name: &str,
    pods: &mut HashMap<String, PodHandle>,
    stopping: &mut Vec<PodHandle>,
) {
    stopping.retain(|h| !h.task.is_finished());
    let listed: Vec<Arc<Value>> = sim
        .store()
        .lock()
        .list("/pods", None)
        .into_iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node_name))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for pod in listed {
        let uid = meta_str(&pod, "uid").to_string();
        seen.insert(uid.clone());
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        match (pods.contains_key(&uid), deleting) {
            (false, false) => {
                let Some(ip) = node.allocate_ip(sim.config()) else {
                    tracing::warn!(pod = meta_str(&pod, "name"), "the Pod IP range is full");
                    continue;
                };
                let (stop, stopped) = watch::channel(None);
                let rt = Arc::new(PodRt::new(sim.clone(), node.clone(), &pod, ip));
                let task = tokio::spawn(run_pod(rt, stopped));
                pods.insert(
                    uid.clone(),
                    PodHandle {
                        stop,
                        task,
                        grace: grace_of(&pod),
                        uid,
                    },
                );
            }
            (true, true) => {
                if let Some(h) = pods.remove(&uid) {
                    let _ = h.stop.send(Some(grace_of(&pod)));
                    stopping.push(h);
                }
            }
            (false, true) => {
                // A stopping Pod's own task removes it; one that never ran here can go now.
                if !stopping.iter().any(|h| h.uid == uid) {
                    super::remove_pod(
                        sim.as_ref(),
                        meta_str(&pod, "namespace"),
                        meta_str(&pod, "name"),
                        &uid,
                    );
                }
            }
            (true, false) => {}
        }
    }
    let gone: Vec<String> = pods
        .keys()
        .filter(|u| !seen.contains(*u))
        .cloned()
        .collect();
    for uid in gone {
        if let Some(h) = pods.remove(&uid) {
            let _ = h.stop.send(Some(h.grace));
            stopping.push(h);
        }
    }
}

/// One Pod as the kubelet runs it.
struct PodRt {
    sim: Arc<dyn Host>,
    node: Arc<NodeShared>,
    pod: Value,
    ns: String,
    name: String,
    uid: String,
    ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    start_time: String,
    status: Mutex<StatusModel>,
}

struct StatusModel {
    containers: Vec<Value>,
    ready: Option<(bool, String)>,
}

impl PodRt {
    fn new(sim: Arc<dyn Host>, node: Arc<NodeShared>, pod: &Value, ip: Ipv4Addr) -> Self {
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({
                    "name": c.get("name").cloned().unwrap_or(json!("")),
                    "image": c.get("image").cloned().unwrap_or(json!("")),
                    "imageID": "",
                    "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                })
            })
            .collect();
        let host_ip = super::host_ip(sim.config());
        PodRt {
            ns: meta_str(pod, "namespace").to_string(),
            name: meta_str(pod, "name").to_string(),
            uid: meta_str(pod, "uid").to_string(),
            pod: pod.clone(),
            sim,
            node,
            ip,
            host_ip,
            start_time: now_rfc3339(),
            status: Mutex::new(StatusModel {
                containers,
                ready: None,
            }),
        }
    }

    fn dir(&self) -> PathBuf {
        self.node.dir.path().join(&self.uid)
    }

    /// Changes one container's status and writes the Pod status.
    fn update(&self, idx: usize, f: impl FnOnce(&mut Value)) {
        let mut model = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = model.containers.get_mut(idx) {
            f(c);
        }
        let status = self.status_value(&mut model);
        super::write_pod_status(self.sim.as_ref(), &self.ns, &self.name, &self.uid, status);
    }

    fn status_value(&self, model: &mut StatusModel) -> Value {
        let cs = &model.containers;
        let all_ready = !cs.is_empty() && cs.iter().all(|c| c["ready"] == true);
        let started = |c: &Value| {
            c.pointer("/state/running").is_some()
                || c.pointer("/state/terminated").is_some()
                || c["restartCount"].as_i64().unwrap_or(0) > 0
        };
        let phase = if cs.iter().all(started) {
            let never = self
                .pod
                .pointer("/spec/restartPolicy")
                .and_then(Value::as_str)
                != Some("Always")
                && self.pod.pointer("/spec/restartPolicy").is_some();
            let done: Vec<i64> = cs
                .iter()
                .filter_map(|c| {
                    c.pointer("/state/terminated/exitCode")
                        .and_then(Value::as_i64)
                })
                .collect();
            if never && done.len() == cs.len() {
                if done.iter().all(|c| *c == 0) {
                    "Succeeded"
                } else {
                    "Failed"
                }
            } else {
                "Running"
            }
        } else {
            "Pending"
        };
        let now = now_rfc3339();
        let since = match &model.ready {
            Some((r, t)) if *r == all_ready => t.clone(),
            _ => {
                model.ready = Some((all_ready, now.clone()));
                now.clone()
            }
        };
        let unready: Vec<&str> = cs
            .iter()
            .filter(|c| c["ready"] != true)
            .filter_map(|c| c["name"].as_str())
            .collect();
        let ready_cond = |ty: &str| {
            let mut c = json!({"type": ty, "status": if all_ready {"True"} else {"False"},
                "lastProbeTime": null, "lastTransitionTime": since});
            if !all_ready {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                ));
            }
            c
        };
        let t = &self.start_time;
        json!({
            "phase": phase,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": t},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": t},
                ready_cond("Ready"),
                ready_cond("ContainersReady"),
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": t},
            ],
            "hostIP": self.host_ip.to_string(),
            "hostIPs": [{"ip": self.host_ip.to_string()}],
            "podIP": self.ip.to_string(),
            "podIPs": [{"ip": self.ip.to_string()}],
            "startTime": t,
            "qosClass": "BestEffort",
            "containerStatuses": cs,
        })
    }
}

async fn run_pod(rt: Arc<PodRt>, stop: watch::Receiver<Option<Duration>>) {
    let _ = std::fs::create_dir_all(rt.dir());
    {
        let mut model = rt.status.lock().unwrap_or_else(|e| e.into_inner());
        let status = rt.status_value(&mut model);
        super::write_pod_status(rt.sim.as_ref(), &rt.ns, &rt.name, &rt.uid, status);
    }
    let containers = rt
        .pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut set = tokio::task::JoinSet::new();
    for (idx, c) in containers.into_iter().enumerate() {
        set.spawn(run_container(rt.clone(), idx, c, stop.clone()));
    }
    while set.join_next().await.is_some() {}
    super::remove_pod(rt.sim.as_ref(), &rt.ns, &rt.name, &rt.uid);
    rt.node.logs.forget_pod(&rt.ns, &rt.name);
    rt.node.release_ip(rt.sim.config(), rt.ip);
    let _ = std::fs::remove_dir_all(rt.dir());
}

/// How a run of a container ended.
struct Exit {
    code: i32,
}

impl Exit {
    fn from_status(s: std::io::Result<std::process::ExitStatus>) -> Exit {
        use std::os::unix::process::ExitStatusExt as _;
        let code = match s {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            Err(_) => 128 + 9,
        };
        Exit { code }
    }
}

/// One run of a container: a child process (mc) or a task (agnhost).
enum Instance {
    Process {
        child: tokio::process::Child,
        pid: i32,
    },
    Task(tokio::task::JoinHandle<std::io::Result<()>>),
}

impl Instance {
    fn id(&self) -> String {
        match self {
            Instance::Process { pid, .. } => format!("process://{pid}"),
            Instance::Task(_) => format!("task://{}", uuid::Uuid::new_v4().simple()),
        }
    }

    async fn wait(&mut self) -> Exit {
        match self {
            Instance::Process { child, .. } => Exit::from_status(child.wait().await),
            Instance::Task(h) => match h.await {
                Ok(Ok(())) => Exit { code: 0 },
                Ok(Err(_)) => Exit { code: 1 },
                Err(_) => Exit { code: 137 },
            },
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&mut self, grace: Duration) -> Exit {
        match self {
            Instance::Process { pid, .. } => {
                if let Some(p) = rustix::process::Pid::from_raw(*pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
                }
                match tokio::time::timeout(grace, self.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        if let Instance::Process { child, .. } = self {
                            let _ = child.start_kill();
                        }
                        self.wait().await
                    }
                }
            }
            Instance::Task(h) => {
                h.abort();
                let _ = h.await;
                Exit { code: 143 }
            }
        }
    }
}

/// What `prepare` resolved: argv and environment.
struct Launch {
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

/// Environment, arguments and credentials, or the waiting reason and message.
fn prepare(rt: &PodRt, c: &Value, runtime: &Runtime) -> Result<Launch, (&'static str, String)> {
    let env = {
        let state = rt.sim.store().lock();
        spec::environment(
            &state,
            &rt.pod,
            c,
            &rt.ip.to_string(),
            &rt.host_ip.to_string(),
        )
        .map_err(|m| ("CreateContainerConfigError", m))?
    };
    let (command, args) = spec::argv(c, &env);
    let mut env = env;
    let args = match runtime {
        Runtime::Mc => {
            let mut full = Vec::new();
            if let Some(first) = command.first() {
                let base = first.rsplit('/').next().unwrap_or(first);
                if base != "mc" {
                    return Err((
                        "CreateContainerError",
                        format!(
                            "the simulated node runs mc's image only with mc as its command, not {first}"
                        ),
                    ));
                }
                full.extend(command[1..].iter().cloned());
            }
            full.extend(args);
            let automount =
                rt.pod.pointer("/spec/automountServiceAccountToken") != Some(&json!(false));
            if automount {
                let path = write_kubeconfig(rt)?;
                env.insert("KUBECONFIG".into(), path.display().to_string());
            }
            full
        }
        _ => {
            let mut full = if command.is_empty() {
                vec!["/agnhost".to_string()]
            } else {
                command
            };
            full.extend(args);
            full
        }
    };
    Ok(Launch { args, env })
}

/// A kubeconfig for the Pod's ServiceAccount with a bound token: kube-rs reads `KUBECONFIG`
/// before the in-cluster files, so mc in a Pod uses it unchanged.
fn write_kubeconfig(rt: &PodRt) -> Result<PathBuf, (&'static str, String)> {
    use base64::Engine as _;
    let sa = rt
        .pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let token = rt.sim.bound_token(&rt.ns, sa, TOKEN_TTL).ok_or_else(|| {
        (
            "CreateContainerConfigError",
            format!(
                "serviceaccount \"{sa}\" not found in namespace \"{}\"",
                rt.ns
            ),
        )
    })?;
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{}", rt.sim.api_addr()),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(rt.sim.ca_pem())}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": sa, "namespace": rt.ns}}],
        "current-context": "in-cluster",
    });
    let path = rt.dir().join("kubeconfig");
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(rt.dir())?;
        std::fs::write(&path, serde_json::to_vec(&kc).unwrap_or_default())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
    };
    write().map_err(|e| {
        (
            "CreateContainerConfigError",
            format!("could not write the ServiceAccount kubeconfig: {e}"),
        )
    })?;
    Ok(path)
}

fn launch(
    rt: &PodRt,
    runtime: &Runtime,
    launch: Launch,
    log: &Arc<ContainerLog>,
) -> Result<Instance, String> {
    match runtime {
        Runtime::Mc => {
            let mut cmd = tokio::process::Command::new(rt.node_mc_exe());
            cmd.args(&launch.args)
                .env_clear()
                .env("PATH", CONTAINER_PATH)
                .env("HOSTNAME", &rt.name)
                .envs(&launch.env)
                .current_dir(rt.dir())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("could not start {}: {e}", rt.node_mc_exe().display()))?;
            let pid = child.id().map(|p| p as i32).unwrap_or(0);
            rt.node.track_pid(pid, true);
            for out in [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            ]
            .into_iter()
            .flatten()
            {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut out = out;
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = out.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        log.write(&buf[..n]);
                    }
                });
            }
            Ok(Instance::Process { child, pid })
        }
        _ => {
            let cmd = agnhost::parse(&launch.args)?;
            let (ip, name, log) = (IpAddr::V4(rt.ip), rt.name.clone(), log.clone());
            Ok(Instance::Task(tokio::spawn(async move {
                let result = agnhost::serve(cmd, ip, name, log.clone()).await;
                if let Err(e) = &result {
                    log.write(format!("{e}\n").as_bytes());
                }
                result
            })))
        }
    }
}

impl PodRt {
    fn node_mc_exe(&self) -> PathBuf {
        self.sim
            .config()
            .node
            .as_ref()
            .map(|n| n.mc_exe.clone())
            .unwrap_or_default()
    }

    fn backoff_base(&self) -> Duration {
        self.sim
            .config()
            .node
            .as_ref()
            .map_or(Duration::from_secs(10), |n| n.crash_loop_backoff)
    }
}

/// Waits `d` unless the Pod is stopped first (true).
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<Option<Duration>>) -> bool {
    if stop.borrow().is_some() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

/// The back-off before restart number `n` (1-based): the first restart is immediate.
fn backoff(base: Duration, n: u32) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (n - 2).min(16))
        .min(MAX_BACKOFF)
}

async fn run_container(
    rt: Arc<PodRt>,
    idx: usize,
    c: Value,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let name = c
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let runtime = spec::runtime_of(&image);
    let waiting = |reason: &str, message: String| {
        let (reason, message) = (reason.to_string(), message);
        move |s: &mut Value| {
            s["state"] = json!({"waiting": {"reason": reason, "message": message}});
            s["ready"] = json!(false);
            s["started"] = json!(false);
        }
    };
    if runtime == Runtime::Unknown {
        rt.update(
            idx,
            waiting(
                "ErrImagePull",
                format!("image {image:?} cannot be run: {}", spec::RUNNABLE_IMAGES),
            ),
        );
        while stop.borrow().is_none() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        return;
    }
    let log = rt.node.logs.container(&rt.ns, &rt.name, &name);
    let policy = rt
        .pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        .to_string();
    let mut restarts: u32 = 0;
    let mut backoff_n: u32 = 0;
    loop {
        let prepared = match prepare(&rt, &c, &runtime) {
            Ok(p) => p,
            Err((reason, message)) => {
                rt.update(idx, waiting(reason, message));
                if sleep_or_stop(CONFIG_RETRY, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        log.start_run();
        let started_at = now_rfc3339();
        let began = Instant::now();
        let mut inst = match launch(&rt, &runtime, prepared, &log) {
            Ok(i) => i,
            Err(message) => {
                log.write(format!("{message}\n").as_bytes());
                log.end_run();
                rt.update(idx, waiting("RunContainerError", message));
                if sleep_or_stop(rt.backoff_base(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let container_id = inst.id();
        rt.update(idx, |s| {
            s["state"] = json!({"running": {"startedAt": started_at}});
            s["containerID"] = json!(container_id);
            s["started"] = json!(false);
            s["ready"] = json!(false);
        });
        let (ptx, prx) = mpsc::channel(4);
        let probes = AbortOnDrop(tokio::spawn(probe::run(c.clone(), IpAddr::V4(rt.ip), ptx)));
        let mut prx = Some(prx);
        let (exit, stopping) = loop {
            let next_probe = async {
                match prx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                exit = inst.wait() => break (exit, false),
                ev = next_probe => match ev {
                    Some(ProbeEvent::Started) => rt.update(idx, |s| s["started"] = json!(true)),
                    Some(ProbeEvent::Ready(r)) => rt.update(idx, |s| s["ready"] = json!(r)),
                    Some(ProbeEvent::Failed(why)) => {
                        log.write(format!("mc sim kubelet: {why}, container {name} will be restarted\n").as_bytes());
                        let exit = inst.stop(grace_of(&rt.pod)).await;
                        break (exit, false);
                    }
                    None => prx = None,
                },
                _ = stop.changed() => {
                    let grace = stop.borrow().unwrap_or(Duration::ZERO);
                    break (inst.stop(grace).await, true);
                }
            }
        };
        drop(probes);
        if let Instance::Process { pid, .. } = &inst {
            rt.node.track_pid(*pid, false);
        }
        log.end_run();
        let finished_at = now_rfc3339();
        let terminated = json!({"terminated": {
            "exitCode": exit.code, "reason": if exit.code == 0 { "Completed" } else { "Error" },
            "startedAt": started_at, "finishedAt": finished_at, "containerID": inst.id_or(&container_id)}});
        if stopping {
            rt.update(idx, |s| {
                s["state"] = terminated;
                s["ready"] = json!(false);
            });
            return;
        }
        let done = policy == "Never" || (policy == "OnFailure" && exit.code == 0);
        if done {
            rt.update(idx, |s| {
                s["state"] = terminated;
                s["ready"] = json!(false);
                s["started"] = json!(false);
            });
            while stop.borrow().is_none() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            return;
        }
        restarts += 1;
        backoff_n = if began.elapsed() >= BACKOFF_RESET {
            1
        } else {
            backoff_n + 1
        };
        let delay = backoff(rt.backoff_base(), backoff_n);
        rt.update(idx, |s| {
            s["lastState"] = terminated;
            s["restartCount"] = json!(restarts);
            s["ready"] = json!(false);
            s["started"] = json!(false);
            if delay.is_zero() {
                s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
            } else {
                s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off {} restarting failed container={name} pod={}",
                        humantime::format_duration(delay), rt.name)}});
            }
        });
        if sleep_or_stop(delay, &mut stop).await {
            return;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A JoinHandle dropped does not stop its task; an agnhost container must not outlive
        // its Pod. Processes are killed by `kill_on_drop`.
        if let Instance::Task(h) = self {
            h.abort();
        }
    }
}

impl Instance {
    fn id_or(&self, id: &str) -> String {
        match self {
            Instance::Process { .. } => self.id(),
            Instance::Task(_) => id.to_string(),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_back_off_doubles_after_an_immediate_first_restart() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1), Duration::ZERO);
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
