//! `mc demo`: the scenario mc exists for, on one machine. Two simulated clusters with nodes run
//! mc's own Pods; the demo drives them with the commands a user runs on real clusters (`mc
//! install | kubectl apply`, `mc link`, `mc export`, `kubectl apply` of a TrafficSplit), then
//! counts which cluster answers a client Pod's connections, through a failover and back.
//!
//! ```text
//!  start: sims east+west (nodes) ─▶ trust ─▶ install ─▶ backends+client ─▶ link both ways
//!         ─▶ export west's backend-svc ─▶ TrafficSplit 50/50 in east
//!  phases: tally N ─▶ kill west's gateways (scale 0) ─▶ until all east ─▶ tally
//!          ─▶ scale back ─▶ until west answers again ─▶ tally N ─▶ mc check (both contexts)
//!  stop:  clusters (and their Pod processes) shut down, temporary directory removed
//! ```
//!
//! I/O throughout; the decisions it shows are made by the real components (mc-mirror computes
//! the effective weights, mc-gateway picks per connection). Its own pure parts: `report`.

pub mod apply;
pub mod client;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;

use crate::k8s::{Deployment, Link, Pod, Service, TrafficSplit};
use crate::sim::{NodeConfig, SimCluster, SimConfig};
use report::{Tally, cluster_of};

pub const EAST: &str = "east";
pub const WEST: &str = "west";
const NS: &str = "default";
const MC_NS: &str = crate::k8s::DEFAULT_NAMESPACE;
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";
/// The client Pod runs mc's image; the node runs this executable for it.
const MC_IMAGE: &str = "ghcr.io/mc-dev/mc:0.1.0";
const APEX: &str = "backend";
const BACKEND_PORT: u16 = 8080;
const GATEWAY_SELECTOR: &str = "app.kubernetes.io/name=mc-gateway";
/// How long any one wait of the demo may take before it gives up.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// Connections per probe of the failover loop.
const PROBE_BURST: u32 = 20;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The mc executable: the commands the demo runs and the Pods of mc's image.
    pub mc_exe: PathBuf,
    /// Connections counted in the split and recovery phases.
    pub connections: u32,
    /// Period of east's probe of west's gateway (failover is measured against it).
    pub probe_period: Duration,
    /// ClusterIP /16 bases of east and west (Pods +90, load balancers +190 in the second octet).
    pub ip_bases: (Ipv4Addr, Ipv4Addr),
}

impl DemoConfig {
    pub fn new(mc_exe: PathBuf) -> Self {
        DemoConfig {
            mc_exe,
            connections: 1000,
            probe_period: Duration::from_secs(1),
            ip_bases: (Ipv4Addr::new(127, 63, 0, 0), Ipv4Addr::new(127, 64, 0, 0)),
        }
    }
}

/// Where the demo reports its steps (a spinner or plain lines, chosen by the CLI).
pub trait Steps: Sync {
    /// A step is starting.
    fn step(&self, what: &str);
    /// A step is done: what mc did, and the command that does it on real clusters.
    fn done(&self, what: &str, command: &str);
    /// Something worth reading that is not a step.
    fn note(&self, text: &str);
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create a temporary directory for the demo")]
    TempDir(#[source] std::io::Error),
    #[error("cannot start the simulated cluster {name}")]
    Sim {
        name: String,
        #[source]
        source: crate::sim::SimError,
    },
    #[error("cannot run `mc {args}`")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`mc {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("cannot {what}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "timed out after {}s waiting for {what}; run `mc demo --keep -v` to look around",
        WAIT.as_secs()
    )]
    Timeout { what: String },
    #[error("interrupted")]
    Interrupted,
}

/// How long a change took to show.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Until every new connection went where it should.
    pub traffic_ms: u64,
    /// Until the TrafficSplit's status showed the new effective weights.
    pub status_ms: u64,
}

/// The result of `mc check` for one context.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub context: String,
    /// `passed` or `failed` (the exit status of `mc check`).
    pub status: String,
    pub detail: String,
}

