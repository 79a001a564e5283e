//! The gateway's routing tables: what the inbound side may dial, which outbound ports exist and
//! which peer gateways they lead to. Pure data and decisions, no I/O; the sources
//! (`source_static`, `source_kube`) build a [`Tables`] and publish it as one immutable snapshot.

use crate::k8s::names::is_dns1123_label as is_dns_label;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// One snapshot of everything the data path needs to route. Cheap to share (`Arc<Tables>`),
/// never mutated after publication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    /// Every local Service the source knows about, exported or not, keyed by (namespace, name):
    /// knowing the unexported ones lets the inbound side answer 403 instead of 404.
    pub services: HashMap<(String, String), ServiceEntry>,
    /// Outbound plain-TCP listeners, keyed by local port.
    pub listeners: BTreeMap<u16, Listener>,
    /// Peer gateways, keyed by target cluster name (the `Link` name).
    pub peers: BTreeMap<String, Peer>,
    /// TrafficSplit listeners, keyed by local port: each connection goes to one backend.
    pub splits: BTreeMap<u16, SplitRoute>,
}

/// One apex port of a TrafficSplit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRoute {
    /// `namespace/name` of the TrafficSplit (logs).
    pub split: String,
    pub backends: Vec<SplitBackend>,
}

/// A backend with its effective weight (from the split's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBackend {
    pub service: String,
    pub weight: u32,
    pub target: SplitTarget,
}

/// How a split backend is reached: a local Service directly, a mirror through its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitTarget {
    Direct(SocketAddr),
    Tunnel(Listener),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    pub exported: bool,
    /// Service port -> address the gateway dials (the ClusterIP and that port in Kubernetes).
    pub backends: HashMap<u16, SocketAddr>,
}

/// A local outbound port: every connection accepted on it is tunnelled to `peer` with `authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub peer: String,
    pub authority: String,
}

/// A remote gateway and the identity it must present.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// `host:port` of the remote gateway's inbound side.
    pub address: String,
    /// DNS SAN the remote gateway's certificate must carry (also the TLS server name).
    pub identity: String,
}

/// Why the inbound side refused a CONNECT stream; each maps to one HTTP status and one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `:authority` is not `name.namespace.svc.<cluster-domain>:port`.
    BadAuthority,
    /// The authority is well-formed but names another cluster domain.
    WrongDomain,
    /// No such Service.
    NoService,
    /// The Service exists but has no such port (or no ClusterIP to dial).
    NoPort,
    /// The Service exists but is not exported (now).
    NotExported,
}

impl Refusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::BadAuthority => http::StatusCode::BAD_REQUEST,
            Refusal::WrongDomain | Refusal::NoService | Refusal::NoPort => {
                http::StatusCode::NOT_FOUND
            }
            Refusal::NotExported => http::StatusCode::FORBIDDEN,
        }
    }

    /// Metric label and the text of the response's `mc-refusal` header.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadAuthority => "bad_authority",
            Refusal::WrongDomain => "wrong_domain",
            Refusal::NoService => "no_service",
            Refusal::NoPort => "no_port",
            Refusal::NotExported => "not_exported",
        }
    }
}

/// The target named by a CONNECT `:authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub port: u16,
}

/// Parses `name.namespace.svc.<cluster_domain>:port`. Anything else (IPs, short names, extra
/// labels) is refused: the gateway is not an open proxy.
pub fn parse_authority<'a>(
    authority: &'a str,
    cluster_domain: &str,
) -> Result<Authority<'a>, Refusal> {
    let (host, port) = authority.rsplit_once(':').ok_or(Refusal::BadAuthority)?;
    // `u16::from_str` also takes a leading `+`; an authority port is digits only.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::BadAuthority);
    }
    let port: u16 = port.parse().map_err(|_| Refusal::BadAuthority)?;
    if port == 0 {
        return Err(Refusal::BadAuthority);
    }
    let mut labels = host.splitn(4, '.');
    let (Some(name), Some(namespace), Some(svc), Some(domain)) =
        (labels.next(), labels.next(), labels.next(), labels.next())
    else {
        return Err(Refusal::BadAuthority);
    };
    if svc != "svc" || !is_dns_label(name) || !is_dns_label(namespace) {
        return Err(Refusal::BadAuthority);
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    // `--cluster-domain cluster.local.` (fully qualified) means the same domain.
    let cluster_domain = cluster_domain.strip_suffix('.').unwrap_or(cluster_domain);
    if !domain.eq_ignore_ascii_case(cluster_domain) {
        return Err(Refusal::WrongDomain);
    }
    Ok(Authority {
        name,
        namespace,
        port,
    })
}

