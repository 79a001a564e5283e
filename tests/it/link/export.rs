//! `mc export` / `mc unexport`: the label comes and goes; a missing Service and a mirror are
//! refused.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{Api, ObjectMeta, PostParams};

use super::installed_pair;

fn service(name: &str, labels: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_unexport_set_and_remove_the_label_and_refuse_missing_services_and_mirrors() {
    let pair = installed_pair().await;
    let services = Api::<Service>::namespaced(pair.west.client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &service("backend-svc", &[("app", "backend")]),
        )
        .await
        .unwrap();
    let label = |svc: Service| {
        svc.metadata
            .labels
            .unwrap_or_default()
            .get("mc.dev/exported")
            .cloned()
    };

    let out = pair
        .mc_ok(&[
            "--context",
            "west",
            "export",
            "backend-svc",
            "-n",
            "default",
        ])
        .await;
    assert!(
        out.contains("Service default/backend-svc exported"),
        "{out}"
    );
    assert_eq!(
        label(services.get("backend-svc").await.unwrap()).as_deref(),
        Some("true")
    );
    let out = pair
        .mc_ok(&["export", "backend-svc", "--context", "west"])
        .await;
    assert!(out.contains("already exported"), "{out}");

    let out = pair
        .mc_ok(&["--context", "west", "unexport", "backend-svc"])
        .await;
    assert!(
        out.contains("Service default/backend-svc unexported"),
        "{out}"
    );
    let svc = services.get("backend-svc").await.unwrap();
    assert_eq!(
        svc.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("backend")
    );
    assert_eq!(label(svc), None);
    let out = pair
        .mc_ok(&["--context", "west", "unexport", "backend-svc"])
        .await;
    assert!(out.contains("already unexported"), "{out}");

    pair.mc_fails(
        &["--context", "west", "export", "nope", "-n", "default"],
        "Service default/nope not found in west; `kubectl --context west -n default get services` lists the Services there",
    )
    .await;
    services
        .create(
            &PostParams::default(),
            &service("frontend-east", &[("mc.dev/mirror-of", "east")]),
        )
        .await
        .unwrap();
    pair.mc_fails(
        &["--context", "west", "export", "frontend-east"],
        "Service default/frontend-east in west is a mirror of its Service in cluster east (label mc.dev/mirror-of); export the original in east instead",
    )
    .await;
    pair.mc_fails(
        &["--context", "west", "export", "Bad_Name"],
        "\"Bad_Name\" is not a Service name",
    )
    .await;
}
