//! Verifying JWTs that clients present in a password field: the issuer's
//! keys come from a JWKS file; signature, `exp`, `nbf`, `iss` and `aud` are
//! checked; only asymmetric algorithms are accepted (no HS256 with a public
//! key as the secret).

use gate_config::connector::AuthConfig;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// What Gate takes from a verified token.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    pub sub: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub iss: Option<String>,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    audience: String,
    keys: JwkSet,
}

/// The configured issuers and their keys.
#[derive(Debug, Default)]
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
}

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl JwtVerifier {
    /// Load every issuer's JWKS; `None` when no issuer is configured.
    pub fn load(auth: &AuthConfig) -> Result<Option<Self>, String> {
        let Some(jwt) = &auth.jwt else {
            return Ok(None);
        };
        let mut issuers = Vec::new();
        for (i, issuer) in jwt.issuers.iter().enumerate() {
            let Some(file) = &issuer.jwks_file else {
                return Err(format!(
                    "auth.jwt.issuers[{i}].jwks_url: fetching JWKS over HTTP is not supported yet; use jwks_file"
                ));
            };
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("auth.jwt.issuers[{i}].jwks_file {file}: {e}"))?;
            let keys: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("auth.jwt.issuers[{i}].jwks_file {file}: not a JWKS: {e}"))?;
            issuers.push(Issuer {
                issuer: issuer.issuer.clone(),
                audience: issuer.audience.clone(),
                keys,
            });
        }
        Ok(Some(Self { issuers }))
    }

    /// Verify `token`; the error says why (for Gate's log, never for the client).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        // Pick the issuer by the unverified `iss`; everything is verified below.
        let unverified_iss = unverified_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == unverified_iss)
            .ok_or_else(|| format!("issuer {unverified_iss:?} is not trusted"))?;
        let candidates: Vec<_> = match &header.kid {
            Some(kid) => issuer.keys.find(kid).into_iter().collect(),
            None => issuer.keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(format!(
                "no key {:?} in the JWKS of {}",
                header.kid, issuer.issuer
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&issuer.audience]);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        let mut last = String::from("no usable key");
        for jwk in candidates {
            let key = match DecodingKey::from_jwk(jwk) {
                Ok(key) => key,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            match decode::<Claims>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

fn unverified_issuer(token: &str) -> Result<String, String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the payload is not base64url".to_owned())?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let iss: Iss =
        serde_json::from_slice(&bytes).map_err(|_| "the payload is not JSON".to_owned())?;
    iss.iss.ok_or_else(|| "the token has no iss".to_owned())
}
