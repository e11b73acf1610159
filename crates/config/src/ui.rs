//! The admin UI's settings in `control.yaml` (`ui:`): OpenID Connect sign-in and how the
//! identity provider's groups map to the roles API keys have.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Problems;

/// The roles an OIDC group may map to (the API key roles that people use).
pub const OIDC_ROLES: &[&str] = &["readonly", "editor", "admin"];

/// `ui:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Sign-in through an OpenID Connect provider (authorization code + PKCE); absent: keys only.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
}

/// `ui.oidc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is read on first use.
    pub issuer: String,
    pub client_id: String,
    /// The client secret (`${GATE_OIDC_CLIENT_SECRET}`), or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A file holding the client secret (a mounted Kubernetes secret); trailing newline ignored.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Where the provider sends the browser back; default `<public_url>/ui/oidc/callback`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that lists the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group → role (`readonly`, `editor`, `admin`); the highest role of the person's groups wins,
    /// and a person in no mapped group is refused.
    pub role_mapping: BTreeMap<String, String>,
    /// The organization people who sign in this way act in.
    #[serde(default = "default_org")]
    pub org_id: String,
}

fn default_scopes() -> Vec<String> {
    ["profile", "email", "groups"].map(str::to_owned).to_vec()
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_org() -> String {
    "default".to_owned()
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl UiConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        let Some(oidc) = &self.oidc else {
            return;
        };
        if !is_http_url(&oidc.issuer) {
            problems.push("ui.oidc.issuer", "expected an http:// or https:// URL");
        }
        if oidc.client_id.trim().is_empty() {
            problems.push("ui.oidc.client_id", "must not be empty");
        }
        match (&oidc.client_secret, &oidc.client_secret_file) {
            (Some(_), Some(_)) => problems.push(
                "ui.oidc.client_secret",
                "set client_secret or client_secret_file, not both",
            ),
            (Some(s), None) if s.is_empty() => {
                problems.push("ui.oidc.client_secret", "must not be empty");
            }
            (None, None) => problems.push(
                "ui.oidc.client_secret",
                "set client_secret (e.g. \"${GATE_OIDC_CLIENT_SECRET}\") or client_secret_file",
            ),
            _ => {}
        }
        if let Some(url) = oidc.redirect_url.as_deref()
            && !is_http_url(url)
        {
            problems.push(
                "ui.oidc.redirect_url",
                "expected an http:// or https:// URL",
            );
        }
        if oidc.groups_claim.trim().is_empty() {
            problems.push("ui.oidc.groups_claim", "must not be empty");
        }
        if oidc.role_mapping.is_empty() {
            problems.push(
                "ui.oidc.role_mapping",
                "map at least one group to a role (readonly, editor or admin)",
            );
        }
        for (group, role) in &oidc.role_mapping {
            if !OIDC_ROLES.contains(&role.as_str()) {
                problems.push(
                    format!("ui.oidc.role_mapping.{group}"),
                    format!("expected readonly, editor or admin, got {role:?}"),
                );
            }
        }
        if oidc.org_id.trim().is_empty() {
            problems.push("ui.oidc.org_id", "must not be empty");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{ControlConfig, load_str};

    fn load(ui: &str) -> Result<ControlConfig, crate::ConfigErrors> {
        let env = |name: &str| (name == "SECRET").then(|| "s3cret".to_owned());
        load_str(
            "control.yaml",
            &format!("api_key: {}\n{ui}", "k".repeat(20)),
            &env,
        )
    }

    #[test]
    fn oidc_takes_its_secret_from_the_environment_and_maps_groups_to_person_roles() {
        let config = load(
            "ui:\n  oidc:\n    issuer: https://idp.example\n    client_id: gate\n    \
             client_secret: \"${SECRET}\"\n    role_mapping: {ops: admin, staff: readonly}\n",
        )
        .unwrap();
        let oidc = config.ui.oidc.unwrap();
        assert_eq!(oidc.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(oidc.groups_claim, "groups");
        assert_eq!(oidc.org_id, "default");
        assert!(load("").unwrap().ui.oidc.is_none());
    }

    #[test]
    fn every_oidc_problem_is_reported_with_its_path() {
        let errors = load(
            "ui:\n  oidc:\n    issuer: idp.example\n    client_id: \"\"\n    \
             role_mapping: {ops: connector}\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "ui.oidc.issuer",
            "ui.oidc.client_id",
            "ui.oidc.client_secret",
            "ui.oidc.role_mapping.ops: expected readonly, editor or admin",
        ] {
            assert!(errors.contains(expected), "{expected} in {errors}");
        }
    }
}
