//! Certificate generation and PEM loading, in memory only (rcgen to sign, x509-parser to read).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::names::{
    NameError, anchor_spiffe_id, gateway_dns_name_in, gateway_spiffe_id_in, issuer_spiffe_id,
    validate_gateway_names, validate_trust_domain,
};

/// Certificates are back-dated this much so that a peer whose clock runs a little behind still
/// accepts a certificate minted a moment ago.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
const ORGANIZATION: &str = "mc";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("could not generate an ECDSA P-256 key pair")]
    KeyGen(#[source] rcgen::Error),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("could not build the certificate parameters for {what}")]
    Params {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("could not sign the {what} certificate")]
    Sign {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("no PEM CERTIFICATE block found (the file is empty or not a PEM certificate)")]
    NoCertificate,
    #[error("the PEM data is malformed")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("the certificate cannot be parsed as X.509")]
    Certificate(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    #[error("no PEM PRIVATE KEY block found (the file is empty or not a PEM private key)")]
    NoKey,
    #[error("the private key cannot be used (mc expects a PKCS#8 ECDSA P-256 key)")]
    Key(#[source] rcgen::Error),
    #[error("the private key does not belong to the certificate (their public keys differ)")]
    KeyMismatch,
    #[error("the certificate is not a CA (basicConstraints CA:true is missing)")]
    NotCa,
    #[error("the CA certificate cannot be used to sign")]
    Issuer(#[source] rcgen::Error),
    #[error("the validity period ends before it starts")]
    EmptyValidity,
    #[error("the validity period reaches past the dates a certificate can hold")]
    ValidityOverflow,
}

/// `start + duration`, refusing (instead of panicking on) dates `time` cannot represent.
pub fn checked_end(start: OffsetDateTime, duration: Duration) -> Result<OffsetDateTime, PkiError> {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| start.checked_add(d))
        .ok_or(PkiError::ValidityOverflow)
}

/// A certificate and its private key, PEM-encoded. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKeyPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKeyPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(PkiError::KeyGen)
}

/// Random positive 128-bit serial: unique without any state to keep between invocations.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never a leading zero byte, so the encoding is always 16 bytes
    SerialNumber::from_slice(&bytes)
}

fn base_params(
    what: &'static str,
    common_name: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    if not_after <= not_before {
        return Err(PkiError::EmptyValidity);
    }
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|source| PkiError::Params { what, source })?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = not_before
        .checked_sub(CLOCK_SKEW)
        .ok_or(PkiError::ValidityOverflow)?;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    Ok(params)
}

fn uri_san(what: &'static str, uri: String) -> Result<SanType, PkiError> {
    uri.try_into()
        .map(SanType::URI)
        .map_err(|source| PkiError::Params { what, source })
}

fn dns_san(what: &'static str, name: String) -> Result<SanType, PkiError> {
    name.try_into()
        .map(SanType::DnsName)
        .map_err(|source| PkiError::Params { what, source })
}

fn finish(cert: rcgen::Certificate, key: &KeyPair) -> CertKeyPem {
    CertKeyPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A self-signed root CA. The trust domain is recorded as its URI SAN `spiffe://<trust-domain>`
/// (as SPIFFE allows for signing certificates), so the anchor file alone tells every later
/// command which trust domain it belongs to.
pub fn new_anchor(
    trust_domain: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertKeyPem, PkiError> {
    const WHAT: &str = "anchor";
    validate_trust_domain(trust_domain)?;
    let key = generate_key()?;
    let mut params = base_params(
        WHAT,
        format!("mc trust anchor {trust_domain}"),
        not_before,
        not_after,
    )?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri_san(WHAT, anchor_spiffe_id(trust_domain))?];
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Sign { what: WHAT, source })?;
    Ok(finish(cert, &key))
}

/// A cluster's intermediate CA: pathLen 0 (it signs leaves only) and name-constrained to the DNS
/// subtree `<cluster>.<trust-domain>`, so a stolen issuer key of one cluster cannot mint a
/// gateway identity that another cluster's peers would accept as a different cluster.
pub fn new_issuer(
    anchor: &Issuer<'_, KeyPair>,
    cluster: &str,
    trust_domain: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertKeyPem, PkiError> {
    const WHAT: &str = "issuer";
    super::names::validate_cluster_name(cluster)?;
    validate_trust_domain(trust_domain)?;
    let key = generate_key()?;
    let mut params = base_params(WHAT, format!("mc issuer {cluster}"), not_before, not_after)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri_san(WHAT, issuer_spiffe_id(cluster, trust_domain))?];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(format!("{cluster}.{trust_domain}"))],
        excluded_subtrees: Vec::new(),
    });
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, anchor)
        .map_err(|source| PkiError::Sign { what: WHAT, source })?;
    Ok(finish(cert, &key))
}

