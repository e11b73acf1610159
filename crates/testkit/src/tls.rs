//! Certificates for TLS tests, made with the `openssl` command: a throwaway
//! CA and a server certificate it signed (valid for `127.0.0.1` and
//! `localhost`), as strict verifiers such as rustls require.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::{require_program, run};

/// A server certificate and key, and the CA that signed it.
#[derive(Debug, Clone)]
pub struct SelfSignedCert {
    /// PEM server certificate (leaf, `CA:FALSE`, `serverAuth`).
    pub cert: PathBuf,
    /// PEM private key of the server certificate (PKCS#8, unencrypted).
    pub key: PathBuf,
    /// PEM certificate of the CA to trust.
    pub ca: PathBuf,
}

impl SelfSignedCert {
    /// Generate `NAME-ca.crt`, `NAME.crt` and `NAME.key` in `dir`, the server certificate with common name `cn`.
    pub fn generate(dir: &Path, name: &str, cn: &str) -> Result<Self> {
        let openssl = require_program("openssl")?;
        let ca = dir.join(format!("{name}-ca.crt"));
        let ca_key = dir.join(format!("{name}-ca.key"));
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new(&openssl)
            .args(["req", "-x509", "-days", "2"])
            .args(ec)
            .arg("-subj")
            .arg(format!("/CN={name} test CA"))
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca))?;
        run(Command::new(&openssl)
            .args(["req"])
            .args(ec)
            .arg("-subj")
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr))?;
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .map_err(Error::io("write certificate extensions"))?;
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert))?;
        Ok(Self { cert, key, ca })
    }
}
