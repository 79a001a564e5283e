//! Fetches the certificate chain a gateway presents on its TLS port, without trusting or
//! authenticating anything: the chain is recorded during the handshake and judged afterwards by
//! the checks (with the anchors of `mc-config`). The gateway asks for a client certificate and
//! refuses us after the server's certificate is sent, which is all this needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{name:?} is not a valid TLS server name")]
    Name { name: String },
    #[error("the TLS handshake with {addr} failed before a certificate was presented: {reason}")]
    Handshake { addr: String, reason: String },
}

/// Records what the server presents; accepts anything (this client sends no secrets).
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Vec<Vec<u8>>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.to_vec())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The DER chain (leaf first) that `addr` presents for `server_name`.
pub async fn presented_chain(
    addr: &str,
    server_name: &str,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, FetchError> {
    let provider = rustls::crypto::ring::default_provider();
    let recorder = Arc::new(Recorder {
        chain: Mutex::new(Vec::new()),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Handshake {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| FetchError::Name {
        name: server_name.to_owned(),
    })?;
    let connect = |reason: String| FetchError::Connect {
        addr: addr.to_owned(),
        reason,
    };
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| connect(format!("no answer within {timeout:?}")))?
        .map_err(|e| connect(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(timeout, connector.connect(name, tcp)).await;
    let chain = recorder.chain.lock().map(|c| c.clone()).unwrap_or_default();
    if !chain.is_empty() {
        return Ok(chain);
    }
    let reason = match handshake {
        Err(_) => format!("no answer within {timeout:?}"),
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(_)) => "no certificate".to_owned(),
    };
    Err(FetchError::Handshake {
        addr: addr.to_owned(),
        reason,
    })
}
