//! The gateway's own identity: a short-lived leaf certificate minted in memory from the cluster's
//! issuer, and the names it carries. No network I/O; the private key never leaves this process
//! (it is not written anywhere and not logged: `Leaf` has no `Debug` of its key).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Everything needed to mint: the anchors (to verify peers) and the issuer (to sign the leaf).
#[derive(Clone)]
pub struct IssuerMaterial {
    pub anchors_pem: String,
    pub issuer_cert_pem: String,
    pub issuer_key_pem: String,
}

impl std::fmt::Debug for IssuerMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerMaterial").finish_non_exhaustive()
    }
}

/// Who this gateway is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayName {
    pub cluster: String,
    pub trust_domain: String,
    pub namespace: String,
}

impl GatewayName {
    /// DNS SAN: `mc-gateway.<namespace>.<cluster>.<trust-domain>`, what peers put in their `Link`.
    pub fn dns(&self) -> String {
        crate::identity::gateway_dns_name_in(&self.namespace, &self.cluster, &self.trust_domain)
    }

    /// SPIFFE URI SAN: `spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/mc-gateway`.
    pub fn spiffe(&self) -> String {
        crate::identity::gateway_spiffe_id_in(&self.namespace, &self.cluster, &self.trust_domain)
    }
}

/// A freshly minted leaf, ready for rustls.
pub struct Leaf {
    pub certified: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// When to mint the next one: two thirds into the leaf's life, counted from minting.
    pub rotate_at: SystemTime,
    pub serial_hex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the issuer certificate is not valid PEM")]
    IssuerCertPem(#[source] rustls_pki_types::pem::Error),
    #[error("the issuer cannot sign gateway certificates")]
    Issuer(#[source] crate::identity::PkiError),
    #[error("the trust anchor bundle holds no certificate")]
    NoAnchors,
    #[error("the trust anchor bundle is not valid PEM")]
    AnchorsPem(#[source] rustls_pki_types::pem::Error),
    #[error("a trust anchor is not a usable CA certificate")]
    Anchor(#[source] rustls::Error),
    #[error("cannot mint the gateway certificate")]
    Mint(#[source] crate::identity::PkiError),
    #[error("the minted private key is not valid PEM")]
    LeafKey(#[source] rustls_pki_types::pem::Error),
    #[error("the signing key is not supported by rustls")]
    SigningKey(#[source] rustls::Error),
    #[error("the issuer certificate has already expired; issue a new one with `mc identity issue`")]
    IssuerExpired,
}

/// Parses the anchor bundle into a root store.
/// Whether `next` lacks any certificate of `current` (PEM bundles, compared by DER).
pub fn anchors_removed(current: &str, next: &str) -> bool {
    let ders = |pem: &str| -> std::collections::HashSet<Vec<u8>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .filter_map(Result::ok)
            .map(|c| c.as_ref().to_vec())
            .collect()
    };
    let next = ders(next);
    ders(current).iter().any(|c| !next.contains(c))
}

pub fn root_store(anchors_pem: &str) -> Result<rustls::RootCertStore, IdentityError> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots
            .add(der.map_err(IdentityError::AnchorsPem)?)
            .map_err(IdentityError::Anchor)?;
    }
    if roots.is_empty() {
        return Err(IdentityError::NoAnchors);
    }
    Ok(roots)
}

/// Mints a leaf for `name` valid for `lifetime` (capped at the issuer's own expiry), with the
/// same certificate profile `mc identity` and `mc install` check (`identity::issue_gateway_leaf`).
pub fn mint(
    name: &GatewayName,
    material: &IssuerMaterial,
    lifetime: Duration,
    now: SystemTime,
) -> Result<Leaf, IdentityError> {
    let issuer_der = CertificateDer::from_pem_slice(material.issuer_cert_pem.as_bytes())
        .map_err(IdentityError::IssuerCertPem)?;
    let issuer = crate::identity::load_issuer(&material.issuer_cert_pem, &material.issuer_key_pem)
        .map_err(IdentityError::Issuer)?;

    let mut not_after = now + lifetime;
    if let Some(issuer_expiry) = cert_not_after(&issuer_der) {
        if issuer_expiry <= now {
            return Err(IdentityError::IssuerExpired);
        }
        not_after = not_after.min(issuer_expiry);
    }
    let life = not_after.duration_since(now).unwrap_or_default();
    let pem = crate::identity::issue_gateway_leaf(
        &issuer,
        &name.namespace,
        &name.cluster,
        &name.trust_domain,
        time::OffsetDateTime::from(now),
        life,
    )
    .map_err(IdentityError::Mint)?;

    let leaf_der = CertificateDer::from_pem_slice(pem.cert_pem.as_bytes())
        .map_err(IdentityError::IssuerCertPem)?;
    let key_der =
        PrivateKeyDer::from_pem_slice(pem.key_pem.as_bytes()).map_err(IdentityError::LeafKey)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(IdentityError::SigningKey)?;
    let (not_before, serial_hex) = match x509_parser::parse_x509_certificate(&leaf_der) {
        Ok((_, cert)) => (
            u64::try_from(cert.validity().not_before.timestamp())
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                .unwrap_or(now),
            hex::encode(cert.raw_serial()),
        ),
        Err(_) => (now, String::new()),
    };
    let chain = vec![leaf_der, issuer_der.into_owned()];
    Ok(Leaf {
        certified: Arc::new(CertifiedKey::new(chain, signing)),
        not_before,
        not_after,
        rotate_at: now + life * 2 / 3,
        serial_hex,
    })
}

/// `notAfter` of a DER certificate, if it parses.
pub fn cert_not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = cert.validity().not_after.timestamp();
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// The SAN names of a DER certificate: (DNS names, URIs). Empty if it does not parse.
pub fn san_names(der: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der)
        && let Ok(Some(san)) = cert.subject_alternative_name()
    {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    (dns, uris)
}

/// Whether a certificate's SANs name *a* gateway (of any cluster) installed in `namespace`:
/// the DNS SAN `mc-gateway.<namespace>.<cluster>.<trust-domain>` or the SPIFFE URI
/// `spiffe://<td>/cluster/<cluster>/ns/<namespace>/sa/mc-gateway`. Returns the matching name.
pub fn gateway_identity_in(der: &[u8], namespace: &str) -> Option<String> {
    let (dns, uris) = san_names(der);
    let dns_prefix = format!("{}.{namespace}.", crate::k8s::GATEWAY_NAME);
    for d in dns {
        if let Some(rest) = d.strip_prefix(&dns_prefix)
            // <cluster>.<trust-domain>: at least two more labels.
            && rest.split('.').filter(|l| !l.is_empty()).count() >= 2
        {
            return Some(d);
        }
    }
    let uri_suffix = format!("/ns/{namespace}/sa/{}", crate::k8s::GATEWAY_NAME);
    for u in uris {
        if let Some(rest) = u.strip_prefix("spiffe://")
            && let Some(head) = rest.strip_suffix(&uri_suffix)
            && let Some((td, cluster)) = head.split_once("/cluster/")
            && !td.is_empty()
            && !cluster.is_empty()
            && !cluster.contains('/')
        {
            return Some(u);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use rcgen::{CertificateParams, KeyPair};

    /// A self-signed anchor and west's issuer under it, as `mc identity` makes them.
    pub(crate) fn pki() -> IssuerMaterial {
        use crate::identity::{load_issuer, new_anchor, new_issuer};
        let now = time::OffsetDateTime::now_utc();
        let year = time::Duration::days(365);
        let anchor = new_anchor("cluster.local", now, now + year).unwrap();
        let signer = load_issuer(&anchor.cert_pem, &anchor.key_pem).unwrap();
        let issuer = new_issuer(&signer, "west", "cluster.local", now, now + year).unwrap();
        IssuerMaterial {
            anchors_pem: anchor.cert_pem,
            issuer_cert_pem: issuer.cert_pem,
            issuer_key_pem: issuer.key_pem,
        }
    }

    fn west() -> GatewayName {
        GatewayName {
            cluster: "west".into(),
            trust_domain: "cluster.local".into(),
            namespace: "mc-system".into(),
        }
    }

    #[test]
    fn minted_leaf_carries_the_dns_and_spiffe_names_and_chains_the_issuer() {
        let now = SystemTime::now();
        let leaf = mint(&west(), &pki(), Duration::from_secs(24 * 3600), now).unwrap();
        assert_eq!(leaf.certified.cert.len(), 2);
        let (dns, uris) = san_names(&leaf.certified.cert[0]);
        assert_eq!(dns, vec!["mc-gateway.mc-system.west.cluster.local"]);
        assert_eq!(
            uris,
            vec!["spiffe://cluster.local/cluster/west/ns/mc-system/sa/mc-gateway"]
        );
        assert_eq!(
            gateway_identity_in(&leaf.certified.cert[0], "mc-system").as_deref(),
            Some("mc-gateway.mc-system.west.cluster.local")
        );
    }

    #[test]
    fn rotation_is_due_two_thirds_into_the_life() {
        let now = SystemTime::now();
        let leaf = mint(&west(), &pki(), Duration::from_secs(3000), now).unwrap();
        assert_eq!(leaf.rotate_at, now + Duration::from_secs(2000));
        assert!(leaf.not_after > leaf.rotate_at);
    }

    #[test]
    fn leaf_never_outlives_its_issuer() {
        let now = SystemTime::now();
        let leaf = mint(
            &west(),
            &pki(),
            Duration::from_secs(1000 * 24 * 3600 * 365),
            now,
        )
        .unwrap();
        let issuer_der = CertificateDer::from_pem_slice(pki().issuer_cert_pem.as_bytes()).unwrap();
        let issuer_expiry = cert_not_after(&issuer_der).unwrap();
        assert!(leaf.not_after <= issuer_expiry);
    }

    #[test]
    fn garbage_issuer_key_is_a_clear_error() {
        let mut m = pki();
        m.issuer_key_pem = "not a key".into();
        let err = mint(&west(), &m, Duration::from_secs(60), SystemTime::now())
            .err()
            .unwrap();
        assert!(matches!(err, IdentityError::Issuer(_)), "{err}");
    }

    #[test]
    fn non_gateway_names_are_not_gateway_identities() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["backend.default.west.cluster.local".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(gateway_identity_in(cert.der(), "mc-system"), None);
        let cert = CertificateParams::new(vec!["mc-gateway.mc-system.".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(gateway_identity_in(cert.der(), "mc-system"), None);
    }

    #[test]
    fn debug_of_issuer_material_shows_no_key() {
        let m = pki();
        assert!(!format!("{m:?}").contains("PRIVATE"));
    }
}
