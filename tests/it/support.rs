//! Shared test support: one `eventually`, addresses and ports a test owns, clusters with mc
//! installed from one trust anchor, links written the way `mc link` writes them, and child
//! processes that die with their test.
//!
//! Children stay in the test binary's process group on purpose: Ctrl-C in a terminal then reaches
//! them too. A failing test unwinds, and `KillOnDrop` kills and reaps its children on the way.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use mc::k8s::{
    ClusterRoleBinding, Link, LinkSpec, RoleBinding, RoleRef, Secret, ServiceAccount, Subject,
};
use mc::sim::SimConfig;
use time::OffsetDateTime;

use crate::sim::{Sim, start_sim_with};

/// The crypto provider, and logs on stderr when `MC_LOG` is set (`MC_LOG=mc=debug` shows
/// the components' logs in a failing test).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("MC_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Polls `f` every 20 ms until it returns `Some`, failing the test with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Ports. A test never picks a port by binding port 0, dropping the socket and reusing the
// number: between the drop and the reuse any process (another test's client, another engineer's
// suite) may take it. Instead the port is owned by whatever listens (bind port 0 and read
// `local_addr()`: in-process listeners, and `mc gateway` children, which log the addresses they
// bound), or it sits on a loopback address the test leases ([`Loopback`]) when the number has
// to be known before anything listens (a gateway's outbound port is a key of its tables), or
// it is a [`DeadPort`] (bound, never listening) when it must refuse connections.
//
// Linux routes all of 127.0.0.0/8 to `lo`; the suite uses it as follows (keep this up to date):
// - 127.0.0.1: port 0 only (servers that report their address) and every client's source;
// - 127.0.0.2-3: client sources in gateway::silent_connections_filling_the_handshake_slots...;
// - 127.10.0.0/16: the sim's default ClusterIPs (its Pods 127.100, its LoadBalancers 127.200);
// - 127.20-27: node and check tests' clusters (Pods 127.110-117, LoadBalancers 127.210-217);
// - 127.40-59: [`installed`] clusters, by index;
// - 127.61-62: gateway::kube's clusters;
// - 127.63-64: `mc demo`'s clusters (Pods 127.153-154, LoadBalancers 127.253-254);
// - 127.70.0.0/16: [`Loopback::lease`], one address per lease;
// - benchmarks, run apart from the suite: 127.30-69 (benches/node.rs, Pods 127.120-159) and
//   127.90-91 (benches/mirror.rs).
// Addresses that only appear in objects (127.0.0.77 as a gateway endpoint) bind nothing.
// The fixed cluster ranges are per test, not per process: two runs of the suite at once on
// one machine can still collide there (leases cannot).

/// First address [`Loopback::lease`] hands out is in this /16.
const LEASE_NET: Ipv4Addr = Ipv4Addr::new(127, 70, 0, 0);
/// The port whose binding on an address is the lease of that address. Below the ephemeral
/// range (32768-60999 on Linux), so no client connection can hold it by chance.
const LEASE_PORT: u16 = 32767;

/// A loopback address of the test's own, for ports whose numbers must be fixed before anything
/// listens on them. The lease is a bound, non-listening socket on [`LEASE_PORT`] of the address,
/// held while the value lives: another test, or a concurrent run of the suite in another
/// process, that tries the same address fails to bind it and moves on, and the kernel ends the
/// lease when the process dies, however it dies. Fixed ports below 32768 on the address then
/// collide with nothing: connections to 127/8 leave from 127.0.0.1.
pub struct Loopback {
    pub ip: Ipv4Addr,
    _lease: tokio::net::TcpSocket,
}

impl Loopback {
    pub fn lease() -> Loopback {
        // Processes start at different points of the range, so that concurrent runs rarely
        // probe the same addresses.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let start = std::process::id().wrapping_mul(40503);
        for _ in 0..1024 {
            let n = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 0xfffe + 1;
            let ip = Ipv4Addr::from(u32::from(LEASE_NET) + n);
            let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
            match socket.bind((ip, LEASE_PORT).into()) {
                Ok(()) => {
                    return Loopback { ip, _lease: socket };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("cannot lease {ip}: {e}"),
            }
        }
        panic!(
            "no free loopback address in {LEASE_NET}/16 (is something bound to 0.0.0.0:{LEASE_PORT}?)"
        );
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        (self.ip, port).into()
    }
}

/// A port that refuses connections for as long as the value lives: bound, never listening, so
/// a connection gets a reset and nothing else can take the port meanwhile.
pub struct DeadPort {
    pub addr: SocketAddr,
    _held: tokio::net::TcpSocket,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let held = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        held.bind("127.0.0.1:0".parse().unwrap())
            .expect("a port on 127.0.0.1");
        DeadPort {
            addr: held.local_addr().unwrap(),
            _held: held,
        }
    }
}

