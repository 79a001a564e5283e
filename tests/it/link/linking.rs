//! `mc link`: the objects it writes, what its credentials may do, its refusals, `--dry-run`,
//! re-linking and `--wait`.

use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use mc::k8s::Link;
use serde_json::json;

use super::{Pair, install, installed_pair, new_anchor};
use crate::sim::{have_kubectl, start_sim};

pub async fn link_in_east(pair: &Pair) -> Link {
    Api::<Link>::namespaced(pair.east.client.clone(), "mc-system")
        .get("west")
        .await
        .expect("Link mc-system/west in east")
}

/// The kubeconfig in east's Secret mc-link-west, and the Secret's type.
pub async fn link_kubeconfig(pair: &Pair) -> (String, Option<String>) {
    let secret = Api::<Secret>::namespaced(pair.east.client.clone(), "mc-system")
        .get("mc-link-west")
        .await
        .expect("Secret mc-system/mc-link-west in east");
    let data = secret.data.expect("data");
    let kubeconfig = String::from_utf8(data["kubeconfig"].0.clone()).expect("utf-8");
    (kubeconfig, secret.type_)
}

pub fn token_of(kubeconfig: &str) -> String {
    let kc: serde_json::Value = serde_saphyr::from_str(kubeconfig).expect("kubeconfig YAML");
    kc["users"][0]["user"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_writes_the_secret_and_a_link_with_every_contract_field() {
    let pair = installed_pair().await;
    let out = pair.mc(&["link", "--from", "east", "--to", "west"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Not a terminal: plain progress lines, no spinner control characters.
    assert!(
        stderr.contains("✓ Secret mc-system/mc-link-west and Link mc-system/west in east"),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(stderr.contains("token expires"), "{stderr}");

    let link = link_in_east(&pair).await;
    let west_url = pair.west.cluster.url();
    let lb_ip = pair.west.cluster.addr().ip().to_string();
    assert_eq!(
        serde_json::to_value(&link.spec).unwrap(),
        json!({
            "targetClusterName": "west",
            "targetClusterDomain": "cluster.local",
            "targetTrustDomain": "cluster.local",
            "apiServer": west_url,
            "credentialsSecret": "mc-link-west",
            "gatewayAddresses": [lb_ip],
            "gatewayPort": 4143,
            "gatewayIdentity": "mc-gateway.mc-system.west.cluster.local",
            "probe": {"port": 4191, "path": "/ready", "periodSeconds": 3, "timeoutSeconds": 2, "failureThreshold": 3},
            "selector": "mc.dev/exported=true",
        })
    );
    let managers: Vec<_> = link
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager, m.operation))
        .collect();
    assert_eq!(
        managers,
        vec![(Some("mc".to_owned()), Some("Apply".to_owned()))]
    );

    let (kubeconfig, type_) = link_kubeconfig(&pair).await;
    assert_eq!(type_.as_deref(), Some("mc.dev/remote-kubeconfig"));
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("a kubeconfig");
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(west_url.as_str()));
    assert_eq!(kc.auth_infos[0].name, "mc-remote-access-east");

    let west = &pair.west.client;
    Api::<ServiceAccount>::namespaced(west.clone(), "mc-system")
        .get("mc-remote-access-east")
        .await
        .expect("ServiceAccount in west");
    let crb = Api::<ClusterRoleBinding>::all(west.clone())
        .get("mc-remote-access-east")
        .await
        .expect("ClusterRoleBinding in west");
    assert_eq!(crb.role_ref.name, "mc-remote-access");
    let rb = Api::<RoleBinding>::namespaced(west.clone(), "mc-system")
        .get("mc-remote-access-east")
        .await
        .expect("RoleBinding in west");
    assert_eq!(
        (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
        ("Role", "mc-remote-access")
    );
    // Nothing of the link lands in east's own access objects, nor in west's Links.
    assert!(
        Api::<ServiceAccount>::namespaced(pair.east.client.clone(), "mc-system")
            .get_opt("mc-remote-access-west")
            .await
            .unwrap()
            .is_none()
    );
}

/// The credentials east holds can read what a mirror controller needs in west and nothing
/// else: checked with the real kubectl through the simulator's RBAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_kubeconfig_reads_west_and_can_do_nothing_more() {
    if !have_kubectl() {
        eprintln!("skipped: kubectl not installed");
        return;
    }
    let pair = installed_pair().await;
    pair.link(&[]).await;
    let (kubeconfig, _) = link_kubeconfig(&pair).await;
    let file = pair.dir.path().join("link.kubeconfig");
    std::fs::write(&file, kubeconfig).unwrap();
    for allowed in [
        &["get", "services", "-A"][..],
        &["get", "endpointslices", "-A"],
        &["get", "namespaces"],
        &["-n", "mc-system", "get", "configmap", "mc-config"],
        &["-n", "mc-system", "get", "service", "mc-gateway"],
    ] {
        let out = pair.kubectl(Some(&file), allowed).await;
        assert!(
            out.status.success(),
            "{allowed:?} should be allowed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for denied in [
        &["-n", "mc-system", "get", "secret", "mc-issuer"][..],
        &["get", "secrets", "-A"],
        &["-n", "mc-system", "get", "links.mc.dev"],
        &[
            "-n",
            "default",
            "create",
            "configmap",
            "x",
            "--from-literal=a=b",
        ],
        &["-n", "mc-system", "delete", "service", "mc-gateway"],
        &["-n", "default", "label", "service", "kubernetes", "a=b"],
        &["-n", "mc-system", "create", "token", "mc-gateway"],
    ] {
        let out = pair.kubectl(Some(&file), denied).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.to_lowercase().contains("forbidden"),
            "{denied:?} should be forbidden: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_every_object_without_a_token_and_writes_nothing() {
    let pair = installed_pair().await;
    let before = (
        pair.east.cluster.resource_version(),
        pair.west.cluster.resource_version(),
    );
    let out = pair
        .mc_ok(&["link", "--from", "east", "--to", "west", "--dry-run"])
        .await;
    assert_eq!(
        before,
        (
            pair.east.cluster.resource_version(),
            pair.west.cluster.resource_version()
        ),
        "a dry run wrote something"
    );
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    let kinds: Vec<String> = docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount/mc-remote-access-east",
            "ClusterRoleBinding/mc-remote-access-east",
            "RoleBinding/mc-remote-access-east",
            "Secret/mc-link-west",
            "Link/west"
        ]
    );
    assert!(
        out.contains("# in context west\n") && out.contains("# in context east\n"),
        "{out}"
    );
    assert!(out.contains("not issued"), "{out}");
    assert!(!out.contains("eyJ"), "a JWT was printed: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_again_issues_a_new_token_and_changes_nothing_else() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    let first = link_in_east(&pair).await;
    let (kc1, _) = link_kubeconfig(&pair).await;
    pair.link(&[]).await;
    let second = link_in_east(&pair).await;
    let (kc2, _) = link_kubeconfig(&pair).await;
    assert_ne!(token_of(&kc1), token_of(&kc2), "no new token");
    assert_eq!(first.metadata.uid, second.metadata.uid);
    assert_eq!(
        first.metadata.resource_version, second.metadata.resource_version,
        "the Link was rewritten"
    );
    assert_eq!(
        kc1.replace(&token_of(&kc1), ""),
        kc2.replace(&token_of(&kc2), "")
    );
    // Both tokens work: the old one until it expires (a TokenRequest cannot be revoked alone).
    for kc in [&kc1, &kc2] {
        let client = pair
            .west
            .cluster
            .client_with_token(&token_of(kc))
            .await
            .unwrap();
        Api::<Service>::all(client)
            .list(&Default::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_tokens_rotate_by_replacing_the_secret_after_east_holds_the_new_one() {
    let pair = installed_pair().await;
    let out = pair
        .mc(&[
            "link",
            "--from",
            "east",
            "--to",
            "west",
            "--token-kind",
            "secret",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not expire"));
    let (kc1, _) = link_kubeconfig(&pair).await;
    pair.link(&["--token-kind", "secret"]).await;
    let (kc2, _) = link_kubeconfig(&pair).await;
    let (old, new) = (token_of(&kc1), token_of(&kc2));
    assert_ne!(old, new);
    let west = &pair.west.cluster;
    let new_client = west.client_with_token(&new).await.unwrap();
    Api::<Service>::all(new_client)
        .list(&Default::default())
        .await
        .unwrap();
    let old_client = west.client_with_token(&old).await.unwrap();
    let err = Api::<Service>::all(old_client)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err}"
    );
    let tokens = Api::<Secret>::namespaced(pair.west.client.clone(), "mc-system")
        .list(&kube::api::ListParams::default().labels("mc.dev/link-source=east"))
        .await
        .unwrap();
    assert_eq!(tokens.items.len(), 1, "old token Secrets are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_names_the_problem_and_writes_nothing() {
    let pair = installed_pair().await;
    // A third and fourth cluster: one without mc, one installed from another anchor; and a
    // second context for west.
    let (bare, stranger) = tokio::join!(start_sim("south"), start_sim("north"));
    install(&stranger, &new_anchor(), "north").await;
    let third = pair.another_installed("third").await;
    let mut kc = mc::sim::merged_kubeconfig(&[
        &pair.east.cluster,
        &pair.west.cluster,
        &bare.cluster,
        &stranger.cluster,
        &third.cluster,
    ]);
    let mut alias = kc.contexts[1].clone();
    alias.name = "west-again".into();
    kc.contexts.push(alias);
    let file = pair.dir.path().join("four.kubeconfig");
    mc::sim::write_kubeconfig(&file, &kc).unwrap();
    let fails = |args: Vec<&'static str>, expected: &'static str| {
        let file = file.clone();
        async move {
            let out = super::mc_with(&file, &args).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{stderr}");
            assert!(errors[0].contains(expected), "{expected:?} not in {stderr}");
        }
    };
    let before = (
        pair.east.cluster.resource_version(),
        pair.west.cluster.resource_version(),
    );
    fails(
        vec!["link", "--from", "east", "--to", "south"],
        "mc is not installed in context south",
    )
    .await;
    fails(
        vec!["link", "--from", "south", "--to", "west"],
        "mc is not installed in context south",
    )
    .await;
    fails(
        vec!["link", "--from", "east", "--to", "north"],
        "the trust anchors of east and north share no certificate",
    )
    .await;
    // A third cluster from the same anchor links fine, next to the refusals.
    let out = super::mc_with(
        &file,
        &["link", "--from", "third", "--to", "west", "--dry-run"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails(
        vec!["link", "--from", "west", "--to", "west-again"],
        "west and west-again are the same cluster",
    )
    .await;
    fails(
        vec!["link", "--from", "east", "--to", "east"],
        "--from and --to are both \"east\"",
    )
    .await;
    fails(
        vec!["link", "--from", "east", "--to", "nowhere"],
        "context \"nowhere\"",
    )
    .await;
    fails(
        vec![
            "link",
            "--from",
            "east",
            "--to",
            "west",
            "--gateway-address",
            "a b",
        ],
        "--gateway-address \"a b\"",
    )
    .await;
    assert_eq!(
        before,
        (
            pair.east.cluster.resource_version(),
            pair.west.cluster.resource_version()
        ),
        "a refused link wrote something"
    );

    // No gateway address: west's mc-gateway is not a LoadBalancer (yet).
    let services = Api::<Service>::namespaced(pair.west.client.clone(), "mc-system");
    let patch = json!({"spec": {"type": "ClusterIP"}});
    services
        .patch("mc-gateway", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    fails(
        vec!["link", "--from", "east", "--to", "west"],
        "has no load-balancer address yet; wait for one (`kubectl --context west -n mc-system get svc mc-gateway`) or pass --gateway-address",
    )
    .await;
    // ... which the override fixes.
    let out = super::mc_with(
        &file,
        &[
            "link",
            "--from",
            "east",
            "--to",
            "west",
            "--gateway-address",
            "gw.west.example:443",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = link_in_east(&pair).await;
    assert_eq!(link.spec.gateway_addresses, ["gw.west.example"]);
    assert_eq!(link.spec.gateway_port, 443);

    // A Link of that name made for another cluster.
    let links = Api::<Link>::namespaced(pair.east.client.clone(), "mc-system");
    let patch =
        json!({"metadata": {"annotations": {"mc.dev/target-cluster-id": "another-cluster"}}});
    links
        .patch("west", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    fails(
        vec![
            "link",
            "--from",
            "east",
            "--to",
            "west",
            "--gateway-address",
            "gw.west.example",
        ],
        "Link mc-system/west in east already points at another cluster",
    )
    .await;

    // An installation without the Link CRD (mc-config alone).
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mc-config", "namespace": "mc-system"},
        "data": {"clusterName": "south", "ca-bundle.crt": pair.anchor.cert_pem},
    });
    super::apply_value(
        &bare.client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mc-system"}}),
    )
    .await;
    super::apply_value(&bare.client, &config).await;
    fails(
        vec![
            "link",
            "--from",
            "south",
            "--to",
            "west",
            "--gateway-address",
            "gw.west.example",
        ],
        "the Link resource (links.mc.dev) is not served in context south",
    )
    .await;
}

/// `--wait` returns once the controller reports Ready; on timeout it names what is not met.
/// The controller is not part of this test: the admin client writes the status it would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_on_ready_and_names_the_unmet_conditions_on_timeout() {
    let pair = installed_pair().await;
    let out = pair
        .mc(&[
            "link",
            "--from",
            "east",
            "--to",
            "west",
            "--wait",
            "--timeout",
            "1s",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has no status after 1s") && stderr.contains("mc-mirror"),
        "{stderr}"
    );

    let links = Api::<Link>::namespaced(pair.east.client.clone(), "mc-system");
    let condition = |t: &str, s: &str, reason: &str, message: &str| {
        json!({"type": t, "status": s, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    let status = |conditions: Vec<serde_json::Value>| json!({"status": {"conditions": conditions}});
    let not_ready = status(vec![
        condition(
            "Ready",
            "False",
            "GatewayDown",
            "gateway of west does not answer",
        ),
        condition("RemoteReachable", "True", "Synced", ""),
        condition("GatewayAlive", "False", "ProbeFailed", "connection refused"),
    ]);
    links
        .patch_status("west", &PatchParams::default(), &Patch::Merge(&not_ready))
        .await
        .unwrap();
    pair.mc_fails(
        &["link", "--from", "east", "--to", "west", "--wait", "--timeout", "1s"],
        "is not Ready after 1s: Ready=False (GatewayDown: gateway of west does not answer), GatewayAlive=False (ProbeFailed: connection refused)",
    )
    .await;

    // The controller reports Ready (mc may already be waiting, or see it on its first read).
    let ready = status(vec![
        condition("Ready", "True", "Linked", ""),
        condition("RemoteReachable", "True", "Synced", ""),
        condition("GatewayAlive", "True", "ProbeSucceeded", ""),
    ]);
    let run = pair.mc(&[
        "link",
        "--from",
        "east",
        "--to",
        "west",
        "--wait",
        "--timeout",
        "30s",
    ]);
    let (pp, patch) = (PatchParams::default(), Patch::Merge(&ready));
    let write = links.patch_status("west", &pp, &patch);
    let (out, written) = tokio::join!(run, write);
    written.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Link mc-system/west is Ready"));
}
