//! The API conventions controllers rely on beyond everyday kubectl (issue 14): finalizers,
//! server-side apply on subresources, generation, garbage collection, namespace defaults.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};

use super::start_sim;
use crate::support::eventually;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), "1".to_string())].into()),
        ..Default::default()
    }
}

async fn run_finalizer(api: &Api<ConfigMap>, name: &str) -> Option<&'static str> {
    let obj = Arc::new(api.get(name).await.expect("object"));
    let mut seen = None;
    finalizer(api, "mc.dev/test", obj, |event| {
        seen = Some(match event {
            Event::Apply(_) => "apply",
            Event::Cleanup(_) => "cleanup",
        });
        async { Ok::<_, Infallible>(Action::await_change()) }
    })
    .await
    .expect("finalizer step");
    seen
}

/// kube-runtime's `finalizer()` adds its finalizer with a JSON patch that tests for `null`.
#[tokio::test]
async fn kube_runtime_finalizer_adds_and_removes_its_finalizer() {
    let sim = start_sim("conv-finalizer").await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    api.create(&PostParams::default(), &cm("f")).await.unwrap();
    // First call: adds the finalizer, without running the reconciler.
    assert_eq!(run_finalizer(&api, "f").await, None);
    let live = api.get("f").await.unwrap();
    assert_eq!(
        live.metadata.finalizers,
        Some(vec!["mc.dev/test".to_string()])
    );
    assert_eq!(run_finalizer(&api, "f").await, Some("apply"));
    api.delete("f", &DeleteParams::default()).await.unwrap();
    assert!(
        api.get("f")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert_eq!(run_finalizer(&api, "f").await, Some("cleanup"));
    eventually(
        "the finalized object is gone",
        Duration::from_secs(5),
        || async { api.get_opt("f").await.unwrap().is_none().then_some(()) },
    )
    .await;
}

async fn create_crd(client: &kube::Client, group: &str) -> kube::discovery::ApiResource {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("crd created");
    kube::discovery::ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

fn managers(obj: &kube::api::DynamicObject) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                m.subresource.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Server-side apply on `/status` tracks ownership per manager, as on the main resource.
#[tokio::test]
async fn server_side_apply_on_status_tracks_and_prunes_per_manager() {
    use kube::api::{DynamicObject, Patch, PatchParams};
    use serde_json::json;
    let sim = start_sim("conv-ssa-status").await;
    let ar = create_crd(&sim.client, "ssa.example.com").await;
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client.clone(), "default", &ar);
    let spec = json!({"apiVersion": "ssa.example.com/v1", "kind": "Widget",
                      "metadata": {"name": "w"}, "spec": {"size": 1}});
    api.patch("w", &PatchParams::apply("owner"), &Patch::Apply(&spec))
        .await
        .expect("spec applied");
    let status = |fields: serde_json::Value| {
        json!({"apiVersion": "ssa.example.com/v1", "kind": "Widget",
               "metadata": {"name": "w"}, "status": fields})
    };
    api.patch_status(
        "w",
        &PatchParams::apply("ctl-a"),
        &Patch::Apply(&status(json!({"a": "1", "shared": "x"}))),
    )
    .await
    .expect("status applied by a");
    let after_b = api
        .patch_status(
            "w",
            &PatchParams::apply("ctl-b"),
            &Patch::Apply(&status(json!({"b": "2"}))),
        )
        .await
        .expect("status applied by b");
    assert_eq!(
        managers(&after_b),
        vec![
            ("ctl-a".into(), "Apply".into(), "status".into()),
            ("ctl-b".into(), "Apply".into(), "status".into()),
            ("owner".into(), "Apply".into(), "".into()),
        ]
    );
    assert_eq!(
        after_b.data["status"],
        json!({"a": "1", "shared": "x", "b": "2"})
    );
    // ctl-a stops sending `shared`: it goes, and what b owns stays.
    let after = api
        .patch_status(
            "w",
            &PatchParams::apply("ctl-a"),
            &Patch::Apply(&status(json!({"a": "1"}))),
        )
        .await
        .expect("status re-applied by a");
    assert_eq!(after.data["status"], json!({"a": "1", "b": "2"}));
    assert_eq!(after.data["spec"], json!({"size": 1}));
    // A status apply may not change the spec, nor may a spec apply touch the status.
    let mut sneaky = status(json!({"a": "1"}));
    sneaky["spec"] = json!({"size": 9});
    let after = api
        .patch_status("w", &PatchParams::apply("ctl-a"), &Patch::Apply(&sneaky))
        .await
        .expect("status apply with a spec");
    assert_eq!(after.data["spec"], json!({"size": 1}));
    assert_eq!(managers(&after).len(), 3);
}

fn quick_namespace_deletion(name: &str) -> mc::sim::SimConfig {
    let mut config = mc::sim::SimConfig::new(name);
    config.namespace_deletion_delay = Duration::from_millis(50);
    config
}

/// A namespace whose content holds finalizers stays `Terminating`, saying what remains, until
/// the finalizers are gone; as `kubectl` shows it.
#[tokio::test]
async fn a_namespace_waits_for_finalizers_on_its_content() {
    if !super::have_kubectl() {
        return;
    }
    let sim = super::start_sim_with(quick_namespace_deletion("conv-ns-final")).await;
    sim.kubectl_ok(&["create", "namespace", "app"]).await;
    sim.kubectl_ok(&[
        "-n",
        "app",
        "create",
        "configmap",
        "held",
        "--from-literal=a=b",
    ])
    .await;
    sim.kubectl_ok(&[
        "-n",
        "app",
        "create",
        "configmap",
        "free",
        "--from-literal=a=b",
    ])
    .await;
    sim.kubectl_ok(&[
        "-n",
        "app",
        "patch",
        "configmap",
        "held",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    sim.kubectl_ok(&["delete", "namespace", "app", "--wait=false"])
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "app");
    eventually(
        "the namespace controller to run",
        Duration::from_secs(5),
        || async { cms.get_opt("free").await.unwrap().is_none().then_some(()) },
    )
    .await;
    let conditions = sim
        .kubectl_ok(&["get", "namespace", "app", "-o",
            r#"jsonpath={.status.phase} {range .status.conditions[?(@.status=="True")]}{.type}: {.message}; {end}"#])
        .await;
    assert_eq!(
        conditions,
        "Terminating NamespaceContentRemaining: Some resources are remaining: configmaps. has 1 resource instances; \
         NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances; "
    );
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // Nothing new may be created in it, and no finalizer added to what is being deleted.
    let refused = sim
        .kubectl(&[
            "-n",
            "app",
            "create",
            "configmap",
            "late",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!refused.status.success());
    let added = sim
        .kubectl(&[
            "-n",
            "app",
            "patch",
            "configmap",
            "held",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
        ])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&added.stderr).trim(),
        r#"The ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/more"}"#
    );
    assert!(
        sim.kubectl(&["get", "namespace", "app"])
            .await
            .status
            .success(),
        "the namespace is still there while its content is held"
    );
    sim.kubectl_ok(&[
        "-n",
        "app",
        "patch",
        "configmap",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sim.client.clone());
    eventually("the namespace is gone", Duration::from_secs(5), || async {
        namespaces
            .get_opt("app")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// A deleted CRD stays until its custom resources are gone, finalizers included.
#[tokio::test]
async fn a_crd_waits_for_its_custom_resources() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DynamicObject, Patch, PatchParams};
    use serde_json::json;
    let sim = start_sim("conv-crd-final").await;
    let ar = create_crd(&sim.client, "fin.example.com").await;
    let crds: Api<CustomResourceDefinition> = Api::all(sim.client.clone());
    let crd = crds.get("widgets.fin.example.com").await.unwrap();
    assert_eq!(
        crd.metadata.finalizers,
        Some(vec![
            "customresourcecleanup.apiextensions.k8s.io".to_string()
        ])
    );
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client.clone(), "default", &ar);
    for (name, finalizers) in [("held", json!(["example.com/hold"])), ("free", json!([]))] {
        let w = json!({"apiVersion": "fin.example.com/v1", "kind": "Widget",
                       "metadata": {"name": name, "finalizers": finalizers}});
        api.create(&PostParams::default(), &serde_json::from_value(w).unwrap())
            .await
            .unwrap();
    }
    crds.delete("widgets.fin.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let crd = crds
        .get("widgets.fin.example.com")
        .await
        .expect("still there");
    assert!(crd.metadata.deletion_timestamp.is_some());
    let terminating = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Terminating")
        .expect("a Terminating condition");
    assert_eq!(
        terminating.reason.as_deref(),
        Some("InstanceDeletionInProgress")
    );
    assert!(api.get_opt("free").await.unwrap().is_none());
    let late =
        json!({"apiVersion": "fin.example.com/v1", "kind": "Widget", "metadata": {"name": "late"}});
    let refused = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(late).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 405),
        "{refused}"
    );
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the CRD is gone", Duration::from_secs(5), || async {
        crds.get_opt("widgets.fin.example.com")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// `metadata.generation` exists where spec and status are split, and counts spec changes only.
#[tokio::test]
async fn generation_is_kept_only_where_spec_and_status_split() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Patch, PatchParams};
    use serde_json::json;
    let sim = start_sim("conv-generation").await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let mut with_generation = cm("plain");
    with_generation.metadata.generation = Some(7);
    let created = cms
        .create(&PostParams::default(), &with_generation)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, None);
    let updated = cms
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, None);
    let svcs: Api<Service> = Api::namespaced(sim.client.clone(), "default");
    let svc = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}}))
    .unwrap();
    assert_eq!(
        svcs.create(&PostParams::default(), &svc)
            .await
            .unwrap()
            .metadata
            .generation,
        None
    );
    let deployments: Api<Deployment> = Api::namespaced(sim.client.clone(), "default");
    let d = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap();
    let d = deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let generation = |patch: serde_json::Value, status: bool| {
        let deployments = deployments.clone();
        async move {
            let p = Patch::Merge(patch);
            let d = if status {
                deployments
                    .patch_status("web", &PatchParams::default(), &p)
                    .await
            } else {
                deployments.patch("web", &PatchParams::default(), &p).await
            };
            d.unwrap().metadata.generation
        }
    };
    assert_eq!(
        generation(json!({"metadata": {"labels": {"a": "b"}}}), false).await,
        Some(1)
    );
    assert_eq!(
        generation(json!({"status": {"replicas": 5}}), true).await,
        Some(1)
    );
    assert_eq!(
        generation(json!({"spec": {"replicas": 2}}), false).await,
        Some(2)
    );
}