impl Tables {
    /// The one routing decision of the inbound side: the address to dial, or why not.
    pub fn route_inbound(
        &self,
        authority: &str,
        cluster_domain: &str,
    ) -> Result<SocketAddr, Refusal> {
        let target = parse_authority(authority, cluster_domain)?;
        // Allocation-free lookup would need a borrowed key type; one small String pair per stream
        // is noise next to the TCP dial that follows.
        let entry = self
            .services
            .get(&(target.namespace.to_owned(), target.name.to_owned()))
            .ok_or(Refusal::NoService)?;
        if !entry.exported {
            return Err(Refusal::NotExported);
        }
        entry
            .backends
            .get(&target.port)
            .copied()
            .ok_or(Refusal::NoPort)
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, namespace: &str, name: &str, entry: ServiceEntry) {
        self.services
            .insert((namespace.to_owned(), name.to_owned()), entry);
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        self.services
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// The authority an outbound listener sends for a mirror of `namespace/name` port `port`.
pub fn remote_authority(name: &str, namespace: &str, cluster_domain: &str, port: u16) -> String {
    format!("{name}.{namespace}.svc.{cluster_domain}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_service(exported: bool, ports: &[(u16, &str)]) -> ServiceEntry {
        ServiceEntry {
            exported,
            backends: ports
                .iter()
                .map(|(p, a)| (*p, a.parse().unwrap()))
                .collect(),
        }
    }

    fn tables() -> Tables {
        let mut t = Tables::default();
        t.apply_service(
            "default",
            "backend",
            mk_service(true, &[(8888, "10.0.0.1:8888")]),
        );
        t.apply_service(
            "default",
            "private",
            mk_service(false, &[(80, "10.0.0.2:80")]),
        );
        t
    }

    #[test]
    fn exported_service_routes_to_its_cluster_ip_and_port() {
        let addr = tables()
            .route_inbound("backend.default.svc.cluster.local:8888", "cluster.local")
            .unwrap();
        assert_eq!(addr, "10.0.0.1:8888".parse().unwrap());
    }

    #[test]
    fn unexported_service_is_forbidden_not_missing() {
        let r = tables().route_inbound("private.default.svc.cluster.local:80", "cluster.local");
        assert_eq!(r, Err(Refusal::NotExported));
        assert_eq!(Refusal::NotExported.status(), http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn unknown_service_and_port_are_not_found() {
        let t = tables();
        assert_eq!(
            t.route_inbound("nope.default.svc.cluster.local:80", "cluster.local"),
            Err(Refusal::NoService)
        );
        assert_eq!(
            t.route_inbound("backend.default.svc.cluster.local:9999", "cluster.local"),
            Err(Refusal::NoPort)
        );
    }

    #[test]
    fn malformed_authorities_are_bad_requests() {
        for bad in [
            "backend.default.svc.cluster.local",
            "10.0.0.1:8888",
            "backend:8888",
            "backend.default:8888",
            "backend.default.pod.cluster.local:8888",
            "backend.default.svc.cluster.local:0",
            "backend.default.svc.cluster.local:99999",
            "Back_end.default.svc.cluster.local:80",
            ".default.svc.cluster.local:80",
            "backend.default.svc.cluster.local:+8888",
            "backend.default.svc.cluster.local:",
            "user@backend.default.svc.cluster.local:8888",
            "backend%2Edefault.svc.cluster.local:8888",
            "backend.default%2esvc.cluster.local:8888",
            "[::1]:8888",
            "[fd00::1].default.svc.cluster.local:8888",
            "backend.default.svc:8888",
            "backend.default.SVC.cluster.local:8888",
        ] {
            assert_eq!(
                parse_authority(bad, "cluster.local"),
                Err(Refusal::BadAuthority),
                "{bad}"
            );
        }
    }

    #[test]
    fn cluster_domain_matches_case_insensitively_with_an_optional_trailing_dot() {
        for ok in [
            "backend.default.svc.cluster.local.:8888",
            "backend.default.svc.CLUSTER.Local:8888",
        ] {
            assert_eq!(
                parse_authority(ok, "cluster.local").map(|a| a.port),
                Ok(8888),
                "{ok}"
            );
        }
        assert_eq!(
            parse_authority("backend.default.svc.cluster.local..:80", "cluster.local"),
            Err(Refusal::WrongDomain)
        );
        assert_eq!(
            parse_authority("backend.default.svc.cluster.local:80", "cluster.local.")
                .map(|a| a.port),
            Ok(80)
        );
    }

    #[test]
    fn another_cluster_domain_is_not_found() {
        assert_eq!(
            parse_authority("backend.default.svc.other.example:80", "cluster.local"),
            Err(Refusal::WrongDomain)
        );
    }

    #[test]
    fn deleting_a_service_makes_it_unknown() {
        let mut t = tables();
        t.delete_service("default", "backend");
        assert_eq!(
            t.route_inbound("backend.default.svc.cluster.local:8888", "cluster.local"),
            Err(Refusal::NoService)
        );
    }

    #[test]
    fn remote_authority_names_service_namespace_domain_and_port() {
        assert_eq!(
            remote_authority("backend", "default", "cluster.local", 8888),
            "backend.default.svc.cluster.local:8888"
        );
    }
}
