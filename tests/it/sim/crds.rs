//! Custom resources against their CRD's structural schema (issue 14 point 9), and the request
//! checks of point 8 that need a running server (Leases, body size, every failing field).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use serde_json::json;

use super::start_sim;

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.mc.dev}
spec:
  group: test.mc.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size, name]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              name: {type: string, maxLength: 8, pattern: '^[a-z]+$'}
              mode: {type: string, enum: [fast, slow], default: fast}
              replicas: {type: integer, default: 1}
              tags: {type: array, maxItems: 2, items: {type: string}}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              ready: {type: boolean}
";

fn widget(name: &str, spec: &str) -> String {
    format!("apiVersion: test.mc.dev/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Validation, pruning, `fieldValidation`, defaults and immutable scope, as kubectl reports
/// them against a cluster.
#[tokio::test]
async fn kubectl_sees_custom_resources_checked_against_their_schema() {
    if !super::have_kubectl() {
        return;
    }
    let sim = start_sim("crd-schema").await;
    sim.kubectl_ok_stdin(&["apply", "-f", "-"], WIDGET_CRD.into())
        .await;
    let create = |manifest: String, extra: &'static [&'static str]| {
        let mut args = vec!["create", "-f", "-"];
        args.extend_from_slice(extra);
        let sim = &sim;
        async move { sim.kubectl_stdin(&args, Some(manifest)).await }
    };

    let out = create(
        widget("bad", "{size: big, name: ABC, mode: warp, tags: [a, b, c]}"),
        &[],
    )
    .await;
    assert_eq!(
        stderr(&out),
        "The Widget \"bad\" is invalid: \n\
         * spec.mode: Unsupported value: \"warp\": supported values: \"fast\", \"slow\"\n\
         * spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'\n\
         * spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"\n\
         * spec.tags: Too many: 3: must have at most 2 items"
    );
    let out = create(widget("bad", "{size: 0, name: abcdefghij}"), &[]).await;
    assert_eq!(
        stderr(&out),
        "The Widget \"bad\" is invalid: \n\
         * spec.name: Too long: may not be more than 8 bytes\n\
         * spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    let out = create(widget("bad", "{}"), &[]).await;
    assert_eq!(
        stderr(&out),
        "The Widget \"bad\" is invalid: \n* spec.size: Required value\n* spec.name: Required value"
    );

    // kubectl asks for fieldValidation=Strict by default.
    let unknown = widget(
        "w",
        "{size: 3, name: abc, foo: 1, extra: {free: {form: 1}}}",
    );
    let out = create(unknown.clone(), &[]).await;
    assert_eq!(
        stderr(&out),
        "Error from server (BadRequest): error when creating \"STDIN\": Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.foo\""
    );
    let out = create(unknown.clone(), &["--validate=warn"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "Warning: unknown field \"spec.foo\"");
    let spec = sim
        .kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.spec}"])
        .await;
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("spec is JSON");
    assert_eq!(
        spec,
        json!({"size": 3, "name": "abc", "mode": "fast", "replicas": 1, "extra": {"free": {"form": 1}}})
    );
    let out = create(
        unknown.replace("name: w}", "name: w2}"),
        &["--validate=false"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // Updates: a merge patch (client-side apply) and server-side apply.
    let out = sim
        .kubectl_stdin(
            &["apply", "-f", "-"],
            Some(widget("w", "{size: 3, name: abc, foo: 2}")),
        )
        .await;
    assert!(
        stderr(&out).ends_with(
            "for: \"STDIN\": error when patching \"STDIN\": strict decoding error: unknown field \"spec.foo\""
        ),
        "{}",
        stderr(&out)
    );
    let out = sim
        .kubectl_stdin(
            &["apply", "--server-side", "-f", "-"],
            Some(widget("w", "{size: 3, name: abc, foo: 2}")),
        )
        .await;
    assert_eq!(
        stderr(&out),
        "Error from server: failed to create typed patch object (default/w; test.mc.dev/v1, Kind=Widget): .spec.foo: field not declared in schema"
    );
    let out = sim
        .kubectl(&[
            "patch",
            "widget",
            "w",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":11}}"#,
        ])
        .await;
    assert_eq!(
        stderr(&out),
        "The Widget \"w\" is invalid: spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
    );

    // The schema changes: defaults apply on read, unchanged fields are not checked again.
    let tighter = WIDGET_CRD.replace("maximum: 10}", "maximum: 2}").replace(
        "replicas: {type: integer, default: 1}",
        "replicas: {type: integer, default: 1}\n              tier: {type: string, default: gold}",
    );
    sim.kubectl_ok_stdin(&["apply", "-f", "-"], tighter).await;
    let tier = sim
        .kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.spec.tier}"])
        .await;
    assert_eq!(tier, "gold");
    sim.kubectl_ok(&["label", "widget", "w", "team=a"]).await;
    let out = sim
        .kubectl(&[
            "patch",
            "widget",
            "w",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":4}}"#,
        ])
        .await;
    assert!(
        stderr(&out).ends_with("spec.size in body should be less than or equal to 2"),
        "{}",
        stderr(&out)
    );

    let out = sim
        .kubectl(&[
            "patch",
            "crd",
            "widgets.test.mc.dev",
            "--type=merge",
            "-p",
            r#"{"spec":{"scope":"Cluster"}}"#,
        ])
        .await;
    assert_eq!(
        stderr(&out),
        "The CustomResourceDefinition \"widgets.test.mc.dev\" is invalid: spec.scope: Invalid value: \"Cluster\": field is immutable"
    );

    // A kind whose CRD is not there: kubectl's own message, as against a cluster.
    let out = create(
        "apiVersion: test.mc.dev/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {}\n".into(),
        &[],
    )
    .await;
    assert_eq!(
        stderr(&out),
        "error: resource mapping not found for name: \"g\" namespace: \"\" from \"STDIN\": no matches for kind \"Gadget\" in version \"test.mc.dev/v1\"\nensure CRDs are installed first"
    );
}

/// mc's own Link CRD through kube-rs: every failing field in one 422, defaults stored, and a
/// POST to a resource that is not served.
#[tokio::test]
async fn link_custom_resources_are_validated_and_defaulted() {
    let sim = start_sim("crd-link").await;
    let crds: Api<CustomResourceDefinition> = Api::all(sim.client.clone());
    crds.create(&PostParams::default(), &mc::k8s::Link::crd())
        .await
        .expect("Link CRD created");
    let gvk = GroupVersionKind::gvk("mc.dev", "v1alpha1", "Link");
    let links: Api<DynamicObject> =
        Api::namespaced_with(sim.client.clone(), "default", &ApiResource::from_gvk(&gvk));
    let link = |name: &str, spec: serde_json::Value| {
        DynamicObject::new(name, &ApiResource::from_gvk(&gvk)).data(json!({ "spec": spec }))
    };
    let err = links
        .create(
            &PostParams::default(),
            &link(
                "bad",
                json!({"targetClusterName": "east", "apiServer": 5, "gatewayAddresses": "x",
                       "gatewayPort": 70000}),
            ),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Link.mc.dev \"bad\" is invalid: [spec.credentialsSecret: Required value, \
         spec.gatewayIdentity: Required value, \
         spec.apiServer: Invalid value: \"integer\": spec.apiServer in body must be of type string: \"integer\", \
         spec.gatewayAddresses: Invalid value: \"string\": spec.gatewayAddresses in body must be of type array: \"string\", \
         spec.gatewayPort: Invalid value: 70000: spec.gatewayPort in body should be less than or equal to 65535]"
    );

    let created = links
        .create(
            &PostParams::default(),
            &link(
                "good",
                json!({"targetClusterName": "east", "apiServer": "https://127.0.0.1:1",
                       "credentialsSecret": "east", "gatewayAddresses": ["127.0.0.1"],
                       "gatewayIdentity": "gw.east", "stale": true}),
            ),
        )
        .await
        .expect("valid Link created");
    let spec = &created.data["spec"];
    assert_eq!(spec["gatewayPort"], 4143);
    assert_eq!(spec["selector"], "mc.dev/exported=true");
    assert_eq!(spec["probe"]["path"], "/ready");
    assert!(spec.get("stale").is_none(), "{spec}");

    let missing = GroupVersionKind::gvk("nothere.mc.dev", "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(
        sim.client.clone(),
        "default",
        &ApiResource::from_gvk(&missing),
    );
    let err = gadgets
        .create(
            &PostParams::default(),
            &DynamicObject::new("g", &ApiResource::from_gvk(&missing)),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "the server could not find the requested resource")
    );
}

/// Leases are checked as kube-apiserver checks them, and bodies over 3 MiB are refused.
#[tokio::test]
async fn leases_and_request_size_are_checked() {
    let sim = start_sim("lease-size").await;
    let leases: Api<Lease> = Api::namespaced(sim.client.clone(), "default");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("l".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("me".into()),
            lease_duration_seconds: Some(0),
            lease_transitions: Some(-1),
            ..Default::default()
        }),
    };
    let err = leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Lease.coordination.k8s.io \"l\" is invalid: [spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]"
    );

    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let big = ConfigMap {
        metadata: ObjectMeta {
            name: Some("big".into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "x".repeat(3 * 1024 * 1024))].into()),
        ..Default::default()
    };
    let err = cms.create(&PostParams::default(), &big).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728"
        )
    );
}
