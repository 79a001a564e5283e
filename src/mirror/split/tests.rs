//! The split plan, table by table: observed state in, writes and statuses out. No I/O.

use super::*;
use crate::k8s::split::TrafficSplitBackend;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const RANGE: (u16, u16) = (10000, 10003);

fn port(p: u16) -> SvcPort {
    SvcPort {
        name: Some("http".into()),
        port: p,
        target_port: None,
    }
}

fn local(ports: &[u16]) -> LocalService {
    LocalService {
        ports: ports.iter().map(|p| port(*p)).collect(),
        selector: true,
        uid: Some("uid".into()),
        ..Default::default()
    }
}

fn mirror(target: &str, ports: &[u16]) -> LocalService {
    LocalService {
        mirror_of: Some(target.into()),
        ports: ports.iter().map(|p| port(*p)).collect(),
        ..Default::default()
    }
}

fn apex(ports: &[u16]) -> LocalService {
    LocalService {
        ports: ports.iter().map(|p| port(*p)).collect(),
        uid: Some("apex-uid".into()),
        ..Default::default()
    }
}

fn split(name: &str, apex: &str, backends: &[(&str, u32)]) -> SplitState {
    SplitState {
        namespace: "default".into(),
        name: name.into(),
        generation: Some(1),
        spec: TrafficSplitSpec {
            service: apex.into(),
            backends: backends
                .iter()
                .map(|(s, w)| TrafficSplitBackend {
                    service: (*s).into(),
                    weight: *w,
                })
                .collect(),
        },
        status: None,
    }
}

fn key(name: &str) -> Key {
    ("default".into(), name.into())
}

/// east's usual state: a local backend, west's mirror, a selector-less apex, west alive.
fn observed(splits: Vec<SplitState>) -> SplitObserved {
    SplitObserved {
        splits,
        services: BTreeMap::from([
            (key("backend-svc"), local(&[8080])),
            (key("backend-svc-west"), mirror("west", &[8080])),
            (key("backend"), apex(&[8080])),
        ]),
        links: BTreeMap::from([("west".into(), true)]),
        gateway_endpoints: vec!["10.0.0.6".into(), "10.0.0.5".into()],
        mirror_ports: BTreeSet::from([10000]),
        port_range: RANGE,
        ..Default::default()
    }
}

fn fifty_fifty() -> SplitState {
    split(
        "backend",
        "backend",
        &[("backend-svc", 50), ("backend-svc-west", 50)],
    )
}

fn status_of(p: &SplitPlan, name: &str) -> TrafficSplitStatus {
    p.statuses
        .iter()
        .find(|(k, _)| k == &key(name))
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no status for {name} in {p:#?}"))
}

fn effective(p: &SplitPlan, name: &str) -> Vec<(String, u32, Option<String>)> {
    status_of(p, name)
        .backends
        .into_iter()
        .map(|b| (b.service, b.effective_weight, b.reason))
        .collect()
}

fn slice_of(p: &SplitPlan) -> Option<&EndpointSlice> {
    p.actions.iter().find_map(|a| match a {
        Action::ApplySlice { slice, .. } => Some(&**slice),
        _ => None,
    })
}

/// Feeds the writes back, as the API would after executing them.
fn execute(o: &mut SplitObserved, p: &SplitPlan) {
    for a in &p.actions {
        match a {
            Action::ApplyService { name, service, .. } => {
                let labels = service.metadata.labels.clone().unwrap_or_default();
                let ports = service.spec.as_ref().unwrap().ports.clone().unwrap();
                o.services.insert(
                    key(name),
                    LocalService {
                        split_of: labels.get(LABEL_SPLIT_OF).cloned(),
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
            Action::ApplySlice { name, slice, .. } => {
                let mut endpoints: Vec<(String, bool)> = slice
                    .endpoints
                    .iter()
                    .map(|e| {
                        (
                            e.addresses[0].clone(),
                            e.conditions.as_ref().unwrap().ready.unwrap(),
                        )
                    })
                    .collect();
                endpoints.sort();
                let owner_uid = slice
                    .metadata
                    .owner_references
                    .as_ref()
                    .map(|o| o[0].uid.clone())
                    .or_else(|| o.services.get(&key(name)).and_then(|s| s.uid.clone()));
                o.slices.insert(
                    key(name),
                    LocalSlice {
                        service: name.clone(),
                        endpoints,
                        ports: slice
                            .ports
                            .iter()
                            .flatten()
                            .map(|p| (p.name.clone(), p.port.unwrap() as u16))
                            .collect(),
                        owner_uid,
                    },
                );
            }
            Action::DeleteSlice { name, .. } => {
                o.slices.remove(&key(name));
            }
            Action::DeleteService { name, .. } => {
                o.services.remove(&key(name));
            }
            other => panic!("the split plan does not {other:?}"),
        }
    }
    for (k, status) in &p.statuses {
        if let Some(s) = o
            .splits
            .iter_mut()
            .find(|s| (&s.namespace, &s.name) == (&k.0, &k.1))
        {
            s.status = Some(status.clone());
        }
    }
}

#[test]
fn a_fifty_fifty_split_points_the_apex_at_the_gateway_on_a_free_port_and_converges() {
    let mut o = observed(vec![fifty_fifty()]);
    let p = plan_splits(&o);
    let status = status_of(&p, "backend");
    // 10000 is a mirror's.
    assert_eq!(
        status.ports,
        vec![SplitPort {
            port: 8080,
            gateway_port: 10001
        }]
    );
    assert_eq!(
        status.weights.as_deref(),
        Some("backend-svc=50,backend-svc-west=50")
    );
    assert_eq!(status.conflict, None);
    assert_eq!(status.backends[1].cluster.as_deref(), Some("west"));
    let slice = slice_of(&p).expect("apex slice");
    let ready: Vec<(&str, bool)> = slice
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].as_str(),
                e.conditions.as_ref().unwrap().ready.unwrap(),
            )
        })
        .collect();
    assert_eq!(ready, vec![("10.0.0.5", true), ("10.0.0.6", true)]);
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(10001));
    assert_eq!(
        slice.metadata.owner_references.as_ref().unwrap()[0].uid,
        "apex-uid"
    );
    // The user's apex is never written.
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyService { .. }))
    );
    execute(&mut o, &p);
    assert_eq!(plan_splits(&o), SplitPlan::default(), "converged");
}

