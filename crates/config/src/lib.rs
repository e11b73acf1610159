//! Configuration for `gate-connector` and `gate-control`: structs, `${ENV}` expansion and validation (filled in by the connector issue).
