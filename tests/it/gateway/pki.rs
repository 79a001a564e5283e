//! Test PKI built with rcgen at test time: the shared anchor with an issuer per cluster, a second
//! anchor (a stranger), and helpers for expired and non-gateway leaves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mc::gateway::IssuerMaterial;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str, constrained: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(if constrained {
        BasicConstraints::Constrained(0)
    } else {
        BasicConstraints::Unconstrained
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

pub fn anchor(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let p = ca_params(cn, false);
    let cert = p.self_signed(&key).unwrap();
    Ca {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(p, key),
    }
}

/// An issuer name-constrained to `dns_subtree`, the way `mc identity issue` makes them
/// (`<cluster>.<trust-domain>`), so the tests also prove minted leaves satisfy the constraint.
pub fn intermediate(parent: &Ca, cn: &str, dns_subtree: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = ca_params(cn, true);
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(dns_subtree.to_owned())],
        excluded_subtrees: Vec::new(),
    });
    let cert = p.signed_by(&key, &parent.issuer).unwrap();
    Ca {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_pem: key.serialize_pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf with the given SANs and validity, as a rustls key (chain: leaf + issuer).
pub fn leaf(
    issuer: &Ca,
    dns: &[&str],
    uris: &[&str],
    from: SystemTime,
    to: SystemTime,
) -> Arc<CertifiedKey> {
    let mut p =
        CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    for u in uris {
        p.subject_alt_names
            .push(SanType::URI(u.to_string().try_into().unwrap()));
    }
    p.not_before = time::OffsetDateTime::from(from);
    p.not_after = time::OffsetDateTime::from(to);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer.issuer).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
    Arc::new(CertifiedKey::new(
        vec![cert.der().clone(), issuer.cert_der.clone()],
        signing,
    ))
}

pub fn valid_now() -> (SystemTime, SystemTime) {
    let now = SystemTime::now();
    (
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    )
}

pub struct Pki {
    pub anchor: Ca,
    pub west: Ca,
    pub east: Ca,
    pub stranger_issuer: Ca,
    /// The anchor of `stranger_issuer`.
    pub stranger: Ca,
}

impl Pki {
    pub fn new() -> Self {
        let anchor = anchor("mc test anchor");
        let west = intermediate(&anchor, "issuer west", "west.cluster.local");
        let east = intermediate(&anchor, "issuer east", "east.cluster.local");
        let stranger_anchor = self::anchor("some other anchor");
        let stranger_issuer =
            intermediate(&stranger_anchor, "issuer elsewhere", "east.cluster.local");
        Self {
            anchor,
            west,
            east,
            stranger_issuer,
            stranger: stranger_anchor,
        }
    }

    pub fn material(&self, issuer: &Ca) -> IssuerMaterial {
        IssuerMaterial {
            anchors_pem: self.anchor.cert_pem.clone(),
            issuer_cert_pem: issuer.cert_pem.clone(),
            issuer_key_pem: issuer.key_pem.clone(),
        }
    }

    /// Writes anchors/issuer files for a static `--config`; returns (anchors, cert, key) paths.
    pub fn write(
        &self,
        dir: &std::path::Path,
        issuer: &Ca,
        prefix: &str,
    ) -> [std::path::PathBuf; 3] {
        let a = dir.join(format!("{prefix}-ca.crt"));
        let c = dir.join(format!("{prefix}-issuer.crt"));
        let k = dir.join(format!("{prefix}-issuer.key"));
        std::fs::write(&a, &self.anchor.cert_pem).unwrap();
        std::fs::write(&c, &issuer.cert_pem).unwrap();
        std::fs::write(&k, &issuer.key_pem).unwrap();
        [a, c, k]
    }
}
