//! kube-rs against the simulator: discovery, watcher resilience, apply, optimistic concurrency.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use super::start_sim;
use crate::support::eventually;

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn aggregated_discovery_lists_builtins_and_new_crds_at_once() {
    let sim = start_sim("kr-discovery").await;
    let d = kube::Discovery::new(sim.client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(d.has_group("apps"));
    assert!(d.has_group("discovery.k8s.io"));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sim.client.clone());
    let crd = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("crd created");
    let conditions = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let d = kube::Discovery::new(sim.client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(d.has_group("example.com"));
    let plain = kube::Discovery::new(sim.client.clone())
        .run()
        .await
        .expect("plain discovery");
    assert!(plain.has_group("example.com"));
}

#[tokio::test]
async fn stale_replace_is_a_409_conflict() {
    let sim = start_sim("kr-conflict").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &cm("c", "1"))
        .await
        .expect("created");
    let mut newer = first.clone();
    newer.data = Some([("v".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &newer)
        .await
        .expect("replaced");
    let err = api
        .replace("c", &PostParams::default(), &newer)
        .await
        .expect_err("stale");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn server_side_apply_with_a_field_manager_round_trips() {
    let sim = start_sim("kr-apply").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let pp = PatchParams::apply("mc-test");
    let applied = api
        .patch("a", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}})))
        .await
        .expect("applied");
    assert_eq!(
        applied
            .data
            .as_ref()
            .and_then(|d| d.get("x"))
            .map(String::as_str),
        Some("1")
    );
    let again = api
        .patch("a", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "3", "y": "2"}})))
        .await
        .expect("re-applied");
    assert_eq!(
        again
            .data
            .as_ref()
            .and_then(|d| d.get("x"))
            .map(String::as_str),
        Some("3")
    );
    let fetched = api.get("a").await.expect("get");
    assert_eq!(fetched.data, again.data);

    // Dropping a field from the applied configuration removes it.
    let dropped = api
        .patch("a", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "3"}})))
        .await
        .expect("applied without y");
    assert_eq!(
        dropped.data,
        Some([("x".to_string(), "3".to_string())].into())
    );

    // Another manager changing an owned field conflicts unless it forces.
    let other = PatchParams::apply("other");
    let err = api
        .patch("a", &other, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "4"}})))
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert_eq!(
                s.message,
                "Apply failed with 1 conflict: conflict with \"mc-test\": .data.x"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let forced = api
        .patch("a", &other.force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "4"}})))
        .await
        .expect("forced");
    assert_eq!(
        forced.data,
        Some([("x".to_string(), "4".to_string())].into())
    );
}

