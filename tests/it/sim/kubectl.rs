//! The real kubectl against the simulator, through the commands users and mc's docs run.

use std::io::BufRead as _;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, PostParams};

use super::{have_kubectl, start_sim};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
"#;

/// Every kind `mc install` renders, in one multi-document file.
fn app(port: u16, sidecar: bool, mode: &str) -> String {
    let sidecar = if sidecar {
        "\n      - {name: sidecar, image: busybox}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: demo}}
---
{CRD}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: demo, labels: {{app: web}}}}
data: {{mode: {mode}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec, namespace: demo}}
stringData: {{k: v}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: demo}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: demo-reader}}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: demo-reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: demo}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: cfg-reader, namespace: demo}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [cfg]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: cfg-reader, namespace: demo}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: cfg-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: demo}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: demo, labels: {{app: web}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: "nginx:1.25", ports: [{{containerPort: 80}}], env: [{{name: MODE, value: {mode}}}]}}{sidecar}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: demo, labels: {{app: web}}}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{name: http, port: {port}, targetPort: 80}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: demo}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_updates_lists_labels_and_deletes_a_manifest() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-apply").await;
    let v1 = sim.write_file("v1.yaml", &app(80, true, "one"));
    let out = sim
        .kubectl_ok(&["apply", "-f", v1.to_str().expect("path")])
        .await;
    for line in [
        "namespace/demo created",
        "deployment.apps/web created",
        "service/web created",
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created",
        "poddisruptionbudget.policy/web created",
        "clusterrolebinding.rbac.authorization.k8s.io/demo-reader created",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }

    // Second apply: strategic merge drops the sidecar and replaces the port.
    let v2 = sim.write_file("v2.yaml", &app(8080, false, "two"));
    let out = sim
        .kubectl_ok(&["apply", "-f", v2.to_str().expect("path")])
        .await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/cfg configured"), "{out}");
    let deploys: Api<Deployment> = Api::namespaced(sim.client.clone(), "demo");
    let d = deploys.get("web").await.expect("deployment");
    let containers = d
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers;
    assert_eq!(
        containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["web"]
    );
    assert_eq!(
        containers[0].env.as_ref().expect("env")[0].value.as_deref(),
        Some("two")
    );
    let svcs: Api<Service> = Api::namespaced(sim.client.clone(), "demo");
    let svc = svcs.get("web").await.expect("service");
    let ports = svc.spec.expect("spec").ports.expect("ports");
    assert_eq!(ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![8080]);

    let yaml = sim.kubectl_ok(&["get", "svc", "-A", "-o", "yaml"]).await;
    assert!(
        yaml.contains("name: web") && yaml.contains("name: kubernetes"),
        "{yaml}"
    );
    let by_label = sim
        .kubectl_ok(&["get", "cm", "-n", "demo", "-l", "app=web"])
        .await;
    assert!(
        by_label.contains("cfg") && !by_label.contains("kube-root-ca.crt"),
        "{by_label}"
    );
    sim.kubectl_ok(&["label", "svc", "web", "-n", "demo", "tier=front"])
        .await;
    let labelled = sim
        .kubectl_ok(&["get", "svc", "-A", "-l", "tier=front", "-o", "name"])
        .await;
    assert_eq!(labelled.trim(), "service/web");
    let rollout = sim
        .kubectl_ok(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "demo",
            "--timeout=20s",
        ])
        .await;
    assert!(rollout.contains("successfully rolled out"), "{rollout}");

    let out = sim
        .kubectl_ok(&["delete", "-f", v2.to_str().expect("path"), "--wait=true"])
        .await;
    assert!(out.contains("namespace \"demo\" deleted"), "{out}");
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "demo");
    assert!(cms.get_opt("cfg").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_a_new_object() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-watch").await;
    let mut cmd = sim.kubectl_command(&["get", "cm", "-n", "default", "-w"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = crate::support::spawn(&mut cmd);
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial list is printed first; then the watch is open.
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    assert!(
        matches!(first, Ok(Some(_))),
        "no output from kubectl get -w"
    );
    let api: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("watched".into());
    api.create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if line.contains("watched") {
            seen = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "kubectl get -w did not print the new ConfigMap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_tokens_can_i_and_forbidden_reads() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-auth").await;
    let v1 = sim.write_file("v1.yaml", &app(80, true, "one"));
    sim.kubectl_ok(&["apply", "-f", v1.to_str().expect("path")])
        .await;
    let token = sim
        .kubectl_ok(&["create", "token", "reader", "-n", "demo", "--duration=10m"])
        .await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let yes = sim
        .kubectl(&[
            "auth",
            "can-i",
            "list",
            "services",
            "--as=system:serviceaccount:demo:reader",
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&yes.stdout).trim(), "yes");
    assert!(yes.status.success());
    let no = sim
        .kubectl(&[
            "auth",
            "can-i",
            "list",
            "secrets",
            "-n",
            "demo",
            "--as=system:serviceaccount:demo:reader",
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
    assert_eq!(no.status.code(), Some(1));

    let svcs = sim
        .kubectl_ok(&["--token", token, "get", "svc", "-n", "demo", "-o", "name"])
        .await;
    assert_eq!(svcs.trim(), "service/web");
    let cfg = sim
        .kubectl_ok(&[
            "--token", token, "get", "cm", "cfg", "-n", "demo", "-o", "name",
        ])
        .await;
    assert_eq!(cfg.trim(), "configmap/cfg");
    let denied = sim
        .kubectl(&["--token", token, "get", "secrets", "-n", "demo"])
        .await;
    assert!(!denied.status.success());
    assert_eq!(
        String::from_utf8_lossy(&denied.stderr).trim(),
        "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:demo:reader\" cannot list resource \"secrets\" in API group \"\" in the namespace \"demo\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_waits_for_an_established_crd_and_serves_its_resources() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-crd").await;
    let crd = sim.write_file("crd.yaml", CRD);
    sim.kubectl_ok(&["apply", "-f", crd.to_str().expect("path")])
        .await;
    let out = sim
        .kubectl_ok(&[
            "wait",
            "--for=condition=established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let cr = sim.write_file(
        "cr.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {size: 3}\n",
    );
    sim.kubectl_ok(&["apply", "-f", cr.to_str().expect("path")])
        .await;
    let table = sim.kubectl_ok(&["get", "wd", "-n", "default"]).await;
    assert!(table.contains('w'), "{table}");
    // Deleting the CRD deletes its objects.
    sim.kubectl_ok(&["delete", "crd", "widgets.example.com"])
        .await;
    let gone = sim
        .kubectl(&["get", "widgets.example.com", "-n", "default"])
        .await;
    assert!(!gone.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_removes_a_dropped_field() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-ssa").await;
    let both = sim.write_file(
        "both.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: default, labels: {keep: a, drop: b}}\ndata: {keep: '1', drop: '2'}\n",
    );
    let out = sim
        .kubectl_ok(&["apply", "--server-side", "-f", both.to_str().expect("path")])
        .await;
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let one = sim.write_file(
        "one.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: default, labels: {keep: a}}\ndata: {keep: '1'}\n",
    );
    sim.kubectl_ok(&["apply", "--server-side", "-f", one.to_str().expect("path")])
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let cm = cms.get("ssa").await.expect("get");
    assert_eq!(
        cm.data,
        Some([("keep".to_string(), "1".to_string())].into())
    );
    let labels = cm.metadata.labels.expect("labels");
    assert!(
        labels.contains_key("keep") && !labels.contains_key("drop"),
        "{labels:?}"
    );
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .expect("managedFields")
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kubectl".to_string()), "{managers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators_and_auth_queries_work_with_their_protobuf_bodies() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-create").await;
    assert_eq!(
        sim.kubectl_ok(&["create", "namespace", "x"]).await.trim(),
        "namespace/x created"
    );
    assert_eq!(
        sim.kubectl_ok(&["create", "sa", "y", "-n", "x"])
            .await
            .trim(),
        "serviceaccount/y created"
    );
    assert_eq!(
        sim.kubectl_ok(&["create", "configmap", "c", "-n", "x", "--from-literal=k=v"])
            .await
            .trim(),
        "configmap/c created"
    );
    assert_eq!(
        sim.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "x",
            "--from-literal=k=v"
        ])
        .await
        .trim(),
        "secret/s created"
    );
    let data = sim
        .kubectl_ok(&["get", "secret", "s", "-n", "x", "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(data, "dg==");
    let dry = sim
        .kubectl_ok(&[
            "create",
            "sa",
            "z",
            "-n",
            "x",
            "--dry-run=server",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(dry.trim(), "serviceaccount/z");
    let gone = sim.kubectl(&["get", "sa", "z", "-n", "x"]).await;
    assert!(!gone.status.success(), "a server dry run stores nothing");

    let whoami = sim
        .kubectl_ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(whoami, "mc-sim:admin");
    let list = sim
        .kubectl_ok(&[
            "auth",
            "can-i",
            "--list",
            "-n",
            "x",
            "--as=system:serviceaccount:x:y",
        ])
        .await;
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reapplying_an_unchanged_manifest_changes_nothing() {
    if !have_kubectl() {
        return;
    }
    let sim = start_sim("kc-reapply").await;
    let v1 = sim.write_file("v1.yaml", &app(80, true, "one"));
    let path = v1.to_str().expect("path");
    sim.kubectl_ok(&["apply", "-f", path]).await;
    let rv_before = sim.cluster.resource_version();
    let out = sim.kubectl_ok(&["apply", "-f", path]).await;
    for line in out.lines() {
        // Two kinds print "configured" on real clusters too, because kubectl's patch is never
        // empty: a PodDisruptionBudget (`selector` has patch strategy "replace", see
        // Azure/eno#246) and a Secret written with `stringData`, which the server folds into
        // `data` (kubernetes/kubernetes#87736). The server sees a no-op and writes nothing.
        if line.starts_with("poddisruptionbudget.policy/") || line == "secret/sec configured" {
            continue;
        }
        assert!(line.ends_with(" unchanged"), "{line}\n{out}");
    }
    assert_eq!(
        sim.cluster.resource_version(),
        rv_before,
        "a no-op apply must not write"
    );
}