/// Everything `mc demo -o json` prints.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub clusters: Vec<String>,
    /// Spec weights of the split, by cluster.
    pub weights: BTreeMap<String, u32>,
    pub probe_period_ms: u64,
    pub phases: Vec<Tally>,
    pub failover: Timing,
    pub recovery: Timing,
    /// `alive` of west's gateway as east's Link reported it during the failover.
    pub west_gateway_alive_during_failover: Option<bool>,
    pub checks: Vec<CheckResult>,
    /// PIDs of every Pod process the demo's nodes ran (all gone once it returns).
    pub pod_processes: Vec<u32>,
    pub elapsed_ms: u64,
}

/// Two running clusters and what the demo needs to drive them.
pub struct Demo {
    config: DemoConfig,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    trust: PathBuf,
    east: SimCluster,
    west: SimCluster,
    east_client: Client,
    west_client: Client,
    pids: BTreeSet<u32>,
    started: Instant,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Kube { what, source }
}

/// Polls `f` every [`POLL`] until it gives `Some`, for at most [`WAIT`].
async fn until<T, F, Fut>(what: &str, mut f: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Timeout {
                what: what.to_owned(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Demo {
    /// Starts both clusters with nodes and writes their kubeconfig.
    pub async fn start(config: DemoConfig, steps: &dyn Steps) -> Result<Demo, DemoError> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("mc-demo-")
            .tempdir()
            .map_err(DemoError::TempDir)?;
        steps.step("starting simulated clusters east and west, each with a node");
        let mut clusters = Vec::new();
        for (name, base) in [(EAST, config.ip_bases.0), (WEST, config.ip_bases.1)] {
            let mut c = SimConfig::new(name);
            c.cluster_ip_base = base;
            c.node = Some(NodeConfig::new(&config.mc_exe));
            clusters.push(
                SimCluster::start(c)
                    .await
                    .map_err(|source| DemoError::Sim {
                        name: name.into(),
                        source,
                    })?,
            );
        }
        let west = clusters.pop().ok_or(DemoError::Interrupted)?;
        let east = clusters.pop().ok_or(DemoError::Interrupted)?;
        let kubeconfig = dir.path().join("kubeconfig");
        crate::sim::write_kubeconfig(&kubeconfig, &crate::sim::merged_kubeconfig(&[&east, &west]))
            .map_err(|source| DemoError::Sim {
                name: "east and west".into(),
                source,
            })?;
        let sim_err = |name: &str| {
            let name = name.to_owned();
            move |source| DemoError::Sim { name, source }
        };
        let east_client = east.client().await.map_err(sim_err(EAST))?;
        let west_client = west.client().await.map_err(sim_err(WEST))?;
        steps.done(
            "started clusters east and west; their nodes run Pods as local processes",
            "mc sim serve --clusters east,west --node --kubeconfig-out ./sim.kubeconfig",
        );
        let trust = dir.path().join("trust");
        Ok(Demo {
            config,
            dir,
            kubeconfig,
            trust,
            east,
            west,
            east_client,
            west_client,
            pids: BTreeSet::new(),
            started,
        })
    }

    /// The kubeconfig with contexts east and west (valid while the demo runs).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn client(&self, cluster: &str) -> &Client {
        if cluster == EAST {
            &self.east_client
        } else {
            &self.west_client
        }
    }

    /// Runs `mc ARGS` with the demo's kubeconfig; its stdout.
    async fn mc(&self, args: &[&str]) -> Result<String, DemoError> {
        let shown = args.join(" ");
        let out = tokio::process::Command::new(&self.config.mc_exe)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("MC_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| DemoError::Spawn {
                args: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(DemoError::Command {
                args: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The whole scenario; a failed step ends it with that step's error.
    pub async fn scenario(&mut self, steps: &dyn Steps) -> Result<Summary, DemoError> {
        let mut summary = Summary {
            clusters: vec![EAST.into(), WEST.into()],
            probe_period_ms: ms(self.config.probe_period),
            ..Default::default()
        };
        self.install(steps).await?;
        self.link_and_export(steps).await?;
        let (apex, client) = self.split(steps, &mut summary).await?;

        steps.step(&format!(
            "counting {} connections from the client Pod in east",
            self.config.connections
        ));
        let split = self
            .tally("split 50/50", client, apex, self.config.connections)
            .await?;
        steps.done(
            &format!(
                "{} new connections to the apex: east {:.1}%, west {:.1}%",
                split.connections,
                split.percent(EAST),
                split.percent(WEST)
            ),
            &format!(
                "kubectl --context east exec deploy/client -- sh -c 'for i in $(seq {}); do curl -s {APEX}:{BACKEND_PORT}; done'",
                self.config.connections
            ),
        );
        steps.note(&report::bars(&split, 40));
        summary.phases.push(split);

        self.failover(steps, &mut summary, client, apex).await?;
        self.recovery(steps, &mut summary, client, apex).await?;
        summary.checks = self.checks(steps).await;
        self.collect_pids().await;
        summary.pod_processes = self.pids.iter().copied().collect();
        summary.elapsed_ms = ms(self.started.elapsed());
        Ok(summary)
    }

    async fn install(&self, steps: &dyn Steps) -> Result<(), DemoError> {
        steps.step("creating the trust anchor and an issuer per cluster");
        let trust = self.trust.to_string_lossy().into_owned();
        self.mc(&["identity", "init", "--dir", &trust]).await?;
        for c in [EAST, WEST] {
            self.mc(&["identity", "issue", "--dir", &trust, "--cluster-name", c])
                .await?;
        }
        steps.done(
            "created a trust anchor and an issuer for east and for west",
            "mc identity init --dir ./trust && mc identity issue --dir ./trust --cluster-name east",
        );

        steps.step("installing mc in east and west");
        for c in [EAST, WEST] {
            let yaml = self
                .mc(&["install", "--cluster-name", c, "--identity-dir", &trust])
                .await?;
            apply::apply_yaml(self.client(c), c, "the output of mc install", &yaml).await?;
            let backends = backends_yaml(c);
            apply::apply_yaml(self.client(c), c, "the backend manifests", &backends).await?;
        }
        apply::apply_yaml(
            self.client(EAST),
            EAST,
            "the client manifest",
            &client_yaml(),
        )
        .await?;
        steps.done(
            "installed mc in east and west: CRDs, RBAC, mc-gateway and mc-mirror Deployments",
            "mc install --cluster-name east --identity-dir ./trust | kubectl --context east apply -f -",
        );
        steps.step("waiting for the gateways, mirror controllers and backends to be ready");
        for (c, ns, name) in [
            (EAST, MC_NS, "mc-gateway"),
            (WEST, MC_NS, "mc-gateway"),
            (EAST, MC_NS, "mc-mirror"),
            (WEST, MC_NS, "mc-mirror"),
            (EAST, NS, "backend-east"),
            (WEST, NS, "backend-west"),
            (EAST, NS, "client"),
        ] {
            self.rolled_out(c, ns, name).await?;
        }
        steps.done(
            "deployed backend-svc in both clusters (agnhost serve-hostname, Pods named backend-<cluster>-…) and a client Pod in east",
            "kubectl --context west apply -f backend.yaml && kubectl --context west rollout status deploy/backend-west",
        );
        Ok(())
    }

    async fn rolled_out(&self, cluster: &str, ns: &str, name: &str) -> Result<(), DemoError> {
        let api: Api<Deployment> = Api::namespaced(self.client(cluster).clone(), ns);
        until(
            &format!("Deployment {ns}/{name} in {cluster} to be ready"),
            || async {
                let d = api.get_opt(name).await.ok()??;
                let want = d.spec.as_ref()?.replicas.unwrap_or(1);
                let ready = d.status.as_ref()?.ready_replicas.unwrap_or(0);
                (ready >= want).then_some(())
            },
        )
        .await
    }

    async fn link_and_export(&self, steps: &dyn Steps) -> Result<(), DemoError> {
        steps.step("linking east → west and west → east");
        for (from, to) in [(EAST, WEST), (WEST, EAST)] {
            self.mc(&["link", "--from", from, "--to", to]).await?;
        }
        steps.done(
            "linked east → west and west → east (read-only credentials, Links, gateway identities)",
            "mc link --from east --to west && mc link --from west --to east",
        );
        // The default probe (every 3 s, 3 failures) is for real networks; the demo shows a
        // failover in seconds, so east probes west every period, out after 2 failures.
        let period = self.config.probe_period.as_secs().max(1);
        let patch = json!({"spec": {"probe": {
            "periodSeconds": period, "timeoutSeconds": 1, "failureThreshold": 2
        }}});
        Api::<Link>::namespaced(self.east_client.clone(), MC_NS)
            .patch(WEST, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("patch the probe of Link west in east"))?;
        steps.done(
            &format!("east probes west's gateway every {period} s (not alive after 2 failures)"),
            &format!(
                "kubectl --context east -n mc-system patch link west --type merge -p '{{\"spec\":{{\"probe\":{{\"periodSeconds\":{period},\"failureThreshold\":2}}}}}}'"
            ),
        );

        steps.step("exporting backend-svc in west");
        self.mc(&["--context", WEST, "export", "backend-svc", "-n", NS])
            .await?;
        let services: Api<Service> = Api::namespaced(self.east_client.clone(), NS);
        until("the mirror backend-svc-west in east", || async {
            services.get_opt("backend-svc-west").await.ok()?.map(|_| ())
        })
        .await?;
        steps.done(
            "exported backend-svc in west; east's mc-mirror created the mirror backend-svc-west",
            "mc --context west export backend-svc",
        );
        Ok(())
    }

    /// Applies the split, waits for its status and for both clusters to answer through it.
    async fn split(
        &self,
        steps: &dyn Steps,
        summary: &mut Summary,
    ) -> Result<(SocketAddr, SocketAddr), DemoError> {
        steps.step("applying a 50/50 TrafficSplit in east");
        apply::apply_yaml(&self.east_client, EAST, "the TrafficSplit", &split_yaml()).await?;
        let splits: Api<TrafficSplit> = Api::namespaced(self.east_client.clone(), NS);
        let gateway_port = until("the TrafficSplit's status (both backends up)", || async {
            let s = splits.get_opt(APEX).await.ok()??;
            let status = s.status?;
            let all_up = status
                .backends
                .iter()
                .all(|b| b.effective_weight == b.weight);
            (all_up && !status.backends.is_empty())
                .then(|| status.ports.first().map(|p| p.gateway_port))?
        })
        .await?;
        summary.weights = BTreeMap::from([(EAST.into(), 50), (WEST.into(), 50)]);
        let services: Api<Service> = Api::namespaced(self.east_client.clone(), NS);
        let apex_ip: Ipv4Addr = until("the apex Service backend's ClusterIP", || async {
            let s = services.get_opt(APEX).await.ok()??;
            s.spec?.cluster_ip?.parse().ok()
        })
        .await?;
        let apex = SocketAddr::from((apex_ip, BACKEND_PORT));
        steps.done(
            &format!(
                "split backend 50/50 over backend-svc (east) and backend-svc-west, and created the apex {apex} → east's gateway port {gateway_port}"
            ),
            "kubectl --context east apply -f split.yaml",
        );
        let pods: Api<Pod> = Api::namespaced(self.east_client.clone(), NS);
        let client_ip: Ipv4Addr = until("the client Pod's IP", || async {
            let list = pods
                .list(&ListParams::default().labels("app=client"))
                .await
                .ok()?;
            list.items
                .iter()
                .find_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
        })
        .await?;
        let client = SocketAddr::from((client_ip, client::CLIENT_PORT));
        steps.step("waiting for both clusters to answer through the split");
        until("answers from both clusters", || async {
            let b = client::request_burst(client, apex, PROBE_BURST, 4).await?;
            let t = tally_of("warm-up", &b);
            (t.counts.contains_key(EAST) && t.counts.contains_key(WEST)).then_some(())
        })
        .await?;
        Ok((apex, client))
    }

    async fn tally(
        &self,
        phase: &str,
        client: SocketAddr,
        apex: SocketAddr,
        n: u32,
    ) -> Result<Tally, DemoError> {
        let b = client::request_burst(client, apex, n, 8)
            .await
            .ok_or_else(|| DemoError::Timeout {
                what: format!("the client Pod at {client} to count {n} connections"),
            })?;
        Ok(tally_of(phase, &b))
    }

    async fn failover(
        &mut self,
        steps: &dyn Steps,
        summary: &mut Summary,
        client: SocketAddr,
        apex: SocketAddr,
    ) -> Result<(), DemoError> {
        steps.step("killing west's gateway processes and scaling mc-gateway to 0");
        let pids = self.gateway_pids(WEST).await?;
        self.pids.extend(pids.iter().copied());
        self.scale_gateway(WEST, 0).await?;
        for pid in &pids {
            if let Some(p) = i32::try_from(*pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let killed = Instant::now();
        steps.done(
            &format!(
                "killed west's gateway processes (PIDs {}) and scaled mc-gateway to 0",
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "kubectl --context west -n mc-system scale deploy/mc-gateway --replicas 0",
        );
        steps.step("waiting for new connections to go to east only");
        let moved = until("every new connection to go to east", || async {
            let at = killed.elapsed();
            let b = client::request_burst(client, apex, PROBE_BURST, 4).await?;
            let t = tally_of("failover", &b);
            (t.failures == 0 && t.counts.get(EAST) == Some(&PROBE_BURST)).then_some(at)
        })
        .await?;
        let splits: Api<TrafficSplit> = Api::namespaced(self.east_client.clone(), NS);
        let status = until("the split's status to fail west over", || async {
            let s = splits.get_opt(APEX).await.ok()??.status?;
            s.backends
                .iter()
                .any(|b| b.cluster.as_deref() == Some(WEST) && b.effective_weight == 0)
                .then(|| (killed.elapsed(), s.weights.unwrap_or_default()))
        })
        .await?;
        summary.failover = Timing {
            traffic_ms: ms(moved),
            status_ms: ms(status.0),
        };
        steps.done(
            &format!(
                "all new connections went to east {} ms after the kill; split status {} after {} ms",
                ms(moved),
                status.1,
                ms(status.0)
            ),
            "kubectl --context east get trafficsplit backend",
        );
        let links: Api<Link> = Api::namespaced(self.east_client.clone(), MC_NS);
        let alive = until("east's Link west to report the gateway", || async {
            let l = links.get_opt(WEST).await.ok()??;
            let alive = l.status?.gateway?.alive;
            (!alive).then_some(alive)
        })
        .await?;
        summary.west_gateway_alive_during_failover = Some(alive);
        let stat = self.mc(&["gateways", "stat", "--context", EAST]).await?;
        steps.done(
            "east's probe reports west's gateway not alive",
            "mc gateways stat --context east",
        );
        steps.note(&indent(&stat));
        let t = self.tally("failover", client, apex, 200).await?;
        steps.note(&report::bars(&t, 40));
        summary.phases.push(t);
        Ok(())
    }

    async fn recovery(
        &mut self,
        steps: &dyn Steps,
        summary: &mut Summary,
        client: SocketAddr,
        apex: SocketAddr,
    ) -> Result<(), DemoError> {
        steps.step("scaling west's mc-gateway back to 2");
        self.scale_gateway(WEST, 2).await?;
        let scaled = Instant::now();
        steps.done(
            "scaled west's mc-gateway back to 2",
            "kubectl --context west -n mc-system scale deploy/mc-gateway --replicas 2",
        );
        steps.step("waiting for west to take its share again");
        let splits: Api<TrafficSplit> = Api::namespaced(self.east_client.clone(), NS);
        let status = until("the split's status to restore west", || async {
            let s = splits.get_opt(APEX).await.ok()??.status?;
            s.backends
                .iter()
                .all(|b| b.effective_weight == b.weight)
                .then(|| scaled.elapsed())
        })
        .await?;
        // Back means split again, not one answer: each east gateway Pod reconnects to west on
        // its own (nudged by the client's traffic once the status says west is alive), and
        // until all have, west gets less than its share. Their metrics say when
        // (`mc_gateway_peer_pool_state{peer="west",state="ready"} 1`). The client keeps sending
        // meanwhile, as a real one would.
        let gateways = self.gateway_ips(EAST).await?;
        let ready = format!("mc_gateway_peer_pool_state{{peer=\"{WEST}\",state=\"ready\"}} 1");
        let back = until("west to take its share again", || async {
            let at = scaled.elapsed();
            let b = client::request_burst(client, apex, PROBE_BURST, 4).await?;
            let answered = tally_of("recovery", &b).counts.contains_key(WEST);
            for ip in &gateways {
                let addr = SocketAddr::from((*ip, crate::k8s::GATEWAY_PROBE_PORT));
                let metrics = client::http_get(addr, "/metrics").await?;
                metrics.lines().any(|l| l == ready).then_some(())?;
            }
            answered.then_some(at)
        })
        .await?;
        summary.recovery = Timing {
            traffic_ms: ms(back),
            status_ms: ms(status),
        };
        let t = self
            .tally("recovered", client, apex, self.config.connections)
            .await?;
        steps.done(
            &format!(
                "west took its share again {} ms after scaling up; {} connections: east {:.1}%, west {:.1}%",
                ms(back),
                t.connections,
                t.percent(EAST),
                t.percent(WEST)
            ),
            "kubectl --context east get trafficsplit backend -w",
        );
        steps.note(&report::bars(&t, 40));
        summary.phases.push(t);
        Ok(())
    }

    /// The check phase: `mc check --context C -o json --wait 10s` for both contexts, as a user
    /// runs it: passed when it exits 0 (warnings allowed), failed otherwise.
    async fn checks(&self, steps: &dyn Steps) -> Vec<CheckResult> {
        steps.step("running mc check for east and west");
        let mut results = Vec::new();
        for c in [EAST, WEST] {
            let run = self
                .mc(&["check", "--context", c, "-o", "json", "--wait", "10s"])
                .await;
            let (status, detail) = match run {
                Ok(out) => ("passed", check_counts(&out)),
                Err(DemoError::Command { stderr, .. }) => ("failed", stderr),
                Err(e) => ("failed", e.to_string()),
            };
            results.push(CheckResult {
                context: c.into(),
                status: status.into(),
                detail,
            });
        }
        let all = results.iter().all(|r| r.status == "passed");
        steps.done(
            &format!(
                "mc check {} in east and west",
                if all { "passed" } else { "FAILED" }
            ),
            "mc check --context east --context west",
        );
        results
    }

    async fn gateway_pids(&self, cluster: &str) -> Result<Vec<u32>, DemoError> {
        let pods: Api<Pod> = Api::namespaced(self.client(cluster).clone(), MC_NS);
        let list = pods
            .list(&ListParams::default().labels(GATEWAY_SELECTOR))
            .await
            .map_err(kube_err(format!("list the gateway Pods of {cluster}")))?;
        Ok(list.items.iter().flat_map(pod_pids).collect())
    }

    async fn gateway_ips(&self, cluster: &str) -> Result<Vec<Ipv4Addr>, DemoError> {
        let pods: Api<Pod> = Api::namespaced(self.client(cluster).clone(), MC_NS);
        let list = pods
            .list(&ListParams::default().labels(GATEWAY_SELECTOR))
            .await
            .map_err(kube_err(format!("list the gateway Pods of {cluster}")))?;
        Ok(list
            .items
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
            .collect())
    }

    async fn scale_gateway(&self, cluster: &str, replicas: i32) -> Result<(), DemoError> {
        Api::<Deployment>::namespaced(self.client(cluster).clone(), MC_NS)
            .patch(
                crate::k8s::GATEWAY_NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(kube_err(format!(
                "scale Deployment mc-gateway in {cluster} to {replicas}"
            )))?;
        Ok(())
    }

    /// Remembers the PIDs of every Pod process running now (checked after shutdown).
    async fn collect_pids(&mut self) {
        for cluster in [EAST, WEST] {
            let pods: Api<Pod> = Api::all(self.client(cluster).clone());
            if let Ok(list) = pods.list(&ListParams::default()).await {
                self.pids.extend(list.items.iter().flat_map(pod_pids));
            }
        }
    }

    /// Stops both clusters and their Pods, waits for their processes to end, and removes the
    /// temporary directory. Returns the PIDs still running (none, normally).
    pub async fn shutdown(mut self) -> Vec<u32> {
        self.collect_pids().await;
        let Demo {
            east,
            west,
            dir,
            pids,
            ..
        } = self;
        east.shutdown().await;
        west.shutdown().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left: Vec<u32> = pids.iter().copied().filter(|p| running(*p)).collect();
        while !left.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            left.retain(|p| running(*p));
        }
        drop(dir);
        left
    }
}

/// `ok, warnings, errors` from `mc check -o json`'s summary.
fn check_counts(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let n = |k: &str| v["summary"][k].as_u64().unwrap_or(0);
    format!(
        "{} ok, {} warnings, {} errors",
        n("ok"),
        n("warnings"),
        n("errors")
    )
}

/// PIDs of a Pod's process containers (`process://<pid>`, mc's image).
fn pod_pids(pod: &Pod) -> Vec<u32> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| {
            c.container_id
                .as_deref()?
                .strip_prefix("process://")?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie is not).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn tally_of(phase: &str, b: &client::Burst) -> Tally {
    let mut counts = BTreeMap::new();
    let mut failures = b.failures;
    for (answer, n) in &b.answers {
        match cluster_of(answer) {
            Some(c) => *counts.entry(c.to_owned()).or_insert(0) += n,
            None => failures += n,
        }
    }
    Tally {
        phase: phase.to_owned(),
        connections: b.answers.values().sum::<u32>() + b.failures,
        counts,
        failures,
        elapsed_ms: b.elapsed_ms,
    }
}

/// `backend-svc` and its Pods in `cluster`: agnhost answering its Pod name.
fn backends_yaml(cluster: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend-{cluster}, namespace: {NS}, labels: {{app: backend}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: backend}}}}
  template:
    metadata: {{labels: {{app: backend}}}}
    spec:
      containers:
      - name: backend
        image: {AGNHOST}
        args: ["serve-hostname"]
        ports: [{{containerPort: 9376}}]
---
apiVersion: v1
kind: Service
metadata: {{name: backend-svc, namespace: {NS}}}
spec:
  selector: {{app: backend}}
  ports: [{{name: http, port: {BACKEND_PORT}, targetPort: 9376}}]
"#
    )
}

fn client_yaml() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: {NS}, labels: {{app: client}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: client}}}}
  template:
    metadata: {{labels: {{app: client}}}}
    spec:
      containers:
      - name: client
        image: {MC_IMAGE}
        args: ["demo", "client", "--listen", "$(POD_IP):{port}"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
"#,
        port = client::CLIENT_PORT
    )
}

/// The split the demo applies (also in docs/demo.md).
pub fn split_yaml() -> String {
    format!(
        r#"apiVersion: mc.dev/v1alpha1
kind: TrafficSplit
metadata: {{name: {APEX}, namespace: {NS}}}
spec:
  service: {APEX}
  backends:
  - {{service: backend-svc, weight: 50}}
  - {{service: backend-svc-west, weight: 50}}
"#
    )
}
