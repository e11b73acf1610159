//! Session recordings: uploads from connectors (stored once per id, the file written to a temp
//! name and renamed only when complete), listing, reading, deletion by admins, and retention.
//! Files live at `<recording.dir>/<org>/<id>.cast`, metadata in the `recordings` table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gate_proto::v1::{
    DeleteRecordingRequest, DeleteResponse, GetRecordingRequest, ListRecordingsRequest,
    ListRecordingsResponse, Recording, UploadRecordingResponse,
};
use tokio::sync::mpsc;

use super::audit::{cursor, is_uuid_v7, page, page_size, time};
use super::resources::PROTOCOLS;
use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, Code};
use crate::store::RecordingFilter;
use crate::util::hex;

/// The formats a recording may have.
pub(crate) const FORMATS: &[&str] = &["asciicast-v2", "jsonl"];
/// Largest recording accepted.
pub const MAX_RECORDING_BYTES: u64 = 1024 * 1024 * 1024;
/// Bytes per chunk when a file is read back.
const READ_CHUNK: usize = 256 * 1024;

/// An organization's directory name: its id when that is a safe file name, else a digest.
fn org_dir(root: &Path, org_id: &str) -> PathBuf {
    let safe = !org_id.is_empty()
        && !org_id.starts_with('.')
        && org_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if safe {
        root.join(org_id)
    } else {
        use sha2::Digest;
        root.join(format!(
            "org-{}",
            hex(&sha2::Sha256::digest(org_id.as_bytes()))
        ))
    }
}