/// A trust anchor shared by every cluster of a test.
pub struct Trust {
    pub anchor: mc::identity::pki::CertKeyPem,
}

impl Trust {
    pub fn new() -> Trust {
        let now = OffsetDateTime::now_utc();
        Trust {
            anchor: mc::identity::pki::new_anchor(
                "cluster.local",
                now - time::Duration::minutes(1),
                now + time::Duration::days(30),
            )
            .unwrap(),
        }
    }

    /// The YAML `mc install --cluster-name NAME` prints for this anchor.
    pub fn install_yaml(&self, cluster: &str, sets: &[(&str, &str)]) -> String {
        let now = OffsetDateTime::now_utc();
        let signer =
            mc::identity::pki::load_issuer(&self.anchor.cert_pem, &self.anchor.key_pem).unwrap();
        let issuer = mc::identity::pki::new_issuer(
            &signer,
            cluster,
            "cluster.local",
            now - time::Duration::minutes(1),
            now + time::Duration::days(10),
        )
        .unwrap();
        let sets: Vec<(String, String)> = sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        mc::render::render_install(&mc::render::InstallInput {
            cluster_name: cluster.into(),
            namespace: "mc-system".into(),
            trust_domain: "cluster.local".into(),
            anchor_pem: self.anchor.cert_pem.clone(),
            issuer_cert_pem: issuer.cert_pem,
            issuer_key_pem: issuer.key_pem,
            values: mc::render::values::resolve(&[], &sets).unwrap(),
        })
        .unwrap()
    }
}

/// A simulated cluster named `name` (ClusterIPs from 127.(40+index).0.0/16, index < 20, so that clusters
/// of one test never share addresses) with mc installed by the real kubectl.
pub async fn installed(trust: &Trust, name: &str, index: u8) -> Sim {
    let mut config = SimConfig::new(name);
    config.cluster_ip_base = std::net::Ipv4Addr::new(127, 40 + index, 0, 0);
    let sim = start_sim_with(config).await;
    sim.kubectl_ok_stdin(&["apply", "-f", "-"], trust.install_yaml(name, &[]))
        .await;
    sim
}

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: ns.map(str::to_owned),
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// Where a Link points the source's probe and tunnels.
pub struct GatewayAt {
    pub host: String,
    pub port: u16,
    pub probe_port: u16,
}

/// What `mc link --from src --to tgt` writes: in `tgt` the ServiceAccount
/// `mc-remote-access-<src>` bound to the remote-reader roles, in `src` the Secret with a
/// kubeconfig for its token and the Link (kept if it exists). Returns the token.
pub async fn link_by_hand(
    src: &Sim,
    src_name: &str,
    tgt: &Sim,
    tgt_name: &str,
    gw: &GatewayAt,
) -> String {
    let ns = "mc-system";
    let account = mc::k8s::remote_access_account(src_name);
    let pp = PostParams::default();
    let sa = ServiceAccount {
        metadata: meta(Some(ns), &account),
        ..Default::default()
    };
    let _ = Api::<ServiceAccount>::namespaced(tgt.client.clone(), ns)
        .create(&pp, &sa)
        .await;
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: account.clone(),
        namespace: Some(ns.into()),
        api_group: None,
    };
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: mc::k8s::REMOTE_ACCESS_ROLE.into(),
    };
    let _ = Api::<ClusterRoleBinding>::all(tgt.client.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: meta(None, &account),
                role_ref: role_ref("ClusterRole"),
                subjects: Some(vec![subject.clone()]),
            },
        )
        .await;
    let _ = Api::<RoleBinding>::namespaced(tgt.client.clone(), ns)
        .create(
            &pp,
            &RoleBinding {
                metadata: meta(Some(ns), &account),
                role_ref: role_ref("Role"),
                subjects: Some(vec![subject]),
            },
        )
        .await;
    let token = tgt
        .cluster
        .service_account_token(ns, &account, Duration::from_secs(3600))
        .expect("token for the remote-access account");
    let kubeconfig = serde_saphyr::to_string(&tgt.cluster.kubeconfig_with_token(&token)).unwrap();
    let secret_name = mc::k8s::link_secret_name(tgt_name);
    let secret = Secret {
        metadata: meta(Some(ns), &secret_name),
        type_: Some(mc::k8s::LINK_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([(
            mc::k8s::LINK_SECRET_KEY.to_owned(),
            ByteString(kubeconfig.into_bytes()),
        )])),
        ..Default::default()
    };
    let secrets = Api::<Secret>::namespaced(src.client.clone(), ns);
    let _ = secrets.delete(&secret_name, &Default::default()).await;
    secrets.create(&pp, &secret).await.unwrap();
    let mut link = Link::new(
        tgt_name,
        LinkSpec {
            target_cluster_name: tgt_name.into(),
            target_cluster_domain: "cluster.local".into(),
            target_trust_domain: "cluster.local".into(),
            api_server: tgt.cluster.url(),
            credentials_secret: secret_name,
            gateway_addresses: vec![gw.host.clone()],
            gateway_port: gw.port,
            gateway_identity: mc::identity::gateway_dns_name(tgt_name, "cluster.local"),
            probe: mc::k8s::link::ProbeSpec {
                port: gw.probe_port,
                path: "/ready".into(),
                period_seconds: 1,
                timeout_seconds: 1,
                failure_threshold: 2,
            },
            selector: format!("{}=true", mc::k8s::LABEL_EXPORTED),
        },
    );
    link.metadata.namespace = Some(ns.into());
    // Linking again (after revoking the account) keeps the Link and replaces its credentials.
    match Api::<Link>::namespaced(src.client.clone(), ns)
        .create(&pp, &link)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating Link {tgt_name}: {e}"),
    }
    token
}

