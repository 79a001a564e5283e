//! The plan, table by table: observed state in, actions out. No I/O.

use super::*;

const RANGE: (u16, u16) = (10000, 10009);

fn settings() -> PlanSettings {
    PlanSettings {
        port_range: RANGE,
        create_namespaces: false,
    }
}

fn port(p: u16) -> SvcPort {
    SvcPort {
        name: None,
        port: p,
        target_port: None,
    }
}

fn named(name: &str, p: u16) -> SvcPort {
    SvcPort {
        name: Some(name.into()),
        port: p,
        target_port: None,
    }
}

fn remote(ns: &str, name: &str, rv: &str, ports: Vec<SvcPort>) -> RemoteService {
    RemoteService {
        namespace: ns.into(),
        name: name.into(),
        resource_version: rv.into(),
        ports,
        unmirrorable: None,
    }
}

fn link(target: &str, remote: Option<Vec<RemoteService>>) -> LinkState {
    LinkState {
        target: target.into(),
        deleting: false,
        has_finalizer: true,
        remote,
        gateway_alive: true,
    }
}

fn observed(links: Vec<LinkState>) -> Observed {
    Observed {
        links,
        links_synced: true,
        namespaces: Some(["default".to_string(), "shop".to_string()].into()),
        gateway_endpoints: vec!["10.0.0.5".into()],
        ..Default::default()
    }
}

fn key(ns: &str, name: &str) -> Key {
    (ns.into(), name.into())
}

/// Feeds a plan's writes back into the observed state, as the API would after executing them.
fn execute(o: &mut Observed, p: &Plan) {
    for a in &p.actions {
        match a {
            Action::ApplyService {
                namespace,
                name,
                service,
            } => {
                let ann = service.metadata.annotations.clone().unwrap_or_default();
                let gp: BTreeMap<String, u16> =
                    serde_json::from_str(&ann[ANNOTATION_GATEWAY_PORTS]).unwrap();
                let ports = service.spec.as_ref().unwrap().ports.clone().unwrap();
                o.services.insert(
                    key(namespace, name),
                    LocalService {
                        mirror_of: service
                            .metadata
                            .labels
                            .as_ref()
                            .unwrap()
                            .get(LABEL_MIRROR_OF)
                            .cloned(),
                        remote: ann.get(ANNOTATION_REMOTE_SERVICE).cloned(),
                        remote_resource_version: ann
                            .get(ANNOTATION_REMOTE_RESOURCE_VERSION)
                            .cloned(),
                        gateway_ports: gp
                            .into_iter()
                            .map(|(k, v)| (k.parse().unwrap(), v))
                            .collect(),
                        ports: ports
                            .iter()
                            .map(|p| SvcPort {
                                name: p.name.clone(),
                                port: p.port as u16,
                                target_port: match &p.target_port {
                                    Some(IntOrString::Int(i)) => Some(*i as u16),
                                    _ => None,
                                },
                            })
                            .collect(),
                        uid: Some(format!("uid-{name}")),
                        ..Default::default()
                    },
                );
            }
            Action::ApplySlice {
                namespace,
                name,
                slice,
            } => {
                o.slices.insert(
                    key(namespace, name),
                    LocalSlice {
                        service: name.clone(),
                        endpoints: slice
                            .endpoints
                            .iter()
                            .map(|e| {
                                (
                                    e.addresses[0].clone(),
                                    e.conditions.as_ref().unwrap().ready.unwrap(),
                                )
                            })
                            .collect(),
                        ports: slice
                            .ports
                            .clone()
                            .unwrap()
                            .iter()
                            .map(|p| (p.name.clone(), p.port.unwrap() as u16))
                            .collect(),
                        // The executor fills the owner from the Service it just applied.
                        owner_uid: Some(format!("uid-{name}")),
                    },
                );
            }
            Action::DeleteService { namespace, name } => {
                o.services.remove(&key(namespace, name));
            }
            Action::DeleteSlice { namespace, name } => {
                o.slices.remove(&key(namespace, name));
            }
            Action::AddFinalizer { link } => {
                o.links
                    .iter_mut()
                    .find(|l| &l.target == link)
                    .unwrap()
                    .has_finalizer = true;
            }
            Action::RemoveFinalizer { link } => {
                o.links.retain(|l| &l.target != link);
            }
            Action::CreateNamespace { name } => {
                o.namespaces
                    .get_or_insert_with(Default::default)
                    .insert(name.clone());
            }
        }
    }
}

