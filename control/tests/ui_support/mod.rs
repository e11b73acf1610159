//! Admin UI test support: a raw HTTP/1.1 client that keeps response headers, sign-in through
//! the login form, and the hidden CSRF token of a page.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

pub mod oidc;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name` in a Set-Cookie header.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

/// One request on a fresh connection; `headers` are sent as given.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text += &format!("{k}: {v}\r\n");
    }
    text += "\r\n";
    text += body;
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let (status, headers) = super::common::parse_head(head);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].split('"').next()?.to_owned())
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A signed-in browser: its session cookie and CSRF token.
pub struct Browser {
    pub addr: SocketAddr,
    pub cookie: String,
    pub csrf: String,
}

pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// The sign-in form as a browser gets it (with `headers`): the reply, its `gate_login` cookie
/// header and the form's token.
pub async fn login_form(addr: SocketAddr, headers: &[(&str, &str)]) -> (Reply, String, String) {
    let page = request(addr, "GET", "/ui/login", headers, "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = format!("gate_login={}", page.cookie("gate_login").unwrap());
    let token = hidden(&page.body, "login_csrf").unwrap();
    (page, cookie, token)
}

/// Post the sign-in form with `key` and `next` (the form's cookie and token as `login_form` gave).
pub async fn post_login(
    addr: SocketAddr,
    form_of: &(Reply, String, String),
    key: &str,
    next: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let (_, cookie, token) = form_of;
    let body = form(&[("login_csrf", token), ("key", key), ("next", next)]);
    let mut headers = vec![FORM, ("Cookie", cookie.as_str())];
    headers.extend_from_slice(extra);
    request(addr, "POST", "/ui/login", &headers, &body).await
}

/// Sign in through the login form with `key` (a system key acts in `default`).
pub async fn sign_in(addr: SocketAddr, key: &str) -> Browser {
    let login = login_form(addr, &[]).await;
    let reply = post_login(addr, &login, key, "/", &[]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let session = reply.cookie("gate_session").unwrap();
    let cookie = format!("gate_session={session}");
    let home = request(addr, "GET", "/", &[("Cookie", &cookie)], "").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let csrf = hidden(&home.body, "csrf").unwrap();
    Browser { addr, cookie, csrf }
}

impl Browser {
    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[("Cookie", &self.cookie)], "").await
    }

    /// A form POST with the session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        request(
            self.addr,
            "POST",
            path,
            &[FORM, ("Cookie", &self.cookie)],
            &form(&all),
        )
        .await
    }
}