#[test]
fn effective_weights_table() {
    let not_alive = Some(reason::not_alive("west"));
    /// (what, observed, (backend, effective weight, reason), apex endpoints ready)
    type Case = (
        &'static str,
        SplitObserved,
        Vec<(&'static str, u32, Option<String>)>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "both alive",
            observed(vec![fifty_fifty()]),
            vec![("backend-svc", 50, None), ("backend-svc-west", 50, None)],
            true,
        ),
        (
            "west's gateway not alive: failover to east",
            {
                let mut o = observed(vec![fifty_fifty()]);
                o.links.insert("west".into(), false);
                o
            },
            vec![
                ("backend-svc", 50, None),
                ("backend-svc-west", 0, not_alive.clone()),
            ],
            true,
        ),
        (
            "every backend down: the apex's endpoints are not ready",
            {
                let mut o = observed(vec![fifty_fifty()]);
                o.links.insert("west".into(), false);
                o.services.remove(&key("backend-svc"));
                o
            },
            vec![
                (
                    "backend-svc",
                    0,
                    Some(reason::missing("default", "backend-svc")),
                ),
                ("backend-svc-west", 0, not_alive.clone()),
            ],
            false,
        ),
        (
            "a mirror without its Link",
            {
                let mut o = observed(vec![fifty_fifty()]);
                o.links.clear();
                o
            },
            vec![
                ("backend-svc", 50, None),
                ("backend-svc-west", 0, Some(reason::no_link("west"))),
            ],
            true,
        ),
        (
            "the apex named as a backend",
            observed(vec![split(
                "backend",
                "backend",
                &[("backend", 10), ("backend-svc", 90)],
            )]),
            vec![
                ("backend", 0, Some(reason::APEX.to_owned())),
                ("backend-svc", 90, None),
            ],
            true,
        ),
        (
            "weight 0 in the spec stays 0, without a reason",
            observed(vec![split(
                "backend",
                "backend",
                &[("backend-svc", 0), ("backend-svc-west", 100)],
            )]),
            vec![("backend-svc", 0, None), ("backend-svc-west", 100, None)],
            true,
        ),
    ];
    for (what, o, want, ready) in cases {
        let p = plan_splits(&o);
        let got = effective(&p, "backend");
        let want: Vec<(String, u32, Option<String>)> = want
            .into_iter()
            .map(|(s, w, r)| (s.to_owned(), w, r))
            .collect();
        assert_eq!(got, want, "{what}");
        let slice = slice_of(&p).unwrap_or_else(|| panic!("{what}: no slice"));
        assert!(
            slice
                .endpoints
                .iter()
                .all(|e| e.conditions.as_ref().unwrap().ready == Some(ready)),
            "{what}"
        );
    }
}

#[test]
fn recovery_restores_the_spec_weights_on_the_same_port() {
    let mut o = observed(vec![fifty_fifty()]);
    o.links.insert("west".into(), false);
    let p = plan_splits(&o);
    execute(&mut o, &p);
    o.links.insert("west".into(), true);
    let p = plan_splits(&o);
    let status = status_of(&p, "backend");
    assert_eq!(
        status.weights.as_deref(),
        Some("backend-svc=50,backend-svc-west=50")
    );
    assert_eq!(status.ports[0].gateway_port, 10001);
}

