//! `mc install` / `mc uninstall` through the built binary: golden file, determinism, typed parse of
//! every document, least-privilege RBAC, and a clear refusal for every bad input.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use mc::identity::{CertKeyPem, pki};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::identity::{assert_one_line_error, run};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/identity")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden/install.yaml")
}

fn install_fixture(extra: &[&str]) -> std::process::Output {
    let dir = fixture_dir();
    let mut args = vec![
        "install",
        "--cluster-name",
        "west",
        "--identity-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn rendered() -> String {
    let out = install_fixture(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn install_output_matches_the_golden_file() {
    let yaml = rendered();
    let golden = golden_path();
    if std::env::var_os("MC_BLESS").is_some() {
        std::fs::write(&golden, &yaml).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .expect("golden file missing; run `MC_BLESS=1 cargo test install_output_matches` once");
    pretty_assertions::assert_eq!(
        expected,
        yaml,
        "install output changed; if intended, regenerate with MC_BLESS=1"
    );
}

#[test]
fn two_renders_are_byte_identical() {
    assert_eq!(rendered(), rendered());
}

/// Deserializes into the typed struct and serializes back: equal only if every field of the
/// document is known to k8s-openapi (typos and misplaced fields would be dropped and differ).
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == doc {
        Ok(())
    } else {
        Err(format!(
            "fields lost in typed round trip:\n{}\nvs\n{}",
            serde_json::to_string_pretty(doc).unwrap(),
            serde_json::to_string_pretty(&back).unwrap()
        ))
    }
}

fn typed_check(doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Secret") => round_trip::<Secret>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            // The CRD schema's numbers come back as floats; parsing is the check here.
            serde_json::from_value::<CustomResourceDefinition>(doc.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn every_document_parses_into_its_typed_struct() {
    let docs = documents(&rendered());
    let mut kinds: Vec<String> = Vec::new();
    for doc in &docs {
        if let Err(err) = typed_check(doc) {
            panic!("{} {}: {err}", doc["kind"], doc["metadata"]["name"]);
        }
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/part-of"], "mc", "{}", doc["kind"]);
        assert_eq!(labels["mc.dev/cluster"], "west", "{}", doc["kind"]);
        kinds.push(format!(
            "{}/{}",
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap()
        ));
    }
    for expected in [
        "Namespace/mc-system",
        "CustomResourceDefinition/links.mc.dev",
        "CustomResourceDefinition/trafficsplits.mc.dev",
        "ConfigMap/mc-config",
        "Secret/mc-issuer",
        "ServiceAccount/mc-gateway",
        "ServiceAccount/mc-mirror",
        "ClusterRole/mc-remote-access",
        "Deployment/mc-gateway",
        "Deployment/mc-mirror",
        "Service/mc-gateway",
        "PodDisruptionBudget/mc-gateway",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} missing from {kinds:?}"
        );
    }
    // The checker itself refuses kinds it does not know.
    assert!(typed_check(&serde_json::json!({"apiVersion": "v1", "kind": "Pod"})).is_err());
}

fn find<T: DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered"));
    serde_json::from_value(doc.clone()).unwrap()
}

/// (apiGroup, resource, resourceName or "*", verb) grants of a set of rules.
fn grants(rules: &[PolicyRule]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        let names = rule
            .resource_names
            .clone()
            .unwrap_or_else(|| vec!["*".into()]);
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for name in &names {
                    for verb in &rule.verbs {
                        out.push((group.clone(), resource.clone(), name.clone(), verb.clone()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn remote_access_grants_only_reads_of_services_endpointslices_namespaces_and_two_named_objects() {
    let docs = documents(&rendered());
    let cluster_role: ClusterRole = find(&docs, "ClusterRole", "mc-remote-access");
    let cluster_wide = grants(cluster_role.rules.as_deref().unwrap_or_default());
    assert!(cluster_role.aggregation_rule.is_none());
    for (group, resource, name, verb) in &cluster_wide {
        let allowed_resource = matches!(
            (group.as_str(), resource.as_str()),
            ("", "services") | ("", "namespaces") | ("discovery.k8s.io", "endpointslices")
        );
        assert!(allowed_resource, "ClusterRole grants {group}/{resource}");
        assert!(
            ["get", "list", "watch"].contains(&verb.as_str()),
            "verb {verb}"
        );
        assert_eq!(name, "*");
    }
    for resource in ["services", "namespaces", "endpointslices"] {
        for verb in ["get", "list", "watch"] {
            assert!(
                cluster_wide.iter().any(|g| g.1 == resource && g.3 == verb),
                "{verb} {resource} missing"
            );
        }
    }

    // The named objects live in a Role of the same name, so they cannot leak to other namespaces.
    let role: Role = find(&docs, "Role", "mc-remote-access");
    assert_eq!(role.metadata.namespace.as_deref(), Some("mc-system"));
    let mut named = grants(role.rules.as_deref().unwrap_or_default());
    named.sort();
    assert_eq!(
        named,
        vec![
            (
                "".into(),
                "configmaps".into(),
                "mc-config".into(),
                "get".into()
            ),
            (
                "".into(),
                "services".into(),
                "mc-gateway".into(),
                "get".into()
            ),
        ]
    );
}

#[test]
fn deployments_are_locked_down_and_probed() {
    let docs = documents(&rendered());
    for (name, arg, port) in [
        ("mc-gateway", "gateway", 4191),
        ("mc-mirror", "mirror", 9990),
    ] {
        let deploy: Deployment = find(&docs, "Deployment", name);
        let pod = deploy.spec.unwrap().template;
        let annotations = pod.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], port.to_string());
        let spec = pod.spec.unwrap();
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &spec.containers[0];
        let args = c.args.clone().unwrap();
        assert_eq!(args[0], arg);
        assert!(
            args.windows(2).any(|w| w == ["--log-format", "json"]),
            "{args:?}"
        );
        assert_eq!(c.image.as_deref(), Some("ghcr.io/mc-dev/mc:0.1.0"));
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.unwrap().drop.unwrap(),
            vec!["ALL".to_owned()]
        );
        let resources = c.resources.clone().unwrap();
        assert!(resources.requests.is_some() && resources.limits.is_some());
        let live = c.liveness_probe.clone().unwrap().http_get.unwrap();
        let ready = c.readiness_probe.clone().unwrap().http_get.unwrap();
        assert_eq!(live.path.as_deref(), Some("/live"));
        assert_eq!(ready.path.as_deref(), Some("/ready"));
    }
    let svc: Service = find(&docs, "Service", "mc-gateway");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        vec![("mc-gateway".into(), 4143), ("mc-probe".into(), 4191)]
    );
    let config: ConfigMap = find(&docs, "ConfigMap", "mc-config");
    let data = config.data.unwrap();
    assert_eq!(data["clusterName"], "west");
    assert_eq!(data["trustDomain"], "cluster.local");
    assert!(data["ca-bundle.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
    let secret: Secret = find(&docs, "Secret", "mc-issuer");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let secret_data = secret.data.unwrap();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(secret_data.contains_key(key), "{key}");
    }
    assert_eq!(secret_data["ca.crt"].0, data["ca-bundle.crt"].as_bytes());
}

#[test]
fn values_and_set_override_defaults_and_unknown_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("values.yaml");
    std::fs::write(
        &values,
        "gateway:\n  replicas: 4\n  service:\n    type: NodePort\n",
    )
    .unwrap();
    let out = install_fixture(&[
        "--values",
        values.to_str().unwrap(),
        "--set",
        "image.tag=9.9.9",
        "--namespace",
        "mc-west",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let deploy: Deployment = find(&docs, "Deployment", "mc-gateway");
    assert_eq!(deploy.metadata.namespace.as_deref(), Some("mc-west"));
    assert_eq!(deploy.spec.as_ref().unwrap().replicas, Some(4));
    let image = deploy.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/mc-dev/mc:9.9.9"));
    let svc: Service = find(&docs, "Service", "mc-gateway");
    assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("NodePort"));

    assert_one_line_error(
        &install_fixture(&["--set", "gateway.replica=3"]),
        "gateway.replica",
    );
    std::fs::write(&values, "imagee:\n  tag: x\n").unwrap();
    assert_one_line_error(
        &install_fixture(&["--values", values.to_str().unwrap()]),
        "values.yaml",
    );
}

#[test]
fn a_values_file_tag_like_0_10_stays_as_written_in_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("values.yaml");
    std::fs::write(&values, "image:\n  tag: 0.10\n").unwrap();
    let out = install_fixture(&["--values", values.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let deploy: Deployment = find(&docs, "Deployment", "mc-gateway");
    let image = deploy.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/mc-dev/mc:0.10"));
}

#[test]
fn uninstall_works_without_an_identity_and_deletes_the_crd_last() {
    let out = run(&["uninstall"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs = documents(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(refs.last().unwrap()["kind"], "CustomResourceDefinition");
    let installed = documents(&rendered());
    assert_eq!(refs.len(), installed.len());
    for doc in &installed {
        assert!(
            refs.iter().any(|r| r["kind"] == doc["kind"]
                && r["metadata"]["name"] == doc["metadata"]["name"]
                && r["metadata"]["namespace"] == doc["metadata"]["namespace"]),
            "{} {} not deleted",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
}

// ---- bad inputs: each exits 1 with one line naming the file ----

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn write_dir(dir: &Path, anchor: &CertKeyPem, issuer: &CertKeyPem, cluster: &str) {
    std::fs::create_dir_all(dir.join(cluster)).unwrap();
    std::fs::write(dir.join("anchor.crt"), &anchor.cert_pem).unwrap();
    std::fs::write(dir.join(cluster).join("issuer.crt"), &issuer.cert_pem).unwrap();
    let key = dir.join(cluster).join("issuer.key");
    std::fs::write(&key, &issuer.key_pem).unwrap();
    // As `mc identity issue` leaves it (a 0644 key adds a warning line to stderr).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn anchor(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertKeyPem {
    pki::new_anchor("cluster.local", not_before, not_after).unwrap()
}

fn issuer(
    anchor: &CertKeyPem,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertKeyPem {
    let signer = pki::load_issuer(&anchor.cert_pem, &anchor.key_pem).unwrap();
    pki::new_issuer(&signer, "west", "cluster.local", not_before, not_after).unwrap()
}

fn install_from(dir: &Path) -> std::process::Output {
    run(&[
        "install",
        "--cluster-name",
        "west",
        "--identity-dir",
        dir.to_str().unwrap(),
    ])
}

#[test]
fn issuer_from_another_anchor_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = anchor(now(), now() + Duration::days(10));
    let other = anchor(now(), now() + Duration::days(10));
    let i = issuer(&other, now(), now() + Duration::days(5));
    write_dir(tmp.path(), &a, &i, "west");
    let out = install_from(tmp.path());
    assert_one_line_error(&out, "west/issuer.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not chain"));
}

#[test]
fn expired_and_not_yet_valid_issuers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = anchor(now() - Duration::days(30), now() + Duration::days(30));
    let expired = issuer(&a, now() - Duration::days(20), now() - Duration::days(1));
    write_dir(tmp.path(), &a, &expired, "west");
    let out = install_from(tmp.path());
    assert_one_line_error(&out, "west/issuer.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));

    let future = issuer(&a, now() + Duration::days(2), now() + Duration::days(20));
    write_dir(tmp.path(), &a, &future, "west");
    let out = install_from(tmp.path());
    assert_one_line_error(&out, "west/issuer.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid before"));
}

#[test]
fn expired_anchor_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = anchor(now() - Duration::days(30), now() - Duration::days(1));
    let i = issuer(&a, now() - Duration::days(20), now() - Duration::days(2));
    write_dir(tmp.path(), &a, &i, "west");
    assert_one_line_error(&install_from(tmp.path()), "anchor.crt");
}

#[test]
fn key_that_does_not_match_the_issuer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = anchor(now(), now() + Duration::days(10));
    let i = issuer(&a, now(), now() + Duration::days(5));
    let other = issuer(&a, now(), now() + Duration::days(5));
    let mixed = CertKeyPem {
        cert_pem: i.cert_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    write_dir(tmp.path(), &a, &mixed, "west");
    let out = install_from(tmp.path());
    assert_one_line_error(&out, "west/issuer.key");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not belong"));
}

#[test]
fn garbage_pem_empty_files_and_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = anchor(now(), now() + Duration::days(10));
    let i = issuer(&a, now(), now() + Duration::days(5));
    let cases: [(&str, &[u8]); 4] = [
        ("anchor.crt", b"garbage"),
        ("west/issuer.crt", b""),
        (
            "west/issuer.key",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        ("west/issuer.key", b"\xff\xfe\x00"),
    ];
    for (file, contents) in cases {
        write_dir(tmp.path(), &a, &i, "west");
        std::fs::write(tmp.path().join(file), contents).unwrap();
        assert_one_line_error(&install_from(tmp.path()), file);
    }
    write_dir(tmp.path(), &a, &i, "west");
    std::fs::remove_file(tmp.path().join("west/issuer.crt")).unwrap();
    std::fs::create_dir(tmp.path().join("west/issuer.crt")).unwrap();
    assert_one_line_error(&install_from(tmp.path()), "is a directory");
}

#[test]
fn missing_cluster_name_identity_dir_or_issuer_files_are_refused_with_a_hint() {
    let dir = fixture_dir();
    let d = dir.to_str().unwrap();
    assert_one_line_error(&run(&["install", "--identity-dir", d]), "--cluster-name");
    assert_one_line_error(
        &run(&["install", "--cluster-name", "west"]),
        "--identity-dir",
    );
    assert_one_line_error(
        &run(&["install", "--cluster-name", "Bad_Name", "--identity-dir", d]),
        "Bad_Name",
    );
    let out = run(&["install", "--cluster-name", "east", "--identity-dir", d]);
    assert_one_line_error(&out, "east/issuer.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mc identity issue"));
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = run(&[
        "install",
        "--cluster-name",
        "west",
        "--identity-dir",
        missing.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "nope");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mc identity"));
}

#[test]
fn install_and_uninstall_help_have_examples() {
    for sub in ["install", "uninstall"] {
        let out = run(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples:"),
            "{sub}"
        );
    }
}

#[test]
fn log_format_json_is_accepted_after_any_subcommand() {
    // The rendered Deployments pass `--log-format json` after their subcommand.
    let out = run(&["uninstall", "--log-format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gateway_identity_in_mc_config_follows_the_install_namespace() {
    let out = install_fixture(&["--namespace", "mc-west"]);
    assert!(out.status.success());
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let config: ConfigMap = find(&docs, "ConfigMap", "mc-config");
    assert_eq!(
        config.data.unwrap()["gatewayIdentity"],
        "mc-gateway.mc-west.west.cluster.local"
    );
}

// ---- real kubectl against `mc sim` ----

/// An in-process simulated cluster (the shared fixture of `tests/it/sim`) with the runtime that
/// serves it, for these synchronous tests that drive kubectl as a child process.
struct Sim {
    kubeconfig: PathBuf,
    _sim: crate::sim::Sim,
    _runtime: tokio::runtime::Runtime,
}

fn start_sim() -> Sim {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(crate::sim::start_sim("west"));
    Sim {
        kubeconfig: sim.kubeconfig.clone(),
        _sim: sim,
        _runtime: runtime,
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    // The kubeconfig lives in the test's temp dir; so does kubectl's cache.
    let dir = kubeconfig.parent().expect("kubeconfig in a directory");
    let mut cmd = crate::support::kubectl(dir);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{}", crate::support::spawn_error(&cmd, &e)));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn install_applies_and_uninstall_deletes_with_real_kubectl_against_mc_sim() {
    if !crate::sim::have_kubectl() {
        eprintln!("skipped: kubectl not installed");
        return;
    }
    let sim = start_sim();
    let yaml = rendered();
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "kubectl failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let applied = ok(&kubectl(
        &sim.kubeconfig,
        &["apply", "-f", "-"],
        yaml.as_bytes(),
    ));
    assert!(applied.contains("customresourcedefinition.apiextensions.k8s.io/links.mc.dev"));
    assert!(applied.contains("deployment.apps/mc-gateway"));
    // Applying the same manifests again must succeed (level-triggered installs, upgrades).
    ok(&kubectl(
        &sim.kubeconfig,
        &["apply", "-f", "-"],
        yaml.as_bytes(),
    ));
    ok(&kubectl(
        &sim.kubeconfig,
        &["get", "links.mc.dev", "-n", "mc-system"],
        b"",
    ));
    let config = ok(&kubectl(
        &sim.kubeconfig,
        &[
            "get",
            "configmap",
            "mc-config",
            "-n",
            "mc-system",
            "-o",
            "jsonpath={.data.clusterName}",
        ],
        b"",
    ));
    assert_eq!(config, "west");

    check_remote_access_with_the_sims_rbac(&sim.kubeconfig);

    let uninstall = run(&["uninstall"]);
    assert!(uninstall.status.success());
    let deleted = ok(&kubectl(
        &sim.kubeconfig,
        &["delete", "--ignore-not-found", "-f", "-"],
        &uninstall.stdout,
    ));
    assert!(deleted.contains("links.mc.dev"), "{deleted}");
}

/// Binds mc-remote-access the way `mc link` does (ClusterRoleBinding to the ClusterRole,
/// RoleBinding to the Role) and asks the simulator's RBAC authorizer, as that ServiceAccount,
/// for what docs/installation.md promises, and for some of what it must not get.
fn check_remote_access_with_the_sims_rbac(kubeconfig: &Path) {
    let bindings = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: mc-remote-access-east, namespace: mc-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mc-remote-access-east}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mc-remote-access}
subjects: [{kind: ServiceAccount, name: mc-remote-access-east, namespace: mc-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: mc-remote-access-east, namespace: mc-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: mc-remote-access}
subjects: [{kind: ServiceAccount, name: mc-remote-access-east, namespace: mc-system}]
"#;
    let stdout = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    stdout(kubectl(
        kubeconfig,
        &["apply", "-f", "-"],
        bindings.as_bytes(),
    ));
    let token = stdout(kubectl(
        kubeconfig,
        &[
            "-n",
            "mc-system",
            "create",
            "token",
            "mc-remote-access-east",
        ],
        b"",
    ));
    let view = |path: &str| {
        stdout(kubectl(
            kubeconfig,
            &[
                "config",
                "view",
                "--raw",
                "--minify",
                "-o",
                &format!("jsonpath={path}"),
            ],
            b"",
        ))
    };
    let server = view("{.clusters[0].cluster.server}");
    let ca = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        view("{.clusters[0].cluster.certificate-authority-data}").trim(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    let as_remote = |args: &[&str]| {
        crate::support::kubectl(dir.path())
            .arg("--kubeconfig=/dev/null")
            .arg(format!("--server={server}"))
            .arg(format!("--certificate-authority={}", ca_file.display()))
            .arg(format!("--token={}", token.trim()))
            .args(args)
            .output()
            .unwrap()
    };
    for allowed in [
        &["get", "services", "-A"][..],
        &["get", "endpointslices", "-A"],
        &["get", "namespaces"],
        &["-n", "mc-system", "get", "configmap", "mc-config"],
        &["-n", "mc-system", "get", "service", "mc-gateway"],
    ] {
        let out = as_remote(allowed);
        assert!(
            out.status.success(),
            "{allowed:?} should be allowed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for denied in [
        &["-n", "mc-system", "get", "secret", "mc-issuer"][..],
        &["-n", "mc-system", "get", "secrets"],
        &["-n", "mc-system", "get", "configmap", "kube-root-ca.crt"],
        &["-n", "default", "get", "configmaps"],
        &["-n", "mc-system", "get", "links.mc.dev"],
        &["-n", "default", "get", "deployments"],
    ] {
        let out = as_remote(denied);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("Forbidden"),
            "{denied:?} should be forbidden: {stderr}"
        );
    }
}

#[test]
fn container_args_in_the_manifests_parse_with_this_binarys_cli() {
    use clap::{CommandFactory, Parser};
    let docs = documents(&rendered());
    for name in ["mc-gateway", "mc-mirror"] {
        let deploy: Deployment = find(&docs, "Deployment", name);
        let container = deploy.spec.unwrap().template.spec.unwrap().containers[0].clone();
        let env: Vec<String> = container
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect();
        // The kubelet expands $(VAR) from the container's env; a Pod IP stands in for all.
        let args: Vec<String> = container
            .args
            .unwrap()
            .into_iter()
            .map(|a| {
                let mut out = a.clone();
                while let Some(start) = out.find("$(") {
                    let end = out[start..].find(')').expect("closed $(") + start;
                    let var = &out[start + 2..end];
                    assert!(
                        env.iter().any(|e| e == var),
                        "{name}: $({var}) is not in env"
                    );
                    out.replace_range(start..=end, "10.1.2.3");
                }
                out
            })
            .collect();
        // `gateway` and `mirror` are written on other branches; check them once they exist here.
        if mc::cli::Cli::command().find_subcommand(&args[0]).is_none() {
            eprintln!("skipped: no `mc {}` subcommand in this build", args[0]);
            continue;
        }
        let argv = std::iter::once("mc".to_owned()).chain(args.iter().cloned());
        if let Err(err) = mc::cli::Cli::try_parse_from(argv) {
            panic!("{name} args {args:?} do not parse: {err}");
        }
    }
}

#[test]
fn create_namespaces_is_off_by_default_and_on_grants_exactly_namespace_creation() {
    let default = rendered();
    assert!(!default.contains("--create-namespaces"));
    let out = install_fixture(&["--set", "mirror.createNamespaces=true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on = String::from_utf8(out.stdout).unwrap();
    let docs = documents(&on);
    let role: ClusterRole = find(&docs, "ClusterRole", "mc-mirror");
    let ns_rule = role
        .rules
        .unwrap()
        .into_iter()
        .find(|r| r.resources.as_deref() == Some(&["namespaces".to_string()][..]))
        .unwrap();
    assert_eq!(ns_rule.verbs, ["get", "list", "watch", "create"]);
    assert!(on.contains("--create-namespaces"));
}

/// The Dockerfile cannot be built here (no container engine); what it must agree with is tested.
#[test]
fn the_dockerfile_agrees_with_the_manifests_and_the_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let defaults: Value = serde_saphyr::from_str(mc::render::values::DEFAULT_VALUES).unwrap();
    // The default image tag is this crate's version: a release publishes exactly that tag.
    assert_eq!(defaults["image"]["tag"], env!("CARGO_PKG_VERSION"));
    // The image runs as the uid/gid the manifests pin, and its entrypoint is mc itself, since
    // the manifests pass only arguments.
    let uid = &defaults["securityContext"]["runAsUser"];
    let gid = &defaults["securityContext"]["runAsGroup"];
    assert!(
        dockerfile.contains(&format!("\nUSER {uid}:{gid}\n")),
        "USER {uid}:{gid}"
    );
    assert!(dockerfile.contains("\nENTRYPOINT [\"/usr/local/bin/mc\"]\n"));
    let docs = documents(&rendered());
    for (name, sub) in [("mc-gateway", "gateway"), ("mc-mirror", "mirror")] {
        let deploy: Deployment = find(&docs, "Deployment", name);
        let container = &deploy.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            container.command, None,
            "{name} must rely on the entrypoint"
        );
        assert_eq!(container.args.as_ref().unwrap()[0], sub);
    }
    // The build stage's toolchain is at least the crate's rust-version.
    let msrv = env!("CARGO_PKG_RUST_VERSION");
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM docker.io/library/rust:"))
        .expect("a rust build stage");
    let version = image.split('-').next().unwrap();
    let minor = |v: &str| v.split('.').nth(1).unwrap().parse::<u32>().unwrap();
    assert!(minor(version) >= minor(msrv), "rust:{version} < {msrv}");
}