fn converge(o: &mut Observed) -> usize {
    let mut writes = 0;
    for _ in 0..5 {
        let p = plan(o, &settings());
        if p.actions.is_empty() {
            return writes;
        }
        writes += p.actions.len();
        execute(o, &p);
    }
    panic!("did not converge: {:?}", plan(o, &settings()).actions);
}

fn service_action(p: &Plan, ns: &str, name: &str) -> Service {
    p.actions
        .iter()
        .find_map(|a| match a {
            Action::ApplyService {
                namespace,
                name: n,
                service,
            } if namespace == ns && n == name => Some((**service).clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ApplyService {ns}/{name} in {:?}", p.actions))
}

#[test]
fn an_exported_service_becomes_a_mirror_and_its_slice_in_two_writes() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote(
            "default",
            "backend-svc",
            "7",
            vec![named("http", 8888), named("metrics", 9090)],
        )]),
    )]);
    let p = plan(&o, &settings());
    assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
    let svc = service_action(&p, "default", "backend-svc-west");
    let ann = svc.metadata.annotations.unwrap();
    assert_eq!(ann[ANNOTATION_REMOTE_SERVICE], "default/backend-svc");
    assert_eq!(ann[ANNOTATION_REMOTE_RESOURCE_VERSION], "7");
    assert_eq!(
        ann[ANNOTATION_GATEWAY_PORTS],
        r#"{"8888":10000,"9090":10001}"#
    );
    assert_eq!(svc.metadata.labels.unwrap()[LABEL_MIRROR_OF], "west");
    assert!(svc.spec.as_ref().unwrap().selector.is_none());
    assert_eq!(p.reports["west"].mirrored, 1);
    execute(&mut o, &p);
    assert_eq!(
        plan(&o, &settings()).actions,
        vec![],
        "converged after one round"
    );
}

#[test]
fn ports_are_unique_across_links_and_stable_for_a_mirrors_life() {
    let mut o = observed(vec![
        link(
            "west",
            Some(vec![remote("default", "a", "1", vec![port(80)])]),
        ),
        link(
            "north",
            Some(vec![remote("default", "a", "1", vec![port(80)])]),
        ),
    ]);
    converge(&mut o);
    let a_west = o.services[&key("default", "a-west")].gateway_ports[&80];
    let a_north = o.services[&key("default", "a-north")].gateway_ports[&80];
    assert_ne!(a_west, a_north);
    // A new service in west, and a remote change to a: a keeps its port.
    o.links[1].remote = Some(vec![
        remote("default", "a", "2", vec![port(80)]),
        remote("default", "b", "1", vec![port(80)]),
    ]);
    converge(&mut o);
    assert_eq!(
        o.services[&key("default", "a-west")].gateway_ports[&80],
        a_west
    );
    let all: BTreeSet<u16> = o
        .services
        .values()
        .flat_map(|s| s.gateway_ports.values().copied())
        .collect();
    assert_eq!(all.len(), 3);
}

#[test]
fn a_remote_port_change_updates_the_mirror_and_its_slice() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    converge(&mut o);
    o.links[0].remote = Some(vec![remote("default", "a", "2", vec![port(8080)])]);
    let p = plan(&o, &settings());
    assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
    execute(&mut o, &p);
    let m = &o.services[&key("default", "a-west")];
    assert_eq!(
        m.ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        vec![8080]
    );
    assert_eq!(
        m.gateway_ports.keys().copied().collect::<Vec<_>>(),
        vec![8080]
    );
    assert_eq!(
        o.slices[&key("default", "a-west")].ports[0].1,
        m.gateway_ports[&8080]
    );
}

