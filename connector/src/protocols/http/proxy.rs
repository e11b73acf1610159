//! One HTTP exchange: route, authenticate, admit, decide (`pre_request`),
//! forward, decide the response (`post_request`), enforce, audit.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{Action, ConnectionInfo, HttpInfo, PolicyInput, ResponseInfo, Verdict};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::enforce::{self, Inspection, Rules, Transformed, media_type};
use super::error::{HttpError, full};
use super::records::Records;
use super::request::{self, Forwarding};
use super::{Body, Connection, admissions, identity, route};
use crate::protocols::mcp;
use crate::session::outcome::{Outcome, count};
use crate::session::{self, Admission, AuditText, Decision, RequestKey, Session};

/// The request parts a `pre_request` verdict is reused by (see `session::keyed`).
const REQUEST_KEY: &[&str] = &["http.method", "http.path", "http.host"];
/// The request and response parts a `post_request` verdict is reused by.
const RESPONSE_KEY: &[&str] = &[
    "http.method",
    "http.path",
    "http.host",
    "response.status",
    "response.content_type",
];

/// Answer one request; every failure is a JSON error response.
pub(super) async fn handle(
    request: Request<Incoming>,
    connection: Arc<Connection>,
) -> Result<Response<Body>, Infallible> {
    Ok(exchange(request, &connection)
        .await
        .unwrap_or_else(HttpError::into_response))
}

async fn exchange(
    mut request: Request<Incoming>,
    conn: &Connection,
) -> Result<Response<Body>, HttpError> {
    let started = Instant::now();
    let gate = &*conn.gate;
    let path = request::normalize_path(request.uri().path()).map_err(HttpError::BadRequest)?;
    if path != request.uri().path() {
        *request.uri_mut() = with_path(request.uri(), &path)?;
    }
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_text(request.headers(), header::HOST))
        .map(|a| route::host_of(&a))
        .or_else(|| conn.sni.clone());
    let resource = route::select(
        &gate.config,
        &conn.route,
        host.as_deref(),
        request.uri().path(),
    )
    .inspect_err(|_| count(gate, "http", "", Outcome::UnknownResource))?;
    let traceparent = header_text(request.headers(), "traceparent");
    let trusted = identity::is_trusted(&conn.trusted, conn.peer.ip());
    let reached = mcp::metadata::Reached {
        uri: request.uri(),
        headers: request.headers(),
        tls: conn.tls,
        trusted,
    };
    if resource.protocol == Protocol::Mcp
        && let Some(metadata) = mcp::metadata::document(gate, resource, &request, reached)
    {
        return metadata;
    }
    let credentials = admissions::credentials(request.headers(), trusted);
    let remembered = conn.admissions.session(
        gate,
        resource,
        &credentials,
        conn.peer,
        traceparent.as_deref(),
    );
    let session = match remembered {
        Some(session) => session,
        None => {
            let authenticated =
                identity::authenticate(gate, &conn.trusted, request.headers(), conn.peer.ip());
            let (user, expires) = match authenticated {
                Ok(authenticated) => authenticated,
                Err(error) => {
                    count(
                        gate,
                        resource.protocol.as_str(),
                        &resource.name,
                        Outcome::AuthFailed,
                    );
                    return match resource.protocol {
                        // MCP clients learn from the challenge where to get a token.
                        Protocol::Mcp if error == HttpError::Unauthorized => {
                            Ok(mcp::metadata::unauthorized(gate, resource, reached))
                        }
                        _ => Err(error),
                    };
                }
            };
            let session = session::admit(
                gate,
                Admission {
                    protocol: resource.protocol,
                    resource,
                    user,
                    peer: conn.peer,
                    connection: ConnectionInfo {
                        tls: conn.tls,
                        ..Default::default()
                    },
                    traceparent: traceparent.clone(),
                    single_request: true,
                },
            )
            .map_err(|refusal| {
                count(
                    gate,
                    resource.protocol.as_str(),
                    &resource.name,
                    refusal.outcome(),
                );
                HttpError::Forbidden(refusal.to_string())
            })?;
            conn.admissions
                .remember(gate, credentials, expires, &session);
            session
        }
    };
    session.established();
    let exchange = Exchange {
        conn,
        session: &session,
        resource,
        host,
        trusted,
        started,
    };
    if resource.protocol == Protocol::Mcp {
        return mcp::run(&exchange, request, traceparent.as_deref()).await;
    }
    exchange.run(request, traceparent.as_deref()).await
}

