//! The recording spool, `recording.dir`: `<id>.cast` (the asciicast file, written as the session
//! runs) and `<id>.json` (its metadata, [`Sidecar`], rewritten atomically when it ends). A
//! recording is ready to ship once its sidecar says `finished`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A recording's metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// UUIDv7, also the file names.
    pub id: String,
    pub session_id: String,
    pub resource: String,
    pub identity: String,
    pub protocol: String,
    /// `asciicast-v2`.
    pub format: String,
    /// RFC 3339.
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    pub width: u16,
    pub height: u16,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub exit_status: Option<u32>,
    /// The session ended (or the recording was closed by a restart, see `interrupted`).
    #[serde(default)]
    pub finished: bool,
    /// Closed when the connector started again after stopping mid-session.
    #[serde(default)]
    pub interrupted: bool,
}

/// The asciicast file of recording `id`.
pub fn cast_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.cast"))
}

/// The metadata file of recording `id`.
pub fn sidecar_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Write `sidecar` so a reader sees the old version or the new one, never half of one.
pub fn write_sidecar(dir: &Path, sidecar: &Sidecar) -> std::io::Result<()> {
    let target = sidecar_path(dir, &sidecar.id);
    let temp = dir.join(format!(".{}.json.tmp", sidecar.id));
    {
        let mut file = std::fs::File::create(&temp)?;
        serde_json::to_writer_pretty(&mut file, sidecar).map_err(std::io::Error::other)?;
        file.write_all(b"\n")?;
    }
    std::fs::rename(&temp, &target)
}

/// Read a sidecar file.
pub fn read_sidecar(path: &Path) -> std::io::Result<Sidecar> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Every sidecar in `dir`, oldest first (ids are time-ordered); unreadable ones are reported.
pub fn sidecars(dir: &Path) -> (Vec<Sidecar>, Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut found = Vec::with_capacity(paths.len());
    let mut bad = Vec::new();
    for path in paths {
        match read_sidecar(&path) {
            Ok(sidecar) => found.push(sidecar),
            Err(e) => bad.push(e.to_string()),
        }
    }
    (found, bad)
}

/// Set a recording the control plane refused aside (`<id>.cast.rejected`, `<id>.json.rejected`):
/// kept for a person to look at, never shipped again.
pub fn reject(dir: &Path, id: &str) {
    for path in [cast_path(dir, id), sidecar_path(dir, id)] {
        let mut aside = path.clone().into_os_string();
        aside.push(".rejected");
        if let Err(e) = std::fs::rename(&path, &aside) {
            tracing::warn!(file = %path.display(), error = %e, "cannot set a refused recording aside");
        }
    }
}

/// Remove a shipped recording: the file first, so a sidecar is never left pointing at nothing
/// while the file still exists without one.
pub fn remove(dir: &Path, id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(cast_path(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::remove_file(sidecar_path(dir, id))
}