#[test]
fn unexported_or_deleted_remote_service_mirror_is_deleted() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![
            remote("default", "a", "1", vec![port(80)]),
            remote("default", "b", "1", vec![port(80)]),
        ]),
    )]);
    converge(&mut o);
    o.links[0].remote = Some(vec![remote("default", "b", "1", vec![port(80)])]);
    let p = plan(&o, &settings());
    assert_eq!(
        p.actions,
        vec![
            Action::DeleteService {
                namespace: "default".into(),
                name: "a-west".into()
            },
            Action::DeleteSlice {
                namespace: "default".into(),
                name: "a-west".into()
            },
        ]
    );
}

#[test]
fn an_unlisted_remote_keeps_every_mirror() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    converge(&mut o);
    // Controller restart while the remote is down: nothing listed yet.
    o.links[0].remote = None;
    assert_eq!(plan(&o, &settings()).actions, vec![]);
    assert!(!plan(&o, &settings()).reports["west"].remote_listed);
}

#[test]
fn mirrors_of_a_link_that_no_longer_exists_are_orphans_once_links_are_listed() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    converge(&mut o);
    o.links.clear();
    o.links_synced = false;
    assert_eq!(
        plan(&o, &settings()).actions,
        vec![],
        "links not listed yet"
    );
    o.links_synced = true;
    let p = plan(&o, &settings());
    assert!(p.actions.contains(&Action::DeleteService {
        namespace: "default".into(),
        name: "a-west".into()
    }));
}

#[test]
fn a_service_mc_does_not_own_is_a_conflict_and_left_alone() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    o.services
        .insert(key("default", "a-west"), LocalService::default());
    let p = plan(&o, &settings());
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.reports["west"].conflicts.len(), 1);
    assert_eq!(p.reports["west"].conflicts[0].service, "default/a-west");
    assert!(
        p.reports["west"].conflicts[0]
            .reason
            .contains("does not own")
    );
    assert_eq!(p.reports["west"].mirrored, 0);
}

#[test]
fn a_missing_namespace_is_reported_or_created_on_request() {
    let o = observed(vec![link(
        "west",
        Some(vec![remote("payments", "a", "1", vec![port(80)])]),
    )]);
    let p = plan(&o, &settings());
    assert_eq!(p.actions, vec![]);
    assert!(
        p.reports["west"].conflicts[0]
            .reason
            .contains("--create-namespaces")
    );
    let s = PlanSettings {
        create_namespaces: true,
        ..settings()
    };
    let p = plan(&o, &s);
    assert_eq!(
        p.actions[0],
        Action::CreateNamespace {
            name: "payments".into()
        }
    );
    assert_eq!(p.actions.len(), 3);
}

#[test]
fn deleting_a_link_removes_its_mirrors_then_its_finalizer() {
    let mut o = observed(vec![
        link(
            "west",
            Some(vec![remote("default", "a", "1", vec![port(80)])]),
        ),
        link(
            "north",
            Some(vec![remote("default", "a", "1", vec![port(80)])]),
        ),
    ]);
    converge(&mut o);
    o.links[0].deleting = true;
    let p = plan(&o, &settings());
    assert_eq!(
        p.actions,
        vec![
            Action::DeleteService {
                namespace: "default".into(),
                name: "a-west".into()
            },
            Action::DeleteSlice {
                namespace: "default".into(),
                name: "a-west".into()
            },
        ]
    );
    execute(&mut o, &p);
    assert_eq!(
        plan(&o, &settings()).actions,
        vec![Action::RemoveFinalizer {
            link: "west".into()
        }]
    );
    assert!(
        o.services.contains_key(&key("default", "a-north")),
        "the other link's mirror stays"
    );
}

