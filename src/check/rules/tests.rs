//! The rules on a healthy cluster's facts, then one broken fact at a time: exactly the expected
//! check changes its result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use super::*;
use crate::check::facts::{
    AccessFact, Credentials, DeploymentState, GatewayServiceFact, MirrorFact, RemoteView,
};
use crate::identity::pki::{self, CertKeyPem};
use crate::k8s::link::{Condition, Conflict, GatewayStatus, LatencyMs, LinkStatus};
use crate::k8s::split::{BackendStatus, TrafficSplitBackend};
use crate::k8s::{Link, LinkSpec, TrafficSplit, TrafficSplitSpec, TrafficSplitStatus};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

struct Pki {
    anchor: CertKeyPem,
    other_anchor: CertKeyPem,
    issuer: CertKeyPem,
    short_issuer: CertKeyPem,
    leaf: CertKeyPem,
}

/// One PKI for every test (key generation is the slow part).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let d = time::Duration::days;
        let anchor = pki::new_anchor("cluster.local", now() - d(1), now() + d(3650)).unwrap();
        let other_anchor = pki::new_anchor("cluster.local", now() - d(1), now() + d(3650)).unwrap();
        let signer = pki::load_issuer(&anchor.cert_pem, &anchor.key_pem).unwrap();
        let issuer = pki::new_issuer(
            &signer,
            "east",
            "cluster.local",
            now() - d(1),
            now() + d(365),
        )
        .unwrap();
        let short_issuer = pki::new_issuer(
            &signer,
            "east",
            "cluster.local",
            now() - d(1),
            now() + d(10),
        )
        .unwrap();
        let issuer_signer = pki::load_issuer(&issuer.cert_pem, &issuer.key_pem).unwrap();
        let leaf = pki::issue_gateway_leaf(
            &issuer_signer,
            "mc-system",
            "east",
            "cluster.local",
            now() - time::Duration::hours(1),
            std::time::Duration::from_secs(24 * 3600),
        )
        .unwrap();
        Pki {
            anchor,
            other_anchor,
            issuer,
            short_issuer,
            leaf,
        }
    })
}

fn der(pem: &str) -> Vec<u8> {
    pki::parse_cert_pems(pem.as_bytes()).unwrap()[0].to_vec()
}

fn config(name: &str, bundle: &str) -> McConfig {
    McConfig {
        cluster_name: name.into(),
        trust_domain: "cluster.local".into(),
        gateway_identity: Some(crate::identity::gateway_dns_name(name, "cluster.local")),
        outbound_ports: (10000, 10009),
        ca_bundle: bundle.into(),
    }
}

fn condition(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{type_} is {status}"),
        last_transition_time: "2027-01-15T07:00:00Z".into(),
    }
}

fn link() -> Link {
    let mut l = Link::new(
        "west",
        LinkSpec {
            target_cluster_name: "west".into(),
            target_cluster_domain: "cluster.local".into(),
            target_trust_domain: "cluster.local".into(),
            api_server: "https://127.0.0.1:6443".into(),
            credentials_secret: "mc-link-west".into(),
            gateway_addresses: vec!["127.0.0.2".into()],
            gateway_port: 4143,
            gateway_identity: crate::identity::gateway_dns_name("west", "cluster.local"),
            probe: Default::default(),
            selector: "mc.dev/exported=true".into(),
        },
    );
    l.status = Some(LinkStatus {
        conditions: vec![
            condition("Ready", "True", reason::READY),
            condition("RemoteReachable", "True", reason::WATCHING),
            condition("GatewayAlive", "True", reason::PROBE_SUCCEEDED),
        ],
        gateway: Some(GatewayStatus {
            alive: true,
            latency_ms: Some(LatencyMs {
                p50: 1,
                p95: 2,
                p99: 3,
            }),
            last_probe_time: Some("2027-01-15T07:59:58Z".into()),
            consecutive_failures: 0,
        }),
        mirrored_services: Some(1),
        last_sync_time: Some("2027-01-15T07:59:00Z".into()),
        conflicts: vec![],
    });
    l
}

fn mirror(service: &str, remote: &str, port: u16) -> MirrorFact {
    MirrorFact {
        service: service.into(),
        target: "west".into(),
        remote: Some(remote.into()),
        gateway_ports: Ok(BTreeMap::from([(8888, port)])),
        exported: false,
    }
}

