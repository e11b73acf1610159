//! A started channel's two directions: client bytes, EOF, `window-change` and signals go
//! upstream; upstream bytes, EOF, `exit-status` and `exit-signal` come back, each as received.
//! A shell or exec is recorded on the way when its resource says so.

use std::sync::{Mutex, PoisonError};

use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client, server};

use super::channel::{Conn, Setup, Started};
use crate::recording::{Recorder, RecordingMeta};

/// What a relay does besides passing messages on.
struct Taps<'a> {
    /// The recording of this channel, if any.
    recorder: Mutex<Option<Recorder>>,
    record_input: bool,
    /// For what only the connection can send (`exit-signal`): absent for a forwarded TCP
    /// channel.
    client: Option<(&'a server::Handle, ChannelId)>,
}

impl Taps<'_> {
    fn with(&self, f: impl FnOnce(&mut Recorder)) {
        if let Some(r) = self
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            f(r);
        }
    }
}

/// Relay both ways until both sides are done; the exit status and the bytes sent to the client.
async fn both_ways(
    down: russh::Channel<server::Msg>,
    up: russh::Channel<client::Msg>,
    taps: &Taps<'_>,
) -> (Option<u32>, u64) {
    let (down_read, down_write) = down.split();
    let (up_read, up_write) = up.split();
    let ((), done) = tokio::join!(
        to_upstream(down_read, up_write, taps),
        from_upstream(up_read, down_write, taps)
    );
    done
}

async fn to_upstream(
    mut down: ChannelReadHalf,
    up: ChannelWriteHalf<client::Msg>,
    taps: &Taps<'_>,
) {
    while let Some(msg) = down.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                if taps.record_input {
                    taps.with(|r| r.input(&data));
                }
                if up.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExtendedData { data, ext } => {
                let _ = up.extended_data_bytes(ext, data).await;
            }
            ChannelMsg::Eof => {
                let _ = up.eof().await;
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                taps.with(|r| r.resize(clamp(col_width), clamp(row_height)));
                let _ = up
                    .window_change(col_width, row_height, pix_width, pix_height)
                    .await;
            }
            ChannelMsg::Signal { signal } => {
                let _ = up.signal(signal).await;
            }
            ChannelMsg::Close => break,
            // Requests (copies of what the handler answered) are not data.
            _ => {}
        }
    }
    let _ = up.close().await;
}

async fn from_upstream(
    mut up: ChannelReadHalf,
    down: ChannelWriteHalf<server::Msg>,
    taps: &Taps<'_>,
) -> (Option<u32>, u64) {
    let mut bytes = 0u64;
    let mut exit_status = None;
    while let Some(msg) = up.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                bytes += data.len() as u64;
                taps.with(|r| r.output(&data));
                if down.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExtendedData { data, ext } => {
                bytes += data.len() as u64;
                taps.with(|r| r.output(&data));
                let _ = down.extended_data_bytes(ext, data).await;
            }
            ChannelMsg::Eof => {
                let _ = down.eof().await;
            }
            ChannelMsg::ExitStatus {
                exit_status: status,
            } => {
                exit_status = Some(status);
                let _ = down.exit_status(status).await;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                if let Some((client, id)) = taps.client {
                    let _ = client
                        .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                        .await;
                }
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = down.close().await;
    (exit_status, bytes)
}

/// Relay a started session channel, then finish its recording and return its exit status and
/// the bytes the client got.
pub(super) async fn session(
    down: russh::Channel<server::Msg>,
    up: russh::Channel<client::Msg>,
    conn: &Conn,
    setup: &Setup,
    started: &Started,
) -> (Option<u32>, u64) {
    let id = down.id();
    let taps = Taps {
        recorder: Mutex::new(recorder(conn, setup, started)),
        record_input: conn.record().1,
        client: Some((&conn.client, id)),
    };
    let (exit_status, bytes) = both_ways(down, up, &taps).await;
    let recorder = taps
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(recorder) = recorder {
        recorder.finish(exit_status);
    }
    (exit_status, bytes)
}

/// Relay a forwarded channel (`direct-tcpip` for `ssh -L`, `forwarded-tcpip` for `ssh -R`,
/// the agent's for `ssh -A`): bytes and EOF both ways.
pub(super) async fn forward(down: russh::Channel<server::Msg>, up: russh::Channel<client::Msg>) {
    let taps = Taps {
        recorder: Mutex::new(None),
        record_input: false,
        client: None,
    };
    both_ways(down, up, &taps).await;
}

/// The recording of a started shell or exec when the resource records (`record: true`).
fn recorder(conn: &Conn, setup: &Setup, started: &Started) -> Option<Recorder> {
    let command = match started {
        Started::Exec(command) => Some(String::from_utf8_lossy(command).into_owned()),
        Started::Shell => None,
        Started::Subsystem(_) => return None,
    };
    if !conn.record().0 {
        return None;
    }
    let resource = conn.gate.config.resources.get(conn.resource)?;
    let meta = RecordingMeta {
        session_id: conn.session_id.clone(),
        resource: resource.name.clone(),
        identity: conn.identity.clone(),
        protocol: "ssh",
        width: setup.pty.as_ref().map_or(80, |p| clamp(p.cols)),
        height: setup.pty.as_ref().map_or(24, |p| clamp(p.rows)),
        command,
        term: setup.pty.as_ref().map(|p| p.term.clone()),
        env: setup.env.clone(),
    };
    match conn.gate.recordings.start(meta) {
        Ok(recorder) => recorder,
        Err(error) => {
            tracing::warn!(%error, resource = %resource.name, "cannot record this ssh session");
            None
        }
    }
}

fn clamp(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
