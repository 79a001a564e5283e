//! Table-driven tests of the controllers, on a store without a server.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::sim::cluster::registry::{Registry, ResourceType};
use crate::sim::cluster::store::{State, Store};

const LB_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

fn settings(node: bool) -> Settings {
    Settings {
        cluster_ip_base: Ipv4Addr::new(127, 10, 0, 0),
        api_port: 6443,
        load_balancer_ip: LB_IP,
        node: node.then(|| NodeSettings {
            name: "t-node".into(),
            load_balancer_ip_base: Ipv4Addr::new(127, 200, 0, 0),
        }),
        ca_pem: "-----BEGIN CERTIFICATE-----\nca\n".into(),
        signer: Arc::new(
            TokenSigner::generate("https://kubernetes.default.svc.cluster.local").unwrap(),
        ),
    }
}

/// A seeded cluster, as `Shared::new` makes it.
fn cluster(settings: &Settings) -> Store {
    let store = Store::new(Registry::builtin(), 1000, 64);
    seed(settings, &mut store.lock());
    store
}

fn rt(state: &State, group: &str, plural: &str) -> Arc<ResourceType> {
    state.registry.find(group, "v1", plural).unwrap()
}

/// Admits and stores `obj` as a create, then lets the controllers settle, as a POST does.
fn create(
    s: &Settings,
    state: &mut State,
    group: &str,
    plural: &str,
    mut obj: Value,
) -> Result<Arc<Value>, String> {
    let t = rt(state, group, plural);
    if obj["metadata"].get("uid").is_none() {
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    }
    admit(s, state, &t, None, &mut obj).map_err(|e| e.message.clone())?;
    let stored = state.put(&t.key(), obj, EventType::Added);
    run(s, state);
    Ok(stored)
}

fn update(
    s: &Settings,
    state: &mut State,
    group: &str,
    plural: &str,
    mut obj: Value,
) -> Result<Arc<Value>, String> {
    let t = rt(state, group, plural);
    let live = state
        .get(
            &t.key(),
            meta_str(&obj, "namespace"),
            meta_str(&obj, "name"),
        )
        .unwrap();
    admit(s, state, &t, Some(&live), &mut obj).map_err(|e| e.message.clone())?;
    let stored = state.put(&t.key(), obj, EventType::Modified);
    run(s, state);
    Ok(stored)
}