/// A 50/50 split over a local Service and west's mirror, routed.
fn split() -> TrafficSplit {
    let mut t = TrafficSplit::new(
        "web",
        TrafficSplitSpec {
            service: "web".into(),
            backends: vec![
                TrafficSplitBackend {
                    service: "web-east".into(),
                    weight: 50,
                },
                TrafficSplitBackend {
                    service: "web-west".into(),
                    weight: 50,
                },
            ],
        },
    );
    t.metadata.namespace = Some("default".into());
    t.metadata.generation = Some(2);
    let backend = |service: &str, cluster: Option<&str>| BackendStatus {
        service: service.into(),
        weight: 50,
        effective_weight: 50,
        cluster: cluster.map(Into::into),
        reason: None,
    };
    t.status = Some(TrafficSplitStatus {
        ports: vec![],
        backends: vec![backend("web-east", None), backend("web-west", Some("west"))],
        weights: Some("web-east=50,web-west=50".into()),
        conflict: None,
        observed_generation: Some(2),
    });
    t
}

fn split_status(f: &mut ClusterFacts) -> &mut TrafficSplitStatus {
    f.splits.as_mut().unwrap()[0].status.as_mut().unwrap()
}

/// A healthy east, linked to a healthy west that it reads live.
fn healthy() -> ClusterFacts {
    let p = pki();
    let mut f = ClusterFacts::unread("east", "mc-system");
    f.version = Ok((1, 32, "v1.32.4".into()));
    f.crds = vec![
        ("links.mc.dev".into(), Ok(Some(true))),
        ("trafficsplits.mc.dev".into(), Ok(Some(true))),
    ];
    f.splits = Ok(vec![split()]);
    f.rbac_objects = Ok(vec![("ClusterRole".into(), "mc-mirror".into(), true)]);
    f.access = Ok(vec![AccessFact {
        account: "mc-mirror".into(),
        verb: "create".into(),
        group: String::new(),
        resource: "services".into(),
        namespace: None,
        allowed: true,
    }]);
    f.namespace_exists = Ok(true);
    f.config = Ok(Some(Ok(config("east", &p.anchor.cert_pem))));
    f.deployments = ["mc-gateway", "mc-mirror"]
        .iter()
        .map(|n| DeploymentFact {
            name: (*n).into(),
            state: Ok(Some(DeploymentState {
                desired: 2,
                available: 2,
                condition: None,
            })),
        })
        .collect();
    f.gateway_service = Ok(Some(GatewayServiceFact {
        type_: "LoadBalancer".into(),
        addresses: vec!["127.0.0.9".into()],
    }));
    f.issuer_pem = Ok(Some(p.issuer.cert_pem.clone()));
    f.gateway_chain = Some(Ok(vec![der(&p.leaf.cert_pem), der(&p.issuer.cert_pem)]));
    f.links = Ok(vec![LinkFacts {
        link: link(),
        credentials: Ok(Some(Ok(Credentials {
            token_expiry: Some(now().unix_timestamp() + 365 * 86400),
            kubeconfig: String::new(),
        }))),
        events: vec![],
        remote: Some(RemoteView {
            via: "context west".into(),
            config: Ok(Some(Ok(config("west", &p.anchor.cert_pem)))),
            exported: Ok(vec![("default/backend".into(), false)]),
            remote_accounts: Some(Ok(vec!["mc-remote-access-east".into()])),
        }),
    }]);
    f.mirrors = Ok(vec![mirror(
        "default/backend-west",
        "default/backend",
        10000,
    )]);
    f.exported = Ok(vec![]);
    f.remote_accounts = Ok(vec![]);
    f
}

fn link_facts(f: &mut ClusterFacts) -> &mut LinkFacts {
    &mut f.links.as_mut().unwrap()[0]
}

fn status(f: &mut ClusterFacts) -> &mut LinkStatus {
    link_facts(f).link.status.as_mut().unwrap()
}

/// `(id, result)` of every check that is not ok.
fn problems(f: &ClusterFacts) -> Vec<(&'static str, Outcome)> {
    cluster(f, now())
        .into_iter()
        .filter(|c| c.result != Outcome::Ok)
        .map(|c| (c.id, c.result))
        .collect()
}

#[test]
fn a_healthy_cluster_passes_every_check_in_every_category() {
    let checks = cluster(&healthy(), now());
    let bad: Vec<&Check> = checks.iter().filter(|c| c.result != Outcome::Ok).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for category in Category::ALL {
        assert!(
            checks.iter().any(|c| c.category == category),
            "{category:?}"
        );
    }
    let gw = checks.iter().find(|c| c.id == "link-gateway").unwrap();
    assert_eq!(gw.message, "alive, latency p50 1 ms, p95 2 ms, p99 3 ms");
    assert_eq!(gw.link.as_deref(), Some("west"));
}

