//! Signed test tokens: an Ed25519 key pair made by openssl, its JWKS, and
//! tokens with Gate's claims.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

pub(crate) const ISSUER: &str = "https://idp.example";

/// An Ed25519 key pair: the PEM private key and a one-key JWKS.
pub(crate) fn keypair(dir: &Path, name: &str, kid: &str) -> (Vec<u8>, String) {
    let key = dir.join(format!("{name}.pem"));
    assert!(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    let jwks = format!(
        r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "x": "{x}", "kid": "{kid}", "alg": "EdDSA", "use": "sig"}}]}}"#
    );
    (std::fs::read(&key).unwrap(), jwks)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn token(pem: &[u8], kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, &EncodingKey::from_ed_pem(pem).unwrap()).unwrap()
}

pub(crate) fn claims(name: &str, groups: &[&str], aud: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({"iss": ISSUER, "sub": format!("user-{name}"), "name": name, "groups": groups, "aud": aud, "exp": exp})
}

/// Key pair `k1` of [`ISSUER`] with its JWKS file in `dir`: the PEM private
/// key and the `auth:` config that trusts it for audience `gate`.
pub(crate) fn trusted_issuer(dir: &Path) -> (Vec<u8>, String) {
    let (pem, jwks) = keypair(dir, "idp", "k1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let auth = format!(
        "auth:\n  jwt:\n    issuers:\n      - {{issuer: \"{ISSUER}\", jwks_file: \"{}\", audience: gate}}\n",
        jwks_file.display()
    );
    (pem, auth)
}