#[test]
fn a_new_link_gets_the_finalizer_first() {
    let mut l = link("west", None);
    l.has_finalizer = false;
    let p = plan(&observed(vec![l]), &settings());
    assert_eq!(
        p.actions,
        vec![Action::AddFinalizer {
            link: "west".into()
        }]
    );
}

#[test]
fn a_dead_gateway_marks_the_mirror_endpoints_not_ready_and_back() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    converge(&mut o);
    o.links[0].gateway_alive = false;
    let p = plan(&o, &settings());
    assert_eq!(p.actions.len(), 1);
    execute(&mut o, &p);
    assert_eq!(
        o.slices[&key("default", "a-west")].endpoints,
        vec![("10.0.0.5".to_string(), false)]
    );
    o.links[0].gateway_alive = true;
    converge(&mut o);
    assert_eq!(
        o.slices[&key("default", "a-west")].endpoints,
        vec![("10.0.0.5".to_string(), true)]
    );
}

#[test]
fn gateway_pods_coming_and_going_are_followed() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![remote("default", "a", "1", vec![port(80)])]),
    )]);
    converge(&mut o);
    o.gateway_endpoints = vec!["10.0.0.6".into(), "10.0.0.5".into()];
    assert_eq!(converge(&mut o), 1);
    assert_eq!(o.slices[&key("default", "a-west")].endpoints.len(), 2);
}

#[test]
fn mirrors_of_mirrors_and_headless_services_are_not_mirrored() {
    let mut m = remote("default", "x-north", "1", vec![port(80)]);
    m.unmirrorable = Some("it is itself a mirror (no daisy chains)");
    let o = observed(vec![link("west", Some(vec![m]))]);
    let p = plan(&o, &settings());
    assert_eq!(p.actions, vec![]);
    assert!(
        p.reports["west"].conflicts[0]
            .reason
            .contains("itself a mirror")
    );
}

#[test]
fn an_exhausted_port_pool_is_reported_not_overcommitted() {
    let many: Vec<RemoteService> = (0..12)
        .map(|i| remote("default", &format!("s{i:02}"), "1", vec![port(80)]))
        .collect();
    let mut o = observed(vec![link("west", Some(many))]);
    converge(&mut o);
    assert_eq!(o.services.len(), 10);
    let p = plan(&o, &settings());
    assert_eq!(p.reports["west"].conflicts.len(), 2);
    assert!(p.reports["west"].conflicts[0].reason.contains("exhausted"));
}

#[test]
fn two_mirrors_claiming_one_port_keep_it_for_the_first_and_reallocate_the_second() {
    let mut o = observed(vec![link(
        "west",
        Some(vec![
            remote("default", "a", "1", vec![port(80)]),
            remote("default", "b", "1", vec![port(80)]),
        ]),
    )]);
    converge(&mut o);
    let taken = o.services[&key("default", "a-west")].gateway_ports[&80];
    o.services
        .get_mut(&key("default", "b-west"))
        .unwrap()
        .gateway_ports
        .insert(80, taken);
    converge(&mut o);
    assert_eq!(
        o.services[&key("default", "a-west")].gateway_ports[&80],
        taken
    );
    assert_ne!(
        o.services[&key("default", "b-west")].gateway_ports[&80],
        taken
    );
}

#[test]
fn a_thousand_services_converge_in_two_writes_each() {
    let many: Vec<RemoteService> = (0..1000)
        .map(|i| remote("default", &format!("s{i}"), "1", vec![port(80)]))
        .collect();
    let mut o = observed(vec![link("west", Some(many))]);
    let s = PlanSettings {
        port_range: (10000, 19999),
        create_namespaces: false,
    };
    let p = plan(&o, &s);
    assert_eq!(p.actions.len(), 2000);
    execute(&mut o, &p);
    assert_eq!(plan(&o, &s).actions.len(), 0);
}
