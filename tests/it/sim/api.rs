//! Status codes, reasons and messages of the error paths (k8s-api-surface.md §8), checked on
//! the wire with a kube-rs client.

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::{Sim, start_sim};

async fn raw(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).expect("json")
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(bytes)
        .expect("request");
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("sent");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn get(sim: &Sim, path: &str) -> (StatusCode, Value) {
    raw(
        &sim.client,
        Method::GET,
        path,
        "application/json",
        &Value::Null,
    )
    .await
}

async fn post(sim: &Sim, path: &str, body: Value) -> (StatusCode, Value) {
    raw(&sim.client, Method::POST, path, "application/json", &body).await
}

fn assert_status(resp: &(StatusCode, Value), code: u16, reason: &str, message: &str) {
    let (status, body) = resp;
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["message"], message, "{body}");
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

#[tokio::test]
async fn health_and_version_are_public_and_pin_kubectl_1_32() {
    let sim = start_sim("api-version").await;
    let (s, v) = get(&sim, "/version").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["minor"], "32");
    let (s, v) = get(&sim, "/readyz").await;
    assert_eq!((s, v), (StatusCode::OK, Value::String("ok".into())));
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let sim = start_sim("api-anon").await;
    let bad = sim
        .cluster
        .client_with_token("not-a-token")
        .await
        .expect("client");
    let resp = raw(
        &bad,
        Method::GET,
        "/api/v1/namespaces",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_status(&resp, 401, "Unauthorized", "Unauthorized");

    // No Authorization header at all.
    let mut kc = sim.cluster.kubeconfig();
    for user in &mut kc.auth_infos {
        user.auth_info = Some(Default::default());
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let anonymous = kube::Client::try_from(config).expect("client");
    let resp = raw(
        &anonymous,
        Method::GET,
        "/api",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_status(&resp, 401, "Unauthorized", "Unauthorized");
    let (s, _) = raw(
        &anonymous,
        Method::GET,
        "/version",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn create_get_conflict_and_missing_paths_answer_like_the_api_server() {
    let sim = start_sim("api-errors").await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (s, created) = post(&sim, path, cm("c")).await;
    assert_eq!(s, StatusCode::CREATED);
    // ConfigMaps have no spec/status split, hence no generation (issue 14, point 5).
    assert_eq!(created["metadata"].get("generation"), None);
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert_status(
        &post(&sim, path, cm("c")).await,
        409,
        "AlreadyExists",
        "configmaps \"c\" already exists",
    );
    let missing = get(&sim, "/api/v1/namespaces/default/configmaps/nope").await;
    assert_status(&missing, 404, "NotFound", "configmaps \"nope\" not found");
    assert_eq!(
        missing.1["details"],
        json!({"name": "nope", "kind": "configmaps"})
    );
    assert_status(
        &get(&sim, "/apis/apps/v1/namespaces/default/deployments/nope").await,
        404,
        "NotFound",
        "deployments.apps \"nope\" not found",
    );
    assert_status(
        &post(&sim, "/api/v1/namespaces/ghost/configmaps", cm("c")).await,
        404,
        "NotFound",
        "namespaces \"ghost\" not found",
    );
    assert_status(
        &get(&sim, "/apis/example.com/v1/widgets").await,
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    let nameless = post(
        &sim,
        path,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
    )
    .await;
    assert_status(
        &nameless,
        422,
        "Invalid",
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required",
    );
    let (s, generated) = post(
        &sim,
        path,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        generated["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("gen-") && n.len() == 9)
    );

    // A stale resourceVersion on PUT is a 409 Conflict with the real message.
    let mut stale = created.clone();
    stale["data"]["a"] = json!("2");
    let (s, _) = raw(
        &sim.client,
        Method::PUT,
        &format!("{path}/c"),
        "application/json",
        &stale,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let resp = raw(
        &sim.client,
        Method::PUT,
        &format!("{path}/c"),
        "application/json",
        &stale,
    )
    .await;
    assert_status(
        &resp,
        409,
        "Conflict",
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again",
    );
}

#[tokio::test]
async fn patch_content_types_and_apply_rules_are_enforced() {
    let sim = start_sim("api-patch").await;
    let path = "/api/v1/namespaces/default/configmaps";
    post(&sim, path, cm("p")).await;
    let obj = format!("{path}/p");
    let resp = raw(&sim.client, Method::PATCH, &obj, "text/plain", &json!({})).await;
    assert_status(
        &resp,
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
    );
    let resp = raw(
        &sim.client,
        Method::PATCH,
        &obj,
        "application/apply-patch+yaml",
        &cm("p"),
    )
    .await;
    assert_status(
        &resp,
        422,
        "Invalid",
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    );
    let resp = raw(
        &sim.client,
        Method::PATCH,
        &format!("{obj}?force=true"),
        "application/merge-patch+json",
        &json!({}),
    )
    .await;
    assert_eq!(resp.0.as_u16(), 422);
    let (s, v) = raw(
        &sim.client,
        Method::PATCH,
        &obj,
        "application/merge-patch+json",
        &json!({"data": {"b": "2"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"], json!({"a": "1", "b": "2"}));
    let (s, v) = raw(
        &sim.client,
        Method::PATCH,
        &obj,
        "application/json-patch+json",
        &json!([{"op": "remove", "path": "/data/a"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"], json!({"b": "2"}));
    let missing = raw(
        &sim.client,
        Method::PATCH,
        &format!("{path}/absent"),
        "application/merge-patch+json",
        &json!({}),
    )
    .await;
    assert_status(&missing, 404, "NotFound", "configmaps \"absent\" not found");
    let (s, v) = raw(
        &sim.client,
        Method::PATCH,
        &format!("{path}/applied?fieldManager=t"),
        "application/apply-patch+yaml",
        &cm("applied"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn finalizers_defer_deletion_until_they_are_removed() {
    let sim = start_sim("api-finalizers").await;
    let path = "/api/v1/namespaces/default/configmaps";
    let mut obj = cm("f");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    post(&sim, path, obj).await;
    let (s, v) = raw(
        &sim.client,
        Method::DELETE,
        &format!("{path}/f"),
        "application/json",
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    assert_eq!(get(&sim, &format!("{path}/f")).await.0, StatusCode::OK);
    let (s, _) = raw(
        &sim.client,
        Method::PATCH,
        &format!("{path}/f"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        get(&sim, &format!("{path}/f")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn owner_deletion_collects_dependents_and_namespace_deletion_empties_it() {
    let sim = start_sim("api-gc").await;
    post(
        &sim,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gc"}}),
    )
    .await;
    let path = "/api/v1/namespaces/gc/configmaps";
    let (_, owner) = post(&sim, path, cm("owner")).await;
    let mut dep = cm("dep");
    dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]);
    post(&sim, path, dep).await;
    let (s, v) = raw(
        &sim.client,
        Method::DELETE,
        &format!("{path}/owner"),
        "application/json",
        &json!({"propagationPolicy": "Background"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Success");
    assert_eq!(
        get(&sim, &format!("{path}/dep")).await.0,
        StatusCode::NOT_FOUND
    );
    // Foreground: dependents go first, then the owner; Orphan: dependents stay, unowned.
    for policy in ["Foreground", "Orphan"] {
        let (_, owner) = post(&sim, path, cm("owner2")).await;
        let mut dep = cm("dep2");
        dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner["metadata"]["uid"]}]);
        post(&sim, path, dep).await;
        let (s, _) = raw(
            &sim.client,
            Method::DELETE,
            &format!("{path}/owner2"),
            "application/json",
            &json!({"propagationPolicy": policy}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            get(&sim, &format!("{path}/owner2")).await.0,
            StatusCode::NOT_FOUND
        );
        let (s, dep) = get(&sim, &format!("{path}/dep2")).await;
        if policy == "Foreground" {
            assert_eq!(s, StatusCode::NOT_FOUND);
        } else {
            assert_eq!(s, StatusCode::OK);
            assert_eq!(dep["metadata"]["ownerReferences"], json!([]));
        }
    }
    post(&sim, path, cm("left")).await;
    let (s, ns) = raw(
        &sim.client,
        Method::DELETE,
        "/api/v1/namespaces/gc",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating");
    // New content is refused while terminating; what is there goes with the namespace.
    let refused = post(&sim, path, cm("late")).await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN);
    crate::support::eventually(
        "the namespace to go",
        std::time::Duration::from_secs(10),
        || async {
            (get(&sim, "/api/v1/namespaces/gc").await.0 == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;
    assert_eq!(
        get(&sim, &format!("{path}/left")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn services_get_unique_cluster_ips_endpoint_slices_and_load_balancer_status() {
    let sim = start_sim("api-services").await;
    let path = "/api/v1/namespaces/default/services";
    let svc = |name: &str, ty: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"type": ty, "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    };
    let (_, a) = post(&sim, path, svc("a", "ClusterIP")).await;
    let (_, b) = post(&sim, path, svc("b", "LoadBalancer")).await;
    let ip_a = a["spec"]["clusterIP"].as_str().expect("ip").to_string();
    assert!(ip_a.starts_with("127.10."), "{ip_a}");
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    let (_, b) = get(&sim, &format!("{path}/b")).await;
    assert_eq!(b["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.1");
    let mut headless = svc("h", "ClusterIP");
    headless["spec"]["clusterIP"] = json!("None");
    let (_, h) = post(&sim, path, headless).await;
    assert_eq!(h["spec"]["clusterIP"], "None");

    // A ready pod with an IP appears in the Service's EndpointSlice.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a-1", "labels": {"app": "a"}},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}});
    post(&sim, "/api/v1/namespaces/default/pods", pod).await;
    let status = json!({"status": {"podIP": "10.1.2.3", "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let (s, _) = raw(
        &sim.client,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/a-1/status",
        "application/merge-patch+json",
        &status,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, slices) = get(&sim, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Da").await;
    let slice = &slices["items"][0];
    assert_eq!(
        slice["endpoints"][0]["addresses"][0], "10.1.2.3",
        "{slices}"
    );
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );

    // Deleting a Service frees its IP and removes its slice.
    raw(
        &sim.client,
        Method::DELETE,
        &format!("{path}/a"),
        "application/json",
        &Value::Null,
    )
    .await;
    let (_, slices) = get(&sim, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Da").await;
    assert_eq!(slices["items"], json!([]));
    let mut reuse = svc("c", "ClusterIP");
    reuse["spec"]["clusterIP"] = json!(ip_a);
    let (s, again) = post(&sim, path, reuse).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["spec"]["clusterIP"], ip_a.as_str());
    let mut taken = svc("d", "ClusterIP");
    taken["spec"]["clusterIP"] = json!(ip_a);
    let (s, err) = post(&sim, path, taken).await;
    assert_eq!(s.as_u16(), 422, "{err}");
}

#[tokio::test]
async fn lists_page_with_continue_tokens() {
    let sim = start_sim("api-paging").await;
    let path = "/api/v1/namespaces/default/configmaps";
    for i in 0..5 {
        post(&sim, path, cm(&format!("page-{i}"))).await;
    }
    let mut names = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let url = format!("{path}?labelSelector=&limit=2&continue={next}");
        let (s, list) = get(&sim, &url).await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for item in list["items"].as_array().expect("items") {
            names.push(item["metadata"]["name"].as_str().expect("name").to_string());
        }
        match list["metadata"]["continue"].as_str() {
            Some(c) => next = c.to_string(),
            None => break,
        }
    }
    // 5 page-* objects plus kube-root-ca.crt.
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn service_account_tokens_die_with_their_service_account() {
    let sim = start_sim("api-tokens").await;
    post(
        &sim,
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}}),
    )
    .await;
    let (s, tr) = post(
        &sim,
        "/api/v1/namespaces/default/serviceaccounts/bot/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let token = tr["status"]["token"].as_str().expect("token").to_string();
    let bot = sim.cluster.client_with_token(&token).await.expect("client");
    let resp = raw(
        &bot,
        Method::GET,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_status(
        &resp,
        403,
        "Forbidden",
        "configmaps is forbidden: User \"system:serviceaccount:default:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"",
    );
    // Service accounts may read the issuer's keys (OIDC discovery), as on a real cluster.
    let (s, jwks) = raw(
        &bot,
        Method::GET,
        "/openid/v1/jwks",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    // A legacy token Secret gets token, ca.crt and namespace filled in.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bot-token",
        "annotations": {"kubernetes.io/service-account.name": "bot"}}, "type": "kubernetes.io/service-account-token"});
    let (s, sec) = post(&sim, "/api/v1/namespaces/default/secrets", secret).await;
    assert_eq!(s, StatusCode::CREATED, "{sec}");
    for key in ["token", "ca.crt", "namespace"] {
        assert!(sec["data"][key].is_string(), "{key} missing in {sec}");
    }
    // A token bound to that Secret stops working when the Secret goes.
    let (s, tr) = post(
        &sim,
        "/api/v1/namespaces/default/serviceaccounts/bot/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "bot-token"}}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let bound = sim
        .cluster
        .client_with_token(tr["status"]["token"].as_str().expect("token"))
        .await
        .expect("client");
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    assert_eq!(
        raw(&bound, Method::POST, path, "application/json", &review)
            .await
            .0,
        StatusCode::CREATED
    );
    raw(
        &sim.client,
        Method::DELETE,
        "/api/v1/namespaces/default/secrets/bot-token",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(
        raw(&bound, Method::POST, path, "application/json", &review)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    raw(
        &sim.client,
        Method::DELETE,
        "/api/v1/namespaces/default/serviceaccounts/bot",
        "application/json",
        &Value::Null,
    )
    .await;
    let resp = raw(
        &bot,
        Method::GET,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fault_api_is_admin_only_and_fails_writes_on_request() {
    let sim = start_sim("api-faults").await;
    let bot_token = {
        post(
            &sim,
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}}),
        )
        .await;
        sim.cluster
            .service_account_token("default", "bot", std::time::Duration::from_secs(600))
            .expect("token")
    };
    let bot = sim
        .cluster
        .client_with_token(&bot_token)
        .await
        .expect("client");
    let resp = raw(
        &bot,
        Method::POST,
        "/mc-sim/faults",
        "application/json",
        &json!({"action": "clear"}),
    )
    .await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN);
    let (s, _) = post(
        &sim,
        "/mc-sim/faults",
        json!({"action": "fail-writes", "share": 1.0, "code": 500}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let resp = post(&sim, "/api/v1/namespaces/default/configmaps", cm("x")).await;
    assert_status(
        &resp,
        500,
        "InternalError",
        "an error on the server (\"injected fault\") has prevented the request from succeeding",
    );
    // 429 carries Retry-After, which kube-rs honours: the write succeeds once the fault clears.
    sim.cluster.faults().fail_writes(1.0, 429);
    let client = sim.client.clone();
    let pending = tokio::spawn(async move {
        raw(
            &client,
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            &cm("y"),
        )
        .await
    });
    let faults = sim.cluster.faults();
    crate::support::eventually(
        "a 429 to be served",
        std::time::Duration::from_secs(10),
        || {
            let f = faults.clone();
            async move { (f.injected_failures() >= 2).then_some(()) }
        },
    )
    .await;
    sim.cluster.faults().clear();
    let (s, _) = pending.await.expect("task");
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn secrets_store_string_data_as_base64_data_and_default_to_opaque() {
    let sim = start_sim("api-secrets").await;
    let (s, v) = post(
        &sim,
        "/api/v1/namespaces/default/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["data"], json!({"k": "dg=="}));
    assert!(v.get("stringData").is_none());
}

#[tokio::test]
async fn watches_replay_close_on_timeout_and_report_expired_versions_in_the_stream() {
    let sim = start_sim("api-watch").await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (_, first) = post(&sim, path, cm("w1")).await;
    let rv: u64 = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("int");
    post(&sim, path, cm("w2")).await;
    // Replay from before w2, then the stream ends at timeoutSeconds.
    let (s, body) = get(
        &sim,
        &format!("{path}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let text = body
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");

    sim.cluster.faults().compact();
    let (s, body) = get(&sim, &format!("{path}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "410 goes in the stream, not in the HTTP status"
    );
    assert_eq!(body["type"], "ERROR");
    assert_eq!(body["object"]["code"], 410);
    assert_eq!(body["object"]["reason"], "Expired");
    assert!(
        body["object"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("too old resource version: {rv} ("))),
        "{body}"
    );
}

#[tokio::test]
async fn only_callers_allowed_to_impersonate_may_do_so() {
    let sim = start_sim("api-impersonate").await;
    post(
        &sim,
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}}),
    )
    .await;
    let token = sim
        .cluster
        .service_account_token("default", "bot", std::time::Duration::from_secs(600))
        .expect("token");
    let bot = sim.cluster.client_with_token(&token).await.expect("client");
    let as_user = |client: kube::Client| async move {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header("content-type", "application/json")
            .header("impersonate-user", "jane")
            .header("impersonate-group", "devs")
            .body(
                br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec(),
            )
            .expect("request");
        let resp = client
            .send(req.map(kube::client::Body::from))
            .await
            .expect("sent");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).expect("json"),
        )
    };
    let (s, v) = as_user(sim.client.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["status"]["userInfo"]["username"], "jane");
    assert!(
        v["status"]["userInfo"]["groups"]
            .as_array()
            .is_some_and(|g| g.contains(&json!("devs")))
    );
    let denied = as_user(bot).await;
    assert_status(
        &denied,
        403,
        "Forbidden",
        "users \"jane\" is forbidden: User \"system:serviceaccount:default:bot\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
    );
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests_not_crashes() {
    let sim = start_sim("api-malformed").await;
    let path = "/api/v1/namespaces/default/configmaps";
    for body in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "labels": {"a": 1}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": ["x"]}),
        json!(["not", "an", "object"]),
    ] {
        let resp = post(&sim, path, body).await;
        assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
        assert_eq!(resp.1["reason"], "BadRequest");
    }
    post(&sim, path, cm("m")).await;
    let resp = raw(
        &sim.client,
        Method::PATCH,
        &format!("{path}/m"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": "x"}}),
    )
    .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
    let resp = post(
        &sim,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json!([1]),
    )
    .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
    // The server is still fine.
    assert_eq!(get(&sim, &format!("{path}/m")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn selector_watches_see_objects_leave_and_enter_and_get_bookmarks() {
    let mut config = mc::sim::SimConfig::new("api-bookmarks");
    config.bookmark_interval = std::time::Duration::from_millis(100);
    let sim = super::start_sim_with(config).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let mut obj = cm("sel");
    obj["metadata"]["labels"] = json!({"a": "1"});
    let (_, created) = post(&sim, path, obj).await;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    for value in ["2", "1"] {
        raw(
            &sim.client,
            Method::PATCH,
            &format!("{path}/sel"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": value}}}),
        )
        .await;
    }
    let (s, body) = get(
        &sim,
        &format!("{path}?watch=true&labelSelector=a%3D1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let text = body.as_str().expect("several lines").to_string();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(events[0]["type"], "DELETED", "{text}");
    assert_eq!(events[1]["type"], "ADDED", "{text}");
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark within 1s");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert_eq!(bookmark["object"]["apiVersion"], "v1");
    assert!(bookmark["object"]["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn token_secrets_wait_for_their_service_account_and_go_with_it() {
    let sim = start_sim("api-token-secret").await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "early-token",
        "annotations": {"kubernetes.io/service-account.name": "early"}}, "type": "kubernetes.io/service-account-token"});
    let (s, sec) = post(&sim, "/api/v1/namespaces/default/secrets", secret).await;
    assert_eq!(s, StatusCode::CREATED, "{sec}");
    assert!(sec["data"]["token"].is_null());
    post(
        &sim,
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "early"}}),
    )
    .await;
    let (_, sec) = get(&sim, "/api/v1/namespaces/default/secrets/early-token").await;
    assert!(sec["data"]["token"].is_string(), "{sec}");
    raw(
        &sim.client,
        Method::DELETE,
        "/api/v1/namespaces/default/serviceaccounts/early",
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(
        get(&sim, "/api/v1/namespaces/default/secrets/early-token")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn names_are_validated_like_the_api_server_and_system_namespaces_stay() {
    let sim = start_sim("api-names").await;
    let long = "a".repeat(64);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": long}, "spec": {"ports": [{"port": 80}]}});
    assert_status(
        &post(&sim, "/api/v1/namespaces/default/services", svc).await,
        422,
        "Invalid",
        &format!(
            "Service \"{long}\" is invalid: metadata.name: Invalid value: \"{long}\": must be no more than 63 characters"
        ),
    );
    let resp = post(&sim, "/api/v1/namespaces/default/configmaps", cm("Upper")).await;
    assert_eq!(resp.0.as_u16(), 422, "{}", resp.1);
    assert!(
        resp.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("a lowercase RFC 1123 subdomain"))
    );
    assert_eq!(
        post(&sim, "/api/v1/namespaces/default/configmaps", cm("a.b-c"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_status(
        &raw(
            &sim.client,
            Method::DELETE,
            "/api/v1/namespaces/default",
            "application/json",
            &Value::Null,
        )
        .await,
        403,
        "Forbidden",
        "namespaces \"default\" is forbidden: this namespace may not be deleted",
    );
}

#[tokio::test]
async fn immutable_fields_cannot_change() {
    let sim = start_sim("api-immutable").await;
    let mut obj = cm("frozen");
    obj["immutable"] = json!(true);
    post(&sim, "/api/v1/namespaces/default/configmaps", obj).await;
    let resp = raw(
        &sim.client,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/frozen",
        "application/merge-patch+json",
        &json!({"data": {"a": "2"}}),
    )
    .await;
    assert_status(
        &resp,
        422,
        "Invalid",
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
    );
    let ok = raw(
        &sim.client,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/frozen",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK, "metadata may still change");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    post(&sim, "/apis/apps/v1/namespaces/default/deployments", deploy).await;
    let resp = raw(
        &sim.client,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/d",
        "application/merge-patch+json",
        &json!({"spec": {"selector": {"matchLabels": {"app": "e"}}}}),
    )
    .await;
    assert_eq!(resp.0.as_u16(), 422, "{}", resp.1);
    assert!(
        resp.1["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("field is immutable")),
        "{}",
        resp.1
    );
}