fn owned_cm(name: &str, owners: &[(&str, &str, bool)], finalizers: &[&str]) -> ConfigMap {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let mut c = cm(name);
    c.metadata.owner_references = Some(
        owners
            .iter()
            .map(|(owner, uid, block)| OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.to_string(),
                uid: uid.to_string(),
                block_owner_deletion: Some(*block),
                ..Default::default()
            })
            .collect(),
    );
    c.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    c
}

/// Dependents of owners that do not exist (by uid) are collected; foreground deletion waits
/// for the dependents that block it.
#[tokio::test]
async fn garbage_collection_follows_owner_uids_and_block_owner_deletion() {
    let sim = start_sim("conv-gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let pp = PostParams::default();
    let parent = cms.create(&pp, &cm("parent")).await.unwrap();
    let uid = parent.metadata.uid.clone().unwrap();
    let ghost = "6a1b2c3d-0000-4000-8000-000000000000";
    cms.create(&pp, &owned_cm("dangling", &[("ghost", ghost, false)], &[]))
        .await
        .unwrap();
    cms.create(
        &pp,
        &owned_cm("wrong-uid", &[("parent", ghost, false)], &[]),
    )
    .await
    .unwrap();
    cms.create(
        &pp,
        &owned_cm(
            "half",
            &[("parent", &uid, false), ("ghost", ghost, false)],
            &[],
        ),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("dangling").await.unwrap().is_none());
    assert!(cms.get_opt("wrong-uid").await.unwrap().is_none());
    let half = cms.get("half").await.unwrap();
    let refs: Vec<String> = half
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(refs, vec!["parent".to_string()]);

    cms.create(
        &pp,
        &owned_cm("blocker", &[("parent", &uid, true)], &["example.com/hold"]),
    )
    .await
    .unwrap();
    cms.create(&pp, &owned_cm("free", &[("parent", &uid, false)], &[]))
        .await
        .unwrap();
    cms.delete("parent", &DeleteParams::foreground())
        .await
        .unwrap();
    let parent = cms
        .get("parent")
        .await
        .expect("held by its blocking dependent");
    assert!(parent.metadata.deletion_timestamp.is_some());
    assert_eq!(
        parent.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(cms.get_opt("free").await.unwrap().is_none());
    assert!(cms.get_opt("half").await.unwrap().is_none());
    assert!(
        cms.get("blocker")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "blocker",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("blocker").await.unwrap().is_none());
    assert!(cms.get_opt("parent").await.unwrap().is_none());
}

/// `kube-root-ca.crt` and the `default` ServiceAccount come back when deleted or changed.
#[tokio::test]
async fn namespace_defaults_are_put_back() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-ns-defaults").await;
    sim.kubectl_ok(&["create", "namespace", "app"]).await;
    sim.kubectl_ok(&["-n", "app", "delete", "configmap", "kube-root-ca.crt"])
        .await;
    sim.kubectl_ok(&["-n", "app", "delete", "serviceaccount", "default"])
        .await;
    let ca = sim
        .kubectl_ok(&[
            "-n",
            "app",
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
        .await;
    assert_eq!(ca.trim(), sim.cluster.ca_pem().trim());
    sim.kubectl_ok(&["-n", "app", "get", "serviceaccount", "default"])
        .await;
    sim.kubectl_ok(&[
        "-n",
        "app",
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ])
    .await;
    let ca = sim
        .kubectl_ok(&[
            "-n",
            "app",
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
        .await;
    assert_eq!(ca.trim(), sim.cluster.ca_pem().trim());
}

/// kube-runtime's `Recorder` writes `events.k8s.io/v1`; kubectl reads `core/v1`: one store.
#[tokio::test]
async fn recorder_events_show_in_kubectl_get_and_describe() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-events").await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("target"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        sim.client.clone(),
        Reporter {
            controller: "mc-test".into(),
            instance: Some("mc-test-0".into()),
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Mirrored".into(),
        note: Some("mirrored from west".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = target.object_ref(&());
    recorder
        .publish(&event, &reference)
        .await
        .expect("published");
    // The second one is a merge patch of the series through events.k8s.io.
    recorder
        .publish(&event, &reference)
        .await
        .expect("published again");
    let core: Api<CoreEvent> = Api::namespaced(sim.client.clone(), "default");
    let listed = core.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1);
    let e = &listed[0];
    assert_eq!(e.message.as_deref(), Some("mirrored from west"));
    assert_eq!(e.involved_object.name.as_deref(), Some("target"));
    assert_eq!(e.reporting_component.as_deref(), Some("mc-test"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(Some(2)));
    let new: Api<NewEvent> = Api::namespaced(sim.client.clone(), "default");
    let same = new.get(e.metadata.name.as_deref().unwrap()).await.unwrap();
    assert_eq!(same.metadata.uid, e.metadata.uid);
    assert_eq!(same.note.as_deref(), Some("mirrored from west"));
    let table = sim.kubectl_ok(&["get", "events", "-o", "wide"]).await;
    assert!(
        table.contains("configmap/target") && table.contains("mirrored from west"),
        "{table}"
    );
    assert!(table.contains("mc-test, mc-test-0"), "{table}");
    let described = sim.kubectl_ok(&["describe", "configmap", "target"]).await;
    assert!(
        described.contains("Mirrored") && described.contains("mirrored from west"),
        "{described}"
    );
}

/// Error texts word for word as a cluster's: the group kind names the type.
#[tokio::test]
async fn invalid_errors_name_the_group_kind() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    use serde_json::json;
    let sim = start_sim("conv-errors").await;
    let deployments: Api<Deployment> = Api::namespaced(sim.client.clone(), "default");
    let d = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let err = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .starts_with("Deployment.apps \"web\" is invalid: spec.selector: Invalid value: "),
        "{}",
        status.message
    );
    if !super::have_kubectl() {
        return;
    }
    let out = sim
        .kubectl(&["create", "token", "default", "--duration=1m"])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: failed to create token: TokenRequest.authentication.k8s.io \"default\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
}

/// Field validation a real server does, as kubectl reports it.
#[tokio::test]
async fn kubectl_reports_field_validation_like_a_cluster() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-validation").await;
    let cases = [
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 70000}]}\n",
            r#"The Service "bad" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"#,
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {type: Magic, ports: [{port: 80}]}\n",
            r#"The Service "bad" is invalid: spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {\"a b\": x}\n",
            r#"The ConfigMap "bad" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#,
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bad}\naddressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]\n",
            r#"The EndpointSlice "bad" is invalid: endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address"#,
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {type: Magic, ports: [{port: 0, protocol: HTTP}]}\n",
            "The Service \"bad\" is invalid: \n\
             * spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"\n\
             * spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n\
             * spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ),
        (
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: bad}\nspec: {holderIdentity: 5}\n",
            r#"Error from server (BadRequest): error when creating "STDIN": Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number into Go struct field LeaseSpec.spec.holderIdentity of type string"#,
        ),
        (
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: bad}\nspec: {renewTime: \"2026-01-01T00:00:00Z\"}\n",
            r#"Error from server (BadRequest): error when creating "STDIN": Lease in version "v1" cannot be handled as a Lease: parsing time "2026-01-01T00:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#,
        ),
    ];
    for (manifest, want) in cases {
        let out = sim
            .kubectl_stdin(&["create", "-f", "-"], Some(manifest.to_string()))
            .await;
        assert!(!out.status.success(), "{manifest}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), want);
    }
}

