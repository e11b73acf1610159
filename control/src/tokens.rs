//! Identity tokens: EdDSA (Ed25519) JWTs signed with a key kept in the store (so every replica and
//! every restart signs with the same key), published as a JWKS at `/.well-known/jwks.json`; the
//! `/mcp` session-id key is derived from it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use gate_mcp::sessions::SessionKey;
use gate_proto::v1::Identity;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sqlx::Row;

use crate::error::{ApiError, ApiResult, Code};
use crate::store::{Store, StoreError};
use crate::util::{now_ms, random_bytes, rfc3339};

const KEY_ID: &str = "gate-identity-1";
/// PKCS#8 v1 header for a raw Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Signs identity tokens.
pub struct TokenIssuer {
    issuer: String,
    audience: String,
    key: EncodingKey,
    public_key: [u8; 32],
    /// Signs the `/mcp` endpoint's session ids; derived from the stored key, so every replica agrees.
    mcp_sessions: SessionKey,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    email: &'a str,
    groups: &'a [String],
    org_id: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl TokenIssuer {
    /// Use the stored signing key, creating it on first start.
    pub async fn load_or_create(
        store: &Store,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, StoreError> {
        let seed = random_bytes::<32>();
        sqlx::query(
            "INSERT INTO signing_keys (id, algorithm, private_key, public_key, created_at) \
             VALUES ($1, 'EdDSA', $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(KEY_ID)
        .bind(URL_SAFE_NO_PAD.encode(seed))
        .bind(URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&seed).verifying_key().to_bytes()))
        .bind(now_ms())
        .execute(store.pool())
        .await?;
        let row = sqlx::query("SELECT private_key FROM signing_keys WHERE id = $1")
            .bind(KEY_ID)
            .fetch_one(store.pool())
            .await?;
        let stored: String = row.try_get("private_key")?;
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(stored)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt("signing_keys.private_key".into()))?;
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            key: EncodingKey::from_ed_der(&der),
            public_key: SigningKey::from_bytes(&seed).verifying_key().to_bytes(),
            mcp_sessions: SessionKey::from_secret(
                &[b"gate-control /mcp\0".as_slice(), &seed].concat(),
            ),
        })
    }

    /// Sign a token for `identity` valid for `ttl_seconds`; returns it and its expiry (RFC 3339).
    pub fn issue(&self, identity: &Identity, ttl_seconds: u64) -> ApiResult<(String, String)> {
        let now = now_ms() / 1000;
        let exp = now + i64::try_from(ttl_seconds).unwrap_or(86_400);
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &identity.id,
            name: &identity.name,
            email: &identity.email,
            groups: &identity.groups,
            org_id: &identity.org_id,
            iat: now,
            nbf: now,
            exp,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(KEY_ID.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            tracing::error!(error = %e, "cannot sign identity token");
            ApiError::new(Code::Internal, "cannot sign the token")
        })?;
        Ok((token, rfc3339(exp * 1000)))
    }

    /// The JWKS document connectors load (`jwks_file` or `jwks_url`).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": KEY_ID,
                "x": URL_SAFE_NO_PAD.encode(self.public_key),
            }]
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The key `/mcp` session ids are signed with.
    pub fn mcp_sessions(&self) -> &SessionKey {
        &self.mcp_sessions
    }
}
