//! The one error type of the test kit: which server, which step, and the log tail when a server fails.

use std::time::Duration;

/// Result alias for the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a throwaway server could not be prepared, started or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// The server did not accept connections in time.
    #[error("{server} was not ready after {waited:?}; log tail:\n{log}")]
    NotReady {
        server: &'static str,
        waited: Duration,
        log: String,
    },
    /// The server process exited while starting.
    #[error("{server} exited during start-up ({status}); log tail:\n{log}")]
    Exited {
        server: &'static str,
        status: String,
        log: String,
    },
    /// A required system program or account is missing.
    #[error("{0} (run `make deps` to install the test servers)")]
    Missing(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
