//! The admin UI's OpenID Connect relying party: discovery, the authorization request (code flow
//! with PKCE S256, state and nonce), the code exchange, ID token verification against the
//! issuer's JWKS (signature, issuer, audience, expiry, nonce) and the group → role mapping.
//!
//! ```text
//! start ─ authorization_url(state, nonce, S256(verifier)) ─▶ provider ─▶ callback(code, state)
//! callback ─ token endpoint(code, verifier, client secret) ─ id_token ─ verify ─ role_for(groups)
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gate_config::ui::OidcConfig;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Role;
use crate::delivery::client::{get, post};
use crate::delivery::ssrf::Guard;
use crate::util::random_bytes;

/// How long a call to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// The soonest the keys are fetched again for a token naming an unknown key id.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// Only asymmetric signatures: a client secret is never accepted as an HMAC key.
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

/// The provider's endpoints, from `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The provider's signing keys and when they were fetched.
struct Keys {
    set: Arc<JwkSet>,
    fetched: Instant,
}

/// A person the provider vouched for.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    /// Email, name or subject, whichever the token has first.
    pub label: String,
    pub groups: Vec<String>,
}

/// The relying party for `ui.oidc`.
pub struct Oidc {
    config: OidcConfig,
    secret: String,
    redirect_url: String,
    metadata: tokio::sync::Mutex<Option<Arc<Metadata>>>,
    keys: Mutex<Option<Keys>>,
}

