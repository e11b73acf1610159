//! TLS: client-facing listeners serve the configured certificate and key
//! through [`TlsFiles`] (re-read when they change on disk, `gate-tls`);
//! upstream connections use [`upstream_config`].

use std::sync::Arc;

pub use gate_tls::TlsFiles;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Upstream TLS: a client configuration for `mode` (`require`: encrypted,
/// certificate not verified, as libpq's `sslmode=require`; `verify-full`:
/// chain checked against `ca_file`, or the system bundle, and the host name).
pub fn upstream_config(
    mode: gate_config::connector::TlsMode,
    ca_file: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use gate_config::connector::TlsMode;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        TlsMode::Disable => return Err("upstream TLS is disabled".into()),
        TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        TlsMode::VerifyFull => {
            let path = ca_file.unwrap_or("/etc/ssl/certs/ca-certificates.crt");
            let pem =
                std::fs::read(path).map_err(|e| format!("upstream_tls.ca_file {path}: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("upstream_tls.ca_file {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("upstream_tls.ca_file {path}: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The TLS handshake with a resource's upstream in `mode` (its
/// `upstream_tls`), once the protocol has asked the server to start TLS.
pub async fn connect_upstream(
    tcp: tokio::net::TcpStream,
    resource: &gate_config::connector::ResourceConfig,
    mode: gate_config::connector::TlsMode,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let config = upstream_config(mode, resource.upstream_tls.ca_file())?;
    let name = rustls_pki_types::ServerName::try_from(resource.host.clone()).map_err(|e| {
        format!(
            "host {:?} is not a valid TLS server name: {e}",
            resource.host
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// `require`: any certificate, but the handshake signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
