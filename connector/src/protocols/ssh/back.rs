//! Channels the upstream opens toward the client: `forwarded-tcpip` for a remote forward
//! (`ssh -R`) and `auth-agent@openssh.com` for agent forwarding (`ssh -A`), each relayed only
//! when the client's request for it was allowed by policy on this connection.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::{Channel, ChannelOpenFailure, client, server};
use tokio::sync::Notify;

/// How long a `forwarded-tcpip` channel may wait for the answer to the forward it belongs to
/// (the upstream listens, and may be reached, before Gate has read its reply).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the upstream may open toward the client, and the client to open it on.
#[derive(Debug)]
pub(super) struct Back {
    client: server::Handle,
    /// Remote forwards allowed and granted upstream: (listen address, port).
    forwards: Mutex<HashSet<(String, u32)>>,
    /// Remote forwards asked of the upstream whose answer has not been read yet.
    asking: AtomicUsize,
    /// Woken when one of those answers is in.
    settled: Notify,
    /// Whether agent forwarding was allowed on one of the connection's channels.
    agent: AtomicBool,
}

impl Back {
    pub(super) fn new(client: server::Handle) -> Self {
        Self {
            client,
            forwards: Mutex::new(HashSet::new()),
            asking: AtomicUsize::new(0),
            settled: Notify::new(),
            agent: AtomicBool::new(false),
        }
    }

    fn forwards(&self) -> std::sync::MutexGuard<'_, HashSet<(String, u32)>> {
        self.forwards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A remote forward the policy allowed is being asked of the upstream; [`Back::settle`]
    /// follows with the answer.
    pub(super) fn asking(&self) {
        self.asking.fetch_add(1, Ordering::AcqRel);
    }

    /// The upstream answered a forward [`Back::asking`] announced: `granted` is the address and
    /// port it listens on.
    pub(super) fn settle(&self, granted: Option<(&str, u32)>) {
        if let Some((address, port)) = granted {
            self.forwards().insert((address.to_owned(), port));
        }
        self.asking.fetch_sub(1, Ordering::AcqRel);
        self.settled.notify_waiters();
    }

    /// Whether (`address`, `port`) is an allowed forward, waiting for answers still out.
    async fn holds_forward(&self, address: &str, port: u32) -> bool {
        let key = (address.to_owned(), port);
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let settled = self.settled.notified();
            if self.forwards().contains(&key) {
                return true;
            }
            if self.asking.load(Ordering::Acquire) == 0 {
                return false;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return false;
            }
        }
    }

    /// Forget a cancelled remote forward; whether this connection held it.
    pub(super) fn remove_forward(&self, address: &str, port: u32) -> bool {
        self.forwards().remove(&(address.to_owned(), port))
    }

    /// Agent forwarding was allowed (and the upstream accepted it).
    pub(super) fn allow_agent(&self) {
        self.agent.store(true, Ordering::Relaxed);
    }

    /// A connection reached a remote forward's listener upstream: open the matching
    /// `forwarded-tcpip` channel to the client and relay it, or refuse one nobody allowed.
    pub(super) fn forwarded_tcpip(
        self: &Arc<Self>,
        up: Channel<client::Msg>,
        address: &str,
        port: u32,
        originator: (&str, u32),
        reply: client::ChannelOpenHandle,
    ) {
        let back = Arc::clone(self);
        let (address, originator_address) = (address.to_owned(), originator.0.to_owned());
        let originator_port = originator.1;
        // Waiting, and opening toward the client, take time: not in the upstream's callback.
        tokio::spawn(async move {
            if !back.holds_forward(&address, port).await {
                tracing::warn!(
                    protocol = "ssh",
                    address,
                    port,
                    "upstream opened a forwarded-tcpip channel for a forward nobody allowed; refused"
                );
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return;
            }
            let opened = back
                .client
                .channel_open_forwarded_tcpip(address, port, originator_address, originator_port)
                .await;
            relay_opened(opened, up, reply, "forwarded-tcpip").await;
        });
    }

    /// The upstream asks for the client's agent: relay the channel if agent forwarding was
    /// allowed on this connection.
    pub(super) fn agent(&self, up: Channel<client::Msg>, reply: client::ChannelOpenHandle) {
        if !self.agent.load(Ordering::Relaxed) {
            tracing::warn!(
                protocol = "ssh",
                "upstream opened an agent channel without allowed agent forwarding; refused"
            );
            tokio::spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            let opened = client.channel_open_agent().await;
            relay_opened(opened, up, reply, "agent").await;
        });
    }
}

/// Accept the upstream's channel once the client's side opened, and relay the two; refuse it
/// when the client would not open its side.
async fn relay_opened(
    opened: Result<Channel<server::Msg>, russh::Error>,
    up: Channel<client::Msg>,
    reply: client::ChannelOpenHandle,
    kind: &str,
) {
    match opened {
        Ok(down) => {
            reply.accept().await;
            super::relay::forward(down, up).await;
        }
        Err(error) => {
            tracing::info!(protocol = "ssh", %error, kind, "the client refused a channel the upstream opened");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
        }
    }
}
