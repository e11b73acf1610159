//! Real throwaway servers for Gate's tests: PostgreSQL 15, MariaDB, sshd,
//! nginx and nx-27017 (MongoDB wire protocol), each on a free 127.0.0.1
//! port in its own temp dir, stopped by PID (process group) when dropped.
//!
//! Every server lives in `$TMPDIR/gate-testkit/<kind>-<owner pid>-<owner start>-<n>/`.
//! Starting any server first reaps directories whose owning test process is
//! gone (a test killed mid-run): their process groups are killed and the
//! directories removed, so an interrupted run never leaves a server behind
//! that the next run trips over.
//!
//! ```no_run
//! let pg = gate_testkit::Postgres::start(gate_testkit::PostgresOptions::default())?;
//! assert_eq!(pg.psql("postgres", "select 1")?, "1");
//! # Ok::<(), gate_testkit::Error>(())
//! ```

mod asciinema;
mod error;
mod mariadb;
mod nginx;
mod nx27017;
mod postgres;
mod process;
pub mod scrape;
mod sshd;
mod tls;

pub use asciinema::{asciinema_cat, asciinema_summary};
pub use error::{Error, Result};
pub use mariadb::{MariaDb, MariaDbOptions};
pub use nginx::{Nginx, NginxOptions};
pub use nx27017::Nx27017;
pub use postgres::{PgAuth, Postgres, PostgresOptions};
pub use process::{free_port, reap_stale, testkit_root, venv_python};
pub use sshd::{Sshd, SshdOptions, ssh_keygen};
pub use tls::SelfSignedCert;
