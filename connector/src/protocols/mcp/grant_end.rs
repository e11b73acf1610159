//! A response stream held under an access grant ends when the grant does: an open GET (or POST)
//! SSE stream is closed the moment its grant is revoked or expires, so a server can no longer
//! reach a client whose access ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use tokio::sync::oneshot;

use crate::protocols::http::{Body, BoxError};
use crate::server::Gate;

/// `body`, ended when `identity`'s grant for `resource` ends; `on_end` hears the reason.
pub(super) fn until_grant_ends(
    body: Body,
    gate: Arc<Gate>,
    resource: String,
    local_required: bool,
    identity: String,
    on_end: impl FnOnce(&str) + Send + Sync + 'static,
) -> Body {
    let (tx, ended) = oneshot::channel();
    let watcher = tokio::spawn(async move {
        let reason = crate::grants::ended(&gate, &resource, local_required, &identity).await;
        let _ = tx.send(reason);
    });
    UntilGrantEnds {
        inner: body,
        ended,
        watcher,
        on_end: Some(Box::new(on_end)),
        closed: false,
    }
    .boxed()
}

type OnEnd = Box<dyn FnOnce(&str) + Send + Sync>;

struct UntilGrantEnds {
    inner: Body,
    ended: oneshot::Receiver<String>,
    watcher: tokio::task::JoinHandle<()>,
    on_end: Option<OnEnd>,
    closed: bool,
}

impl HttpBody for UntilGrantEnds {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(None);
        }
        if let Poll::Ready(Ok(reason)) = Pin::new(&mut this.ended).poll(cx) {
            tracing::info!(%reason, "closing an MCP stream: its access grant ended");
            this.closed = true;
            if let Some(on_end) = this.on_end.take() {
                on_end(&reason);
            }
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }
}

impl Drop for UntilGrantEnds {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