/// A gateway's leaf for a gateway installed in `namespace`: DNS SAN
/// [`gateway_dns_name_in`](super::names::gateway_dns_name_in) and URI SAN
/// [`gateway_spiffe_id_in`](super::names::gateway_spiffe_id_in), usable as both TLS server and
/// client (gateways are both), valid from `now` (minus clock skew) for `lifetime`.
pub fn issue_gateway_leaf(
    issuer: &Issuer<'_, KeyPair>,
    namespace: &str,
    cluster: &str,
    trust_domain: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<CertKeyPem, PkiError> {
    const WHAT: &str = "gateway";
    validate_gateway_names(namespace, cluster, trust_domain)?;
    let key = generate_key()?;
    let dns = gateway_dns_name_in(namespace, cluster, trust_domain);
    let mut params = base_params(WHAT, dns.clone(), now, checked_end(now, lifetime)?)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![
        dns_san(WHAT, dns)?,
        uri_san(WHAT, gateway_spiffe_id_in(namespace, cluster, trust_domain))?,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| PkiError::Sign { what: WHAT, source })?;
    Ok(finish(cert, &key))
}

/// Every `CERTIFICATE` block of a PEM text, in order; at least one.
pub fn parse_cert_pems(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PkiError::Pem)?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    // Parse now so that callers can rely on every returned certificate being valid X.509.
    for der in &certs {
        X509Certificate::from_der(der).map_err(PkiError::Certificate)?;
    }
    Ok(certs)
}

/// The first private key of a PEM text (PKCS#8, SEC1 or PKCS#1 framing; rcgen decides if usable).
pub fn parse_key_pem(pem: &[u8]) -> Result<KeyPair, PkiError> {
    let der = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(der) => der,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => return Err(PkiError::NoKey),
        Err(err) => return Err(PkiError::Pem(err)),
    };
    KeyPair::try_from(&der).map_err(PkiError::Key)
}

/// Whether `key` is the private half of the certificate's public key.
pub fn key_matches(cert_der: &[u8], key: &KeyPair) -> Result<bool, PkiError> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(PkiError::Certificate)?;
    Ok(cert.public_key().raw == key.subject_public_key_info().as_slice())
}

/// A CA certificate and its key as an rcgen `Issuer` that can sign (the gateway mints its leaves
/// with this). Refuses a key that does not match the certificate and a certificate that is not a
/// CA. Only the first certificate of `cert_pem` is used.
pub fn load_issuer(cert_pem: &str, key_pem: &str) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let certs = parse_cert_pems(cert_pem.as_bytes())?;
    let key = parse_key_pem(key_pem.as_bytes())?;
    let Some(cert) = certs.first() else {
        return Err(PkiError::NoCertificate);
    };
    let (_, parsed) = X509Certificate::from_der(cert).map_err(PkiError::Certificate)?;
    if !parsed.is_ca() {
        return Err(PkiError::NotCa);
    }
    if !key_matches(cert, &key)? {
        return Err(PkiError::KeyMismatch);
    }
    Issuer::from_ca_cert_der(cert, key).map_err(PkiError::Issuer)
}

/// URI SANs of a certificate (empty if it has none or they cannot be parsed).
pub fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    sans(cert, |name| match name {
        GeneralName::URI(uri) => Some(uri),
        _ => None,
    })
}

/// DNS SANs of a certificate (empty if it has none or they cannot be parsed).
pub fn dns_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    sans(cert, |name| match name {
        GeneralName::DNSName(dns) => Some(dns),
        _ => None,
    })
}

fn sans<'a>(
    cert: &'a X509Certificate<'_>,
    pick: impl Fn(&GeneralName<'a>) -> Option<&'a str>,
) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| pick(name).map(str::to_owned))
        .collect()
}

/// The trust domain recorded in an anchor or issuer (host part of its first `spiffe://` URI SAN).
pub fn trust_domain_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    uri_sans(&cert).iter().find_map(|uri| {
        let rest = uri.strip_prefix("spiffe://")?;
        let host = rest.split('/').next()?;
        (!host.is_empty()).then(|| host.to_owned())
    })
}

