//! The audit spool: batches the control plane could not take, one JSON-lines file each in
//! `delivery.dead_letter_dir`, written atomically and replayed oldest first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gate_proto::v1::AuditEvent;

/// A directory of spooled batches.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    seq: AtomicU64,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            seq: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `batch` durably (temp file, fsync, rename).
    pub fn write(&self, batch: &[AuditEvent]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{:013}-{:06}-{}.jsonl",
            gate_proto::wire::now_ms(),
            seq,
            std::process::id()
        );
        let target = self.dir.join(&name);
        let temp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&temp)?);
            for event in batch {
                serde_json::to_writer(&mut file, event).map_err(std::io::Error::other)?;
                file.write_all(b"\n")?;
            }
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&temp, &target)?;
        Ok(target)
    }

    /// Spooled batch files, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        files
    }

    /// Read one batch; lines that do not parse are reported, never silently dropped.
    pub fn read(path: &Path) -> std::io::Result<(Vec<AuditEvent>, Vec<String>)> {
        let text = std::fs::read_to_string(path)?;
        let mut events = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str(line) {
                Ok(event) => events.push(event),
                Err(e) => bad.push(format!("{}:{}: {e}", path.display(), i + 1)),
            }
        }
        Ok((events, bad))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn batches_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(spool.files().is_empty());
        let event = |id: &str| AuditEvent {
            id: id.into(),
            action: "allow".into(),
            ..AuditEvent::default()
        };
        spool.write(&[event("a"), event("b")]).unwrap();
        spool.write(&[event("c")]).unwrap();
        let files = spool.files();
        assert_eq!(files.len(), 2);
        let (first, bad) = Spool::read(&files[0]).unwrap();
        assert!(bad.is_empty());
        assert_eq!(
            first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        std::fs::write(&files[1], "{\"id\":\"c\"}\nnot json\n").unwrap();
        let (events, bad) = Spool::read(&files[1]).unwrap();
        assert_eq!((events.len(), bad.len()), (1, 1));
    }
}