/// The parts of one exchange the steps share (HTTP's, and MCP's on top).
pub(crate) struct Exchange<'a, 'g> {
    pub(crate) conn: &'a Connection,
    pub(crate) session: &'a Session<'g>,
    pub(crate) resource: &'g ResourceConfig,
    pub(crate) host: Option<String>,
    pub(crate) trusted: bool,
    pub(crate) started: Instant,
}

impl Exchange<'_, '_> {
    async fn run(
        &self,
        mut request: Request<Incoming>,
        traceparent: Option<&str>,
    ) -> Result<Response<Body>, HttpError> {
        let limit = self.resource.max_body_bytes;
        let declared = header_text(request.headers(), header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(HttpError::PayloadTooLarge(limit));
        }
        let upgrade = request::upgrade_of(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (mut parts, incoming) = request.into_parts();
        let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING)
            || !hyper::body::Body::is_end_stream(&incoming);
        let inspect = has_body
            && request::inspect_body(
                media_type(header_text(&parts.headers, header::CONTENT_TYPE).as_deref()).as_deref(),
            );
        let mut incoming = Some(incoming);
        let (body_json, mut body) = if let Some(whole) = incoming.take_if(|_| inspect) {
            let bytes = collect(whole, limit).await.map_err(|too_big| {
                if too_big {
                    HttpError::PayloadTooLarge(limit)
                } else {
                    HttpError::BadRequest("the request body could not be read".into())
                }
            })?;
            (serde_json::from_slice(&bytes).ok(), Some(bytes))
        } else {
            (None, None)
        };
        let mut view = request::policy_view(
            &parts.method,
            &parts.uri,
            &parts.headers,
            self.host.clone(),
            body_json,
        );
        let text: Arc<str> = request::audit_text(&parts.method, &parts.uri).into();
        let values = [
            Some(parts.method.as_str()),
            Some(view.path.as_str()),
            view.host.as_deref(),
        ];
        let decided = self.session.decide_keyed(
            || http_input(view.clone()),
            RequestKey {
                paths: REQUEST_KEY,
                values: &values,
            },
            parts.method.as_str(),
            AuditText::Text(text.clone()),
            "request refused by policy",
            traceparent,
        );
        let audit = decided.audit;
        let mut path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |pq| pq.as_str().to_owned());
        match decided.decision {
            Decision::Forward => {}
            Decision::Block(reason) => {
                return self.finish(audit, Err(HttpError::Forbidden(reason)));
            }
            Decision::Rewrite(target) if target.starts_with('/') => {
                let uri: http::Uri = target.parse().map_err(|e| {
                    HttpError::Internal(format!(
                        "the policy's rewrite {target:?} is not a request target: {e}"
                    ))
                })?;
                let path = request::normalize_path(uri.path()).map_err(HttpError::Internal)?;
                path_and_query = match uri.query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
            }
            Decision::Rewrite(replacement) => {
                if serde_json::from_str::<serde_json::Value>(&replacement).is_err() {
                    return self.finish(
                        audit,
                        Err(HttpError::Internal(
                            "the policy's rewrite is neither a path (starting with /) nor a JSON body".into(),
                        )),
                    );
                }
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                body = Some(Bytes::from(replacement));
            }
        }
        // post_request judges what is fetched: a rewritten path's response
        // gets the rewritten path's rules.
        if let Ok(target) = path_and_query.parse::<http::Uri>() {
            view.path = target.path().to_owned();
            view.query = request::parse_query(target.query().unwrap_or(""));
        }
        let upstream = self
            .conn
            .gate
            .protocols
            .http
            .upstream(self.resource)
            .map_err(|e| HttpError::Internal(format!("upstream TLS: {e}")))?;
        let mut upstream_request = Request::builder()
            .method(parts.method.clone())
            .uri(upstream.uri(&path_and_query)?)
            .version(http::Version::HTTP_11);
        let mut headers = std::mem::take(&mut parts.headers);
        request::upstream_headers(
            &mut headers,
            &Forwarding {
                resource: self.resource,
                client: &self.conn.client,
                trusted: self.trusted,
                tls: self.conn.tls,
                host: self.host.as_deref(),
                upgrade: upgrade.clone(),
            },
        );
        if let Ok(authority) = HeaderValue::from_str(&upstream.authority) {
            headers.insert(header::HOST, authority);
        }
        let body = match body {
            Some(bytes) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                headers.remove(header::TRANSFER_ENCODING);
                full(bytes)
            }
            None => match incoming {
                Some(stream) => {
                    Limited::new(stream, usize::try_from(limit).unwrap_or(usize::MAX)).boxed()
                }
                None => Empty::new().map_err(|never| match never {}).boxed(),
            },
        };
        if let Some(h) = upstream_request.headers_mut() {
            *h = headers;
        }
        let upstream_request = upstream_request
            .body(body)
            .map_err(|e| HttpError::BadRequest(format!("the request cannot be forwarded: {e}")))?;
        let response = match upstream.send(upstream_request).await {
            Ok(response) => response,
            Err(HttpError::UpstreamFailed(reason)) if reason.contains("length limit exceeded") => {
                return self.finish(audit, Err(HttpError::PayloadTooLarge(limit)));
            }
            Err(error) => return self.finish(audit, Err(error)),
        };
        let outcome = self
            .respond(&parts.method, view, response, &text, client_upgrade)
            .await;
        self.finish(audit, outcome)
    }

    /// `post_request` on the upstream's response, then enforcement.
    async fn respond(
        &self,
        method: &Method,
        view: HttpInfo,
        response: Response<Incoming>,
        text: &Arc<str>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<Body>, HttpError> {
        let media = media_type(header_text(response.headers(), header::CONTENT_TYPE).as_deref());
        let status = response.status();
        let verdict = self.judge_response(
            http_input(view),
            status,
            response.headers(),
            media.clone(),
            text.clone(),
            None,
        );
        if verdict.is_blocked() {
            return Err(HttpError::Forbidden(
                verdict
                    .reason
                    .clone()
                    .unwrap_or_else(|| "response refused by policy".into()),
            ));
        }
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            if !(verdict.masks.is_empty() && verdict.filters.is_empty()) {
                return Err(HttpError::ResponseRefused(
                    "a policy masks or filters this response, but it is an upgraded stream (WebSocket) Gate cannot inspect".into(),
                ));
            }
            return Ok(tunnel(response, client_upgrade));
        }
        let (mut parts, incoming) = response.into_parts();
        request::strip_hop_by_hop(&mut parts.headers);
        let has_body = method != Method::HEAD
            && !matches!(
                parts.status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            )
            && !parts.status.is_informational();
        let gate = &self.conn.gate;
        let filter_path = self.resource.filter_path.as_deref();
        let body = match enforce::plan(&verdict, media.as_deref(), has_body)? {
            Inspection::Pass => incoming.map_err(Into::into).boxed(),
            Inspection::Json => {
                let transformed = self
                    .inspect_json(&mut parts.headers, incoming, &verdict, filter_path)
                    .await?;
                match transformed {
                    Transformed::Keep(bytes, _) => {
                        parts
                            .headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                        full(Bytes::from(bytes))
                    }
                    Transformed::Drop => {
                        return Err(HttpError::Forbidden(
                            "the response is filtered out by policy".into(),
                        ));
                    }
                }
            }
            Inspection::Stream(kind) => {
                if encoded(&parts.headers) {
                    return Err(HttpError::ResponseRefused(
                        "a policy masks this streamed response, but it is content-encoded".into(),
                    ));
                }
                for name in [header::CONTENT_LENGTH, header::ETAG, header::ACCEPT_RANGES] {
                    parts.headers.remove(name);
                }
                let filter_path = filter_path.map(str::to_owned);
                let key = gate.masking_key.clone();
                let each: super::records::Transform = Arc::new(move |doc: &[u8]| {
                    enforce::transform(
                        doc,
                        &Rules::of(&verdict, filter_path.as_deref(), key.as_ref()),
                    )
                });
                Records::body(
                    incoming,
                    kind,
                    each,
                    usize::try_from(self.resource.max_body_bytes).unwrap_or(usize::MAX),
                )
            }
        };
        Ok(Response::from_parts(parts, body))
    }

    /// Read, decode and transform a JSON response that must be inspected.
    async fn inspect_json(
        &self,
        headers: &mut HeaderMap,
        incoming: Incoming,
        verdict: &Verdict,
        filter_path: Option<&str>,
    ) -> Result<Transformed, HttpError> {
        let limit = self.resource.max_body_bytes;
        let raw = collect(incoming, limit).await.map_err(|too_big| {
            HttpError::ResponseRefused(if too_big {
                format!("the response exceeds the {limit}-byte inspection limit (max_body_bytes)")
            } else {
                "the upstream broke off the response body".into()
            })
        })?;
        let coding = header_text(headers, header::CONTENT_ENCODING).unwrap_or_default();
        let decoded =
            super::decode::decode(&coding, &raw, limit).map_err(HttpError::ResponseRefused)?;
        for name in [
            header::CONTENT_ENCODING,
            header::ETAG,
            header::ACCEPT_RANGES,
            header::TRANSFER_ENCODING,
        ] {
            headers.remove(name);
        }
        headers.remove("content-md5");
        let rules = Rules::of(verdict, filter_path, self.conn.gate.masking_key.as_ref());
        enforce::transform(&decoded, &rules)
    }

    /// `post_request` for a response of `status` with `headers`; audited as a
    /// `result` event when it masks, filters, blocks or has dry-run findings.
    pub(crate) fn judge_response(
        &self,
        input: PolicyInput,
        status: StatusCode,
        headers: &HeaderMap,
        media: Option<String>,
        text: Arc<str>,
        mcp: Option<Arc<crate::audit::McpAudit>>,
    ) -> Arc<Verdict> {
        let http = input.http.as_ref();
        let values = [
            http.map(|h| h.method.as_str()),
            http.map(|h| h.path.as_str()),
            http.and_then(|h| h.host.as_deref()),
            Some(status.as_str()),
            media.as_deref(),
        ];
        let verdict = self.session.decide_response_keyed(
            || input.clone(),
            || ResponseInfo {
                status: Some(i64::from(status.as_u16())),
                headers: response_headers(headers),
                content_type: media.clone(),
                ..Default::default()
            },
            RequestKey {
                paths: RESPONSE_KEY,
                values: &values,
            },
        );
        if verdict.action != Action::Allow || !verdict.dry_run.is_empty() {
            self.session
                .audit_mcp("result", AuditText::Text(text), &verdict, mcp);
        }
        verdict
    }

    /// Complete the request's audit event (status, bytes, duration) and its metric.
    fn finish(
        &self,
        audit: session::AuditId,
        outcome: Result<Response<Body>, HttpError>,
    ) -> Result<Response<Body>, HttpError> {
        let response = outcome.unwrap_or_else(HttpError::into_response);
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .or_else(|| hyper::body::Body::size_hint(response.body()).exact())
            .unwrap_or(0);
        self.session
            .set_response(audit, response.status().as_u16(), bytes);
        self.session.complete(audit, self.started.elapsed());
        self.session.record_duration(self.started);
        self.session.flush();
        Ok(response)
    }
}

