//! `mc mirror` against simulated clusters with mc installed: the real kube-rs watches, the
//! sim's RBAC (the controller in east reads west only through the link's token), finalizers,
//! leases and status subresources.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use mc::k8s::{
    EndpointSlice, LABEL_EXPORTED, LABEL_MIRROR_OF, Link, Service, ServicePort, ServiceSpec,
};
use mc::runtime::admin::{AdminServer, Readiness};
use tokio_util::sync::CancellationToken;

use crate::sim::Sim;
use crate::support::{GatewayAt, Loopback, Trust, eventually, installed, link_by_hand};

const LIMIT: Duration = Duration::from_secs(20);

/// A controller running in-process for `sim`, stopped when dropped.
struct Mirror {
    stop: CancellationToken,
    running: Option<mc::mirror::Running>,
}

impl Mirror {
    async fn start(sim: &Sim, identity: &str) -> Mirror {
        crate::support::init();
        let stop = CancellationToken::new();
        let running = mc::mirror::start(
            sim.client.clone(),
            mc::mirror::MirrorConfig {
                namespace: "mc-system".into(),
                admin_addr: "127.0.0.1:0".parse().unwrap(),
                create_namespaces: false,
                resync: Duration::from_secs(2),
                identity: identity.into(),
            },
            stop.clone(),
        )
        .await
        .unwrap();
        Mirror {
            stop,
            running: Some(running),
        }
    }

    fn metrics(&self) -> String {
        self.running.as_ref().unwrap().metrics.encode()
    }

    /// Stops it as a crash would not: cancels and waits (the Lease is released).
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(r) = self.running.take() {
            let _ = r.task.await;
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A stand-in for the target gateway's probe port: /ready answers 200 while `up`.
struct ProbeTarget {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl ProbeTarget {
    fn start() -> ProbeTarget {
        let readiness = Readiness::new();
        let stop = CancellationToken::new();
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            readiness,
            Arc::new(String::new),
            stop.clone(),
        )
        .unwrap();
        ProbeTarget {
            addr: server.addr,
            stop,
        }
    }

    fn gateway(&self) -> GatewayAt {
        GatewayAt {
            host: self.addr.ip().to_string(),
            port: 4143,
            probe_port: self.addr.port(),
        }
    }
}

impl Drop for ProbeTarget {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn service(ns: &str, name: &str, exported: bool, ports: &[(&str, i32)]) -> Service {
    let mut labels = BTreeMap::new();
    if exported {
        labels.insert(LABEL_EXPORTED.to_owned(), "true".to_owned());
    }
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: Some(n.to_string()),
                        port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

async fn create(sim: &Sim, svc: Service) {
    let ns = svc.metadata.namespace.clone().unwrap();
    Api::<Service>::namespaced(sim.client.clone(), &ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// The local gateway's endpoints, as the EndpointSlice controller of a cluster with gateway
/// Pods would write them.
async fn gateway_endpoints(sim: &Sim, ips: &[&str]) {
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "mc-gateway-test", "namespace": "mc-system",
                     "labels": {"kubernetes.io/service-name": "mc-gateway"}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"name": "mc-gateway", "port": 4143, "protocol": "TCP"}],
    }))
    .unwrap();
    Api::<EndpointSlice>::namespaced(sim.client.clone(), "mc-system")
        .patch(
            "mc-gateway-test",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&slice),
        )
        .await
        .unwrap();
}

/// Replaces the ports of `default/name` (a JSON merge patch replaces the whole list).
async fn set_ports(sim: &Sim, name: &str, ports: &[(&str, i32)]) {
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|(n, p)| serde_json::json!({"name": n, "port": p, "protocol": "TCP"}))
        .collect();
    Api::<Service>::namespaced(sim.client.clone(), "default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"ports": ports}})),
        )
        .await
        .unwrap();
}

