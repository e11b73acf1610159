//! Each connection remembers its last admission: a request whose identity
//! inputs (the `Authorization` header, and the forwarded identity headers
//! when the peer is a trusted proxy) are byte-for-byte those of an earlier
//! admitted request skips authentication and the `session` stage (see
//! `session::admitted` for when the remembered admission no longer holds).
//! A remembered admission lasts at most [`REMEMBER_FOR`], and never past
//! its bearer token's `exp`.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gate_config::connector::ResourceConfig;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::identity::{FORWARDED_EMAIL, FORWARDED_GROUPS, FORWARDED_USER};
use crate::server::Gate;
use crate::session::{self, Admitted, Session};

/// The longest a connection reuses one admission.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Remembered {
    credentials: Vec<u8>,
    until: Instant,
    admitted: Admitted,
}

/// One connection's remembered admission.
#[derive(Debug, Default)]
pub(crate) struct Admissions {
    slot: Mutex<Option<Remembered>>,
}

impl Admissions {
    /// A session for a request with `credentials` (from [`credentials`]),
    /// when the remembered admission matches and still holds.
    pub(crate) fn session<'g>(
        &self,
        gate: &'g Gate,
        resource: &'g ResourceConfig,
        credentials: &[u8],
        peer: SocketAddr,
        traceparent: Option<&str>,
    ) -> Option<Session<'g>> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let remembered = slot.as_ref()?;
        if remembered.credentials != credentials || Instant::now() >= remembered.until {
            return None;
        }
        session::readmit(gate, resource, &remembered.admitted, peer, traceparent)
    }

    /// Remember `session`'s admission for requests with `credentials`;
    /// `expires` is the bearer token's `exp` (seconds since the epoch).
    pub(crate) fn remember(
        &self,
        gate: &Gate,
        credentials: Vec<u8>,
        expires: Option<u64>,
        session: &Session<'_>,
    ) {
        let Some(admitted) = session.admitted() else {
            return;
        };
        let mut until = Instant::now() + REMEMBER_FOR;
        if let Some(exp) = expires {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            until = until.min(Instant::now() + Duration::from_secs(exp.saturating_sub(now)));
        }
        let previous = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Remembered {
                credentials,
                until,
                admitted,
            });
        if let Some(previous) = previous {
            previous.admitted.count_reuses(gate);
        }
    }

    /// Count what the remembered admission's verdict cache reused (the
    /// connection ends).
    pub(crate) fn end(&self, gate: &Gate) {
        let remembered = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(remembered) = remembered {
            remembered.admitted.count_reuses(gate);
        }
    }
}

/// Every header `identity::authenticate` reads for a peer (`trusted`: a
/// trusted proxy), length-prefixed so no two header sets give the same bytes.
pub(crate) fn credentials(headers: &HeaderMap, trusted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut add = |name: &str| {
        for value in headers.get_all(name) {
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.push(0xff);
    };
    add(AUTHORIZATION.as_str());
    if trusted {
        add(FORWARDED_USER);
        add(FORWARDED_EMAIL);
        add(FORWARDED_GROUPS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_differ_when_any_identity_header_does() {
        let mut a = HeaderMap::new();
        a.insert(AUTHORIZATION, "Basic YTpi".parse().unwrap());
        let mut b = a.clone();
        b.insert(FORWARDED_USER, "alice".parse().unwrap());
        assert_ne!(credentials(&a, true), credentials(&b, true));
        assert_eq!(
            credentials(&a, false),
            credentials(&b, false),
            "forwarded headers from an untrusted peer are ignored"
        );
        let mut c = HeaderMap::new();
        c.insert(AUTHORIZATION, "Basic YTpj".parse().unwrap());
        assert_ne!(credentials(&a, false), credentials(&c, false));
        let mut split = HeaderMap::new();
        split.append(FORWARDED_GROUPS, "a,b".parse().unwrap());
        let mut two = HeaderMap::new();
        two.append(FORWARDED_GROUPS, "a".parse().unwrap());
        two.append(FORWARDED_GROUPS, ",b".parse().unwrap());
        assert_ne!(credentials(&split, true), credentials(&two, true));
    }
}
