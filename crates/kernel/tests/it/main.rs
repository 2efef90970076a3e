mod auth;
mod idempotency;
