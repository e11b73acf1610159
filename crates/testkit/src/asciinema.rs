//! asciinema (PyPI, in the test venv) as the judge of session recordings: its own asciicast
//! reader through `scripts/asciinema_check.py`, and `asciinema cat`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::venv_python;

fn run(mut command: Command, what: &str) -> Result<String> {
    let out = command
        .output()
        .map_err(Error::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: what.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| Error::Command {
        command: what.to_owned(),
        status: "ok".to_owned(),
        stderr: format!("output is not UTF-8: {e}"),
    })
}

/// What asciinema reads in the asciicast file at `path`, as one JSON object (`version`,
/// `width`, `height`, `env`, `command`, `title`, `timestamp`, `output`, `input`, `resizes`,
/// `events`, `duration`); an error when asciinema cannot read it or its times go backwards.
pub fn asciinema_summary(path: &Path) -> Result<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/asciinema_check.py");
    let mut command = Command::new(venv_python()?);
    command.arg(script).arg(path);
    run(command, &format!("asciinema_check.py {}", path.display()))
}

/// What `asciinema cat` prints for `path`: every output event's text.
pub fn asciinema_cat(path: &Path) -> Result<String> {
    let python = venv_python()?;
    let bin = python.with_file_name("asciinema");
    let mut command = Command::new(bin);
    command.arg("cat").arg(path);
    run(command, &format!("asciinema cat {}", path.display()))
}
