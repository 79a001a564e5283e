//! The service proxy (kube-proxy's job): a listener on `ClusterIP:port` (and the load-balancer
//! address of `LoadBalancer` Services) for every Service port that has a ready endpoint;
//! connections go round-robin to the ready endpoints of the Service's EndpointSlices.
//!
//! ```text
//! store events (services, endpointslices) ─▶ table: frontend ─▶ [ready backends]
//!   frontends gained ─▶ bind + accept loop     frontends lost ─▶ listener closed (refused)
//! accept ─▶ next backend (round-robin, skipping ones that refuse) ─▶ copy both ways
//! ```
//!
//! Without a ready endpoint nothing listens, so a client sees "connection refused" as with
//! kube-proxy's REJECT rule.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Host;
use crate::sim::cluster::store::{State, meta_str};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// How long a backend may take to accept before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Listeners that could not bind are retried this often.
const REBIND: Duration = Duration::from_secs(1);

type Table = Arc<RwLock<HashMap<SocketAddr, Vec<SocketAddr>>>>;

/// Ready backends of every Service frontend, from the Services and EndpointSlices in `state`.
pub fn frontends(state: &State) -> BTreeMap<SocketAddr, Vec<SocketAddr>> {
    let mut slices: HashMap<(String, String), Vec<Arc<Value>>> = HashMap::new();
    for s in state.list("discovery.k8s.io/endpointslices", None) {
        let svc = s
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .and_then(Value::as_str);
        if let Some(svc) = svc {
            slices
                .entry((meta_str(&s, "namespace").to_string(), svc.to_string()))
                .or_default()
                .push(s.clone());
        }
    }
    let mut out = BTreeMap::new();
    for svc in state.list("/services", None) {
        let key = (
            meta_str(&svc, "namespace").to_string(),
            meta_str(&svc, "name").to_string(),
        );
        let Some(slices) = slices.get(&key) else {
            continue;
        };
        let mut ips: Vec<IpAddr> = Vec::new();
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            ips.push(ip);
        }
        if svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
            for ing in svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(ip) = ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                {
                    ips.push(ip);
                }
            }
        }
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                != "TCP"
            {
                continue;
            }
            let Some(number) = port
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            let backends = ready_backends(slices, name);
            if backends.is_empty() {
                continue;
            }
            for ip in &ips {
                out.insert(SocketAddr::new(*ip, number), backends.clone());
            }
        }
    }
    out
}

/// Ready addresses of the slices' port named like the Service port (slices name their ports
/// after the Service's, and carry the target port resolved to a number).
fn ready_backends(slices: &[Arc<Value>], port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in slices {
        let port = s
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else {
            continue;
        };
        for ep in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ep.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            for a in ep
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(ip) = a.as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out
}

pub async fn run(sim: Arc<dyn Host>, stop: CancellationToken) {
    let mut rx = sim.store().lock().subscribe();
    let table: Table = Arc::default();
    let mut listeners: HashMap<SocketAddr, Listener> = HashMap::new();
    loop {
        let desired = frontends(&sim.store().lock());
        *table.write().unwrap_or_else(|e| e.into_inner()) = desired.clone().into_iter().collect();
        listeners.retain(|addr, l| desired.contains_key(addr) && !l.0.is_finished());
        let mut unbound = false;
        for addr in desired.keys() {
            if listeners.contains_key(addr) {
                continue;
            }
            match bind(*addr) {
                Ok(l) => {
                    let task = tokio::spawn(accept_loop(l, *addr, table.clone()));
                    listeners.insert(*addr, Listener(task));
                }
                Err(err) => {
                    unbound = true;
                    tracing::warn!(%addr, %err, "the service proxy could not listen; retrying");
                }
            }
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REBIND), if unbound => break,
                r = rx.recv() => match r {
                    Ok(ev) if ev.key == "/services" || ev.key == "discovery.k8s.io/endpointslices" => break,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// A frontend's accept loop; dropping it closes the listening socket.
struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(listener: TcpListener, frontend: SocketAddr, table: Table) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let backends = table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&frontend)
            .cloned()
            .unwrap_or_default();
        let next = next.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let start = next.fetch_add(1, Ordering::Relaxed);
            for i in 0..backends.len() {
                let backend = backends[(start + i) % backends.len()];
                let Ok(Ok(mut upstream)) =
                    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await
                else {
                    continue;
                };
                let _ = upstream.set_nodelay(true);
                let mut client = client;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            // No endpoint took it: reset, as a refused connection would look to the client.
            let _ = client.set_zero_linger();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cluster::registry::Registry;
    use crate::sim::cluster::store::{EventType, Store};
    use serde_json::json;

    fn service(name: &str, ty: &str, ip: &str, ports: Value, lb: Option<&str>) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "default", "name": name},
            "spec": {"type": ty, "clusterIP": ip, "ports": ports}});
        if let Some(lb) = lb {
            s["status"] = json!({"loadBalancer": {"ingress": [{"ip": lb}]}});
        }
        s
    }

    fn slice(name: &str, svc: &str, ports: Value, endpoints: Value) -> Value {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": name,
                         "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints})
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn frontends_list_ready_endpoints_per_service_port_and_load_balancer_ip() {
        let store = Store::new(Registry::builtin(), 10, 16);
        let mut st = store.lock();
        let ports = json!([{"name": "http", "port": 80}, {"name": "probe", "port": 4191}]);
        st.put(
            "/services",
            service(
                "web",
                "LoadBalancer",
                "127.10.0.5",
                ports,
                Some("127.200.0.5"),
            ),
            EventType::Added,
        );
        st.put(
            "discovery.k8s.io/endpointslices",
            slice(
                "web-a",
                "web",
                json!([{"name": "http", "port": 9376}]),
                json!([{"addresses": ["127.100.0.2"], "conditions": {"ready": true}},
                       {"addresses": ["127.100.0.3"], "conditions": {"ready": false}},
                       {"addresses": ["127.100.0.4"]}]),
            ),
            EventType::Added,
        );
        // A selector-less Service with a slice written by someone else (a mirror).
        st.put(
            "/services",
            service(
                "mirror",
                "ClusterIP",
                "127.10.0.6",
                json!([{"port": 8888}]),
                None,
            ),
            EventType::Added,
        );
        st.put(
            "discovery.k8s.io/endpointslices",
            slice(
                "mirror-gw",
                "mirror",
                json!([{"port": 10001}]),
                json!([{"addresses": ["127.100.0.9"], "conditions": {"ready": true}}]),
            ),
            EventType::Added,
        );
        // No slice at all: nothing listens.
        st.put(
            "/services",
            service(
                "empty",
                "ClusterIP",
                "127.10.0.7",
                json!([{"port": 80}]),
                None,
            ),
            EventType::Added,
        );
        let f = frontends(&st);
        let web = vec![addr("127.100.0.2:9376"), addr("127.100.0.4:9376")];
        assert_eq!(f.get(&addr("127.10.0.5:80")), Some(&web));
        assert_eq!(f.get(&addr("127.200.0.5:80")), Some(&web));
        assert_eq!(
            f.get(&addr("127.10.0.5:4191")),
            None,
            "no slice port named probe"
        );
        assert_eq!(
            f.get(&addr("127.10.0.6:8888")),
            Some(&vec![addr("127.100.0.9:10001")])
        );
        assert_eq!(f.len(), 3);
    }
}