/// Pass a `101 Switching Protocols` back and splice the two upgraded connections.
fn tunnel(mut response: Response<Incoming>, client: hyper::upgrade::OnUpgrade) -> Response<Body> {
    let upstream = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
            tracing::debug!("an HTTP upgrade did not complete on both sides");
            return;
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed())
}

/// `uri` with its path replaced (query, scheme and authority kept).
fn with_path(uri: &http::Uri, path: &str) -> Result<http::Uri, HttpError> {
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        target
            .parse()
            .map_err(|e| HttpError::BadRequest(format!("request target {target:?}: {e}")))?,
    );
    http::Uri::from_parts(parts).map_err(|e| HttpError::BadRequest(format!("request target: {e}")))
}

/// Read a whole body of at most `limit` bytes; `Err(true)` when it is longer,
/// `Err(false)` when it broke off.
pub(crate) async fn collect(body: Incoming, limit: u64) -> Result<Bytes, bool> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(error.is::<http_body_util::LengthLimitError>()),
    }
}

fn http_input(view: HttpInfo) -> PolicyInput {
    PolicyInput {
        http: Some(view),
        ..Default::default()
    }
}

/// Response headers for `input.response.headers` (`set-cookie` left out).
fn response_headers(headers: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for name in headers.keys() {
        if name == header::SET_COOKIE {
            continue;
        }
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.as_str().to_owned(), joined);
    }
    out
}

fn encoded(headers: &HeaderMap) -> bool {
    header_text(headers, header::CONTENT_ENCODING)
        .is_some_and(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
}

pub(crate) fn header_text<K: http::header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