#[test]
fn apex_conflicts_are_reported_and_nothing_is_written() {
    let cases: Vec<(&str, LocalService, &str)> = vec![
        ("a selector", local(&[8080]), "has a selector"),
        (
            "a mirror",
            mirror("west", &[8080]),
            "is a mirror of cluster west",
        ),
        (
            "another split's apex",
            LocalService {
                split_of: Some("other".into()),
                ..apex(&[8080])
            },
            "created by mc for TrafficSplit default/other",
        ),
    ];
    for (what, svc, needle) in cases {
        // "other" exists (in conflict itself: its own apex has no source of ports).
        let mut o = observed(vec![fifty_fifty(), split("other", "elsewhere", &[])]);
        o.services.insert(key("backend"), svc);
        let p = plan_splits(&o);
        let status = status_of(&p, "backend");
        let conflict = status.conflict.unwrap_or_default();
        assert!(conflict.contains(needle), "{what}: {conflict}");
        assert!(status.ports.is_empty(), "{what}");
        assert!(p.actions.is_empty(), "{what}: {:?}", p.actions);
    }
}

#[test]
fn two_splits_of_one_apex_the_first_by_name_wins() {
    let o = observed(vec![
        split("b", "backend", &[("backend-svc", 1)]),
        split("a", "backend", &[("backend-svc-west", 1)]),
    ]);
    let p = plan_splits(&o);
    assert_eq!(status_of(&p, "a").conflict, None);
    assert!(
        status_of(&p, "b")
            .conflict
            .unwrap()
            .contains("already the apex of TrafficSplit default/a")
    );
}

#[test]
fn a_missing_apex_is_created_with_the_first_backends_ports_and_deleted_with_its_split() {
    let mut o = observed(vec![fifty_fifty()]);
    o.services.remove(&key("backend"));
    let p = plan_splits(&o);
    let created = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::ApplyService { service, .. } => Some(service),
            _ => None,
        })
        .expect("apex created");
    assert_eq!(
        created.metadata.labels.as_ref().unwrap()[LABEL_SPLIT_OF],
        "backend"
    );
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.selector, None);
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 8080);
    execute(&mut o, &p);
    assert_eq!(plan_splits(&o), SplitPlan::default(), "converged");

    o.splits.clear();
    let p = plan_splits(&o);
    assert_eq!(
        p.actions,
        vec![
            Action::DeleteSlice {
                namespace: "default".into(),
                name: "backend".into()
            },
            Action::DeleteService {
                namespace: "default".into(),
                name: "backend".into()
            },
        ]
    );
}

#[test]
fn a_missing_apex_without_any_backend_is_a_conflict_with_a_hint() {
    let mut o = observed(vec![split("x", "nothing", &[("nope", 1)])]);
    o.services.clear();
    let p = plan_splits(&o);
    assert!(
        status_of(&p, "x")
            .conflict
            .unwrap()
            .contains("create it without a selector")
    );
    assert!(p.actions.is_empty());
}

#[test]
fn recorded_ports_are_kept_and_new_splits_never_take_a_mirrors_or_an_older_splits_port() {
    let mut second = split("second", "other", &[("backend-svc", 1)]);
    second.status = Some(TrafficSplitStatus {
        ports: vec![SplitPort {
            port: 8080,
            gateway_port: 10002,
        }],
        ..Default::default()
    });
    let mut o = observed(vec![fifty_fifty(), second]);
    o.services.insert(key("other"), apex(&[8080]));
    let p = plan_splits(&o);
    assert_eq!(status_of(&p, "second").ports[0].gateway_port, 10002);
    // "backend" sorts first but is new: it gets the lowest port no one holds.
    assert_eq!(status_of(&p, "backend").ports[0].gateway_port, 10001);

    // A recorded port a mirror now holds is given up for a free one.
    let mut o = observed(vec![fifty_fifty()]);
    o.splits[0].status = Some(TrafficSplitStatus {
        ports: vec![SplitPort {
            port: 8080,
            gateway_port: 10000,
        }],
        ..Default::default()
    });
    assert_eq!(
        status_of(&plan_splits(&o), "backend").ports[0].gateway_port,
        10001
    );
}

#[test]
fn an_exhausted_pool_is_a_conflict() {
    let mut o = observed(vec![fifty_fifty()]);
    o.mirror_ports = (10000..=10003).collect();
    let status = status_of(&plan_splits(&o), "backend");
    assert!(status.conflict.unwrap().contains("exhausted"));
}

#[test]
fn orphaned_split_slices_are_deleted_but_user_apexes_are_not() {
    let mut o = observed(vec![]);
    o.slices.insert(key("backend"), LocalSlice::default());
    let p = plan_splits(&o);
    assert_eq!(
        p.actions,
        vec![Action::DeleteSlice {
            namespace: "default".into(),
            name: "backend".into()
        }]
    );
}
