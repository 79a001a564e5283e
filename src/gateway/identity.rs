//! The gateway's own identity: a short-lived leaf certificate minted in memory from the cluster's
//! issuer, and the names it carries. No network I/O; the private key never leaves this process
//! (it is not written anywhere and not logged: `Leaf` has no `Debug` of its key).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Certificates are backdated this much so that a peer whose clock is slightly behind accepts them.
const BACKDATE: Duration = Duration::from_secs(60);

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
        format!(
            "{}.{}.{}.{}",
            crate::k8s::GATEWAY_NAME,
            self.namespace,
            self.cluster,
            self.trust_domain
        )
    }

    /// SPIFFE URI SAN: `spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/mc-gateway`.
    pub fn spiffe(&self) -> String {
        format!(
            "spiffe://{}/cluster/{}/ns/{}/sa/{}",
            self.trust_domain,
            self.cluster,
            self.namespace,
            crate::k8s::GATEWAY_NAME
        )
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
    #[error("the issuer private key is not a valid PEM key")]
    IssuerKey(#[source] rcgen::Error),
    #[error("the issuer certificate cannot be used to sign")]
    IssuerCert(#[source] rcgen::Error),
    #[error("the trust anchor bundle holds no certificate")]
    NoAnchors,
    #[error("the trust anchor bundle is not valid PEM")]
    AnchorsPem(#[source] rustls_pki_types::pem::Error),
    #[error("a trust anchor is not a usable CA certificate")]
    Anchor(#[source] rustls::Error),
    #[error("cannot build the certificate for {name}")]
    Params { name: String, source: rcgen::Error },
    #[error("cannot generate a key pair")]
    KeyGen(#[source] rcgen::Error),
    #[error("cannot sign the gateway certificate with the issuer")]
    Sign(#[source] rcgen::Error),
    #[error("the signing key is not supported by rustls")]
    SigningKey(#[source] rustls::Error),
    #[error("the issuer certificate has already expired; issue a new one with `mc identity issue`")]
    IssuerExpired,
}

/// Parses the anchor bundle into a root store.
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

/// Mints a leaf for `name` valid for `lifetime` (capped at the issuer's own expiry).
pub fn mint(
    name: &GatewayName,
    material: &IssuerMaterial,
    lifetime: Duration,
    now: SystemTime,
) -> Result<Leaf, IdentityError> {
    let issuer_der = CertificateDer::from_pem_slice(material.issuer_cert_pem.as_bytes())
        .map_err(IdentityError::IssuerCertPem)?;
    let issuer_key =
        KeyPair::from_pem(&material.issuer_key_pem).map_err(IdentityError::IssuerKey)?;
    let issuer =
        Issuer::from_ca_cert_der(&issuer_der, issuer_key).map_err(IdentityError::IssuerCert)?;

    let mut not_after = now + lifetime;
    if let Some(issuer_expiry) = cert_not_after(&issuer_der) {
        if issuer_expiry <= now {
            return Err(IdentityError::IssuerExpired);
        }
        not_after = not_after.min(issuer_expiry);
    }
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);

    let dns = name.dns();
    let mut params =
        CertificateParams::new(vec![dns.clone()]).map_err(|source| IdentityError::Params {
            name: dns.clone(),
            source,
        })?;
    let uri = name
        .spiffe()
        .try_into()
        .map_err(|source| IdentityError::Params {
            name: dns.clone(),
            source,
        })?;
    params.subject_alt_names.push(SanType::URI(uri));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, dns.clone());
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_after);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let serial: [u8; 16] = rand::random();
    // A positive serial (top bit clear) keeps strict parsers happy.
    let mut serial = serial;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));

    let key = KeyPair::generate().map_err(IdentityError::KeyGen)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(IdentityError::Sign)?;

    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(IdentityError::SigningKey)?;
    let chain = vec![cert.der().clone(), issuer_der.into_owned()];
    let life = not_after.duration_since(now).unwrap_or_default();
    Ok(Leaf {
        certified: Arc::new(CertifiedKey::new(chain, signing)),
        not_before,
        not_after,
        rotate_at: now + life * 2 / 3,
        serial_hex: hex::encode(serial),
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
    use rcgen::{BasicConstraints, IsCa};

    /// A self-signed anchor and an issuer under it, as PEM.
    pub(crate) fn pki() -> IssuerMaterial {
        let anchor_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(DnType::CommonName, "anchor");
        let anchor_cert = p.self_signed(&anchor_key).unwrap();
        let anchor = Issuer::new(p, anchor_key);
        let issuer_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(DnType::CommonName, "issuer west");
        let issuer_cert = p.signed_by(&issuer_key, &anchor).unwrap();
        IssuerMaterial {
            anchors_pem: anchor_cert.pem(),
            issuer_cert_pem: issuer_cert.pem(),
            issuer_key_pem: issuer_key.serialize_pem(),
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
        assert!(matches!(err, IdentityError::IssuerKey(_)), "{err}");
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