fn remove(
    s: &Settings,
    state: &mut State,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    propagation: Option<&str>,
) -> Deletion {
    let t = rt(state, group, plural);
    let live = state.get(&t.key(), ns, name).unwrap();
    let d = delete(s, state, &t, &live, propagation, None);
    run(s, state);
    d
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

#[test]
fn services_get_cluster_ips_and_defaults_or_the_api_servers_errors() {
    struct Case {
        name: &'static str,
        spec: Value,
        /// The stored clusterIP, or a part of the error message.
        want: Result<&'static str, &'static str>,
    }
    let port = json!([{"port": 80}]);
    let cases = [
        Case {
            name: "first",
            spec: json!({"ports": port}),
            want: Ok("127.10.0.2"),
        },
        Case {
            name: "second",
            spec: json!({"ports": port}),
            want: Ok("127.10.0.3"),
        },
        Case {
            name: "chosen",
            spec: json!({"clusterIP": "127.10.3.4", "ports": port}),
            want: Ok("127.10.3.4"),
        },
        Case {
            name: "taken",
            spec: json!({"clusterIP": "127.10.3.4", "ports": port}),
            want: Err("provided IP is already allocated"),
        },
        Case {
            name: "kubernetes-ip",
            spec: json!({"clusterIP": "127.10.0.1", "ports": port}),
            want: Err("provided IP is already allocated"),
        },
        Case {
            name: "outside",
            spec: json!({"clusterIP": "10.0.0.1", "ports": port}),
            want: Err("provided IP is not in the valid range"),
        },
        Case {
            name: "garbage",
            spec: json!({"clusterIP": "ten", "ports": port}),
            want: Err("must be a valid IP address"),
        },
        Case {
            name: "headless",
            spec: json!({"clusterIP": "None", "ports": port}),
            want: Ok("None"),
        },
        Case {
            name: "after-headless",
            spec: json!({"ports": port}),
            want: Ok("127.10.0.4"),
        },
        Case {
            name: "external",
            spec: json!({"type": "ExternalName", "externalName": "example.com"}),
            want: Ok(""),
        },
    ];
    let s = settings(false);
    let store = cluster(&s);
    let mut state = store.lock();
    for case in cases {
        let got = create(
            &s,
            &mut state,
            "",
            "services",
            service(case.name, case.spec),
        )
        .map(|o| {
            o.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
        match (got, case.want) {
            (Ok(ip), Ok(want)) => assert_eq!(ip, want, "{}", case.name),
            (Err(msg), Err(want)) => assert!(msg.contains(want), "{}: {msg}", case.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
        }
    }
    let first = state.get("/services", "default", "first").unwrap();
    assert_eq!(
        first["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );
    assert_eq!(first["spec"]["type"], "ClusterIP");
    assert_eq!(first["spec"]["clusterIPs"], json!(["127.10.0.2"]));
    // The ClusterIP is immutable; leaving it out of an update keeps it.
    let mut changed = (*first).clone();
    changed["spec"]["clusterIP"] = json!("127.10.9.9");
    let err = update(&s, &mut state, "", "services", changed).unwrap_err();
    assert!(err.contains("may not change once set"), "{err}");
    let mut omitted = (*first).clone();
    omitted["spec"].as_object_mut().unwrap().remove("clusterIP");
    let kept = update(&s, &mut state, "", "services", omitted).unwrap();
    assert_eq!(kept["spec"]["clusterIP"], "127.10.0.2");
    // A deleted Service frees its address for a later request.
    remove(&s, &mut state, "", "services", "default", "chosen", None);
    let again = create(
        &s,
        &mut state,
        "",
        "services",
        service(
            "again",
            json!({"clusterIP": "127.10.3.4", "ports": [{"port": 80}]}),
        ),
    )
    .unwrap();
    assert_eq!(again["spec"]["clusterIP"], "127.10.3.4");
}

fn owned(name: &str, owners: &[&str], finalizers: &[&str]) -> Value {
    let refs: Vec<Value> = owners
        .iter()
        .map(|uid| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": format!("owner-{uid}"), "uid": uid}))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "ownerReferences": refs, "finalizers": finalizers}})
}

#[test]
fn dependents_go_with_their_owner_unless_another_owner_holds_them() {
    struct Case {
        name: &'static str,
        owners: &'static [&'static str],
        finalizers: &'static [&'static str],
        propagation: Option<&'static str>,
        /// Left after the owner `a` is deleted: None (gone) or its owner uids and whether it
        /// is terminating.
        want: Option<(&'static [&'static str], bool)>,
    }
    let cases = [
        Case {
            name: "only-a",
            owners: &["a"],
            finalizers: &[],
            propagation: None,
            want: None,
        },
        Case {
            name: "a-and-b",
            owners: &["a", "b"],
            finalizers: &[],
            propagation: None,
            want: Some((&["b"], false)),
        },
        Case {
            name: "only-b",
            owners: &["b"],
            finalizers: &[],
            propagation: None,
            want: Some((&["b"], false)),
        },
        Case {
            name: "held",
            owners: &["a"],
            finalizers: &["x/hold"],
            propagation: None,
            want: Some((&["a"], true)),
        },
        Case {
            name: "orphaned",
            owners: &["a"],
            finalizers: &[],
            propagation: Some("Orphan"),
            want: Some((&[], false)),
        },
        Case {
            name: "foreground",
            owners: &["a"],
            finalizers: &[],
            propagation: Some("Foreground"),
            want: None,
        },
    ];
    for case in cases {
        let s = settings(false);
        let store = cluster(&s);
        let mut state = store.lock();
        for uid in ["a", "b"] {
            let mut owner = owned(&format!("owner-{uid}"), &[], &[]);
            owner["metadata"]["uid"] = json!(uid);
            create(&s, &mut state, "", "configmaps", owner).unwrap();
        }
        create(
            &s,
            &mut state,
            "",
            "configmaps",
            owned(case.name, case.owners, case.finalizers),
        )
        .unwrap();
        let d = remove(
            &s,
            &mut state,
            "",
            "configmaps",
            "default",
            "owner-a",
            case.propagation,
        );
        assert!(d.gone && d.later.is_none(), "{}", case.name);
        let left = state.get("/configmaps", "default", case.name).map(|o| {
            let owners: Vec<String> = o["metadata"]["ownerReferences"]
                .as_array()
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r["uid"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (owners, o.pointer("/metadata/deletionTimestamp").is_some())
        });
        let want = case
            .want
            .map(|(owners, t)| (owners.iter().map(|o| o.to_string()).collect(), t));
        assert_eq!(left, want, "{}", case.name);
    }
}

fn pod(name: &str, labels: Value, ip: Option<&str>, ready: bool, terminating: bool) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    if let Some(ip) = ip {
        p["status"]["podIP"] = json!(ip);
    }
    if terminating {
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    }
    p
}

#[test]
fn endpoint_slices_list_the_selected_pods_with_an_address() {
    struct Case {
        pod: Value,
        /// The endpoint it becomes: (address, ready), or None.
        want: Option<(&'static str, bool)>,
    }
    let web = json!({"app": "web"});
    let cases = [
        Case {
            pod: pod("ready", web.clone(), Some("127.100.0.2"), true, false),
            want: Some(("127.100.0.2", true)),
        },
        Case {
            pod: pod("starting", web.clone(), Some("127.100.0.3"), false, false),
            want: Some(("127.100.0.3", false)),
        },
        Case {
            pod: pod("no-ip", web.clone(), None, true, false),
            want: None,
        },
        Case {
            pod: pod(
                "other",
                json!({"app": "db"}),
                Some("127.100.0.4"),
                true,
                false,
            ),
            want: None,
        },
        Case {
            pod: pod("going", web.clone(), Some("127.100.0.5"), true, true),
            want: None,
        },
    ];
    let s = settings(false);
    let store = cluster(&s);
    let mut state = store.lock();
    create(&s, &mut state, "", "services", service("web", json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "raw", "port": 81, "targetPort": 9090}]}))).unwrap();
    let mut want = Vec::new();
    for case in cases {
        let name = meta_str(&case.pod, "name").to_string();
        create(&s, &mut state, "", "pods", case.pod).unwrap();
        if let Some((ip, ready)) = case.want {
            want.push((name, ip.to_string(), ready));
        }
    }
    let slices = state.list("discovery.k8s.io/endpointslices", Some("default"));
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "web"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["name"], "web");
    assert_eq!(slice["addressType"], "IPv4");
    // Named target ports resolve through the Pods' container ports.
    assert_eq!(
        slice["ports"],
        json!([
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "raw", "port": 9090, "protocol": "TCP"},
        ])
    );
    let mut got: Vec<(String, String, bool)> = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["targetRef"]["name"].as_str().unwrap().to_string(),
                e["addresses"][0].as_str().unwrap().to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Without its Service the slice goes too.
    remove(&s, &mut state, "", "services", "default", "web", None);
    assert!(
        state
            .list("discovery.k8s.io/endpointslices", Some("default"))
            .is_empty()
    );
}

