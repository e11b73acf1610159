//! Who is calling: the root key (system caller), an org-scoped key with a role, or nobody in
//! `--insecure` mode; and what each role may do. Both transports authenticate through here.

use std::fmt;

use crate::error::{ApiError, ApiResult};

/// Roles of organization API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Readonly,
    Editor,
    Admin,
    Connector,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Readonly, Role::Editor, Role::Admin, Role::Connector];

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Readonly => "readonly",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Connector => "connector",
        }
    }
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read the organization's objects: readonly, editor, admin.
    Read,
    /// Create, change and delete resources, policies, identities, groups: editor, admin.
    Write,
    /// Manage API keys and issue identity tokens: admin.
    Admin,
    /// Connector traffic (register, heartbeat, sync, audit ingest): connector.
    Connector,
    /// Manage organizations: system callers only.
    System,
}

impl Need {
    fn allows(self, role: Role) -> bool {
        match self {
            Need::Read => matches!(role, Role::Readonly | Role::Editor | Role::Admin),
            Need::Write => matches!(role, Role::Editor | Role::Admin),
            Need::Admin => role == Role::Admin,
            Need::Connector => role == Role::Connector,
            Need::System => false,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Need::Read => "read (readonly, editor or admin)",
            Need::Write => "write (editor or admin)",
            Need::Admin => "admin",
            Need::Connector => "connector",
            Need::System => "a system key",
        }
    }
}

/// The authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The root `api_key`.
    System,
    /// No key, control plane started with `--insecure`.
    Insecure,
    /// An organization key.
    Key {
        id: String,
        name: String,
        role: Role,
    },
    /// A person signed in to the admin UI through OpenID Connect; the role comes from
    /// `ui.oidc.role_mapping`.
    Person {
        subject: String,
        label: String,
        role: Role,
    },
}

/// A caller with its effective organization.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The organization every query is scoped to.
    pub org_id: String,
}

impl Caller {
    /// The organization to act in, if the caller may do `need` there.
    pub fn org(&self, need: Need) -> ApiResult<&str> {
        match &self.principal {
            Principal::System | Principal::Insecure => Ok(&self.org_id),
            Principal::Key { role, .. } | Principal::Person { role, .. } if need.allows(*role) => {
                Ok(&self.org_id)
            }
            Principal::Key { role, .. } | Principal::Person { role, .. } => {
                Err(ApiError::denied(format!(
                    "this operation needs {}; the key's role is {}",
                    need.describe(),
                    role.as_str()
                )))
            }
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self.principal, Principal::System | Principal::Insecure)
    }

    /// Who made a change, as recorded in histories.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::System => "system".to_owned(),
            Principal::Insecure => "anonymous (insecure)".to_owned(),
            Principal::Key { id, name, .. } => format!("key:{name} ({id})"),
            Principal::Person { subject, label, .. } => format!("oidc:{label} ({subject})"),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in org {}", self.actor(), self.org_id)
    }
}

/// The bearer token in an `Authorization` value, if it has the right shape.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Constant-time comparison of two secrets' SHA-256 digests.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_spec_says() {
        let table = [
            (Need::Read, [true, true, true, false]),
            (Need::Write, [false, true, true, false]),
            (Need::Admin, [false, false, true, false]),
            (Need::Connector, [false, false, false, true]),
            (Need::System, [false, false, false, false]),
        ];
        for (need, expected) in table {
            for (role, allowed) in Role::ALL.into_iter().zip(expected) {
                assert_eq!(need.allows(role), allowed, "{need:?} {role:?}");
            }
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert!(same_secret("x", "x") && !same_secret("x", "y"));
    }
}
