//! Shared helpers live in tests/common.rs; this crate has only integration tests.
