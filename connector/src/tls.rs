//! Client-facing TLS: the configured certificate and key, re-read when they
//! change on disk, so a rotated certificate is served without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate and key bytes an acceptor was built from, and the acceptor.
type Loaded = (Vec<u8>, Vec<u8>, TlsAcceptor);

/// The certificate and key files, and the acceptor built from their last contents.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Load now, so a bad certificate is reported at start-up.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, String> {
        let files = Self {
            cert: cert.into(),
            key: key.into(),
            current: Mutex::new(None),
        };
        files.acceptor()?;
        Ok(files)
    }

    /// An acceptor for the files' current contents (rebuilt only when they changed).
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let cert = std::fs::read(&self.cert)
            .map_err(|e| format!("tls.cert_file {}: {e}", self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .map_err(|e| format!("tls.key_file {}: {e}", self.key.display()))?;
        let mut current = self
            .current
            .lock()
            .map_err(|_| "tls state poisoned".to_owned())?;
        if let Some((c, k, acceptor)) = current.as_ref()
            && *c == cert
            && *k == key
        {
            return Ok(acceptor.clone());
        }
        let acceptor = build(&cert, &key, &self.cert, &self.key)?;
        *current = Some((cert, key, acceptor.clone()));
        Ok(acceptor)
    }
}

fn build(
    cert: &[u8],
    key: &[u8],
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "tls.cert_file {}: not a PEM certificate: {e}",
                cert_path.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in the file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        format!(
            "tls.key_file {}: not a PEM private key: {e}",
            key_path.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls.cert_file/key_file: {e}"))?;
    // PostgreSQL 17 clients with `sslnegotiation=direct` require `postgresql`;
    // HTTP clients choose h2 or HTTP/1.1 (the preface then tells which).
    config.alpn_protocols = vec![b"postgresql".to_vec(), b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

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
