//! Verifying JWTs that clients present in a password field: the issuer's
//! keys come from a JWKS file or URL (fetched at start, every 5 minutes, and
//! at once when a token names a key id not seen yet); signature, `exp`, `nbf`, `iss` and `aud` are
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
    /// Expiry, seconds since the epoch (required: checked by `verify`).
    pub exp: Option<u64>,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    audience: String,
    keys: std::sync::RwLock<std::sync::Arc<JwkSet>>,
    /// Where the keys come from when they are fetched.
    url: Option<String>,
}

impl Issuer {
    fn keys(&self) -> std::sync::Arc<JwkSet> {
        match self.keys.read() {
            Ok(keys) => std::sync::Arc::clone(&keys),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// The configured issuers and their keys.
#[derive(Debug, Default)]
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    /// Woken when a token names an unknown key id, to refetch URLs early.
    unknown_key: tokio::sync::Notify,
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
            // Keys from a URL arrive with the first refresh, before listeners open.
            let keys = match &issuer.jwks_file {
                Some(file) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| format!("auth.jwt.issuers[{i}].jwks_file {file}: {e}"))?;
                    serde_json::from_str(&text).map_err(|e| {
                        format!("auth.jwt.issuers[{i}].jwks_file {file}: not a JWKS: {e}")
                    })?
                }
                None => JwkSet { keys: Vec::new() },
            };
            issuers.push(Issuer {
                issuer: issuer.issuer.clone(),
                audience: issuer.audience.clone(),
                keys: std::sync::RwLock::new(std::sync::Arc::new(keys)),
                url: issuer.jwks_url.clone(),
            });
        }
        Ok(Some(Self {
            issuers,
            unknown_key: tokio::sync::Notify::new(),
        }))
    }

    /// Fetch every `jwks_url` now; returns one message per issuer that failed (its old keys stay).
    pub async fn refresh(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for issuer in &self.issuers {
            let Some(url) = &issuer.url else { continue };
            let fetched = crate::http_get::get(url).await.and_then(|body| {
                serde_json::from_slice::<JwkSet>(&body)
                    .map_err(|e| format!("{url}: not a JWKS: {e}"))
            });
            match fetched {
                Ok(keys) => match issuer.keys.write() {
                    Ok(mut slot) => *slot = std::sync::Arc::new(keys),
                    Err(poisoned) => *poisoned.into_inner() = std::sync::Arc::new(keys),
                },
                Err(e) => problems.push(format!("JWKS of {}: {e}", issuer.issuer)),
            }
        }
        problems
    }

    /// Whether any issuer's keys come from a URL.
    pub fn fetches(&self) -> bool {
        self.issuers.iter().any(|i| i.url.is_some())
    }

    /// Refetch URLs every `every`, and early (at most every 30 s) when a token names an unknown key.
    pub async fn refresh_forever(&self, every: std::time::Duration) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.unknown_key.notified() => {}
            }
            for problem in self.refresh().await {
                tracing::warn!(problem = %problem, "JWKS refresh failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(30).min(every)).await;
        }
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
        let keys = issuer.keys();
        let candidates: Vec<_> = match &header.kid {
            Some(kid) => keys.find(kid).into_iter().collect(),
            None => keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            if issuer.url.is_some() {
                self.unknown_key.notify_one();
            }
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
