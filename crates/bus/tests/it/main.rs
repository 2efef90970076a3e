//! Bus tests. Each scenario runs on the embedded log and, with `NATS_URL`, on JetStream; with
//! SQLite service databases and, with `TEST_DATABASE_URL`, PostgreSQL ones.

// Helpers outside `#[test]` functions are not covered by clippy.toml's allow-unwrap-in-tests;
// tests panic on failure by design.
#![allow(clippy::unwrap_used)]

mod dead_letters;
mod delivery;
mod embedded_log;
mod outbox;
mod support;