/// A child process killed and reaped when dropped, also while a failing test unwinds.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Spawns `cmd`; a missing program is named, with what to install.
pub fn spawn(cmd: &mut Command) -> KillOnDrop {
    match cmd.spawn() {
        Ok(child) => KillOnDrop(child),
        Err(err) => panic!("{}", spawn_error(cmd, &err)),
    }
}

/// Runs `cmd` to completion; a missing program is named, with what to install.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("{}", spawn_error(cmd, &err)))
}

/// Why `cmd` could not start, naming kubectl's installation when that is what is missing.
pub fn spawn_error(cmd: &Command, err: &std::io::Error) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if err.kind() == std::io::ErrorKind::NotFound && program == "kubectl" {
        "this test needs kubectl on PATH (any 1.27+ client); install it, or run .ci/run, which checks for it first".to_owned()
    } else {
        format!("could not run {program}: {err}")
    }
}

/// `kubectl` with its discovery and HTTP caches under `dir` instead of `~/.kube/cache`, and no
/// `KUBECONFIG` from the environment: tests never read or write the user's kube files.
pub fn kubectl(dir: &Path) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--cache-dir")
        .arg(dir.join("kubectl-cache"))
        .env_remove("KUBECONFIG");
    cmd
}

/// Whether the real kubectl can be used; with `MC_REQUIRE_KUBECTL=1` (set by .ci/run) a missing
/// one fails the test instead of skipping it.
pub fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("MC_REQUIRE_KUBECTL").as_deref() == Ok("1") {
        panic!("kubectl is required (MC_REQUIRE_KUBECTL=1) but was not found on PATH");
    }
    if !found {
        eprintln!("skipped: this test needs kubectl on PATH (any 1.27+ client)");
    }
    found
}

#[test]
fn a_dropped_child_is_killed_and_reaped() {
    let child = spawn(Command::new("sleep").arg("600"));
    let pid = child.id();
    drop(child);
    // Reaped: the pid no longer names a process (not even a zombie) of ours.
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "sleep {pid} outlived its guard");
}

#[test]
fn a_missing_kubectl_is_named_with_what_to_do() {
    let err = std::io::Error::from(std::io::ErrorKind::NotFound);
    let text = spawn_error(&Command::new("kubectl"), &err);
    assert!(text.contains("needs kubectl on PATH"), "{text}");
}

#[test]
fn a_leased_address_is_the_holders_until_the_lease_is_dropped() {
    let (a, b) = (Loopback::lease(), Loopback::lease());
    assert_ne!(a.ip, b.ip);
    // What another process trying the same address meets.
    let lease_of_a = a.addr(LEASE_PORT);
    let bind = || tokio::net::TcpSocket::new_v4()?.bind(lease_of_a);
    assert_eq!(
        bind().unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse,
        "{} was leased twice",
        a.ip
    );
    let ip = a.ip;
    drop(a);
    assert!(
        bind().is_ok(),
        "{ip} stayed leased after its lease was dropped"
    );
}

#[tokio::test]
async fn a_dead_port_refuses_connections() {
    let dead = DeadPort::new();
    let err = tokio::net::TcpStream::connect(dead.addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}
