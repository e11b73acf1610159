//! SSH (`protocol: ssh`): Gate is an SSH server to clients (its own host key, public-key logins
//! of identities) and an SSH client to the upstream (the resource's key or password, host key
//! pinned by `known_hosts_file`); every channel request is decided by policy. See README.md.

mod back;
mod certs;
mod channel;
pub mod error;
mod handler;
pub mod keys;
mod login;
mod policy;
mod relay;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gate_config::ConnectorConfig;
use russh::MethodKind;
use russh::server::Config;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

pub use error::SshError;
pub use login::route;
pub use policy::audit_text;

use crate::server::Gate;
use crate::session::outcome::{self, Outcome};

/// What SSH sessions share: the server configuration (with Gate's host key) and the
/// identities' decoded keys, loaded once at start ([`Shared::load`]).
#[derive(Debug, Default)]
pub struct Shared {
    loaded: OnceLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<Config>,
    keys: keys::IdentityKeys,
    cas: certs::UserCas,
}

impl Shared {
    /// Load (or generate) the host key and decode every identity's `ssh_keys`; an error names
    /// the setting. Called at start when an SSH resource is configured; later calls are free.
    pub fn load(&self, config: &ConnectorConfig) -> Result<(), SshError> {
        if self.loaded.get().is_some() {
            return Ok(());
        }
        let host_key = keys::host_key(&config.ssh.host_key_file)?;
        let keys = keys::IdentityKeys::new(&config.identities)?;
        let cas = certs::UserCas::new(&config.ssh.user_ca_keys)?;
        let server = Config {
            server_id: russh::SshId::Standard("SSH-2.0-Gate".into()),
            methods: russh::MethodSet::from(methods(config)),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            nodelay: true,
            window_size: upstream::WINDOW_SIZE,
            maximum_packet_size: upstream::MAX_PACKET,
            ..Default::default()
        };
        let _ = self.loaded.set(Loaded {
            config: Arc::new(server),
            keys,
            cas,
        });
        Ok(())
    }

    fn config(&self) -> Option<Arc<Config>> {
        self.loaded.get().map(|l| l.config.clone())
    }

    fn identity_keys(&self) -> Option<&keys::IdentityKeys> {
        self.loaded.get().map(|l| &l.keys)
    }

    fn user_cas(&self) -> Option<&certs::UserCas> {
        self.loaded.get().map(|l| &l.cas)
    }
}

/// Public keys (and certificates) always; keyboard-interactive with a token when JWT issuers
/// are configured (`auth.jwt`).
fn methods(config: &ConnectorConfig) -> &'static [MethodKind] {
    if config.auth.jwt.is_some() {
        &[MethodKind::PublicKey, MethodKind::KeyboardInteractive]
    } else {
        &[MethodKind::PublicKey]
    }
}

/// At start: load the host key and identity keys when an SSH resource is configured.
pub fn load_if_served(gate: &Gate) -> Result<(), SshError> {
    if serves_ssh(gate) {
        gate.protocols.ssh.load(&gate.config)?;
    }
    Ok(())
}

/// Whether any SSH resource is configured (else no host key is loaded or generated).
fn serves_ssh(gate: &Gate) -> bool {
    gate.config
        .resources
        .iter()
        .any(|r| r.protocol == gate_config::connector::Protocol::Ssh)
}

/// Serve one SSH client on `stream` (on a resource's own port, `dedicated` is its index).
pub async fn handle_client<S>(
    stream: S,
    peer: SocketAddr,
    gate: Arc<Gate>,
    dedicated: Option<usize>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !serves_ssh(&gate) {
        tracing::info!(%peer, "SSH on the shared listener, but no ssh resource is configured; closing");
        outcome::count(&gate, "ssh", "", Outcome::ProtocolError);
        return;
    }
    if let Err(error) = gate.protocols.ssh.load(&gate.config) {
        tracing::error!(protocol = "ssh", %error, "cannot serve ssh");
        outcome::count(&gate, "ssh", "", Outcome::ProtocolError);
        return;
    }
    let Some(config) = gate.protocols.ssh.config() else {
        return;
    };
    let client = handler::Client::new(gate.clone(), peer, dedicated);
    match russh::server::run_stream(config, stream, client).await {
        Ok(running) => {
            if let Err(error) = running.await {
                tracing::info!(protocol = "ssh", %peer, %error, "ssh connection ended");
            }
        }
        Err(error) => {
            tracing::info!(protocol = "ssh", %peer, %error, "ssh handshake failed");
            outcome::count(&gate, "ssh", "", Outcome::ProtocolError);
        }
    }
}

/// Accept SSH clients on the own port of the resource at `index` of `resources`.
pub async fn serve_listener(
    listener: TcpListener,
    gate: Arc<Gate>,
    index: usize,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle_client(stream, peer, gate.clone(), Some(index)));
    }
}

#[cfg(test)]
mod tests;
