//! `mc check` and `mc gateways stat` on two node sims with mc installed by `mc install | kubectl
//! apply`: the gateways and the mirror controllers run as Pods. Each step breaks one thing,
//! expects exactly the right checks to fail (from the parsed `-o json`), with hints into
//! docs/troubleshooting.md, then repairs it and expects `mc check --wait` to pass again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use mc::k8s::Secret;
use mc::sim::{merged_kubeconfig, write_kubeconfig};
use serde_json::Value;

use crate::link::mc_with;
use crate::node::{identity, install, jsonpath, node_config};
use crate::sim::{Sim, have_kubectl, start_sim_with};
use crate::support::{GatewayAt, Trust, eventually, installed, link_by_hand};

const LIMIT: Duration = Duration::from_secs(40);

/// `(context, id)` of every failed check.
type Failures = BTreeSet<(String, String)>;

async fn check(kubeconfig: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["check", "-o", "json"];
    all.extend_from_slice(args);
    let out: Output = mc_with(kubeconfig, &all).await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mc {all:?} printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

fn failures(doc: &Value) -> Failures {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["result"] == "error")
        .map(|c| {
            (
                c["context"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(expected: &[(&str, &str)]) -> Failures {
    expected
        .iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect()
}

/// Polls `mc check` until exactly `expected` fail; checks their hints and the exit status.
async fn until_failing(kubeconfig: &Path, args: &[&str], expected: &[(&str, &str)]) -> Value {
    let expected = set(expected);
    let deadline = Instant::now() + LIMIT;
    loop {
        let (code, doc) = check(kubeconfig, args).await;
        let got = failures(&doc);
        if got == expected {
            assert_eq!(code, Some(1), "mc check exits 1 when a check fails");
            for c in doc["checks"].as_array().unwrap() {
                if c["result"] == "error" {
                    let hint = c["hint"].as_str().expect("a hint under each failure");
                    let anchor = format!("docs/troubleshooting.md#{}", c["id"].as_str().unwrap());
                    assert!(hint.contains(&anchor), "{c}");
                }
            }
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "expected failures {expected:?}, got {got:?}:\n{doc:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `mc check --wait` passes (warnings allowed), exit 0.
async fn passes(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--wait", "40s"];
    all.extend_from_slice(args);
    let (code, doc) = check(kubeconfig, &all).await;
    assert_eq!(failures(&doc), Failures::new(), "{doc:#}");
    assert_eq!(code, Some(0));
    assert_eq!(doc["summary"]["errors"], 0);
    doc
}

fn find<'a>(doc: &'a Value, context: &str, id: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["context"] == context && c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} for {context}: {doc:#}"))
}

async fn stat(kubeconfig: &Path) -> Vec<Value> {
    let out = mc_with(
        kubeconfig,
        &[
            "gateways",
            "stat",
            "--context",
            "east",
            "--context",
            "west",
            "-o",
            "json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("JSON array")
}

async fn kubectl_ok(sim: &Sim, args: &[&str]) -> String {
    sim.kubectl_ok(args).await
}

async fn scale(sim: &Sim, deployment: &str, replicas: u32) {
    kubectl_ok(
        sim,
        &[
            "-n",
            "mc-system",
            "scale",
            "deployment",
            deployment,
            "--replicas",
            &replicas.to_string(),
        ],
    )
    .await;
}

async fn rollout(sim: &Sim, ns: &str, deployment: &str) {
    kubectl_ok(
        sim,
        &[
            "-n",
            ns,
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--timeout",
            "30s",
        ],
    )
    .await;
}

async fn export(sim: &Sim, name: &str) {
    kubectl_ok(
        sim,
        &["create", "service", "clusterip", name, "--tcp=8888:8888"],
    )
    .await;
    kubectl_ok(sim, &["label", "service", name, "mc.dev/exported=true"]).await;
}

async fn issuer_cert(sim: &Sim) -> Secret {
    Api::<Secret>::namespaced(sim.client.clone(), "mc-system")
        .get("mc-issuer")
        .await
        .unwrap()
}

async fn put_issuer(sim: &Sim, secret: &Secret) {
    let mut s = secret.clone();
    s.metadata.managed_fields = None;
    s.metadata.resource_version = None;
    Api::<Secret>::namespaced(sim.client.clone(), "mc-system")
        .patch(
            "mc-issuer",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&s),
        )
        .await
        .unwrap();
}

struct Pair {
    east: Sim,
    west: Sim,
    kubeconfig: PathBuf,
    id: PathBuf,
    west_gateway: GatewayAt,
}

/// Two node sims, mc installed from one identity directory, east linked to west, and
/// `backend` exported in west.
/// `octets`: the second octets of their ClusterIP bases (see tests/it/node.rs).
async fn linked_node_pair(octets: (u8, u8)) -> Pair {
    crate::support::init();
    let (east, west) = tokio::join!(
        start_sim_with(node_config("east", octets.0)),
        start_sim_with(node_config("west", octets.1))
    );
    let id = east.dir.path().join("id");
    identity(&id, &["east", "west"]);
    install(&east, "east", &id).await;
    install(&west, "west", &id).await;
    for sim in [&east, &west] {
        rollout(sim, "mc-system", "mc-gateway").await;
        rollout(sim, "mc-system", "mc-mirror").await;
    }
    let west_lb = jsonpath(
        &west,
        &["-n", "mc-system", "get", "svc", "mc-gateway"],
        "{.status.loadBalancer.ingress[0].ip}",
    )
    .await;
    let west_gateway = GatewayAt {
        host: west_lb,
        port: 4143,
        probe_port: 4191,
    };
    link_by_hand(&east, "east", &west, "west", &west_gateway).await;
    export(&west, "backend").await;
    let kubeconfig = east.dir.path().join("both");
    write_kubeconfig(
        &kubeconfig,
        &merged_kubeconfig(&[&east.cluster, &west.cluster]),
    )
    .unwrap();
    Pair {
        east,
        west,
        kubeconfig,
        id,
        west_gateway,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mc_check_names_each_broken_thing_and_passes_after_the_fix() {
    if !have_kubectl() {
        return;
    }
    let p = linked_node_pair((26, 27)).await;
    let kc = p.kubeconfig.as_path();
    let both = ["--context", "east", "--context", "west"];

    // Healthy: every category checked in both contexts, the link seen from both sides.
    let doc = passes(kc, &both).await;
    if std::env::var_os("MC_SHOW").is_some() {
        eprintln!("{doc:#}");
    }
    for (context, id) in [
        ("east", "rbac-access"),
        ("west", "gateway-deployment"),
        ("east", "mirror-deployment"),
        ("west", "issuer-validity"),
        ("west", "gateway-certificate"),
        ("east", "link-anchors"),
        ("east", "link-remote-access"),
        ("east", "link-mirrored"),
        ("east", "link-gateway"),
    ] {
        assert_eq!(
            find(&doc, context, id)["result"],
            "ok",
            "{context} {id}: {doc:#}"
        );
    }
    assert!(
        find(&doc, "west", "gateway-certificate")["message"]
            .as_str()
            .unwrap()
            .contains("mc-gateway.mc-system.west.cluster.local"),
        "{doc:#}"
    );

    // The target's gateway stops: its Deployment in west, the probe seen from east.
    let rows = stat(kc).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["source"], &rows[0]["target"]),
        (&"east".into(), &"west".into())
    );
    assert_eq!(rows[0]["alive"], true);
    assert!(rows[0]["p50Ms"].is_u64(), "{rows:?}");
    scale(&p.west, "mc-gateway", 0).await;
    let doc = until_failing(
        kc,
        &both,
        &[("west", "gateway-deployment"), ("east", "link-gateway")],
    )
    .await;
    // The controller's Event on the Link says since when.
    let message = find(&doc, "east", "link-gateway")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("last Warning event"), "{message}");
    let rows = stat(kc).await;
    assert_eq!(rows[0]["alive"], false, "{rows:?}");
    assert_eq!(rows[0]["status"], "GatewayNotAlive", "{rows:?}");
    scale(&p.west, "mc-gateway", 2).await;
    passes(kc, &both).await;
    eventually(
        "the gateway alive again in gateways stat",
        LIMIT,
        || async {
            let rows = stat(kc).await;
            (rows[0]["alive"] == true && rows[0]["p99Ms"].is_u64()).then_some(())
        },
    )
    .await;

    // --watch prints a fresh table every probe period (1 s for these Links) until stopped.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .arg("--kubeconfig")
        .arg(kc)
        .args(["gateways", "stat", "--context", "east", "--watch"])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(watch.stdout.take().unwrap()));
    let mut tables = 0;
    while tables < 2 {
        let line = tokio::time::timeout(LIMIT, lines.next_line())
            .await
            .expect("a refreshed table")
            .unwrap()
            .expect("mc gateways stat --watch keeps running");
        if line.contains("SOURCE") {
            tables += 1;
        } else if line.contains("west") {
            assert!(line.contains(" yes "), "{line}");
        }
    }
    watch.kill().await.unwrap();

    // West revokes east's access. The controller's open watch keeps going until it reconnects
    // (as with a real API server), so it is west's side, read live, that shows it at once.
    // Linking again repairs it.
    kubectl_ok(
        &p.west,
        &[
            "-n",
            "mc-system",
            "delete",
            "serviceaccount",
            "mc-remote-access-east",
        ],
    )
    .await;
    until_failing(kc, &both, &[("east", "link-remote-access")]).await;
    link_by_hand(&p.east, "east", &p.west, "west", &p.west_gateway).await;
    passes(kc, &both).await;

    // A Service that east's owner made takes the name of a mirror.
    kubectl_ok(
        &p.east,
        &[
            "create",
            "service",
            "clusterip",
            "other-west",
            "--tcp=80:80",
        ],
    )
    .await;
    export(&p.west, "other").await;
    let doc = until_failing(kc, &both, &[("east", "link-conflicts")]).await;
    assert!(
        find(&doc, "east", "link-conflicts")["message"]
            .as_str()
            .unwrap()
            .contains("default/other-west"),
        "{doc:#}"
    );
    kubectl_ok(&p.east, &["delete", "service", "other-west"]).await;
    passes(kc, &both).await;

    // A daisy chain: west also links to east and mirrors east's `loop` as `loop-east`, which
    // someone exports in west; east refuses to mirror a mirror.
    let east_lb = jsonpath(
        &p.east,
        &["-n", "mc-system", "get", "svc", "mc-gateway"],
        "{.status.loadBalancer.ingress[0].ip}",
    )
    .await;
    let east_gateway = GatewayAt {
        host: east_lb,
        port: 4143,
        probe_port: 4191,
    };
    link_by_hand(&p.west, "west", &p.east, "east", &east_gateway).await;
    export(&p.east, "loop").await;
    passes(kc, &both).await;
    kubectl_ok(
        &p.west,
        &["label", "service", "loop-east", "mc.dev/exported=true"],
    )
    .await;
    let doc = until_failing(kc, &both, &[("east", "link-daisy-chain")]).await;
    assert!(
        find(&doc, "east", "link-daisy-chain")["message"]
            .as_str()
            .unwrap()
            .contains("default/loop-east"),
        "{doc:#}"
    );
    assert_eq!(find(&doc, "west", "exported-mirrors")["result"], "warning");
    kubectl_ok(
        &p.west,
        &["label", "service", "loop-east", "mc.dev/exported-"],
    )
    .await;
    passes(kc, &both).await;

    // A TrafficSplit over west's mirror and a Service that does not exist: routed, with one
    // backend out (a warning that names it); over the missing one alone, every connection is
    // refused (a failure); deleted, nothing is left to check.
    let split = |backends: &str| {
        format!(
            "apiVersion: mc.dev/v1alpha1\nkind: TrafficSplit\nmetadata: {{name: web, namespace: default}}\nspec:\n  service: web\n  backends: {backends}\n"
        )
    };
    let apply = ["apply", "-f", "-"];
    p.east
        .kubectl_ok_stdin(
            &apply,
            split("[{service: backend-west, weight: 50}, {service: web-v2, weight: 50}]"),
        )
        .await;
    let doc = eventually("the split routed with web-v2 out", LIMIT, || async {
        let (_, doc) = check(kc, &both).await;
        let c = find(&doc, "east", "traffic-split");
        let out = c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("out of the split");
        (c["result"] == "warning" && out).then_some(doc)
    })
    .await;
    let c = find(&doc, "east", "traffic-split");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("backend-west=50")
            && message.contains("Service default/web-v2 does not exist"),
        "{c}"
    );
    assert_eq!(failures(&doc), Failures::new(), "{doc:#}");
    p.east
        .kubectl_ok_stdin(&apply, split("[{service: web-v2, weight: 50}]"))
        .await;
    let doc = until_failing(kc, &both, &[("east", "traffic-split")]).await;
    assert!(
        find(&doc, "east", "traffic-split")["message"]
            .as_str()
            .unwrap()
            .contains("no backend takes connections"),
        "{doc:#}"
    );
    kubectl_ok(&p.east, &["delete", "trafficsplit", "web"]).await;
    let doc = passes(kc, &both).await;
    assert!(
        !doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "traffic-split"),
        "{doc:#}"
    );

    // East's controller stops, then west stops exporting backend: its mirror is an orphan.
    // Starting the controller again removes it.
    scale(&p.east, "mc-mirror", 0).await;
    until_failing(kc, &both, &[("east", "mirror-deployment")]).await;
    kubectl_ok(&p.west, &["delete", "service", "backend"]).await;
    until_failing(
        kc,
        &both,
        &[("east", "mirror-deployment"), ("east", "link-orphans")],
    )
    .await;
    // The stopped Pod released the Lease on SIGTERM: the new one takes it at once.
    scale(&p.east, "mc-mirror", 1).await;
    passes(kc, &both).await;

    // West's issuer is replaced by one that expires in a moment.
    let original = issuer_cert(&p.west).await;
    let anchor = std::fs::read_to_string(p.id.join("anchor.crt")).unwrap();
    let anchor_key = std::fs::read_to_string(p.id.join("anchor.key")).unwrap();
    let signer = mc::identity::pki::load_issuer(&anchor, &anchor_key).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let short = mc::identity::pki::new_issuer(
        &signer,
        "west",
        "cluster.local",
        now - time::Duration::minutes(1),
        now + time::Duration::seconds(1),
    )
    .unwrap();
    let mut expiring = original.clone();
    let data = expiring.data.as_mut().unwrap();
    data.insert("tls.crt".into(), ByteString(short.cert_pem.into_bytes()));
    data.insert("tls.key".into(), ByteString(short.key_pem.into_bytes()));
    put_issuer(&p.west, &expiring).await;
    let doc = until_failing(kc, &both, &[("west", "issuer-validity")]).await;
    assert!(
        find(&doc, "west", "issuer-validity")["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{doc:#}"
    );
    put_issuer(&p.west, &original).await;
    passes(kc, &both).await;

    // A cluster installed from another anchor, linked by hand-written objects (its probe points
    // at west's gateway, which answers): `--direct` reads north's anchors through the link's
    // credentials.
    let direct = ["--context", "east", "--direct"];
    passes(kc, &direct).await;
    let north = installed(&Trust::new(), "north", 18).await;
    link_by_hand(&p.east, "east", &north, "north", &p.west_gateway).await;
    let doc = until_failing(kc, &direct, &[("east", "link-anchors")]).await;
    let c = find(&doc, "east", "link-anchors");
    assert_eq!(c["link"], "north", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("no anchor in common"),
        "{c}"
    );
    // Without --direct nor north's context, the anchors are not compared.
    let (_, doc) = check(kc, &["--context", "east"]).await;
    assert_eq!(failures(&doc), Failures::new(), "{doc:#}");
    Api::<mc::k8s::Link>::namespaced(p.east.client.clone(), "mc-system")
        .delete("north", &DeleteParams::default())
        .await
        .unwrap();
    passes(kc, &direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_stat_without_links_says_so() {
    let sim = installed(&Trust::new(), "lonely", 17).await;
    let out = mc_with(&sim.kubeconfig, &["gateways", "stat"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No Links in lonely"), "{text}");
    assert!(text.contains("mc link --from"), "{text}");
    let out = mc_with(
        &sim.kubeconfig,
        &["gateways", "stat", "--all-contexts", "-o", "json"],
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

/// A user who may read everything but not impersonate: the RBAC check falls back to judging
/// the roles and bindings, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_impersonation_the_access_check_reads_the_roles() {
    if !have_kubectl() {
        return;
    }
    let sim = installed(&Trust::new(), "audited", 16).await;
    sim.kubectl_ok(&["create", "serviceaccount", "auditor"])
        .await;
    sim.kubectl_ok(&[
        "create",
        "clusterrole",
        "auditor",
        "--verb=get,list,watch",
        "--resource=*.*",
    ])
    .await;
    sim.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "auditor",
        "--clusterrole=auditor",
        "--serviceaccount=default:auditor",
    ])
    .await;
    let token = sim
        .cluster
        .service_account_token("default", "auditor", Duration::from_secs(600))
        .unwrap();
    let kc = sim.dir.path().join("auditor");
    write_kubeconfig(&kc, &sim.cluster.kubeconfig_with_token(&token)).unwrap();
    let (_, doc) = check(&kc, &[]).await;
    let c = find(&doc, "audited", "rbac-access");
    assert_eq!(c["result"], "ok", "{c}");
    let message = c["message"].as_str().unwrap();
    assert!(message.contains("judged from the roles"), "{message}");
    assert!(message.contains("16 permissions granted"), "{message}");
}
