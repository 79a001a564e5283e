//! The API conventions controllers rely on beyond everyday kubectl (issue 14): finalizers,
//! server-side apply on subresources, generation, garbage collection, namespace defaults.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};

use super::{eventually, start_sim};

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
        Duration::from_secs(5),
        "the finalized object is gone",
        || async { api.get_opt("f").await.unwrap().is_none().then_some(()) },
    )
    .await;
}
