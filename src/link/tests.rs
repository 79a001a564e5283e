use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
};
use time::OffsetDateTime;

use super::*;

fn anchor_pem() -> String {
    let now = OffsetDateTime::now_utc();
    crate::identity::new_anchor("cluster.local", now, now + time::Duration::days(1))
        .unwrap()
        .cert_pem
}

fn config(name: &str, bundle: &str) -> McConfig {
    McConfig {
        cluster_name: name.into(),
        trust_domain: "cluster.local".into(),
        gateway_identity: None,
        outbound_ports: (10000, 19999),
        ca_bundle: bundle.into(),
    }
}

fn pair<'a>(s: &'a McConfig, t: &'a McConfig) -> Pair<'a> {
    Pair {
        from: "east-ctx",
        to: "west-ctx",
        source: s,
        source_namespace: "mc-system",
        target: t,
        target_namespace: "mc-system",
    }
}

#[test]
fn clusters_sharing_one_anchor_of_their_bundles_may_link() {
    let (a, b) = (anchor_pem(), anchor_pem());
    let east = config("east", &format!("{a}{b}"));
    let west = config("west", &b);
    assert_eq!(check_pair(&pair(&east, &west)), Ok(()));
}

#[test]
fn disjoint_anchor_bundles_are_refused() {
    let east = config("east", &anchor_pem());
    let west = config("west", &anchor_pem());
    let e = check_pair(&pair(&east, &west)).unwrap_err();
    assert!(matches!(e, LinkError::NoSharedAnchor { .. }), "{e}");
    assert!(e.to_string().contains("east-ctx and west-ctx"), "{e}");
}

#[test]
fn an_empty_bundle_is_named_rather_than_called_disjoint() {
    let east = config("east", &anchor_pem());
    let west = config("west", "not a pem");
    let e = check_pair(&pair(&east, &west)).unwrap_err();
    assert!(matches!(e, LinkError::EmptyBundle { ref context, .. } if context == "west-ctx"));
}

#[test]
fn same_cluster_name_is_refused_whatever_the_context_names() {
    let a = anchor_pem();
    let e = check_pair(&pair(&config("west", &a), &config("west", &a))).unwrap_err();
    assert!(matches!(e, LinkError::SameCluster { .. }), "{e}");
    assert!(e.to_string().contains("clusterName west"), "{e}");
}

fn spec_input(t: &McConfig) -> SpecInput<'_> {
    SpecInput {
        target: t,
        target_namespace: "mc-system",
        target_cluster_domain: "cluster.local",
        api_server: "https://127.0.0.1:6443",
        gateway_addresses: vec!["192.0.2.1".into()],
        gateway_port: 4143,
        selector: "mc.dev/exported=true",
    }
}

#[test]
fn link_spec_fills_every_contract_field_and_derives_the_gateway_identity() {
    let west = config("west", "");
    let spec = link_spec(&spec_input(&west));
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({
            "targetClusterName": "west",
            "targetClusterDomain": "cluster.local",
            "targetTrustDomain": "cluster.local",
            "apiServer": "https://127.0.0.1:6443",
            "credentialsSecret": "mc-link-west",
            "gatewayAddresses": ["192.0.2.1"],
            "gatewayPort": 4143,
            "gatewayIdentity": "mc-gateway.mc-system.west.cluster.local",
            "probe": {"port": 4191, "path": "/ready", "periodSeconds": 3, "timeoutSeconds": 2, "failureThreshold": 3},
            "selector": "mc.dev/exported=true",
        })
    );
    let mut recorded = west.clone();
    recorded.gateway_identity = Some("gw.example".into());
    assert_eq!(
        link_spec(&spec_input(&recorded)).gateway_identity,
        "gw.example"
    );
}

fn link_with(annotation: Option<&str>, api_server: &str) -> Link {
    let mut spec = link_spec(&spec_input(&config("west", "")));
    spec.api_server = api_server.into();
    let mut link = link_object("mc-system", spec, "x");
    link.metadata.annotations =
        annotation.map(|id| BTreeMap::from([(ANNOTATION_TARGET_ID.to_owned(), id.to_owned())]));
    link
}

#[test]
fn a_link_of_the_same_name_is_refreshed_only_for_the_same_target() {
    let url = "https://a";
    assert_eq!(check_existing(None, "e", "w", "uid-1", url), Ok(()));
    let same = link_with(Some("uid-1"), "https://moved");
    assert_eq!(check_existing(Some(&same), "e", "w", "uid-1", url), Ok(()));
    let other = link_with(Some("uid-2"), url);
    let e = check_existing(Some(&other), "e", "w", "uid-1", url).unwrap_err();
    assert!(e.to_string().contains("mc unlink --from e"), "{e}");
    // Hand-made Links (no id) are compared by API server.
    let manual = link_with(None, url);
    assert_eq!(
        check_existing(Some(&manual), "e", "w", "uid-1", url),
        Ok(())
    );
    assert!(check_existing(Some(&manual), "e", "w", "uid-1", "https://b").is_err());
}