/// `kubectl apply --prune` without an allowlist resolves its default set of kinds.
#[tokio::test]
async fn kubectl_apply_prune_works_with_the_default_kinds() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-prune").await;
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: demo}}\n---\n\
                apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {app: demo}}\n";
    sim.kubectl_ok_stdin(
        &["apply", "--prune", "-l", "app=demo", "-f", "-"],
        both.into(),
    )
    .await;
    let one = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: demo}}\n";
    let out = sim
        .kubectl_ok_stdin(
            &["apply", "--prune", "-l", "app=demo", "-f", "-"],
            one.into(),
        )
        .await;
    assert!(out.contains("configmap/b pruned"), "{out}");
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    assert!(cms.get_opt("b").await.unwrap().is_none());
    sim.kubectl_ok(&["get", "pvc,pv,rc,ingress"]).await;
}

/// Field selectors on labels a type does not support are an error, as on a cluster.
#[tokio::test]
async fn unsupported_field_labels_are_refused() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-fields").await;
    let out = sim
        .kubectl(&["get", "configmaps", "--field-selector", "data.x=1"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(BadRequest)") && err.contains("field label not supported: data.x"),
        "{err}"
    );
    for (kind, selector) in [
        ("pods", "status.phase=Running,spec.nodeName=n1"),
        ("events", "involvedObject.name=x,reason=Started"),
        ("secrets", "type=Opaque"),
        ("configmaps", "metadata.name=kube-root-ca.crt"),
    ] {
        sim.kubectl_ok(&["get", kind, "--field-selector", selector])
            .await;
    }
}