#[tokio::test]
async fn watcher_survives_compaction_and_dropped_connections() {
    let sim = start_sim("kr-watch").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    let names = |r: &reflector::Store<ConfigMap>| {
        let mut n: Vec<String> = r
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        n.sort();
        n
    };
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .expect("a");
    eventually("a in the reflector", Duration::from_secs(10), || {
        let r = reader.clone();
        async move { names(&r).contains(&"a".to_string()).then_some(()) }
    })
    .await;

    // History compacted while the watch is dropped: the resume gets 410 and the watcher re-lists.
    api.create(&PostParams::default(), &cm("b", "1"))
        .await
        .expect("b");
    sim.cluster.faults().compact();
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete a");
    api.create(&PostParams::default(), &cm("c", "1"))
        .await
        .expect("c");

    // A dropped connection: every socket closes, the watcher reconnects.
    sim.cluster.faults().drop_all_connections();
    api.create(&PostParams::default(), &cm("d", "1"))
        .await
        .expect("d");
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .expect("patch b");

    let fresh = || async {
        let mut n: Vec<String> = api
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        n.sort();
        n
    };
    let expected = fresh().await;
    assert_eq!(expected, vec!["b", "c", "d", "kube-root-ca.crt"]);
    eventually(
        "the reflector to match a fresh list",
        Duration::from_secs(20),
        || {
            let r = reader.clone();
            let expected = expected.clone();
            async move {
                let b_updated = r.state().iter().any(|c| {
                    c.metadata.name.as_deref() == Some("b")
                        && c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some("2")
                });
                (names(&r) == expected && b_updated).then_some(())
            }
        },
    )
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_watch_reaches_init_done() {
    let sim = start_sim("kr-streaming").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    api.create(&PostParams::default(), &cm("s", "1"))
        .await
        .expect("s");
    let stream = watcher(api.clone(), watcher::Config::default().streaming_lists());
    futures::pin_mut!(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen_init_done = false;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.next()).await {
        if let Ok(watcher::Event::InitDone) = ev {
            seen_init_done = true;
            break;
        }
    }
    assert!(
        seen_init_done,
        "the initial-events-end bookmark must end the initial list"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_refuses_requests_until_it_is_back() {
    let sim = start_sim("kr-outage").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    api.get("kube-root-ca.crt").await.expect("reachable");
    sim.cluster
        .faults()
        .unreachable_for(Duration::from_secs(600));
    assert!(
        api.get("kube-root-ca.crt").await.is_err(),
        "requests must fail during an outage"
    );
    sim.cluster.faults().reachable();
    eventually(
        "the cluster to answer again",
        Duration::from_secs(10),
        || {
            let api = api.clone();
            async move { api.get("kube-root-ca.crt").await.ok() }
        },
    )
    .await;
}

#[tokio::test]
async fn a_stuck_watcher_does_not_block_writers_and_is_told_to_relist() {
    let mut config = mc::sim::SimConfig::new("kr-slow");
    config.watch_buffer = 16;
    let sim = super::start_sim_with(config).await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let list = api.list(&Default::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    let stream = api
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .expect("watch");
    // Nobody reads the watch while 300 large objects are written: socket buffers fill, the
    // watcher falls behind, and the writes still all succeed.
    let big = "x".repeat(100_000);
    for i in 0..300 {
        api.create(&PostParams::default(), &cm(&format!("big-{i}"), &big))
            .await
            .expect("write not blocked by a stuck watcher");
    }
    futures::pin_mut!(stream);
    let mut expired = false;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        if let Ok(kube::api::WatchEvent::Error(e)) = ev {
            assert_eq!(e.code, 410);
            expired = true;
            break;
        }
    }
    assert!(expired, "the lagging watcher must get an in-stream 410");
}

#[tokio::test]
async fn metadata_watcher_lists_and_watches() {
    let sim = start_sim("kr-metadata").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let meta: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(sim.client.clone(), "default");
    let stream = watcher(meta, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    api.create(&PostParams::default(), &cm("meta", "1"))
        .await
        .expect("created");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while let Ok(Some(Ok(obj))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if obj.metadata.name.as_deref() == Some("meta") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the metadata watcher must see the ConfigMap");
}

#[tokio::test]
async fn one_manager_applying_spec_and_status_never_prunes_its_own_fields() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let sim = start_sim("kr-status").await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sim.client.clone());
    let crd = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "links.mc.dev"},
        "spec": {"group": "mc.dev", "scope": "Namespaced",
                 "names": {"plural": "links", "singular": "link", "kind": "Link"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("crd created");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("mc.dev", "v1alpha1", "Link"),
        "links",
    );
    let links: Api<DynamicObject> = Api::namespaced_with(sim.client.clone(), "default", &ar);
    let pp = PatchParams::apply("mc");
    let spec = json!({"apiVersion": "mc.dev/v1alpha1", "kind": "Link", "metadata": {"name": "west"},
                      "spec": {"targetClusterName": "west"}, "status": {"ignored": true}});
    let created = links
        .patch("west", &pp, &Patch::Apply(&spec))
        .await
        .expect("applied");
    assert!(
        created.data.get("status").is_none(),
        "status is ignored on the main resource"
    );
    let status = json!({"apiVersion": "mc.dev/v1alpha1", "kind": "Link", "metadata": {"name": "west"},
                        "status": {"mirroredServices": 3}});
    let with_status = links
        .patch_status("west", &pp, &Patch::Apply(&status))
        .await
        .expect("status applied");
    assert_eq!(
        with_status.data["spec"]["targetClusterName"], "west",
        "a status apply must not prune spec"
    );
    assert_eq!(with_status.data["status"]["mirroredServices"], 3);
    let again = links
        .patch("west", &pp, &Patch::Apply(&spec))
        .await
        .expect("re-applied");
    assert_eq!(
        again.data["status"]["mirroredServices"], 3,
        "a spec apply must not prune status"
    );
    assert_eq!(
        again.metadata.generation,
        Some(1),
        "no spec change, no new generation"
    );
}