#[test]
fn gateway_addresses_parse_hosts_ports_and_bracketed_ipv6() {
    let ok = |s: &str, host: &str, port: Option<u16>| {
        assert_eq!(parse_gateway_address(s), Ok((host.to_owned(), port)), "{s}");
    };
    ok("192.0.2.1", "192.0.2.1", None);
    ok("192.0.2.1:4143", "192.0.2.1", Some(4143));
    ok("gw.example.com:443", "gw.example.com", Some(443));
    ok("[2001:db8::1]:4143", "2001:db8::1", Some(4143));
    ok("2001:db8::1", "2001:db8::1", None);
    for bad in [
        "",
        "gw:0",
        "gw:x",
        "[2001:db8::1",
        "under_score",
        "a b",
        "[host]:1",
    ] {
        assert!(parse_gateway_address(bad).is_err(), "{bad}");
    }
}

#[test]
fn gateway_of_service_reads_load_balancer_ingress_and_the_named_port() {
    let mut svc = Service {
        spec: Some(ServiceSpec {
            ports: Some(vec![
                ServicePort {
                    name: Some("mc-probe".into()),
                    port: 4191,
                    ..Default::default()
                },
                ServicePort {
                    name: Some("mc-gateway".into()),
                    port: 443,
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(gateway_of_service(&svc), (vec![], Some(443)));
    svc.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![
                LoadBalancerIngress {
                    ip: Some("192.0.2.1".into()),
                    ..Default::default()
                },
                LoadBalancerIngress {
                    hostname: Some("gw.example.com".into()),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    });
    assert_eq!(
        gateway_of_service(&svc).0,
        vec!["192.0.2.1".to_owned(), "gw.example.com".to_owned()]
    );
}

#[test]
fn the_remote_kubeconfig_parses_and_carries_server_ca_and_token() {
    let access = ClusterAccess {
        server: "https://127.0.0.1:6443".into(),
        ca_data: Some(ca_data_of_pem(b"PEM")),
        ca_file: None,
        tls_server_name: Some("kubernetes".into()),
        insecure: false,
    };
    let yaml = remote_kubeconfig("west", "mc-remote-access-east", &access, "tok.en").unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("west"));
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
    assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
    assert_eq!(cluster.tls_server_name.as_deref(), Some("kubernetes"));
    let raw: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(raw["users"][0]["user"]["token"], "tok.en");
}

#[test]
fn cluster_access_follows_the_context_to_its_cluster() {
    let kc = kube::config::Kubeconfig::from_yaml(
        "clusters: [{name: c1, cluster: {server: 'https://s', certificate-authority-data: QQ==}}]
contexts: [{name: west, context: {cluster: c1, user: u}}, {name: broken, context: {cluster: nope, user: u}}]
users: [{name: u, user: {token: t}}]",
    )
    .unwrap();
    let a = cluster_access(&kc, "west").unwrap();
    assert_eq!(
        (a.server.as_str(), a.ca_data.as_deref()),
        ("https://s", Some("QQ=="))
    );
    assert_eq!(
        cluster_access(&kc, "nowhere"),
        Err(LinkError::NoContext("nowhere".into()))
    );
    assert!(matches!(
        cluster_access(&kc, "broken"),
        Err(LinkError::NoCluster { .. })
    ));
}

#[test]
fn remote_access_binds_the_rendered_roles_to_one_account_per_source() {
    let ra = remote_access("mc-system", "east");
    assert_eq!(
        ra.service_account.metadata.name.as_deref(),
        Some("mc-remote-access-east")
    );
    assert_eq!(ra.cluster_role_binding.role_ref.kind, "ClusterRole");
    assert_eq!(ra.role_binding.role_ref.kind, "Role");
    for r in [&ra.cluster_role_binding.role_ref, &ra.role_binding.role_ref] {
        assert_eq!(r.name, "mc-remote-access");
    }
    let subject = &ra.role_binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("mc-remote-access-east", Some("mc-system"))
    );
    assert_eq!(ra.cluster_role_binding.metadata.namespace, None);
}

#[test]
fn leftovers_name_every_object_and_a_command_that_deletes_them() {
    let msg = leftovers_in_target("west", "mc-system", "east");
    for part in [
        "ServiceAccount mc-system/mc-remote-access-east",
        "RoleBinding mc-system/mc-remote-access-east",
        "ClusterRoleBinding mc-remote-access-east",
        "kubectl --context west -n mc-system delete",
        "clusterrolebinding/mc-remote-access-east",
    ] {
        assert!(msg.contains(part), "{part} missing: {msg}");
    }
}

#[test]
fn selectors_and_api_servers_are_checked_before_any_request() {
    assert!(validate_selector("mc.dev/exported=true").is_ok());
    assert!(validate_selector("tier in (a,b),!legacy").is_ok());
    assert!(validate_selector("a=(").is_err());
    assert!(validate_api_server("https://10.0.0.1:6443").is_ok());
    assert!(validate_api_server("10.0.0.1:6443").is_err());
    assert!(validate_api_server("https://").is_err());
}

#[test]
fn only_our_finalizer_is_removed() {
    let f = vec![
        "a".to_owned(),
        LINK_FINALIZER_FOR_TEST.to_owned(),
        "b".to_owned(),
    ];
    assert_eq!(
        without_finalizer(&f, LINK_FINALIZER_FOR_TEST),
        vec!["a", "b"]
    );
}

const LINK_FINALIZER_FOR_TEST: &str = crate::k8s::LINK_FINALIZER;