/// The watch history is bounded by bytes too: a watch from a version that fell out gets 410.
#[tokio::test]
async fn large_objects_fall_out_of_the_watch_history_by_size() {
    use futures::StreamExt;
    use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
    let mut config = mc::sim::SimConfig::new("conv-history");
    config.history_bytes = 1024 * 1024;
    let sim = super::start_sim_with(config).await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("big"))
        .await
        .unwrap();
    let first_rv = first.metadata.resource_version.unwrap();
    for i in 0..8 {
        let value = format!("{i}").repeat(300 * 1024);
        cms.patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"v": value}})),
        )
        .await
        .unwrap();
    }
    let latest = cms
        .get("big")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut old = cms
        .watch(&WatchParams::default(), &first_rv)
        .await
        .unwrap()
        .boxed();
    let code = match old.next().await {
        Some(Ok(WatchEvent::Error(e))) => e.code,
        Some(Err(kube::Error::Api(s))) => s.code,
        other => panic!("expected 410, got {other:?}"),
    };
    assert_eq!(code, 410);
    // Recent versions are still there to resume from.
    let mut recent = cms
        .watch(&WatchParams::default().timeout(1), &latest)
        .await
        .unwrap()
        .boxed();
    if let Some(Ok(WatchEvent::Error(e))) = recent.next().await {
        panic!("the latest version should resume: {e:?}");
    }
}

