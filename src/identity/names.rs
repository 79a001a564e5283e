//! Names inside certificates: cluster names, trust domains and the gateway identity built from them.

use super::{IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT};
use crate::k8s::names::is_dns1123_label as is_dns_label;

/// Longest DNS name a certificate SAN may carry (RFC 1035).
const MAX_DNS_NAME: usize = 253;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "cluster name {0:?} is not a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
    )]
    ClusterName(String),
    #[error(
        "trust domain {0:?} is not a DNS name (dot-separated labels of lowercase letters, digits or '-', at most 253 characters)"
    )]
    TrustDomain(String),
    #[error("namespace {0:?} is not a DNS-1123 label")]
    Namespace(String),
    #[error(
        "the gateway name {0:?} would be longer than 253 characters; use a shorter cluster name or trust domain"
    )]
    TooLong(String),
}

/// `mc-gateway.mc-system.<cluster>.<trust-domain>`: the DNS SAN of a gateway installed in the
/// default namespace, and the name a peer checks (it is `Link.spec.gatewayIdentity`).
pub fn gateway_dns_name(cluster: &str, trust_domain: &str) -> String {
    gateway_dns_name_in(IDENTITY_NAMESPACE, cluster, trust_domain)
}

/// `mc-gateway.<namespace>.<cluster>.<trust-domain>` for a gateway installed in `namespace`.
pub fn gateway_dns_name_in(namespace: &str, cluster: &str, trust_domain: &str) -> String {
    format!("{IDENTITY_SERVICE_ACCOUNT}.{namespace}.{cluster}.{trust_domain}")
}

/// `spiffe://<trust-domain>/cluster/<cluster>/ns/mc-system/sa/mc-gateway`: the URI SAN of a
/// gateway installed in the default namespace, for SPIFFE-aware peers and for logs.
pub fn gateway_spiffe_id(cluster: &str, trust_domain: &str) -> String {
    gateway_spiffe_id_in(IDENTITY_NAMESPACE, cluster, trust_domain)
}

/// `spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/mc-gateway`.
pub fn gateway_spiffe_id_in(namespace: &str, cluster: &str, trust_domain: &str) -> String {
    format!(
        "spiffe://{trust_domain}/cluster/{cluster}/ns/{namespace}/sa/{IDENTITY_SERVICE_ACCOUNT}"
    )
}

/// `spiffe://<trust-domain>/cluster/<cluster>`: the URI SAN of a cluster's issuer, which is how
/// `install` knows which cluster an issuer was made for.
pub fn issuer_spiffe_id(cluster: &str, trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/cluster/{cluster}")
}

/// `spiffe://<trust-domain>`: the URI SAN of an anchor; the trust domain is recorded there so
/// that every later command reads it from the one file that must exist anyway.
pub fn anchor_spiffe_id(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}")
}

/// Cluster names are DNS-1123 labels: they appear in object names, DNS names and SPIFFE IDs.
pub fn validate_cluster_name(name: &str) -> Result<(), NameError> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(NameError::ClusterName(name.to_owned()))
    }
}

/// Trust domains are DNS names (RFC 1123 subdomains), which also makes them valid SPIFFE trust
/// domains; the gateway DNS name built from them must still fit in 253 characters.
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), NameError> {
    if !crate::k8s::names::is_dns1123_subdomain(trust_domain) {
        return Err(NameError::TrustDomain(trust_domain.to_owned()));
    }
    Ok(())
}

/// All names valid, and the gateway DNS name they make fits in a certificate.
pub fn validate_gateway_names(
    namespace: &str,
    cluster: &str,
    trust_domain: &str,
) -> Result<(), NameError> {
    validate_cluster_name(cluster)?;
    validate_trust_domain(trust_domain)?;
    if !is_dns_label(namespace) {
        return Err(NameError::Namespace(namespace.to_owned()));
    }
    let name = gateway_dns_name_in(namespace, cluster, trust_domain);
    if name.len() > MAX_DNS_NAME {
        return Err(NameError::TooLong(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_names_follow_the_design() {
        assert_eq!(
            gateway_dns_name("west", "cluster.local"),
            "mc-gateway.mc-system.west.cluster.local"
        );
        assert_eq!(
            gateway_spiffe_id("west", "example.org"),
            "spiffe://example.org/cluster/west/ns/mc-system/sa/mc-gateway"
        );
        assert_eq!(
            gateway_dns_name_in("mc", "west", "example.org"),
            "mc-gateway.mc.west.example.org"
        );
    }

    #[test]
    fn cluster_names_must_be_dns_labels() {
        for ok in ["west", "a", "east-1", &"a".repeat(63)] {
            assert_eq!(validate_cluster_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "West",
            "-west",
            "west-",
            "we.st",
            "we_st",
            &"a".repeat(64),
            "wést",
        ] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trust_domains_must_be_dns_names() {
        for ok in ["cluster.local", "example.org", "td"] {
            assert_eq!(validate_trust_domain(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "a..b", "Example.org", "a/b", "spiffe://x", "a.-b"] {
            assert!(validate_trust_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_names_longer_than_253_characters_are_refused() {
        let td = [&"a".repeat(63)[..]; 3].join(".");
        assert!(matches!(
            validate_gateway_names("mc-system", &"b".repeat(63), &td),
            Err(NameError::TooLong(_))
        ));
    }
}
