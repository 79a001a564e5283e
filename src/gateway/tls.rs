//! rustls configuration of both sides: TLS 1.3 only, ALPN `h2`, certificates from the anchor
//! only, a client verifier that also requires a *gateway* identity, and a certificate store that
//! swaps the leaf on rotation (new handshakes get the new leaf, open connections keep theirs).

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

pub const ALPN_H2: &[u8] = b"h2";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot build the client-certificate verifier from the trust anchors")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("cannot create the session ticket key")]
    Ticketer(#[source] rustls::Error),
}

/// The current leaf, shared by the server and client configs. Read once per handshake.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(initial: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(initial),
        })
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn swap(&self, next: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Chains to the anchor (webpki) *and* requires a gateway identity in the SANs, so that any other
/// certificate the issuers may have signed fails the handshake.
#[derive(Debug)]
struct GatewayClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    namespace: String,
    logs: Arc<super::loglimit::LogLimit>,
}

impl ClientCertVerifier for GatewayClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if super::identity::gateway_identity_in(end_entity, &self.namespace).is_none() {
            // Anyone the issuers signed for can trigger this: rate-limited (the refusal is
            // counted as connections_total{result="certificate_rejected"}).
            if let Some(suppressed) = self.logs.allow("not_a_gateway") {
                let (dns, uris) = super::identity::san_names(end_entity);
                tracing::info!(
                    ?dns,
                    ?uris,
                    suppressed,
                    "refusing a client certificate that does not name a gateway"
                );
            }
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The inbound side's config: client certificate required, gateway identity required.
pub fn server_config(
    roots: Arc<RootCertStore>,
    certs: Arc<CertStore>,
    namespace: &str,
    logs: Arc<super::loglimit::LogLimit>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let inner = WebPkiClientVerifier::builder(roots)
        .build()
        .map_err(TlsError::ClientVerifier)?;
    let verifier = Arc::new(GatewayClientVerifier {
        inner,
        namespace: namespace.to_owned(),
        logs,
    });
    let mut config = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Tickets let a reconnecting peer resume without a full mutual-auth handshake.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Ticketer)?;
    Ok(Arc::new(config))
}

/// The outbound side's config: verify the peer against the anchor (the expected identity is the
/// server name passed per connection), present our own leaf.
pub fn client_config(
    roots: Arc<RootCertStore>,
    certs: Arc<CertStore>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots)
        .with_client_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Every (re)connection of a pool verifies the peer's current certificate: a resumed session
    // would skip that (and restore the chain seen when the ticket was issued, possibly expired
    // since). The connection is pooled, so a full handshake per reconnect costs nothing.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}