/// Quantities are stored in canonical form, as a cluster reads them back.
#[tokio::test]
async fn quantities_are_normalized_on_write() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-quantities").await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources:\n      requests: {cpu: 1000m, memory: 1024Mi}\n      limits: {cpu: \"0.5\", memory: 1.5Gi}\n";
    sim.kubectl_ok_stdin(&["create", "-f", "-"], pod.into())
        .await;
    let got = sim
        .kubectl_ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[0].resources}",
        ])
        .await;
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"requests": {"cpu": "1", "memory": "1Gi"},
                           "limits": {"cpu": "500m", "memory": "1536Mi"}})
    );
}

/// The default `view`/`edit`/`admin` ClusterRoles exist and aggregate, chained, like a cluster's.
#[tokio::test]
async fn default_user_roles_aggregate() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("conv-rbac-roles").await;
    sim.kubectl_ok(&["create", "serviceaccount", "reader"])
        .await;
    sim.kubectl_ok(&["create", "serviceaccount", "writer"])
        .await;
    sim.kubectl_ok(&[
        "create",
        "rolebinding",
        "r",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ])
    .await;
    sim.kubectl_ok(&[
        "create",
        "rolebinding",
        "w",
        "--clusterrole=edit",
        "--serviceaccount=default:writer",
    ])
    .await;
    let can = |who: &'static str, verb: &'static str, what: &'static str| {
        let sim = &sim;
        async move {
            let out = sim
                .kubectl(&[
                    "auth",
                    "can-i",
                    verb,
                    what,
                    &format!("--as=system:serviceaccount:default:{who}"),
                ])
                .await;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    assert_eq!(can("reader", "list", "pods").await, "yes");
    assert_eq!(can("reader", "create", "pods").await, "no");
    assert_eq!(can("reader", "get", "secrets").await, "no");
    assert_eq!(can("writer", "create", "deployments.apps").await, "yes");
    assert_eq!(can("writer", "list", "pods").await, "yes");
    assert_eq!(
        can("writer", "create", "roles.rbac.authorization.k8s.io").await,
        "no"
    );
    // A role labelled aggregate-to-view reaches view, edit and admin.
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widgets-view\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [example.com], resources: [widgets], verbs: [get, list]}\n";
    sim.kubectl_ok_stdin(&["apply", "-f", "-"], role.into())
        .await;
    for role in ["view", "edit", "admin"] {
        let rules = sim
            .kubectl_ok(&[
                "get",
                "clusterrole",
                role,
                "-o",
                "jsonpath={.rules[*].resources}",
            ])
            .await;
        assert!(
            rules.contains("widgets") && rules.contains("pods"),
            "{role}: {rules}"
        );
    }
}

