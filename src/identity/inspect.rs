//! `mc identity inspect`: what a certificate file holds and whether it chains to an anchor.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::store::{self, CertFile, StoreError};
use super::verify::{self, Validity};
use super::{ANCHOR_CERT_FILE, ISSUER_CERT_FILE};

/// One certificate of an inspected file.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    pub file: String,
    /// Position in the file (0 = first certificate).
    pub index: usize,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Hex, colon-separated, as openssl prints it.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until `notAfter`; negative once expired.
    pub days_left: i64,
    /// `valid`, `expired` or `not yet valid`.
    pub validity: String,
    pub ca: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_len: Option<u32>,
    pub key_type: String,
    pub chain: ChainStatus,
}

/// Whether a certificate chains to an anchor.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChainStatus {
    /// `ok`, `is-anchor`, `invalid` or `unknown` (no anchor found).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ChainStatus {
    fn new(status: &str, anchor: Option<&CertFile>, detail: Option<String>) -> Self {
        Self {
            status: status.to_owned(),
            anchor: anchor.map(|a| a.path.display().to_string()),
            detail,
        }
    }
}

/// The anchor `inspect` compares against: `--anchor`, else `anchor.crt` beside the file, else in
/// its parent directory (for `DIR/<cluster>/issuer.crt`).
pub fn default_anchor_path(file: &Path) -> Option<PathBuf> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let beside = dir.join(ANCHOR_CERT_FILE);
    if beside.is_file() {
        return Some(beside);
    }
    let parent = dir.join("..").join(ANCHOR_CERT_FILE);
    parent.is_file().then_some(parent)
}

/// Inspects every certificate of `path`. An unreadable `anchor` given explicitly is an error; a
/// default anchor that cannot be read only makes the chain status `unknown`.
pub fn inspect_file(
    path: &Path,
    anchor: Option<&Path>,
    now: OffsetDateTime,
) -> Result<Vec<CertInfo>, StoreError> {
    let file = store::read_cert_file(path, "check the path")?;
    let anchor = match anchor {
        Some(explicit) => Some(store::read_cert_file(explicit, "check the --anchor path")?),
        None => default_anchor_path(path).and_then(|p| store::read_cert_file(&p, "").ok()),
    };
    // Intermediates for leaves: the rest of the file and an issuer.crt beside it.
    let mut intermediates: Vec<CertificateDer<'static>> = file.ders.clone();
    if let Some(dir) = path.parent() {
        let beside = dir.join(ISSUER_CERT_FILE);
        if beside != path
            && let Ok(issuer) = store::read_cert_file(&beside, "")
        {
            intermediates.extend(issuer.ders);
        }
    }
    file.ders
        .iter()
        .enumerate()
        .map(|(index, der)| {
            let (_, cert) = X509Certificate::from_der(der).map_err(|source| StoreError::Cert {
                path: file.path.clone(),
                source: super::pki::PkiError::Certificate(source),
            })?;
            let chain = chain_status(der, &cert, &intermediates, anchor.as_ref(), now);
            Ok(describe(&file, index, &cert, chain, now))
        })
        .collect()
}

fn chain_status(
    der: &CertificateDer<'_>,
    cert: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'static>],
    anchor: Option<&CertFile>,
    now: OffsetDateTime,
) -> ChainStatus {
    let Some(anchor) = anchor else {
        return ChainStatus::new(
            "unknown",
            None,
            Some("no anchor found; pass --anchor FILE".to_owned()),
        );
    };
    if anchor.ders.iter().any(|a| a.as_ref() == der.as_ref()) {
        return ChainStatus::new("is-anchor", Some(anchor), None);
    }
    if cert.is_ca() {
        return match verify::verify_ca_signed_by(der, &anchor.ders) {
            Ok(_) => ChainStatus::new("ok", Some(anchor), None),
            Err(err) => ChainStatus::new("invalid", Some(anchor), Some(err.to_string())),
        };
    }
    let others: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .filter(|c| c.as_ref() != der.as_ref())
        .cloned()
        .collect();
    match verify::verify_chain(der, &others, &anchor.ders, now.into()) {
        Ok(()) => ChainStatus::new("ok", Some(anchor), None),
        Err(err) => {
            let detail = match std::error::Error::source(&err) {
                Some(cause) => format!("{err}: {cause:?}"),
                None => err.to_string(),
            };
            ChainStatus::new("invalid", Some(anchor), Some(detail))
        }
    }
}

