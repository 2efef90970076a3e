//! Kernel integration tests.

mod auth;
mod idempotency;
mod server;
