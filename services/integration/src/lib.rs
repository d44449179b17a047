//! No library: the integration suite lives in `tests/`, one file per feature (see
//! docs/testing.md).
