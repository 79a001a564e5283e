//! The product path: two `mc gateway` processes configured only through (simulated) Kubernetes
//! APIs — `mc-config`, `mc-issuer`, exported Services, mirror Services and a `Link` — following
//! changes live, including an unexport done with real `kubectl`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, CustomResourceExt};
use mc::k8s::{Link, LinkSpec};
use mc::sim::{SimCluster, SimConfig};

use super::LIMIT;
use super::harness::*;
use super::pki::{Ca, Pki};

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: ns.map(str::to_owned),
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// What `mc install` puts in a cluster, as far as the gateway reads it.
async fn install(client: &Client, pki: &Pki, issuer: &Ca, cluster: &str) {
    let pp = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &pp,
            &Namespace {
                metadata: meta(None, "mc-system"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cm = ConfigMap {
        metadata: meta(Some("mc-system"), "mc-config"),
        data: Some(BTreeMap::from([
            ("clusterName".to_owned(), cluster.to_owned()),
            ("trustDomain".to_owned(), "cluster.local".to_owned()),
            ("ca-bundle.crt".to_owned(), pki.anchor.cert_pem.clone()),
        ])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), "mc-system")
        .create(&pp, &cm)
        .await
        .unwrap();
    let secret = Secret {
        metadata: meta(Some("mc-system"), "mc-issuer"),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(issuer.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(issuer.key_pem.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), "mc-system")
        .create(&pp, &secret)
        .await
        .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&pp, &Link::crd())
        .await
        .unwrap();
}

fn service(
    name: &str,
    port: i32,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Service {
    let mut m = meta(Some("default"), name);
    m.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    m.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Service {
        metadata: m,
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn write_kubeconfig(sim: &SimCluster, path: &Path) {
    std::fs::write(path, serde_json::to_string(&sim.kubeconfig()).unwrap()).unwrap();
}

/// `mc gateway` for the cluster of `kubeconfig`, all its listeners on `ip`: inbound and admin
/// on ports it picks (and reports), outbound on the ports the mirror Services name.
async fn start_gateway(kubeconfig: &Path, ip: Ipv4Addr) -> GatewayProcess {
    let kubeconfig = kubeconfig.to_owned();
    // Waiting for the child's log line blocks; the sims serve on this runtime meanwhile.
    tokio::task::spawn_blocking(move || {
        spawn_gateway(
            Command::new(env!("CARGO_BIN_EXE_mc"))
                .arg("gateway")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["--inbound-addr", &format!("{ip}:0")])
                .args(["--admin-addr", &format!("{ip}:0")])
                .args(["--outbound-ip", &ip.to_string()])
                .stdout(Stdio::null()),
        )
    })
    .await
    .unwrap()
}

async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_follow_exports_mirrors_and_links_from_the_api() {
    if !crate::support::have_kubectl() {
        return;
    }
    init();
    let pki = Pki::new();
    let mut wcfg = SimConfig::new("west");
    wcfg.cluster_ip_base = Ipv4Addr::new(127, 61, 0, 0);
    let west = SimCluster::start(wcfg).await.unwrap();
    let mut ecfg = SimConfig::new("east");
    ecfg.cluster_ip_base = Ipv4Addr::new(127, 62, 0, 0);
    let east = SimCluster::start(ecfg).await.unwrap();
    let (wc, ec) = (west.client().await.unwrap(), east.client().await.unwrap());
    install(&wc, &pki, &pki.west, "west").await;
    install(&ec, &pki, &pki.east, "east").await;

    // West exports backend; its ClusterIP is a loopback address the echo server can bind.
    let pp = PostParams::default();
    let wsvc = Api::<Service>::namespaced(wc.clone(), "default");
    let created = wsvc
        .create(
            &pp,
            &service("backend", 8888, &[("mc.dev/exported", "true")], &[]),
        )
        .await
        .unwrap();
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    let backend = echo_at(format!("{ip}:8888").parse().unwrap()).await;

    let dir = tempfile::tempdir().unwrap();
    let (wkc, ekc) = (
        dir.path().join("west.kubeconfig"),
        dir.path().join("east.kubeconfig"),
    );
    write_kubeconfig(&west, &wkc);
    write_kubeconfig(&east, &ekc);
    // East's outbound port goes into the mirror Service before east listens on it: on an
    // address of this test's own, a fixed number is safe.
    let lo = Loopback::lease();
    let port = OUTBOUND_PORT;
    let mirror_port = lo.addr(port);
    let west_gw = start_gateway(&wkc, lo.ip).await;
    let east_gw = start_gateway(&ekc, lo.ip).await;

    // East links to west and mirrors backend on its outbound port.
    let link = Link::new(
        "west",
        LinkSpec {
            target_cluster_name: "west".into(),
            target_cluster_domain: "cluster.local".into(),
            target_trust_domain: "cluster.local".into(),
            api_server: west.url(),
            credentials_secret: "mc-link-west".into(),
            gateway_addresses: vec![west_gw.inbound.ip().to_string()],
            gateway_port: west_gw.inbound.port(),
            gateway_identity: WEST_ID.into(),
            probe: Default::default(),
            selector: "mc.dev/exported=true".into(),
        },
    );
    let links = Api::<Link>::namespaced(ec.clone(), "mc-system");
    eventually("the Link CRD to be served", LIMIT, || async {
        links.create(&pp, &link).await.ok()
    })
    .await;
    let esvc = Api::<Service>::namespaced(ec.clone(), "default");
    let ports = format!("{{\"8888\":{port}}}");
    esvc.create(
        &pp,
        &service(
            "backend-west",
            8888,
            &[("mc.dev/mirror-of", "west")],
            &[
                ("mc.dev/remote-service", "default/backend"),
                ("mc.dev/gateway-ports", &ports),
            ],
        ),
    )
    .await
    .unwrap();

    for admin in [west_gw.admin, east_gw.admin] {
        eventually("both gateways ready", LIMIT, || async {
            http_get(admin, "/ready")
                .await
                .filter(|r| r.starts_with("HTTP/1.0 200"))
        })
        .await;
    }
    eventually(
        "traffic east -> west through the API-configured path",
        LIMIT,
        || async { echoes(mirror_port).await.then_some(()) },
    )
    .await;

    // Unexport with kubectl: new connections are refused at west and never reach the backend.
    let out = crate::support::output(
        crate::support::kubectl(dir.path())
            .arg("--kubeconfig")
            .arg(&wkc)
            .args([
                "-n",
                "default",
                "label",
                "service",
                "backend",
                "mc.dev/exported-",
            ]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("west to refuse the unexported service", LIMIT, || async {
        (!echoes(mirror_port).await).then_some(())
    })
    .await;
    let dialled = backend.accepted();
    assert!(!echoes(mirror_port).await);
    assert_eq!(
        backend.accepted(),
        dialled,
        "an unexported service was dialled"
    );
    let m = http_get(west_gw.admin, "/metrics").await.unwrap();
    assert!(
        metric(
            &m,
            "mc_gateway_streams_total{side=\"inbound\",result=\"not_exported\"}"
        ) >= 1.0
    );

    // Deleting the mirror closes east's outbound listener.
    esvc.delete("backend-west", &DeleteParams::default())
        .await
        .unwrap();
    eventually("east to close the outbound port", LIMIT, || async {
        tokio::net::TcpStream::connect(mirror_port)
            .await
            .is_err()
            .then_some(())
    })
    .await;
}