async fn get_svc(sim: &Sim, ns: &str, name: &str) -> Option<Service> {
    Api::<Service>::namespaced(sim.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn get_link(sim: &Sim, name: &str) -> Option<Link> {
    Api::<Link>::namespaced(sim.client.clone(), "mc-system")
        .get_opt(name)
        .await
        .unwrap()
}

fn gateway_ports(svc: &Service) -> BTreeMap<String, u16> {
    serde_json::from_str(
        &svc.metadata.annotations.as_ref().unwrap()[mc::k8s::ANNOTATION_GATEWAY_PORTS],
    )
    .unwrap()
}

fn condition(link: &Link, t: &str) -> Option<(String, String)> {
    link.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_services_are_mirrored_updated_and_removed_across_links() {
    let trust = Trust::new();
    let (east, west, north) = tokio::join!(
        installed(&trust, "east", 0),
        installed(&trust, "west", 1),
        installed(&trust, "north", 2)
    );
    let probe = ProbeTarget::start();
    gateway_endpoints(&east, &["127.0.0.77"]).await;
    create(
        &west,
        service(
            "default",
            "backend-svc",
            true,
            &[("http", 8888), ("metrics", 9090)],
        ),
    )
    .await;
    create(&west, service("default", "private", false, &[("http", 80)])).await;
    create(
        &north,
        service("default", "backend-svc", true, &[("http", 8888)]),
    )
    .await;
    link_by_hand(&east, "east", &west, "west", &probe.gateway()).await;
    link_by_hand(&east, "east", &north, "north", &probe.gateway()).await;
    let mirror = Mirror::start(&east, "east-1").await;

    let m = eventually("backend-svc-west", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west").await
    })
    .await;
    let labels = m.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_MIRROR_OF], "west");
    assert!(!labels.contains_key(LABEL_EXPORTED));
    let ann = m.metadata.annotations.clone().unwrap();
    assert_eq!(
        ann[mc::k8s::ANNOTATION_REMOTE_SERVICE],
        "default/backend-svc"
    );
    assert!(m.spec.as_ref().unwrap().selector.is_none());
    let west_ports = gateway_ports(&m);
    assert_eq!(west_ports.len(), 2);
    let n = eventually("backend-svc-north", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-north").await
    })
    .await;
    let north_port = gateway_ports(&n)["8888"];
    assert!(
        !west_ports.values().any(|p| *p == north_port),
        "ports are unique across links"
    );
    assert!(get_svc(&east, "default", "private-west").await.is_none());

    // The EndpointSlice points at the gateway on the allocated ports.
    let slice = eventually("the mirror's EndpointSlice", LIMIT, || async {
        Api::<EndpointSlice>::namespaced(east.client.clone(), "default")
            .get_opt("backend-svc-west")
            .await
            .unwrap()
    })
    .await;
    assert_eq!(slice.endpoints[0].addresses, vec!["127.0.0.77".to_string()]);
    let mut slice_ports: Vec<i32> = slice
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port.unwrap())
        .collect();
    slice_ports.sort();
    let mut want: Vec<i32> = west_ports.values().map(|p| i32::from(*p)).collect();
    want.sort();
    assert_eq!(slice_ports, want);

    // Status: Ready, with counts, via the real kubectl's printer columns too.
    eventually("Link west Ready", LIMIT, || async {
        let l = get_link(&east, "west").await?;
        (condition(&l, "Ready")?.0 == "True" && l.status.as_ref()?.mirrored_services == Some(1))
            .then_some(())
    })
    .await;
    let table = east.kubectl_ok(&["get", "links", "-n", "mc-system"]).await;
    assert!(table.contains("west") && table.contains("true"), "{table}");

    // A remote port change propagates, keeping the unchanged port's allocation.
    set_ports(&west, "backend-svc", &[("http", 8888), ("admin", 7070)]).await;
    let updated = eventually("the port change in east", LIMIT, || async {
        let s = get_svc(&east, "default", "backend-svc-west").await?;
        gateway_ports(&s).contains_key("7070").then_some(s)
    })
    .await;
    assert_eq!(gateway_ports(&updated)["8888"], west_ports["8888"]);

    // A port removed in west, and one renumbered under the same name, leave the mirror too: the
    // mirror has exactly west's ports (a mirror created by one manager operation and applied by
    // another keeps the removed port, and the renumbered one then clashes by name).
    set_ports(&west, "backend-svc", &[("http", 8889)]).await;
    eventually(
        "the mirror to have exactly west's one port",
        LIMIT,
        || async {
            let s = get_svc(&east, "default", "backend-svc-west").await?;
            let ports: Vec<(Option<String>, i32)> = s
                .spec?
                .ports?
                .into_iter()
                .map(|p| (p.name, p.port))
                .collect();
            (ports == vec![(Some("http".to_owned()), 8889)]).then_some(())
        },
    )
    .await;

    // Unexport (with the real kubectl) deletes the mirror; north's stays.
    west.kubectl_ok(&["label", "service", "backend-svc", "mc.dev/exported-"])
        .await;
    eventually("the unexported mirror to go", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        get_svc(&east, "default", "backend-svc-north")
            .await
            .is_some()
    );

    // Deleting a Link removes its mirrors first (finalizer), and nothing of the other link.
    west.kubectl_ok(&["label", "service", "backend-svc", "mc.dev/exported=true"])
        .await;
    eventually("re-export", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west").await
    })
    .await;
    east.kubectl_ok(&[
        "delete",
        "link",
        "west",
        "-n",
        "mc-system",
        "--wait=true",
        "--timeout=20s",
    ])
    .await;
    assert!(
        get_svc(&east, "default", "backend-svc-west")
            .await
            .is_none()
    );
    assert!(
        get_svc(&east, "default", "backend-svc-north")
            .await
            .is_some()
    );
    assert!(mirror.metrics().lines().any(|l| l == "mc_mirror_leader 1"));
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_converges_without_duplicates_or_orphans() {
    let trust = Trust::new();
    let (east, west) = tokio::join!(installed(&trust, "east", 3), installed(&trust, "west", 4));
    let probe = ProbeTarget::start();
    for name in ["a", "b"] {
        create(&west, service("default", name, true, &[("tcp", 80)])).await;
    }
    link_by_hand(&east, "east", &west, "west", &probe.gateway()).await;
    let mirror = Mirror::start(&east, "east-1").await;
    eventually("both mirrors", LIMIT, || async {
        (get_svc(&east, "default", "a-west").await.is_some()
            && get_svc(&east, "default", "b-west").await.is_some())
        .then_some(())
    })
    .await;
    let a_port = gateway_ports(&get_svc(&east, "default", "a-west").await.unwrap())["80"];
    mirror.stop().await;

    // While it is down: b is deleted in west, c appears.
    Api::<Service>::namespaced(west.client.clone(), "default")
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    create(&west, service("default", "c", true, &[("tcp", 80)])).await;

    let mirror = Mirror::start(&east, "east-2").await;
    eventually("b-west gone and c-west there", LIMIT, || async {
        (get_svc(&east, "default", "b-west").await.is_none()
            && get_svc(&east, "default", "c-west").await.is_some())
        .then_some(())
    })
    .await;
    let mirrors = Api::<Service>::all(east.client.clone())
        .list(&kube::api::ListParams::default().labels("mc.dev/mirror-of=west"))
        .await
        .unwrap();
    let mut names: Vec<String> = mirrors
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a-west", "c-west"]);
    assert_eq!(
        gateway_ports(&get_svc(&east, "default", "a-west").await.unwrap())["80"],
        a_port,
        "a kept its port across the restart"
    );
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_keeps_mirrors_and_reports_it_and_a_dead_gateway_makes_endpoints_not_ready()
 {
    let trust = Trust::new();
    let (east, west) = tokio::join!(installed(&trust, "east", 5), installed(&trust, "west", 6));
    let probe = ProbeTarget::start();
    gateway_endpoints(&east, &["127.0.0.78"]).await;
    create(&west, service("default", "a", true, &[("tcp", 80)])).await;
    link_by_hand(&east, "east", &west, "west", &probe.gateway()).await;
    let _mirror = Mirror::start(&east, "east-1").await;
    eventually("Ready", LIMIT, || async {
        let l = get_link(&east, "west").await?;
        (condition(&l, "Ready")?.0 == "True").then_some(())
    })
    .await;

    west.cluster
        .faults()
        .unreachable_for(Duration::from_secs(3600));
    west.cluster.faults().drop_all_connections();
    let l = eventually("RemoteReachable=False", LIMIT, || async {
        let l = get_link(&east, "west").await?;
        (condition(&l, "RemoteReachable")? == ("False".into(), "Unreachable".into())).then_some(l)
    })
    .await;
    let status = l.status.unwrap();
    let msg = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "RemoteReachable")
        .unwrap()
        .message;
    assert!(msg.contains("since"), "{msg}");
    assert!(
        get_svc(&east, "default", "a-west").await.is_some(),
        "mirrors stay"
    );

    west.cluster.faults().reachable();
    eventually("RemoteReachable=True again", LIMIT, || async {
        let l = get_link(&east, "west").await?;
        (condition(&l, "RemoteReachable")?.0 == "True").then_some(())
    })
    .await;

    // The gateway stops answering its probe: endpoints not ready, then ready again.
    probe.stop.cancel();
    eventually(
        "GatewayAlive=False and endpoints not ready",
        LIMIT,
        || async {
            let l = get_link(&east, "west").await?;
            let s = Api::<EndpointSlice>::namespaced(east.client.clone(), "default")
                .get_opt("a-west")
                .await
                .ok()??;
            let ready = s.endpoints[0].conditions.as_ref()?.ready?;
            (condition(&l, "GatewayAlive")?.0 == "False" && !ready).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_mc_does_not_own_is_left_alone_and_reported_and_two_replicas_elect_one_writer() {
    let trust = Trust::new();
    let (east, west) = tokio::join!(installed(&trust, "east", 7), installed(&trust, "west", 8));
    let probe = ProbeTarget::start();
    create(&west, service("default", "a", true, &[("tcp", 80)])).await;
    create(&west, service("default", "b", true, &[("tcp", 80)])).await;
    // Someone's own Service that happens to have a mirror's name.
    create(&east, service("default", "a-west", false, &[("web", 8080)])).await;
    link_by_hand(&east, "east", &west, "west", &probe.gateway()).await;
    let one = Mirror::start(&east, "replica-1").await;
    let two = Mirror::start(&east, "replica-2").await;
    let l = eventually("the conflict in the Link status", LIMIT, || async {
        let l = get_link(&east, "west").await?;
        (!l.status.as_ref()?.conflicts.is_empty()
            && get_svc(&east, "default", "b-west").await.is_some())
        .then_some(l)
    })
    .await;
    let conflicts = l.status.unwrap().conflicts;
    assert_eq!(conflicts[0].service, "default/a-west");
    let theirs = get_svc(&east, "default", "a-west").await.unwrap();
    assert!(
        !theirs
            .metadata
            .labels
            .unwrap()
            .contains_key(LABEL_MIRROR_OF),
        "left alone"
    );
    assert_eq!(theirs.spec.unwrap().ports.unwrap()[0].port, 8080);
    let events = east.kubectl_ok(&["get", "events", "-n", "mc-system"]).await;
    assert!(events.contains("MirrorConflict"), "{events}");

    let leaders: Vec<bool> = [&one, &two]
        .iter()
        .map(|m| m.metrics().lines().any(|l| l == "mc_mirror_leader 1"))
        .collect();
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "{leaders:?}\n{}\n{}",
        one.metrics(),
        two.metrics()
    );
    let follower = if leaders[0] { &two } else { &one };
    assert!(
        !follower.metrics().contains("mc_mirror_actions_total{"),
        "{}",
        follower.metrics()
    );

    // The leader goes away: the other takes over and keeps things converged.
    let (leader, follower) = if leaders[0] { (one, two) } else { (two, one) };
    leader.stop().await;
    create(&west, service("default", "c", true, &[("tcp", 80)])).await;
    eventually("c-west from the new leader", LIMIT, || async {
        get_svc(&east, "default", "c-west").await
    })
    .await;
    assert!(
        follower
            .metrics()
            .lines()
            .any(|l| l == "mc_mirror_leader 1")
    );
}

/// The whole product path on two sims: `mc mirror` in east mirrors west's export, both gateways
/// are configured only from their clusters, and bytes sent to east's outbound port for the mirror
/// reach the backend behind west's ClusterIP and come back intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_the_gateways_to_a_mirrored_service_until_it_is_unexported() {
    use crate::gateway::harness::{echo_at, roundtrip};
    use mc::gateway::source_kube;
    let trust = Trust::new();
    let (east, west) = tokio::join!(installed(&trust, "east", 11), installed(&trust, "west", 12));
    create(
        &west,
        service("default", "backend-svc", true, &[("tcp", 8888)]),
    )
    .await;
    let ip = get_svc(&west, "default", "backend-svc")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let backend = echo_at(format!("{ip}:8888").parse().unwrap()).await;

    // The outbound ports the mirror picks from its pool are fixed before east listens on them:
    // each gateway gets a loopback address of this test's own.
    let (east_lo, west_lo) = (Loopback::lease(), Loopback::lease());
    let start_gateway = |sim: &Sim, lo: &Loopback| {
        let client = sim.client.clone();
        let ip: std::net::IpAddr = lo.ip.into();
        async move {
            let stop = CancellationToken::new();
            let name = source_kube::gateway_name(&client, "mc-system")
                .await
                .unwrap();
            let feed = source_kube::spawn(client.clone(), "mc-system", stop.clone());
            let settings = mc::gateway::Settings {
                inbound_addr: (ip, 0).into(),
                admin_addr: (ip, 0).into(),
                outbound_ip: ip,
                ..Default::default()
            };
            let running = mc::gateway::start(
                settings,
                name,
                source_kube::material(client, "mc-system".into()),
                feed,
            )
            .await
            .unwrap();
            (running, stop)
        }
    };
    let (west_gw, _west_stop) = start_gateway(&west, &west_lo).await;
    let (east_gw, _east_stop) = start_gateway(&east, &east_lo).await;
    link_by_hand(
        &east,
        "east",
        &west,
        "west",
        &GatewayAt {
            host: west_lo.ip.to_string(),
            port: west_gw.inbound_addr.port(),
            probe_port: west_gw.admin_addr.port(),
        },
    )
    .await;
    let _mirror = Mirror::start(&east, "east-1").await;
    let mirror = eventually("backend-svc-west", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west").await
    })
    .await;
    let port = gateway_ports(&mirror)["8888"];
    let outbound = east_lo.addr(port);
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let back = eventually("bytes through east -> west", LIMIT, || async {
        roundtrip(outbound, &payload)
            .await
            .ok()
            .filter(|b| b.len() == payload.len())
    })
    .await;
    assert!(back == payload, "the echo came back altered");
    assert!(backend.accepted() >= 1);
    eventually(
        "GatewayAlive=True from the real gateway's probe port",
        LIMIT,
        || async {
            let l = get_link(&east, "west").await?;
            (condition(&l, "GatewayAlive")?.0 == "True").then_some(())
        },
    )
    .await;

    // Unexported in west: new connections are refused there, and the mirror goes.
    west.kubectl_ok(&["label", "service", "backend-svc", "mc.dev/exported-"])
        .await;
    eventually("new connections to be refused", LIMIT, || async {
        let r = roundtrip(outbound, b"ping").await;
        r.map_or(true, |b| b.is_empty()).then_some(())
    })
    .await;
    eventually("the mirror to go", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    east_gw.kill();
    west_gw.kill();
}

/// What a user runs: `mc export` in west, `mc link --wait` returns once east's controller
/// reports the Link Ready, the mirror is there; `mc unlink` has the controller remove it (the
/// finalizer) and the link's old token stops working in west.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mc_link_wait_and_mc_unlink_with_the_controller_running() {
    let pair = crate::link::installed_pair().await;
    // The target gateway's probe port: `mc link` writes the default (4191) into the Link, so it
    // is fixed, on a loopback address of this test's own.
    let lo = Loopback::lease();
    let readiness = Readiness::new();
    let stop = CancellationToken::new();
    let _probe = AdminServer::start(
        lo.addr(4191),
        readiness,
        Arc::new(String::new),
        stop.clone(),
    )
    .unwrap();
    create(
        &pair.west,
        service("default", "backend-svc", false, &[("http", 8888)]),
    )
    .await;
    pair.mc_ok(&[
        "--context",
        "west",
        "export",
        "backend-svc",
        "-n",
        "default",
    ])
    .await;
    let _mirror = Mirror::start(&pair.east, "east-1").await;
    let out = pair
        .link(&[
            "--gateway-address",
            &format!("{}:4143", lo.ip),
            "--wait",
            "--timeout",
            "30s",
        ])
        .await;
    let _ = out;
    let m = get_svc(&pair.east, "default", "backend-svc-west")
        .await
        .expect("the mirror exists once mc link --wait returns");
    assert_eq!(gateway_ports(&m).len(), 1);
    let (kubeconfig, _) = crate::link::linking::link_kubeconfig(&pair).await;
    let token = crate::link::linking::token_of(&kubeconfig);

    pair.mc_ok(&["unlink", "--from", "east", "--to", "west"])
        .await;
    assert!(
        get_svc(&pair.east, "default", "backend-svc-west")
            .await
            .is_none()
    );
    assert!(get_link(&pair.east, "west").await.is_none());
    let old = pair.west.cluster.client_with_token(&token).await.unwrap();
    let err = Api::<Service>::all(old)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err}"
    );
    stop.cancel();
}

