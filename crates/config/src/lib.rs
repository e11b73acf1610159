//! Configuration for `gate-connector` (and later `gate-control`): typed
//! structs, `${ENV}` expansion in string values, strict parsing that names
//! the path of an unknown field, and validation that reports every problem.
//!
//! ```
//! use gate_config::{ConnectorConfig, load_str};
//! let env = |name: &str| (name == "PW").then(|| "s3cret".to_owned());
//! let yaml = "resources:\n  - {name: db, protocol: postgres, host: localhost, port: 5432, username: app, password: \"${PW}\"}\n";
//! let config: ConnectorConfig = load_str("connector.yaml", yaml, &env).unwrap();
//! assert_eq!(config.resources[0].password.as_deref(), Some("s3cret"));
//! ```

pub mod connector;
pub mod control;
mod duration;
mod env;
mod error;
pub mod http;
mod load;
pub mod logging;
mod number;
pub mod ssh;
pub mod ui;

pub use connector::{ConnectorConfig, LOG_FORMATS, LOG_LEVELS, LoggingConfig};
pub use control::ControlConfig;
pub use duration::parse_duration;
pub use env::{EnvError, expand};
pub use error::{ConfigError, ConfigErrors, Problems};
pub use load::{Validate, load_file, load_str};