fn describe(
    file: &CertFile,
    index: usize,
    cert: &X509Certificate<'_>,
    chain: ChainStatus,
    now: OffsetDateTime,
) -> CertInfo {
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let validity = match verify::validity_at(cert, now) {
        Validity::Valid { .. } => "valid",
        Validity::Expired { .. } => "expired",
        Validity::NotYetValid { .. } => "not yet valid",
    };
    let path_len = cert
        .basic_constraints()
        .ok()
        .flatten()
        .and_then(|bc| bc.value.path_len_constraint);
    CertInfo {
        file: file.path.display().to_string(),
        index,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans: sans(cert),
        serial: cert.raw_serial_as_string(),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        days_left: (not_after - now).whole_days(),
        validity: validity.to_owned(),
        ca: cert.is_ca(),
        path_len,
        key_type: key_type(cert),
        chain,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::URI(uri) => format!("URI:{uri}"),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => {
                    let mut octets = [0u8; 4];
                    octets.copy_from_slice(bytes);
                    format!("IP:{}", std::net::Ipv4Addr::from(octets))
                }
                16 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(bytes);
                    format!("IP:{}", std::net::Ipv6Addr::from(octets))
                }
                _ => format!("IP:{}", hex::encode(bytes)),
            },
            other => format!("{other}"),
        })
        .collect()
}

fn key_type(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(PublicKey::EC(point)) => match point.key_size() {
            256 => "ECDSA P-256".to_owned(),
            384 => "ECDSA P-384".to_owned(),
            521 => "ECDSA P-521".to_owned(),
            bits => format!("ECDSA {bits}-bit"),
        },
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(_) => cert.public_key().algorithm.algorithm.to_id_string(),
        Err(_) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::store::{Layout, init_anchor, issue_issuer};
    use std::time::Duration;

    #[test]
    fn issuer_in_a_cluster_directory_finds_the_anchor_in_the_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let now = OffsetDateTime::now_utc();
        init_anchor(
            &layout,
            "cluster.local",
            Duration::from_secs(86400 * 30),
            false,
            now,
        )
        .unwrap();
        issue_issuer(&layout, "west", Duration::from_secs(86400 * 10), false, now).unwrap();
        let infos = inspect_file(&layout.issuer_cert("west"), None, now).unwrap();
        assert_eq!(infos.len(), 1);
        let info = &infos[0];
        assert_eq!(info.chain.status, "ok", "{info:?}");
        assert!(info.ca);
        assert_eq!(info.path_len, Some(0));
        assert_eq!(info.key_type, "ECDSA P-256");
        assert!(
            info.days_left == 9 || info.days_left == 10,
            "{}",
            info.days_left
        );
        assert_eq!(info.sans, vec!["URI:spiffe://cluster.local/cluster/west"]);
        let anchor = inspect_file(&layout.anchor_cert(), None, now).unwrap();
        assert_eq!(anchor[0].chain.status, "is-anchor");
    }

    #[test]
    fn gateway_leaf_beside_its_issuer_chains_to_the_anchor_in_the_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let now = OffsetDateTime::now_utc();
        init_anchor(
            &layout,
            "cluster.local",
            Duration::from_secs(86400 * 30),
            false,
            now,
        )
        .unwrap();
        issue_issuer(&layout, "west", Duration::from_secs(86400 * 10), false, now).unwrap();
        let signer = crate::identity::load_issuer(
            &std::fs::read_to_string(layout.issuer_cert("west")).unwrap(),
            &std::fs::read_to_string(layout.issuer_key("west")).unwrap(),
        )
        .unwrap();
        let leaf = crate::identity::issue_gateway_leaf(
            &signer,
            "mc-system",
            "west",
            "cluster.local",
            now,
            crate::identity::GATEWAY_LEAF_LIFETIME,
        )
        .unwrap();
        let path = layout.issuer_dir("west").join("gateway.crt");
        std::fs::write(&path, &leaf.cert_pem).unwrap();
        let info = &inspect_file(&path, None, now).unwrap()[0];
        assert_eq!(info.chain.status, "ok", "{info:?}");
        assert!(!info.ca);
        assert!(
            info.sans
                .contains(&"DNS:mc-gateway.mc-system.west.cluster.local".to_owned())
        );

        // Two days later the 24h leaf is expired and no longer chains.
        let later = now + time::Duration::days(2);
        let info = &inspect_file(&path, None, later).unwrap()[0];
        assert_eq!(info.validity, "expired");
        assert_eq!(info.chain.status, "invalid");
        assert!(info.days_left < 0);
    }
}