type Break = fn(&mut ClusterFacts);
/// What is broken, how, and the `(id, result)` of the checks that must notice.
type Case = (&'static str, Break, Vec<(&'static str, Outcome)>);

#[test]
fn each_broken_fact_fails_or_warns_exactly_its_check() {
    use Outcome::{Error, Warning};
    let table: Vec<Case> = vec![
        (
            "old Kubernetes",
            |f| f.version = Ok((1, 26, "v1.26.0".into())),
            vec![("k8s-version", Error)],
        ),
        (
            "CRD missing",
            |f| f.crds[0].1 = Ok(None),
            vec![("crd", Error)],
        ),
        (
            "CRD not established",
            |f| f.crds[0].1 = Ok(Some(false)),
            vec![("crd", Error)],
        ),
        (
            // One red line: the splits are not listed a second time as unreadable.
            "TrafficSplit CRD missing",
            |f| {
                f.crds[1].1 = Ok(None);
                f.splits = Err("the server could not find the requested resource".into());
            },
            vec![("crd", Error)],
        ),
        (
            "TrafficSplits unreadable",
            |f| f.splits = Err("forbidden".into()),
            vec![("traffic-splits", Error)],
        ),
        (
            "split in conflict",
            |f| split_status(f).conflict = Some("the apex Service is not mc's".into()),
            vec![("traffic-split", Error)],
        ),
        (
            "split not routed yet",
            |f| f.splits.as_mut().unwrap()[0].status = None,
            vec![("traffic-split", Warning)],
        ),
        (
            "split spec changed, not routed yet",
            |f| f.splits.as_mut().unwrap()[0].metadata.generation = Some(3),
            vec![("traffic-split", Warning)],
        ),
        (
            "split failed over",
            |f| {
                let b = &mut split_status(f).backends[1];
                b.effective_weight = 0;
                b.reason = Some("the gateway of west is not alive (Link west); failed over".into());
            },
            vec![("traffic-split", Warning)],
        ),
        (
            "split with no backend up",
            |f| {
                for b in &mut split_status(f).backends {
                    b.effective_weight = 0;
                    b.reason = Some("Service default/web does not exist".into());
                }
            },
            vec![("traffic-split", Error)],
        ),
        (
            "RBAC object missing",
            |f| f.rbac_objects = Ok(vec![("Role".into(), "mc-mirror".into(), false)]),
            vec![("rbac-objects", Error)],
        ),
        (
            "access denied",
            |f| f.access.as_mut().unwrap()[0].allowed = false,
            vec![("rbac-access", Error)],
        ),
        (
            "no impersonation",
            |f| f.access = Err("forbidden".into()),
            vec![("rbac-access", Warning)],
        ),
        (
            "config invalid",
            |f| f.config = Ok(Some(Err("no key clusterName".into()))),
            vec![("config", Error)],
        ),
        (
            "gateway scaled to 0",
            |f| {
                f.deployments[0].state = Ok(Some(DeploymentState {
                    desired: 0,
                    available: 0,
                    condition: None,
                }))
            },
            vec![("gateway-deployment", Error)],
        ),
        (
            "mirror partly available",
            |f| {
                f.deployments[1].state = Ok(Some(DeploymentState {
                    desired: 2,
                    available: 1,
                    condition: None,
                }))
            },
            vec![("mirror-deployment", Warning)],
        ),
        (
            "mirror missing",
            |f| f.deployments[1].state = Ok(None),
            vec![("mirror-deployment", Error)],
        ),
        (
            "no load balancer yet",
            |f| {
                f.gateway_service = Ok(Some(GatewayServiceFact {
                    type_: "LoadBalancer".into(),
                    addresses: vec![],
                }))
            },
            vec![("gateway-address", Error)],
        ),
        (
            "ClusterIP gateway",
            |f| {
                f.gateway_service = Ok(Some(GatewayServiceFact {
                    type_: "ClusterIP".into(),
                    addresses: vec!["10.0.0.1".into()],
                }))
            },
            vec![("gateway-address", Warning)],
        ),
        (
            "issuer from another anchor",
            |f| {
                let bundle = pki().other_anchor.cert_pem.clone();
                f.config = Ok(Some(Ok(config("east", &bundle))));
                f.links.as_mut().unwrap()[0].remote.as_mut().unwrap().config =
                    Ok(Some(Ok(config("west", &bundle))));
            },
            vec![("issuer-chain", Error), ("gateway-certificate", Error)],
        ),
        (
            "issuer close to its end",
            |f| f.issuer_pem = Ok(Some(pki().short_issuer.cert_pem.clone())),
            vec![("issuer-validity", Warning)],
        ),
        (
            "issuer missing",
            |f| f.issuer_pem = Ok(None),
            vec![("issuer-chain", Error)],
        ),
        (
            "gateway unreachable",
            |f| f.gateway_chain = Some(Err("connection refused".into())),
            vec![("gateway-certificate", Warning)],
        ),
        (
            "gateway with another identity",
            |f| {
                let mut c = config("east", &pki().anchor.cert_pem);
                c.gateway_identity = Some("mc-gateway.other.east.cluster.local".into());
                f.config = Ok(Some(Ok(c)));
            },
            vec![("gateway-certificate", Error)],
        ),
        (
            "credentials Secret missing",
            |f| link_facts(f).credentials = Ok(None),
            vec![("link-credentials", Error)],
        ),
        (
            "token expires in 3 days",
            |f| {
                link_facts(f).credentials = Ok(Some(Ok(Credentials {
                    token_expiry: Some(now().unix_timestamp() + 3 * 86400),
                    kubeconfig: String::new(),
                })))
            },
            vec![("link-token", Warning)],
        ),
        (
            "token expired",
            |f| {
                link_facts(f).credentials = Ok(Some(Ok(Credentials {
                    token_expiry: Some(now().unix_timestamp() - 1),
                    kubeconfig: String::new(),
                })))
            },
            vec![("link-token", Error)],
        ),
        (
            "remote unreachable",
            |f| {
                status(f).conditions[1] = condition("RemoteReachable", "False", reason::UNREACHABLE)
            },
            vec![("link-remote", Error)],
        ),
        (
            "remote not observed yet",
            |f| status(f).conditions.clear(),
            vec![("link-remote", Warning)],
        ),
        (
            "status stale",
            |f| {
                status(f).gateway.as_mut().unwrap().last_probe_time =
                    Some("2027-01-15T07:50:00Z".into())
            },
            vec![("link-status-fresh", Warning)],
        ),
        (
            "gateway not alive",
            |f| status(f).gateway.as_mut().unwrap().alive = false,
            vec![("link-gateway", Error)],
        ),
        (
            "target without mc",
            |f| link_facts(f).remote.as_mut().unwrap().config = Ok(None),
            vec![("link-anchors", Error)],
        ),
        (
            "target with another anchor",
            |f| {
                let bundle = pki().other_anchor.cert_pem.clone();
                link_facts(f).remote.as_mut().unwrap().config =
                    Ok(Some(Ok(config("west", &bundle))));
            },
            vec![("link-anchors", Error)],
        ),
        (
            "access revoked in the target",
            |f| link_facts(f).remote.as_mut().unwrap().remote_accounts = Some(Ok(vec![])),
            vec![("link-remote-access", Error)],
        ),
        (
            "exported but not mirrored",
            |f| {
                link_facts(f)
                    .remote
                    .as_mut()
                    .unwrap()
                    .exported
                    .as_mut()
                    .unwrap()
                    .push(("default/new".into(), false))
            },
            vec![("link-mirrored", Error)],
        ),
        (
            "orphan mirror",
            |f| link_facts(f).remote.as_mut().unwrap().exported = Ok(vec![]),
            vec![("link-orphans", Error)],
        ),
        (
            "conflict",
            |f| {
                status(f).conflicts.push(Conflict {
                    service: "default/x-west".into(),
                    reason: "a Service mc does not own has the mirror's name".into(),
                })
            },
            vec![("link-conflicts", Error)],
        ),
        (
            "daisy chain",
            |f| {
                status(f).conflicts.push(Conflict {
                    service: "default/relay-north".into(),
                    reason: format!("remote Service not mirrored: {DAISY_CHAIN}"),
                });
                link_facts(f)
                    .remote
                    .as_mut()
                    .unwrap()
                    .exported
                    .as_mut()
                    .unwrap()
                    .push(("default/relay-north".into(), true));
            },
            vec![("link-daisy-chain", Error)],
        ),
        (
            "mirror of no Link",
            |f| f.mirrors.as_mut().unwrap()[0].target = "gone".into(),
            vec![("link-mirrored", Error), ("mirrors-without-link", Error)],
        ),
        (
            "duplicate port",
            |f| {
                f.mirrors
                    .as_mut()
                    .unwrap()
                    .push(mirror("default/b-west", "default/backend", 10000))
            },
            vec![("outbound-ports", Error)],
        ),
        (
            "port outside the range",
            |f| {
                f.mirrors.as_mut().unwrap()[0] =
                    mirror("default/backend-west", "default/backend", 20000)
            },
            vec![("outbound-ports", Error)],
        ),
        (
            "exported mirror",
            |f| f.mirrors.as_mut().unwrap()[0].exported = true,
            vec![("exported-mirrors", Warning)],
        ),
    ];
    let mut seen: BTreeSet<&str> = cluster(&healthy(), now()).iter().map(|c| c.id).collect();
    for (what, break_it, expected) in table {
        let mut f = healthy();
        break_it(&mut f);
        seen.extend(cluster(&f, now()).iter().map(|c| c.id));
        assert_eq!(problems(&f), expected, "{what}");
        for c in cluster(&f, now())
            .iter()
            .filter(|c| c.result != Outcome::Ok)
        {
            let hint = c.hint.as_deref().unwrap_or_default();
            assert!(
                hint.ends_with(&format!("see {DOCS}#{}", c.id)),
                "{what}: {hint}"
            );
        }
    }
    let known: BTreeSet<&str> = IDS.iter().copied().collect();
    assert_eq!(
        seen, known,
        "the table exercises every check id, and IDS lists them all"
    );
}

