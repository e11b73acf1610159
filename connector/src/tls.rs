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
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls.cert_file/key_file: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