/// Where recording `id` of `org_id` is kept (ids are validated UUIDs before they reach here).
fn file_path(root: &Path, org_id: &str, id: &str) -> PathBuf {
    org_dir(root, org_id).join(format!("{id}.cast"))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ApiError {
    tracing::error!(path = %path.display(), error = %e, "{what}");
    ApiError::new(
        Code::Internal,
        "cannot store the recording (logged by the control plane)",
    )
}

/// An upload in progress; dropped before [`Upload::commit`], it leaves nothing behind.
#[derive(Debug)]
pub struct Upload {
    org_id: String,
    recording: Recording,
    started_ms: i64,
    ended_ms: i64,
    /// `None` when the recording was stored before: the bytes are read and dropped.
    file: Option<(std::fs::File, PathBuf, PathBuf)>,
    size: u64,
}

impl Upload {
    /// The next bytes of the file.
    pub fn write(&mut self, data: &[u8]) -> ApiResult<()> {
        self.size += data.len() as u64;
        if self.size > MAX_RECORDING_BYTES {
            return Err(ApiError {
                code: Code::PayloadTooLarge,
                message: format!("a recording may be at most {MAX_RECORDING_BYTES} bytes"),
                field: Some("data".to_owned()),
            });
        }
        if let Some((file, temp, _)) = &mut self.file {
            file.write_all(data)
                .map_err(|e| io_error("cannot write a recording", temp, &e))?;
        }
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some((_, temp, _)) = self.file.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Read `path` in chunks into a channel (for the HTTP body and the gRPC stream).
pub fn read_chunks(path: PathBuf) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut chunk = vec![0u8; READ_CHUNK];
            match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

impl ControlPlane {
    fn recording_root(&self) -> ApiResult<&Path> {
        self.recording.as_ref().map(|r| Path::new(&r.dir)).ok_or_else(|| {
            ApiError::new(
                Code::FailedPrecondition,
                "this control plane stores no recordings: set recording.dir in its configuration",
            )
        })
    }

    /// Check an upload's metadata and open its temp file; the caller then writes and commits.
    pub async fn begin_upload(
        &self,
        caller: &Caller,
        meta: Option<Recording>,
    ) -> ApiResult<Upload> {
        let org = caller.org(Need::Connector)?.to_owned();
        let root = self.recording_root()?.to_path_buf();
        let r = meta.ok_or_else(|| {
            ApiError::invalid(
                "recording",
                "the first message must carry the recording's metadata",
            )
        })?;
        if !is_uuid_v7(&r.id) {
            return Err(ApiError::invalid(
                "recording.id",
                format!("expected a lower-case UUIDv7, got {:?}", r.id),
            ));
        }
        validate::one_of("recording.protocol", &r.protocol, PROTOCOLS)?;
        validate::one_of("recording.format", &r.format, FORMATS)?;
        for (field, value, max) in [
            ("recording.session_id", &r.session_id, 128),
            ("recording.identity", &r.identity, 256),
            ("recording.resource", &r.resource, 256),
            ("recording.connector", &r.connector, 256),
            ("recording.command", &r.command, 16 * 1024),
        ] {
            validate::text(field, value, max)?;
        }
        if r.resource.is_empty() {
            return Err(ApiError::invalid("recording.resource", "is required"));
        }
        let started_ms = time("recording.started_at", &r.started_at)?
            .ok_or_else(|| ApiError::invalid("recording.started_at", "is required"))?;
        let ended_ms = time("recording.ended_at", &r.ended_at)?
            .ok_or_else(|| ApiError::invalid("recording.ended_at", "is required"))?;
        if ended_ms < started_ms {
            return Err(ApiError::invalid(
                "recording.ended_at",
                "must not be before recording.started_at",
            ));
        }
        if r.width > 10_000 || r.height > 10_000 {
            return Err(ApiError::invalid(
                "recording.width",
                "width and height must be at most 10000",
            ));
        }
        let recording = Recording {
            org_id: org.clone(),
            ..r
        };
        let file = if self
            .store
            .get_recording(&org, &recording.id)
            .await?
            .is_some()
        {
            None
        } else {
            let dir = org_dir(&root, &org);
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error("cannot create a recording directory", &dir, &e))?;
            let target = file_path(&root, &org, &recording.id);
            let temp = dir.join(format!(
                ".{}.{}.part",
                recording.id,
                crate::util::hex(&crate::util::random_bytes::<6>())
            ));
            let file = std::fs::File::create(&temp)
                .map_err(|e| io_error("cannot create a recording", &temp, &e))?;
            Some((file, temp, target))
        };
        Ok(Upload {
            org_id: org,
            recording,
            started_ms,
            ended_ms,
            file,
            size: 0,
        })
    }

    /// The whole file arrived: make it durable, put it in place, store its metadata.
    pub async fn commit_upload(&self, mut upload: Upload) -> ApiResult<UploadRecordingResponse> {
        let Some((file, temp, target)) = upload.file.take() else {
            let stored = self
                .store
                .get_recording(&upload.org_id, &upload.recording.id)
                .await?;
            return Ok(UploadRecordingResponse {
                recording: stored,
                duplicate: true,
            });
        };
        let synced = {
            let (temp, target) = (temp.clone(), target.clone());
            tokio::task::spawn_blocking(move || {
                file.sync_all()?;
                std::fs::rename(&temp, &target)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error("cannot store a recording", &target, &e));
        }
        let recording = Recording {
            size_bytes: upload.size,
            ..upload.recording.clone()
        };
        let inserted = self
            .store
            .insert_recording(
                &upload.org_id,
                &recording,
                upload.started_ms,
                upload.ended_ms,
            )
            .await?;
        if inserted {
            self.metrics.recording_stored(upload.size);
        }
        // A concurrent upload of the same id wrote the same bytes; either row describes them.
        Ok(UploadRecordingResponse {
            recording: Some(recording),
            duplicate: !inserted,
        })
    }

    pub async fn list_recordings(
        &self,
        caller: &Caller,
        req: ListRecordingsRequest,
    ) -> ApiResult<ListRecordingsResponse> {
        let org = caller.org(Need::Read)?;
        let limit = page_size(req.limit)?;
        validate::one_of_or_empty("protocol", &req.protocol, PROTOCOLS)?;
        let filter = RecordingFilter {
            since_ms: time("since", &req.since)?,
            until_ms: time("until", &req.until)?,
            resource: Some(req.resource).filter(|s| !s.is_empty()),
            identity: Some(req.identity).filter(|s| !s.is_empty()),
            protocol: Some(req.protocol).filter(|s| !s.is_empty()),
            before: cursor(&req.cursor)?,
            limit: limit + 1,
        };
        let mut recordings = self.store.list_recordings(org, &filter).await?;
        let next_cursor = page(&mut recordings, limit, |r| (&r.started_at, &r.id));
        Ok(ListRecordingsResponse {
            recordings,
            next_cursor,
        })
    }

    pub async fn get_recording(
        &self,
        caller: &Caller,
        req: GetRecordingRequest,
    ) -> ApiResult<Recording> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_recording(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("recording"))
    }

    /// A recording and the path of its file.
    pub async fn recording_file(
        &self,
        caller: &Caller,
        req: GetRecordingRequest,
    ) -> ApiResult<(Recording, PathBuf)> {
        let recording = self.get_recording(caller, req).await?;
        let path = file_path(self.recording_root()?, &recording.org_id, &recording.id);
        if !path.exists() {
            tracing::error!(path = %path.display(), "a stored recording's file is missing");
            return Err(ApiError::new(
                Code::NotFound,
                "the recording's file is missing from recording.dir",
            ));
        }
        Ok((recording, path))
    }

    pub async fn delete_recording(
        &self,
        caller: &Caller,
        req: DeleteRecordingRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_recording(org, &req.id).await? {
            return Err(ApiError::not_found("recording"));
        }
        if let Ok(root) = self.recording_root() {
            remove_file(&file_path(root, org, &req.id));
        }
        tracing::info!(id = %req.id, by = %caller, "recording deleted");
        Ok(DeleteResponse {})
    }

    /// Remove the files of a deleted organization's recordings (its rows went with it).
    pub(crate) fn remove_org_recordings(&self, org_id: &str) {
        if let Ok(root) = self.recording_root() {
            let dir = org_dir(root, org_id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted organization's recordings");
            }
        }
    }

    /// Delete recordings that ended longer ago than `recording.retention`; returns how many.
    pub async fn sweep_recordings(&self) -> ApiResult<usize> {
        let Some(config) = &self.recording else {
            return Ok(0);
        };
        let Some(retention) = config.retention else {
            return Ok(0);
        };
        let root = Path::new(&config.dir);
        let cutoff = gate_proto::wire::now_ms()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let mut removed = 0;
        loop {
            let batch = self.store.expired_recordings(cutoff, 500).await?;
            if batch.is_empty() {
                break;
            }
            for (org, id) in &batch {
                if self.store.delete_recording(org, id).await? {
                    remove_file(&file_path(root, org, id));
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                ?retention,
                "recordings past their retention deleted"
            );
        }
        Ok(removed)
    }
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a recording's file");
    }
}

/// Apply `recording.retention` now and then: every tenth of it, between 1 s and 10 minutes.
pub async fn retention(cp: std::sync::Arc<ControlPlane>) {
    let Some(retention) = cp.recording.as_ref().and_then(|r| r.retention) else {
        return;
    };
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        if let Err(e) = cp.sweep_recordings().await {
            tracing::warn!(error = %e.message, "recording retention sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}