#[test]
fn every_check_id_has_a_section_in_the_troubleshooting_docs() {
    let doc = include_str!("../../../docs/troubleshooting.md");
    for id in IDS {
        assert!(
            doc.contains(&format!("\n### {id}\n")),
            "docs/troubleshooting.md lacks ### {id}"
        );
    }
}

#[test]
fn a_failing_gateway_check_quotes_the_last_warning_event_on_the_link() {
    let mut f = healthy();
    status(&mut f).gateway.as_mut().unwrap().alive = false;
    link_facts(&mut f).events = vec![
        crate::check::facts::LinkEvent {
            warning: false,
            reason: "ProbeSucceeded".into(),
            message: "fine".into(),
            time: Some("2027-01-15T07:59:00Z".into()),
        },
        crate::check::facts::LinkEvent {
            warning: true,
            reason: "ProbeFailed".into(),
            message: "connection refused".into(),
            time: Some("2027-01-15T07:58:00Z".into()),
        },
    ];
    let checks = cluster(&f, now());
    let gw = checks.iter().find(|c| c.id == "link-gateway").unwrap();
    assert!(
        gw.message
            .ends_with("; last Warning event 2m ago: ProbeFailed: connection refused"),
        "{}",
        gw.message
    );
}

#[test]
fn access_judged_from_the_roles_says_so() {
    let mut f = healthy();
    f.access_by_rules = Some("impersonation forbidden (403)".into());
    let checks = cluster(&f, now());
    let c = checks.iter().find(|c| c.id == "rbac-access").unwrap();
    assert_eq!(c.result, Outcome::Ok);
    assert!(c.message.contains("judged from the roles"), "{}", c.message);
}

#[test]
fn an_unreachable_api_or_a_missing_namespace_stops_the_checks_that_depend_on_it() {
    let mut f = healthy();
    f.version = Err("connection refused".into());
    let checks = cluster(&f, now());
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (checks[0].id, checks[0].result),
        ("k8s-api", Outcome::Error)
    );
    assert!(checks[0].message.contains("connection refused"));

    let mut f = healthy();
    f.namespace_exists = Ok(false);
    let checks = cluster(&f, now());
    let last = checks.last().unwrap();
    assert_eq!((last.id, last.result), ("namespace", Outcome::Error));
    assert!(checks.iter().all(|c| c.category <= Category::Install));
}

#[test]
fn without_a_live_view_of_the_target_only_the_controllers_observations_are_judged() {
    let mut f = healthy();
    link_facts(&mut f).remote = None;
    let ids: Vec<&str> = cluster(&f, now()).iter().map(|c| c.id).collect();
    for absent in [
        "link-anchors",
        "link-remote-access",
        "link-mirrored",
        "link-orphans",
    ] {
        assert!(!ids.contains(&absent), "{absent} in {ids:?}");
    }
    assert!(ids.contains(&"link-gateway"));
}