impl std::fmt::Debug for Oidc {
    /// Never the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// A fresh PKCE verifier (43 URL-safe characters) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl Oidc {
    /// Read the client secret (inline or from its file); the provider is contacted on first use.
    pub fn new(config: &OidcConfig, public_url: &str) -> Result<Self, String> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("ui.oidc.client_secret_file {file}: {e}"))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            (None, None) => return Err("ui.oidc.client_secret is not set".to_owned()),
        };
        let redirect_url = config
            .redirect_url
            .clone()
            .unwrap_or_else(|| format!("{}/ui/oidc/callback", public_url.trim_end_matches('/')));
        Ok(Self {
            config: config.clone(),
            secret,
            redirect_url,
            metadata: tokio::sync::Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    fn guard() -> Guard {
        // The operator configured the issuer; the webhook SSRF rules are for tenants' URLs.
        Guard {
            trusted: true,
            ..Guard::default()
        }
    }

    async fn fetch_json(url: &str) -> Result<Value, String> {
        let answer = get(&Self::guard(), url, &[], TIMEOUT)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if answer.status != 200 {
            return Err(format!("{url}: HTTP status {}", answer.status));
        }
        serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// The provider's metadata, fetched once (again after a failure).
    async fn metadata(&self) -> Result<Arc<Metadata>, String> {
        let mut cached = self.metadata.lock().await;
        if let Some(m) = cached.as_ref() {
            return Ok(Arc::clone(m));
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = serde_json::from_value(Self::fetch_json(&url).await?)
            .map_err(|e| format!("{url}: {e}"))?;
        if !same_issuer(&metadata.issuer, &self.config.issuer) {
            return Err(format!(
                "{url} names the issuer {:?}, not the configured {:?}",
                metadata.issuer, self.config.issuer
            ));
        }
        let metadata = Arc::new(metadata);
        *cached = Some(Arc::clone(&metadata));
        Ok(metadata)
    }

    /// The URL the browser is sent to.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, String> {
        let metadata = self.metadata().await?;
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(
            self.config
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let separator = if metadata.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!(
            "{}{separator}{query}",
            metadata.authorization_endpoint
        ))
    }

    /// Trade `code` (with the flow's PKCE `verifier`) for an ID token and verify it.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Person, String> {
        let metadata = self.metadata().await?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("code_verifier", verifier)
            .finish();
        let credentials = format!(
            "{}:{}",
            form_urlencoded::byte_serialize(self.config.client_id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(self.secret.as_bytes()).collect::<String>()
        );
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("accept", "application/json".to_owned()),
            (
                "authorization",
                format!("Basic {}", STANDARD.encode(credentials)),
            ),
        ];
        let answer = post(
            &Self::guard(),
            &metadata.token_endpoint,
            &headers,
            body.into_bytes(),
            TIMEOUT,
        )
        .await
        .map_err(|e| format!("token endpoint: {e}"))?;
        let reply: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if answer.status != 200 {
            let error = reply["error"].as_str().unwrap_or("no error code");
            let detail = reply["error_description"].as_str().unwrap_or_default();
            return Err(format!(
                "the provider refused the code (HTTP {}): {error} {detail}",
                answer.status
            ));
        }
        let id_token = reply["id_token"]
            .as_str()
            .ok_or("the token endpoint's answer has no id_token")?;
        self.verify(&metadata, id_token, nonce).await
    }

    /// The key that signed a token with `kid`, fetching the JWKS when it is not known yet.
    async fn key_for(&self, metadata: &Metadata, kid: Option<&str>) -> Result<DecodingKey, String> {
        for attempt in 0..2 {
            let (set, fresh) = {
                let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                match keys.as_ref() {
                    Some(k) => (
                        Some(Arc::clone(&k.set)),
                        k.fetched.elapsed() < REFETCH_AFTER,
                    ),
                    None => (None, false),
                }
            };
            if let Some(set) = set {
                let found = match kid {
                    Some(kid) => set.find(kid),
                    None if set.keys.len() == 1 => set.keys.first(),
                    None => None,
                };
                if let Some(jwk) = found {
                    return DecodingKey::from_jwk(jwk)
                        .map_err(|e| format!("the issuer's key: {e}"));
                }
                if fresh || attempt == 1 {
                    break;
                }
            }
            let set: JwkSet = serde_json::from_value(Self::fetch_json(&metadata.jwks_uri).await?)
                .map_err(|e| format!("{}: not a JWKS: {e}", metadata.jwks_uri))?;
            *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some(Keys {
                set: Arc::new(set),
                fetched: Instant::now(),
            });
        }
        Err(format!(
            "the ID token's key {} is not in the issuer's JWKS",
            kid.unwrap_or("(no kid)")
        ))
    }

    async fn verify(
        &self,
        metadata: &Metadata,
        token: &str,
        nonce: &str,
    ) -> Result<Person, String> {
        let header = decode_header(token).map_err(|e| format!("the ID token: {e}"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(format!(
                "the ID token is signed with {:?}; only asymmetric algorithms are accepted",
                header.alg
            ));
        }
        let key = self.key_for(metadata, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[metadata.issuer.as_str()]);
        validation.set_audience(&[self.config.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = decode::<Value>(token, &key, &validation)
            .map_err(|e| format!("the ID token does not verify: {e}"))?
            .claims;
        if claims["nonce"].as_str() != Some(nonce) {
            return Err("the ID token's nonce is not the one this sign-in sent".to_owned());
        }
        if let Some(aud) = claims["aud"].as_array()
            && aud.len() > 1
            && claims["azp"].as_str() != Some(self.config.client_id.as_str())
        {
            return Err(
                "the ID token is for several audiences and not authorized for this client"
                    .to_owned(),
            );
        }
        let text = |name: &str| claims[name].as_str().filter(|s| !s.is_empty());
        let subject = text("sub").ok_or("the ID token has no subject")?.to_owned();
        let label = text("email")
            .or_else(|| text("preferred_username"))
            .or_else(|| text("name"))
            .unwrap_or(&subject)
            .to_owned();
        let groups = match &claims[self.config.groups_claim.as_str()] {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Person {
            subject,
            label,
            groups,
        })
    }

    /// The highest role `groups` map to; `None`: no group maps (the sign-in is refused).
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        role_for(&self.config.role_mapping, groups)
    }

    /// The organization OIDC sign-ins act in.
    pub fn org_id(&self) -> &str {
        &self.config.org_id
    }

    /// The groups claim's name, for messages.
    pub fn groups_claim(&self) -> &str {
        &self.config.groups_claim
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Readonly => 1,
        Role::Editor => 2,
        Role::Admin => 3,
        Role::Connector => 0,
    }
}

fn role_for(mapping: &BTreeMap<String, String>, groups: &[String]) -> Option<Role> {
    groups
        .iter()
        .filter_map(|g| mapping.get(g))
        .filter_map(|r| Role::parse(r))
        .filter(|r| rank(*r) > 0)
        .max_by_key(|r| rank(*r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_role_wins_and_unmapped_groups_give_none() {
        let mapping: BTreeMap<String, String> = [("ops", "admin"), ("staff", "readonly")]
            .map(|(g, r)| (g.to_owned(), r.to_owned()))
            .into();
        let groups = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            role_for(&mapping, &groups(&["staff", "ops"])),
            Some(Role::Admin)
        );
        assert_eq!(
            role_for(&mapping, &groups(&["staff"])),
            Some(Role::Readonly)
        );
        assert_eq!(role_for(&mapping, &groups(&["visitors"])), None);
        assert_eq!(role_for(&mapping, &[]), None);
    }

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        );
    }
}
