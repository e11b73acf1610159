//! Server-side TLS from certificate and key files, re-read when they change
//! on disk, so a rotated certificate (a renewed Secret, cert-manager) is
//! served without a restart: the connector's client listeners and the
//! operator's admission webhook.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How errors name the files and which ALPN protocols are offered.
#[derive(Debug, Clone)]
pub struct Options {
    /// The setting that names the certificate file (`tls.cert_file`).
    pub cert_setting: &'static str,
    /// The setting that names the key file (`tls.key_file`).
    pub key_setting: &'static str,
    pub alpn: Vec<Vec<u8>>,
}

impl Options {
    /// The connector's client listeners: PostgreSQL 17 clients with
    /// `sslnegotiation=direct` require `postgresql`; HTTP clients choose h2 or
    /// HTTP/1.1 (the preface then tells which).
    pub fn connector() -> Self {
        Self {
            cert_setting: "tls.cert_file",
            key_setting: "tls.key_file",
            alpn: vec![b"postgresql".to_vec(), b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// The certificate and key bytes an acceptor was built from, and the acceptor.
type Loaded = (Vec<u8>, Vec<u8>, TlsAcceptor);

/// The certificate and key files, and the acceptor built from their last contents.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    options: Options,
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
    /// Load now with the connector's [`Options`], so a bad certificate is
    /// reported at start-up.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, String> {
        Self::load_with(cert, key, Options::connector())
    }

    /// Load now with `options`.
    pub fn load_with(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        options: Options,
    ) -> Result<Self, String> {
        let files = Self {
            cert: cert.into(),
            key: key.into(),
            options,
            current: Mutex::new(None),
        };
        files.acceptor()?;
        Ok(files)
    }

    /// An acceptor for the files' current contents (rebuilt only when they changed).
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let cert = std::fs::read(&self.cert)
            .map_err(|e| format!("{} {}: {e}", self.options.cert_setting, self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .map_err(|e| format!("{} {}: {e}", self.options.key_setting, self.key.display()))?;
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
        let acceptor = self.build(&cert, &key)?;
        *current = Some((cert, key, acceptor.clone()));
        Ok(acceptor)
    }
}

impl TlsFiles {
    fn build(&self, cert: &[u8], key: &[u8]) -> Result<TlsAcceptor, String> {
        let (cert_setting, key_setting) = (self.options.cert_setting, self.options.key_setting);
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "{cert_setting} {}: not a PEM certificate: {e}",
                    self.cert.display()
                )
            })?;
        if chain.is_empty() {
            return Err(format!(
                "{cert_setting} {}: no certificate in the file",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            format!(
                "{key_setting} {}: not a PEM private key: {e}",
                self.key.display()
            )
        })?;
        server_acceptor(chain, key, self.options.alpn.clone())
            .map_err(|e| format!("{cert_setting}/{key_setting}: {e}"))
    }
}

/// An acceptor for a certificate chain and key held in memory (the operator's self-issued
/// webhook certificate), ring like every other rustls use in Gate.
pub fn acceptor_from_pem(
    cert: &[u8],
    key: &[u8],
    alpn: Vec<Vec<u8>>,
) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("not a PEM private key: {e}"))?;
    server_acceptor(chain, key, alpn)
}

fn server_acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
