//! Chain verification: leaves with rustls-webpki (exactly what TLS peers do), CA certificates with
//! x509-parser's signature check (webpki refuses CA certificates as end entities by design).

use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("an anchor certificate cannot be used as a trust anchor")]
    Anchor(#[source] webpki::Error),
    #[error("the certificate cannot be parsed")]
    Leaf(#[source] webpki::Error),
    #[error("the certificate does not chain to a trust anchor")]
    Path(#[source] webpki::Error),
    #[error("the time is before 1970")]
    Clock,
    #[error("the certificate cannot be parsed as X.509")]
    Parse(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    #[error("no anchor is the signer of this certificate")]
    NotSigned,
    #[error("the signing anchor is not a CA")]
    SignerNotCa,
}

/// Verifies `leaf` → `intermediates` → one of `anchors` at `now`, as a TLS server or client
/// certificate (gateway leaves are both). Checks signatures, validity of every certificate,
/// basicConstraints/pathLen, key usage and name constraints.
pub fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(), ChainError> {
    let anchors = anchors
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map_err(ChainError::Anchor))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = EndEntityCert::try_from(leaf).map_err(ChainError::Leaf)?;
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ChainError::Clock)?;
    let time = UnixTime::since_unix_epoch(since_epoch);
    let verify = |usage: KeyUsage| {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            usage,
            None,
            None,
        )
        .map(|_| ())
    };
    match verify(KeyUsage::server_auth()) {
        Ok(()) => Ok(()),
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {
            verify(KeyUsage::client_auth()).map_err(ChainError::Path)
        }
        Err(err) => Err(ChainError::Path(err)),
    }
}

/// Which of `anchors` signed the CA certificate `cert` (index), checking the signature with the
/// anchor's public key. Validity dates are the caller's business (it names the file).
pub fn verify_ca_signed_by(
    cert: &[u8],
    anchors: &[CertificateDer<'_>],
) -> Result<usize, ChainError> {
    let (_, cert) = X509Certificate::from_der(cert).map_err(ChainError::Parse)?;
    for (index, anchor_der) in anchors.iter().enumerate() {
        let Ok((_, anchor)) = X509Certificate::from_der(anchor_der) else {
            continue;
        };
        if anchor.subject().as_raw() != cert.issuer().as_raw() {
            continue;
        }
        if cert.verify_signature(Some(anchor.public_key())).is_ok() {
            if !anchor.is_ca() {
                return Err(ChainError::SignerNotCa);
            }
            return Ok(index);
        }
    }
    Err(ChainError::NotSigned)
}

/// Where `now` falls relative to a certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    NotYetValid { not_before: OffsetDateTime },
    Valid { not_after: OffsetDateTime },
    Expired { not_after: OffsetDateTime },
}

pub fn validity_at(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Validity {
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now < not_before {
        Validity::NotYetValid { not_before }
    } else if now > not_after {
        Validity::Expired { not_after }
    } else {
        Validity::Valid { not_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::GATEWAY_LEAF_LIFETIME;

    const NS: &str = crate::identity::IDENTITY_NAMESPACE;
    use crate::identity::pki::tests::{anchor_and_issuer, now};
    use crate::identity::pki::{CertKeyPem, issue_gateway_leaf, load_issuer, parse_cert_pems};

    /// A 24h gateway leaf for `cluster` signed by `issuer`.
    fn gateway_leaf(issuer: &CertKeyPem, cluster: &str) -> CertKeyPem {
        let signer = load_issuer(&issuer.cert_pem, &issuer.key_pem).unwrap();
        issue_gateway_leaf(
            &signer,
            NS,
            cluster,
            "cluster.local",
            now(),
            GATEWAY_LEAF_LIFETIME,
        )
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        parse_cert_pems(pem.as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn gateway_leaf_chains_through_its_issuer_to_the_anchor() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let leaf = gateway_leaf(&issuer, "west");
        verify_chain(
            &der(&leaf.cert_pem),
            &[der(&issuer.cert_pem)],
            &[der(&anchor.cert_pem)],
            SystemTime::now(),
        )
        .expect("chain verifies");
        assert_eq!(
            verify_ca_signed_by(&der(&issuer.cert_pem), &[der(&anchor.cert_pem)]).unwrap(),
            0
        );
    }

    #[test]
    fn leaf_from_another_anchor_does_not_verify() {
        let (_, issuer) = anchor_and_issuer("west");
        let (other_anchor, _) = anchor_and_issuer("west");
        let leaf = gateway_leaf(&issuer, "west");
        let err = verify_chain(
            &der(&leaf.cert_pem),
            &[der(&issuer.cert_pem)],
            &[der(&other_anchor.cert_pem)],
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, ChainError::Path(_)), "{err:?}");
        assert!(matches!(
            verify_ca_signed_by(&der(&issuer.cert_pem), &[der(&other_anchor.cert_pem)]),
            Err(ChainError::NotSigned)
        ));
    }

    #[test]
    fn leaf_past_its_lifetime_does_not_verify() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let leaf = gateway_leaf(&issuer, "west");
        let later = SystemTime::now() + GATEWAY_LEAF_LIFETIME * 2;
        let err = verify_chain(
            &der(&leaf.cert_pem),
            &[der(&issuer.cert_pem)],
            &[der(&anchor.cert_pem)],
            later,
        )
        .unwrap_err();
        assert!(
            matches!(err, ChainError::Path(webpki::Error::CertExpired { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn issuer_cannot_mint_another_clusters_gateway_identity() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let forged = gateway_leaf(&issuer, "east");
        let err = verify_chain(
            &der(&forged.cert_pem),
            &[der(&issuer.cert_pem)],
            &[der(&anchor.cert_pem)],
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Path(webpki::Error::NameConstraintViolation)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn issuer_with_path_len_zero_cannot_sign_a_sub_ca() {
        let (anchor, issuer) = anchor_and_issuer("west");
        let signer = load_issuer(&issuer.cert_pem, &issuer.key_pem).unwrap();
        // A sub-CA below the issuer, then a leaf below that: pathLen 0 must reject the path.
        let sub = crate::identity::pki::new_issuer(
            &signer,
            "west",
            "cluster.local",
            now(),
            now() + time::Duration::days(1),
        )
        .unwrap();
        let sub_signer = load_issuer(&sub.cert_pem, &sub.key_pem).unwrap();
        let leaf = issue_gateway_leaf(
            &sub_signer,
            NS,
            "west",
            "cluster.local",
            now(),
            GATEWAY_LEAF_LIFETIME,
        )
        .unwrap();
        let err = verify_chain(
            &der(&leaf.cert_pem),
            &[der(&sub.cert_pem), der(&issuer.cert_pem)],
            &[der(&anchor.cert_pem)],
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, ChainError::Path(_)), "{err:?}");
    }
}