#[test]
fn load_balancers_get_an_ingress_address_and_lose_it_with_the_type() {
    struct Case {
        node: bool,
        cluster_ip: &'static str,
        want: &'static str,
    }
    let cases = [
        Case {
            node: false,
            cluster_ip: "127.10.0.7",
            want: "127.0.0.9",
        },
        Case {
            node: true,
            cluster_ip: "127.10.1.7",
            want: "127.200.1.7",
        },
    ];
    for case in cases {
        let s = settings(case.node);
        let store = cluster(&s);
        let mut state = store.lock();
        let svc = create(&s, &mut state, "", "services", service("lb", json!({"type": "LoadBalancer", "clusterIP": case.cluster_ip, "ports": [{"port": 80}]}))).unwrap();
        assert!(
            svc["spec"]["ports"][0]["nodePort"]
                .as_u64()
                .is_some_and(|p| (30000..32768).contains(&p))
        );
        let live = state.get("/services", "default", "lb").unwrap();
        assert_eq!(
            live["status"]["loadBalancer"]["ingress"],
            json!([{"ip": case.want, "ipMode": "VIP"}]),
            "node: {}",
            case.node
        );
        let mut plain = (*live).clone();
        plain["spec"]["type"] = json!("ClusterIP");
        update(&s, &mut state, "", "services", plain).unwrap();
        let live = state.get("/services", "default", "lb").unwrap();
        assert_eq!(live["status"]["loadBalancer"], json!({}));
    }
}