/// The cluster an issuer was made for (from its URI SAN `spiffe://<td>/cluster/<cluster>`).
pub fn cluster_of_issuer(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    uri_sans(&cert).iter().find_map(|uri| {
        let rest = uri.strip_prefix("spiffe://")?;
        let mut parts = rest.split('/');
        let _trust_domain = parts.next()?;
        match (parts.next(), parts.next(), parts.next()) {
            (Some("cluster"), Some(cluster), None) if !cluster.is_empty() => {
                Some(cluster.to_owned())
            }
            _ => None,
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;

    pub(crate) fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub(crate) fn anchor_and_issuer(cluster: &str) -> (CertKeyPem, CertKeyPem) {
        let anchor =
            new_anchor("cluster.local", now(), now() + time::Duration::days(3650)).expect("anchor");
        let signer = load_issuer(&anchor.cert_pem, &anchor.key_pem).expect("anchor as issuer");
        let issuer = new_issuer(
            &signer,
            cluster,
            "cluster.local",
            now(),
            now() + time::Duration::days(365),
        )
        .expect("issuer");
        (anchor, issuer)
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        parse_cert_pems(pem.as_bytes()).expect("pem").remove(0)
    }

    #[test]
    fn anchor_is_a_self_signed_ca_that_records_its_trust_domain() {
        let anchor = new_anchor("example.org", now(), now() + time::Duration::days(1)).unwrap();
        let der = der(&anchor.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert!(cert.is_ca());
        assert_eq!(cert.subject(), cert.issuer());
        cert.verify_signature(None).expect("self-signed");
        let usage = cert.key_usage().unwrap().expect("keyUsage").value;
        assert!(usage.key_cert_sign());
        assert!(!usage.digital_signature());
        assert_eq!(trust_domain_of(&der).as_deref(), Some("example.org"));
        assert!(anchor.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn issuer_has_path_len_zero_and_name_constraints_for_its_cluster() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let issuer_der = der(&issuer.cert_pem);
        let (_, cert) = X509Certificate::from_der(&issuer_der).unwrap();
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());
        let constrained = cert.extensions().iter().any(|ext| {
            matches!(ext.parsed_extension(), ParsedExtension::NameConstraints(nc)
                if format!("{:?}", nc.permitted_subtrees).contains("west.cluster.local"))
        });
        assert!(
            constrained,
            "issuer must be name-constrained to west.cluster.local"
        );
        assert_eq!(cluster_of_issuer(&issuer_der).as_deref(), Some("west"));
        assert_eq!(
            trust_domain_of(&issuer_der).as_deref(),
            Some("cluster.local")
        );
        let anchor_der = der(&anchor.cert_pem);
        let (_, anchor_cert) = X509Certificate::from_der(&anchor_der).unwrap();
        cert.verify_signature(Some(anchor_cert.public_key()))
            .expect("issuer signed by anchor");
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let err = load_issuer(&issuer.cert_pem, &anchor.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch), "{err:?}");
    }

    #[test]
    fn garbage_and_empty_pem_give_errors_not_panics() {
        for input in [
            &b""[..],
            b"garbage",
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            &[0xff, 0xfe, 0x00, 0x01],
        ] {
            assert!(parse_cert_pems(input).is_err());
            assert!(parse_key_pem(input).is_err());
        }
    }

    #[test]
    fn random_bytes_and_random_der_in_pem_never_panic() {
        use base64::Engine;
        let (anchor, _) = anchor_and_issuer("west");
        let real = parse_cert_pems(anchor.cert_pem.as_bytes())
            .unwrap()
            .remove(0);
        for i in 0..300usize {
            let len = i % 97;
            let mut bytes: Vec<u8> = (0..len).map(|_| rand::random()).collect();
            let _ = parse_cert_pems(&bytes);
            let _ = parse_key_pem(&bytes);
            // Corrupt one byte of a real certificate and wrap it as PEM again.
            let mut der = real.to_vec();
            let at = i % der.len();
            der[at] = der[at].wrapping_add(1 + (i as u8 % 200));
            bytes = format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64::engine::general_purpose::STANDARD.encode(&der)
            )
            .into_bytes();
            if let Ok(certs) = parse_cert_pems(&bytes) {
                let _ = trust_domain_of(&certs[0]);
                let _ = cluster_of_issuer(&certs[0]);
                let _ = load_issuer(&String::from_utf8_lossy(&bytes), &anchor.key_pem);
            }
        }
    }

    #[test]
    fn a_leaf_certificate_is_not_accepted_as_an_issuer() {
        let (_, issuer) = anchor_and_issuer("west");
        let signer = load_issuer(&issuer.cert_pem, &issuer.key_pem).unwrap();
        let leaf = issue_gateway_leaf(
            &signer,
            NS,
            "west",
            "cluster.local",
            now(),
            GATEWAY_LIFETIME,
        )
        .unwrap();
        let err = load_issuer(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::NotCa), "{err:?}");
    }

    const GATEWAY_LIFETIME: Duration = crate::identity::GATEWAY_LEAF_LIFETIME;
    const NS: &str = crate::identity::IDENTITY_NAMESPACE;

    #[test]
    fn absurd_validity_is_an_error_not_a_panic() {
        let (_, issuer) = anchor_and_issuer("west");
        let signer = load_issuer(&issuer.cert_pem, &issuer.key_pem).unwrap();
        let err = issue_gateway_leaf(&signer, NS, "west", "cluster.local", now(), Duration::MAX)
            .unwrap_err();
        assert!(matches!(err, PkiError::ValidityOverflow), "{err:?}");
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let (anchor, _) = anchor_and_issuer("west");
        assert!(!format!("{anchor:?}").contains("PRIVATE KEY"));
    }
}
