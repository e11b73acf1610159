//! End-to-end suites live in `tests/`: they run the real `gate-control` and `gate-connector`
//! binaries (built by the workspace test run) against a real PostgreSQL, with curl and
//! tokio-postgres as clients.