/// Without the TrafficSplit CRD (an install older than TrafficSplit, a newer controller), mirrors
/// still work: the missing CRD means "no splits". Installed later, it is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_trafficsplit_crd_does_not_stop_mirroring() {
    let trust = Trust::new();
    let (east, west) = tokio::join!(installed(&trust, "east", 0), installed(&trust, "west", 1));
    east.kubectl_ok(&["delete", "crd", "trafficsplits.mc.dev"])
        .await;
    let probe = ProbeTarget::start();
    gateway_endpoints(&east, &["127.0.0.77"]).await;
    create(
        &west,
        service("default", "backend-svc", true, &[("http", 8888)]),
    )
    .await;
    link_by_hand(&east, "east", &west, "west", &probe.gateway()).await;
    let _mirror = Mirror::start(&east, "east-1").await;
    eventually("backend-svc-west without the split CRD", LIMIT, || async {
        get_svc(&east, "default", "backend-svc-west").await
    })
    .await;

    // The CRD comes (back): a split is routed.
    east.kubectl_ok_stdin(&["apply", "-f", "-"], trust.install_yaml("east", &[]))
        .await;
    let split = "apiVersion: mc.dev/v1alpha1\nkind: TrafficSplit\nmetadata: {name: web, namespace: default}\nspec:\n  service: web\n  backends: [{service: backend-svc-west, weight: 1}]\n";
    east.kubectl_ok_stdin(&["apply", "-f", "-"], split.to_owned())
        .await;
    eventually("the split routed once its CRD exists", LIMIT, || async {
        let weights = east
            .kubectl_ok(&[
                "get",
                "trafficsplit",
                "web",
                "-o",
                "jsonpath={.status.weights}",
            ])
            .await;
        (weights == "backend-svc-west=1").then_some(())
    })
    .await;
}
