//! `mc unlink`: everything goes, the old token stops working, the finalizer is waited for (and
//! removed with --force), and an unreachable target is reported with what is left there.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use mc::k8s::Link;
use serde_json::json;

use super::linking::{link_kubeconfig, token_of};
use super::{Pair, installed_pair, mc_with};
use crate::support::eventually;

const UNLINK: [&str; 5] = ["unlink", "--from", "east", "--to", "west"];

async fn assert_east_clean(pair: &Pair) {
    let east = &pair.east.client;
    assert!(
        Api::<Link>::namespaced(east.clone(), "mc-system")
            .get_opt("west")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Secret>::namespaced(east.clone(), "mc-system")
            .get_opt("mc-link-west")
            .await
            .unwrap()
            .is_none()
    );
}

async fn west_access_left(pair: &Pair) -> Vec<&'static str> {
    let west = &pair.west.client;
    let name = "mc-remote-access-east";
    let mut left = Vec::new();
    if Api::<ServiceAccount>::namespaced(west.clone(), "mc-system")
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
    {
        left.push("ServiceAccount");
    }
    if Api::<RoleBinding>::namespaced(west.clone(), "mc-system")
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
    {
        left.push("RoleBinding");
    }
    if Api::<ClusterRoleBinding>::all(west.clone())
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
    {
        left.push("ClusterRoleBinding");
    }
    left
}

async fn add_finalizer(pair: &Pair) {
    let patch = json!({"metadata": {"finalizers": ["example.com/keep", "mc.dev/mirrors"]}});
    Api::<Link>::namespaced(pair.east.client.clone(), "mc-system")
        .patch("west", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_removes_the_link_its_secret_and_west_access_and_the_old_token_gets_401() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    let token = token_of(&link_kubeconfig(&pair).await.0);
    let as_east = pair.west.cluster.client_with_token(&token).await.unwrap();
    Api::<Service>::all(as_east.clone())
        .list(&Default::default())
        .await
        .unwrap();

    let out = pair.mc_ok(&UNLINK).await;
    assert!(out.contains("unlinked east from west"), "{out}");
    assert_east_clean(&pair).await;
    assert!(west_access_left(&pair).await.is_empty());
    let err = Api::<Service>::all(as_east)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err}"
    );
    // The install itself is untouched.
    Api::<Service>::namespaced(pair.west.client.clone(), "mc-system")
        .get("mc-gateway")
        .await
        .unwrap();
    // Unlinking again has nothing left to do and says so.
    let out = pair.mc(&UNLINK).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Link mc-system/west in east"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_waits_for_the_controller_to_release_the_link() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    add_finalizer(&pair).await;
    let links = Api::<Link>::namespaced(pair.east.client.clone(), "mc-system");
    // Stands in for the controller: once the Link is being deleted, drop both finalizers.
    let controller = {
        let links = links.clone();
        async move {
            eventually(
                "Link marked for deletion",
                Duration::from_secs(20),
                || async { links.get("west").await.ok()?.metadata.deletion_timestamp },
            )
            .await;
            let patch = json!({"metadata": {"finalizers": null}});
            links
                .patch("west", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    let (out, ()) = tokio::join!(pair.mc(&UNLINK), controller);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_east_clean(&pair).await;
    assert!(west_access_left(&pair).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_controller_unlink_stops_and_force_removes_only_our_finalizer() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    add_finalizer(&pair).await;
    let mirror = Service {
        metadata: ObjectMeta {
            name: Some("backend-svc-west".into()),
            namespace: Some("default".into()),
            labels: Some([("mc.dev/mirror-of".to_owned(), "west".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 8888,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Service>::namespaced(pair.east.client.clone(), "default")
        .create(&PostParams::default(), &mirror)
        .await
        .unwrap();

    let mut args = UNLINK.to_vec();
    args.extend(["--timeout", "1s"]);
    pair.mc_fails(&args, "Link mc-system/west in context east is still there after 1s: its finalizer mc.dev/mirrors waits for the mirror controller").await;
    // Nothing after the Link was touched: the credentials stay for a retry.
    assert!(
        Api::<Secret>::namespaced(pair.east.client.clone(), "mc-system")
            .get_opt("mc-link-west")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(west_access_left(&pair).await.len(), 3);

    args.push("--force");
    let out = pair.mc(&args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("removed finalizer mc.dev/mirrors of Link mc-system/west after 1s; mirrors left in east: default/backend-svc-west"),
        "{stderr}"
    );
    // Someone else's finalizer is left alone, so the Link waits for it.
    let link = Api::<Link>::namespaced(pair.east.client.clone(), "mc-system")
        .get("west")
        .await
        .unwrap();
    assert_eq!(
        link.metadata.finalizers,
        Some(vec!["example.com/keep".to_owned()])
    );
    assert!(
        Api::<Secret>::namespaced(pair.east.client.clone(), "mc-system")
            .get_opt("mc-link-west")
            .await
            .unwrap()
            .is_none()
    );
    assert!(west_access_left(&pair).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_with_west_down_cleans_east_and_says_what_is_left_in_west() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    let Pair {
        east,
        west,
        kubeconfig,
        dir: _dir,
        ..
    } = pair;
    west.cluster.shutdown().await;
    let out = mc_with(&kubeconfig, &UNLINK).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for part in [
        "east is unlinked from west, but west could not be reached",
        "still to delete in west: ServiceAccount mc-system/mc-remote-access-east",
        "RoleBinding mc-system/mc-remote-access-east and ClusterRoleBinding mc-remote-access-east",
        "kubectl --context west -n mc-system delete --ignore-not-found serviceaccount/mc-remote-access-east rolebinding/mc-remote-access-east",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    assert!(
        Api::<Link>::namespaced(east.client.clone(), "mc-system")
            .get_opt("west")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Secret>::namespaced(east.client.clone(), "mc-system")
            .get_opt("mc-link-west")
            .await
            .unwrap()
            .is_none()
    );
}

/// mc uninstalled from west (no mc-config) leaves the link's account behind; unlink still finds
/// the Link by west's API server and revokes the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_after_mc_was_uninstalled_from_west_still_revokes_the_account() {
    let pair = installed_pair().await;
    pair.link(&[]).await;
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(pair.west.client.clone(), "mc-system")
        .delete("mc-config", &Default::default())
        .await
        .unwrap();
    let out = pair.mc(&UNLINK).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("mc is not installed in context west"),
        "{stderr}"
    );
    assert_east_clean(&pair).await;
    assert!(west_access_left(&pair).await.is_empty());
}