/// RBAC escalation prevention: a Role grants, and a binding binds, only what its writer holds.
#[tokio::test]
async fn rbac_writers_cannot_grant_what_they_do_not_hold() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use serde_json::json;
    let sim = start_sim("conv-rbac-escalation").await;
    let sas: Api<ServiceAccount> = Api::namespaced(sim.client.clone(), "default");
    let sa = serde_json::from_value(json!({"metadata": {"name": "delegate"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let admin_roles: Api<Role> = Api::namespaced(sim.client.clone(), "default");
    let role = |name: &str, rules: serde_json::Value| -> Role {
        serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap()
    };
    admin_roles
        .create(
            &PostParams::default(),
            &role("delegator", json!([
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])),
        )
        .await
        .unwrap();
    let binding = |name: &str, kind: &str, role: &str| -> RoleBinding {
        serde_json::from_value(json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "delegate", "namespace": "default"}]}))
        .unwrap()
    };
    let admin_bindings: Api<RoleBinding> = Api::namespaced(sim.client.clone(), "default");
    admin_bindings
        .create(
            &PostParams::default(),
            &binding("delegate", "Role", "delegator"),
        )
        .await
        .unwrap();
    let token = sim
        .cluster
        .service_account_token("default", "delegate", Duration::from_secs(600))
        .unwrap();
    let client = sim.cluster.client_with_token(&token).await.unwrap();
    let roles: Api<Role> = Api::namespaced(client.clone(), "default");
    roles
        .create(
            &PostParams::default(),
            &role(
                "cm-reader",
                json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
            ),
        )
        .await
        .expect("what the writer holds may be granted");
    let err = roles
        .create(
            &PostParams::default(),
            &role(
                "secret-reader",
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
            ),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "roles.rbac.authorization.k8s.io \"secret-reader\" is forbidden: user \"system:serviceaccount:default:delegate\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:default\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
    );
    let bindings: Api<RoleBinding> = Api::namespaced(client, "default");
    bindings
        .create(&PostParams::default(), &binding("own", "Role", "cm-reader"))
        .await
        .expect("a role within the writer's permissions may be bound");
    let err = bindings
        .create(
            &PostParams::default(),
            &binding("more", "ClusterRole", "edit"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
}
