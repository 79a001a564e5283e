//! Per-cluster PKI: a fresh ECDSA P-256 CA and a serving certificate for the loopback address,
//! generated in milliseconds at start. Keys never leave memory.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("could not generate a key")]
    Key(#[source] rcgen::Error),
    #[error("could not build the CA certificate")]
    Ca(#[source] rcgen::Error),
    #[error("could not build the serving certificate")]
    Serving(#[source] rcgen::Error),
    #[error("could not build the TLS server configuration")]
    Tls(#[source] rustls::Error),
}

pub struct ClusterPki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

pub fn generate(cluster: &str, ips: &[IpAddr]) -> Result<ClusterPki, PkiError> {
    let ca_key = KeyPair::generate().map_err(PkiError::Key)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(PkiError::Ca)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("mc-sim-ca-{cluster}"));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(PkiError::Ca)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(PkiError::Key)?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
    ])
    .map_err(PkiError::Serving)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let mut all_ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
    for ip in ips {
        if !all_ips.contains(ip) && !ip.is_unspecified() {
            all_ips.push(*ip);
        }
    }
    for ip in all_ips {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, &issuer).map_err(PkiError::Serving)?;

    let chain = vec![cert.der().clone()];
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(PkiError::Tls)?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(PkiError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ClusterPki {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}