#[test]
fn namespaces_get_their_defaults_and_terminate_with_their_contents() {
    struct Case {
        name: &'static str,
        /// Finalizers on the namespace itself.
        finalizers: Value,
        /// The removal handed back is for another namespace of the same name.
        stale: bool,
        /// The namespace is still there after the removal.
        stays: bool,
    }
    let cases = [
        Case {
            name: "plain",
            finalizers: json!([]),
            stale: false,
            stays: false,
        },
        Case {
            name: "held",
            finalizers: json!(["example.com/hold"]),
            stale: false,
            stays: true,
        },
        Case {
            name: "recreated",
            finalizers: json!([]),
            stale: true,
            stays: true,
        },
    ];
    for case in cases {
        let s = settings(false);
        let store = cluster(&s);
        let mut state = store.lock();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "finalizers": case.finalizers}});
        create(&s, &mut state, "", "namespaces", ns).unwrap();
        let root_ca = state.get("/configmaps", "demo", ROOT_CA_CONFIGMAP).unwrap();
        assert_eq!(root_ca["data"]["ca.crt"], s.ca_pem.as_str());
        assert!(state.get("/serviceaccounts", "demo", "default").is_some());
        let mut cm = owned("data", &[], &[]);
        cm["metadata"]["namespace"] = json!("demo");
        create(&s, &mut state, "", "configmaps", cm).unwrap();
        // Finalizers on the namespace object hold it like any object; the plain case goes
        // through the namespace controller's delay.
        let d = remove(&s, &mut state, "", "namespaces", "", "demo", None);
        assert!(!d.gone, "{}", case.name);
        let terminating = state.get("/namespaces", "", "demo").unwrap();
        assert!(terminating.pointer("/metadata/deletionTimestamp").is_some());
        let mut removal = d.later.unwrap_or(NamespaceRemoval {
            name: "demo".into(),
            uid: meta_str(&terminating, "uid").into(),
        });
        if case.stale {
            removal.uid = "another".into();
        }
        finish_namespace_removal(&s, &mut state, &removal);
        assert_eq!(
            state.get("/namespaces", "", "demo").is_some(),
            case.stays,
            "{}",
            case.name
        );
        assert_eq!(
            state.get("/configmaps", "demo", "data").is_some(),
            case.stale,
            "{}",
            case.name
        );
    }
}

#[test]
fn content_held_by_finalizers_keeps_its_namespace_terminating() {
    let s = settings(false);
    let store = cluster(&s);
    let mut state = store.lock();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}});
    create(&s, &mut state, "", "namespaces", ns).unwrap();
    let mut held = owned("held", &[], &["example.com/hold"]);
    held["metadata"]["namespace"] = json!("demo");
    create(&s, &mut state, "", "configmaps", held).unwrap();
    let d = remove(&s, &mut state, "", "namespaces", "", "demo", None);
    finish_namespace_removal(&s, &mut state, &d.later.expect("a removal to schedule"));
    let ns = state
        .get("/namespaces", "", "demo")
        .expect("still terminating");
    let remaining: Vec<(&str, &str)> = ns["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "True")
        .map(|c| (c["type"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        remaining,
        vec![
            (
                "NamespaceContentRemaining",
                "Some resources are remaining: configmaps. has 1 resource instances"
            ),
            (
                "NamespaceFinalizersRemaining",
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            ),
        ]
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    // The namespace defaults are not put back while it terminates.
    assert!(
        state
            .get("/configmaps", "demo", ROOT_CA_CONFIGMAP)
            .is_none()
    );
    // The finalizer goes (as a client's update would), and the namespace with it.
    let mut released = (*state.get("/configmaps", "demo", "held").unwrap()).clone();
    released["metadata"]["finalizers"] = json!([]);
    state.put("/configmaps", released, EventType::Modified);
    state.remove("/configmaps", "demo", "held");
    run(&s, &mut state);
    assert!(state.get("/namespaces", "", "demo").is_none());
}
