//! Gate's SSH client to the upstream: connect, check the upstream's host key against the
//! resource's `known_hosts_file` (unless `insecure_skip_host_key`), log in with the resource's
//! key or password. Channels the upstream opens back (remote forwards, the agent) go to
//! `back.rs`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gate_config::connector::ResourceConfig;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, client};

use super::back::Back;
use super::error::SshError;

/// Ciphers offered upstream, most preferred first.
const UPSTREAM_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

/// Channel window and packet size on both legs (russh's defaults: 2 MiB, 32 KiB).
pub(super) const WINDOW_SIZE: u32 = 8 * 1024 * 1024;
pub(super) const MAX_PACKET: u32 = 65535;

/// How long reaching and logging in to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The client side's callbacks: the host-key check, and the channels the upstream opens back.
#[derive(Debug)]
pub(super) struct Upstream {
    resource: String,
    known_hosts: Option<String>,
    host: String,
    port: u16,
    /// Why the host key was refused, for the error the session reports.
    refused: Arc<Mutex<Option<SshError>>>,
    /// Where channels the upstream opens toward the client go.
    back: Arc<Back>,
}

impl client::Handler for Upstream {
    type Error = SshError;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, SshError> {
        let Some(path) = &self.known_hosts else {
            return Ok(true);
        };
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::new(cert.public_key().clone(), "")
            }
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let refusal = |detail: String| SshError::UpstreamHostKey {
            resource: self.resource.clone(),
            fingerprint: fingerprint.clone(),
            known_hosts: path.clone(),
            detail,
        };
        let refused = match russh::keys::check_known_hosts_path(&self.host, self.port, &key, path) {
            Ok(true) => return Ok(true),
            Ok(false) => refusal(format!(
                " (no entry for {} matches it)",
                host_port(&self.host, self.port)
            )),
            Err(russh::keys::Error::KeyChanged { line }) => refusal(format!(
                " (line {line} pins a different key: the host key changed or someone is in the middle)"
            )),
            Err(e) => refusal(format!(" (cannot read it: {e})")),
        };
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(refused);
        Ok(false)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), SshError> {
        self.back.forwarded_tcpip(
            channel,
            connected_address,
            connected_port,
            (originator_address, originator_port),
            reply,
        );
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), SshError> {
        self.back.agent(channel, reply);
        Ok(())
    }
}

fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Connect to `resource`'s upstream and log in as its `username`; channels it opens back go
/// to `back`.
pub(super) async fn connect(
    resource: &ResourceConfig,
    back: Arc<Back>,
) -> Result<client::Handle<Upstream>, SshError> {
    let upstream_error = |detail: String| SshError::Upstream {
        resource: resource.name.clone(),
        detail,
    };
    let port =
        u16::try_from(resource.port).map_err(|_| upstream_error("port out of range".into()))?;
    let refused = Arc::new(Mutex::new(None));
    let handler = Upstream {
        resource: resource.name.clone(),
        known_hosts: if resource.insecure_skip_host_key {
            None
        } else {
            resource.known_hosts_file.clone()
        },
        host: resource.host.clone(),
        port,
        refused: refused.clone(),
        back,
    };
    let config = Arc::new(client::Config {
        nodelay: true,
        // Gate's leg picks the cipher: AES-GCM (hardware AES through ring) before
        // ChaCha20-Poly1305, which costs more CPU per byte on the machines Gate runs on.
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(UPSTREAM_CIPHERS),
            ..russh::Preferred::default()
        },
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET,
        ..Default::default()
    });
    let address = (resource.host.as_str(), port);
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, client::connect(config, address, handler))
            .await
            .map_err(|_| upstream_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?;
    let mut handle = match connected {
        Ok(handle) => handle,
        Err(error) => {
            let refusal = refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Err(refusal.unwrap_or_else(|| upstream_error(error.to_string())));
        }
    };
    let user = resource.username.clone().unwrap_or_default();
    let login = async {
        if let Some(path) = &resource.private_key_file {
            let key = super::keys::client_key(
                path,
                &format!("resource {}: private_key_file", resource.name),
            )?;
            let hash = handle.best_supported_rsa_hash().await?.flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            if handle
                .authenticate_publickey(user.clone(), key)
                .await?
                .success()
            {
                return Ok(true);
            }
        }
        if let Some(password) = &resource.password {
            return Ok(handle
                .authenticate_password(user.clone(), password)
                .await?
                .success());
        }
        Ok::<bool, SshError>(false)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, login).await {
        Ok(Ok(true)) => Ok(handle),
        Ok(Ok(false)) => Err(upstream_error(format!(
            "refused Gate's login as {user:?} (check private_key_file / password)"
        ))),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(upstream_error(format!(
            "login took longer than {CONNECT_TIMEOUT:?}"
        ))),
    }
}
