//! Self-signed certificates for TLS tests, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Result;
use crate::process::{require_program, run};

/// A self-signed certificate valid for `127.0.0.1` and `localhost`; it is its own CA.
#[derive(Debug, Clone)]
pub struct SelfSignedCert {
    /// PEM certificate (also the CA to trust).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, unencrypted).
    pub key: PathBuf,
}

impl SelfSignedCert {
    /// Generate `NAME.crt` and `NAME.key` in `dir` with common name `cn`.
    pub fn generate(dir: &Path, name: &str, cn: &str) -> Result<Self> {
        let openssl = require_program("openssl")?;
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        run(Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={cn}"))
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert))?;
        Ok(Self { cert, key })
    }
}
